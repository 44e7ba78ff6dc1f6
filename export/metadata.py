"""The `"metadata"` block written beside an exported network's layers.

RTNeural's parser ignores every top-level key but `in_shape` and `layers`, so the block travels
inside the same file: what each input and output means, the feature version and parameters the
network was trained on, the emotion-embedding definition, the chord vocabulary, how the plugin
runs it (`contract`: input slices, output scale, step, whether state carries; export.plugin), and
where it came from (cache identity, git commit, date, checkpoint metrics).
"""
from __future__ import annotations

import datetime as _dt
import math
import subprocess
from pathlib import Path

import numpy as np

from export.plugin import io_contract
from preprocess.features import spec

#: version of this file layout (the metadata block and the layer mapping in export.rtneural)
FORMAT_VERSION = "kelly-rtneural-1"


def midi_note_name(pitch: int) -> str:
    """MIDI pitch -> scientific pitch name (60 -> "C4", 21 -> "A0")."""
    return f"{spec.PITCH_CLASS_NAMES[pitch % 12]}{pitch // 12 - 1}"


def chord_vocabulary() -> list[str]:
    """The HarmonyPredictor's 64 output classes, in output order."""
    return [str(name) for name in spec.CHORD_VOCABULARY]


def embedding_definition() -> dict:
    """How (valence, arousal) becomes the 64-value emotion embedding, as data."""
    from preprocess.features import embedding

    return jsonable(embedding.EMBEDDING)


def describe_inputs(key: str) -> dict:
    """Size, meaning and per-value names of a network's inputs."""
    n_in = spec.NETWORKS[key].inputs
    embedding_names = [f"embedding_{i:02d}" for i in range(spec.EMBEDDING_SIZE)]
    if key == "emotion":
        a = spec.AUDIO
        return {
            "size": n_in,
            "description": (
                f"{a['n_mels']} log-mel band means in dB ({a['log']}), "
                f"from {a['sample_rate']} Hz audio, n_fft {a['n_fft']}, hop {a['hop_length']}, "
                f"mel bands {a['fmin']:g}-{a['fmax']:g} Hz, {a['window_summary']} "
                f"of {a['window_seconds']} s; band 0 is the lowest"
            ),
            "names": [f"log_mel_{i:03d}" for i in range(n_in)],
            "source": spec.NETWORKS[key].input_from,
        }
    if key == "harmony":
        vocabulary = chord_vocabulary()
        return {
            "size": n_in,
            "description": (
                f"emotion embedding ({spec.EMBEDDING_SIZE}) followed by the chord history "
                f"({spec.HARMONY_CLASSES}, one value per vocabulary chord): the last {spec.HARMONY_HISTORY} "
                "chords, latest first, weighted by history_weights (summed when a chord repeats), "
                "then divided by the maximum so the largest is 1; all zeros before the first chord"
                + ("; chords key-relative (see pitch_reference_rule)" if spec.PITCH_REFERENCE["harmony"] == "tonic" else "")
            ),
            "names": embedding_names + [f"history_{chord}" for chord in vocabulary],
            "history_weights": [float(w) for w in spec.HARMONY_HISTORY_WEIGHTS],
            "source": spec.NETWORKS[key].input_from,
        }
    description = "emotion embedding values in [-1, 1]"
    if key == "dynamics":
        description = f"the first {spec.DYNAMICS_INPUTS} emotion-embedding values, in [-1, 1]"
    return {
        "size": n_in,
        "description": description,
        "names": embedding_names[:n_in],
        "source": spec.NETWORKS[key].input_from,
    }


def pitch_reference(key: str) -> dict:
    """How the network's pitches relate to the music: {"pitch_reference": "tonic" | "absolute" |
    "none", "pitch_reference_rule": what to do with it (None for "none")}.

    "tonic": pitches (melody outputs) or chords (harmony history inputs and outputs) are key-relative,
    the current key's tonic on C; the plugin adds s(tonic) (spec.TONIC_RULE) to each output and
    takes it off each chord it feeds back. "none": no pitch goes in or out (EmotionRecognizer,
    DynamicsEngine, GroovePredictor).
    """
    reference = spec.PITCH_REFERENCE.get(key)
    if reference is None:
        return {"pitch_reference": "none", "pitch_reference_rule": None}
    if reference == "absolute":
        return {"pitch_reference": "absolute", "pitch_reference_rule": "MIDI pitches and chord roots as played"}
    if key == "melody":
        rule = ("outputs are key-relative MIDI pitches (the tonic on C, the mode kept): output q is absolute "
                f"pitch q + s. {spec.TONIC_RULE}. Keys: {spec.KEY_ESTIMATION}")
    else:
        rule = ("the chord history (inputs 64-127) and the 64 outputs are key-relative chord classes (the tonic "
                f"on C): take s off each previous chord before it goes into the history, add s to each output. "
                f"{spec.TONIC_RULE}. Chords: {spec.CHORD_TONIC_RULE}. Keys: {spec.KEY_ESTIMATION}")
    return {"pitch_reference": reference, "pitch_reference_rule": rule}


def describe_outputs(key: str) -> dict:
    """Size, meaning and per-value names of a network's outputs."""
    n_out = spec.NETWORKS[key].outputs
    if key == "emotion":
        return {
            "size": n_out,
            "description": "the 64-value emotion embedding (tanh, in [-1, 1]); see emotion_embedding",
            "names": [f"embedding_{i:02d}" for i in range(n_out)],
        }
    if key == "melody":
        relative = spec.PITCH_REFERENCE["melody"] == "tonic"
        return {
            "size": n_out,
            "description": (
                "per MIDI pitch 0-127, the probability that it sounds in the next "
                f"{spec.MIDI['melody_window_seconds']:g}-s window (sigmoid; trained on the fraction "
                "of the window during which the pitch sounds)"
                + ("; key-relative: names are for a key on C, add s(tonic) (see pitch_reference_rule)"
                   if relative else "")
            ),
            "names": [midi_note_name(p) for p in range(n_out)],
        }
    if key == "harmony":
        return {
            "size": n_out,
            "description": f"probability of each chord of the vocabulary for the next bar (softmax); {spec.MIDI['harmony_step']}"
                           + ("; key-relative chords (see pitch_reference_rule)"
                              if spec.PITCH_REFERENCE["harmony"] == "tonic" else ""),
            "names": chord_vocabulary(),
        }
    if key == "dynamics":
        return {
            "size": n_out,
            "description": (
                f"{n_out} expression values in [0, 1] (sigmoid) describing "
                f"{spec.MIDI['dynamics_window_seconds']:g} s of performance"
            ),
            "names": list(spec.DYNAMICS_NAMES),
        }
    if key == "groove":
        return {
            "size": n_out,
            "description": f"{n_out} groove values in [-1, 1] (tanh) for {spec.MIDI['groove_window']}",
            "names": list(spec.GROOVE_NAMES),
            "drum_classes": list(spec.GROOVE_CLASSES),
        }
    raise KeyError(key)


def wiring(model) -> dict:
    """How the plugin runs the network."""
    if model.is_recurrent:
        stepping = (
            "one time step per forward() call; the LSTM state is kept between calls "
            "until reset(): call reset() at the start of each new sequence"
        )
    else:
        stepping = "one input vector per forward() call; no state"
    return {
        "input_from": spec.NETWORKS[model.key].input_from,
        "recurrent": bool(model.is_recurrent),
        "stepping": stepping,
        "input_normalisation": "folded into layer 0: feed raw feature values",
    }


def parameter_counts(model) -> dict:
    """PyTorch's parameter count and the exported one (an exported LSTM holds one summed bias,
    PyTorch two: exported = pytorch - 4 * hidden per LSTM)."""
    from torch import nn

    pytorch = sum(p.numel() for p in model.parameters())
    lstm_bias = sum(4 * layer.hidden_size for layer in model.layers if isinstance(layer, nn.LSTM))
    return {
        "pytorch": int(pytorch),
        "exported": int(pytorch - lstm_bias),
        "note": "an LSTM's bias_ih + bias_hh are exported as one summed bias",
    }


def git_commit(directory: str | Path | None = None) -> dict | None:
    """{"commit": sha, "dirty": bool} of the repository holding this code, or None outside git."""
    directory = Path(directory or Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha, "dirty": bool(status.strip())}


def jsonable(value):
    """`value` with tensors/arrays/paths turned into plain JSON values; NaN/inf become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "detach"):                      # torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def build_metadata(model, checkpoint: dict | None = None, *, checkpoint_path: str | Path | None = None) -> dict:
    """The metadata block for `model` (a `train.models.KellyNetwork`) and its checkpoint dict."""
    checkpoint = checkpoint or {}
    key = model.key
    document = {
        "format": FORMAT_VERSION,
        "network": model.name,
        "key": key,
        "parameters": parameter_counts(model),
        "inputs": describe_inputs(key),
        "outputs": describe_outputs(key),
        "wiring": wiring(model),
        "contract": io_contract(key),
        **pitch_reference(key),
        "features": {
            "version": spec.FEATURE_VERSION,
            "audio": dict(spec.AUDIO),
            "midi": dict(spec.MIDI),
            "pitch_reference": dict(spec.PITCH_REFERENCE),
        },
        "emotion_embedding": embedding_definition(),
        "provenance": {
            "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git": git_commit(),
            "checkpoint": str(checkpoint_path) if checkpoint_path else None,
            "checkpoint_format": checkpoint.get("format"),
            "feature_version": checkpoint.get("feature_version"),
            "cache_identity": checkpoint.get("cache_identity"),
            "epoch": checkpoint.get("epoch"),
            "best_val_loss": checkpoint.get("best_val_loss"),
            "metrics": checkpoint.get("metrics"),
            "training_config": checkpoint.get("config"),
        },
    }
    document["label_sources"] = label_sources(checkpoint)
    if key == "harmony":
        document["chord_vocabulary"] = chord_vocabulary()
    return jsonable(document)


def label_sources(checkpoint: dict) -> dict:
    """Where the (valence, arousal) of the items the network trained on came from: {"items":
    {label source: items}, "meaning": ...}; label sources are "annotated" (the dataset's own human
    labels), "labeller:<id>" (a trained EmotionLabeller's, id = a digest of its checkpoint) and
    "proxy" (hand rules on the music, preprocess.features.proxy_labels). Empty items when the
    checkpoint does not record them (trained before they were counted)."""
    counts = ((checkpoint.get("metrics") or {}).get("data") or {}).get("label_sources") or {}
    return {
        "items": {str(name): int(n) for name, n in sorted(counts.items())},
        "meaning": "annotated: human labels; labeller:<id>: a trained EmotionLabeller's labels (kelly label); "
                   "proxy: derived from the music by hand rules",
    }
