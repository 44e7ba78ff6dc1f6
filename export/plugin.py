"""The plugin's side of each exported network: its layers, and how it is called.

Two contracts, both written out here once and independently of `train/models.py`:

- `PLUGIN_NETWORKS`: the exact layers of the five networks the plugin runs (type, in, out,
  activation) and PyTorch's parameter count (docs/rtneural.md, "The five networks"). `kelly verify
  --check-specs` holds every file to it; the C++ header's `RTNeural::ModelT` type is built from it.
- `io_contract(key)`: what the plugin feeds each network and what it gets back: the input slices
  (which values are the emotion embedding, which the audio features or the chord history) with
  their range, the outputs' meaning and scale, how often it is stepped and whether its state
  carries from one call to the next. It goes into the metadata (`contract`) and the header.

`EXPORTED` lists the cache keys of the networks that are exported: spec.NETWORKS may hold others
(trained for kelly-ml's own use) that the plugin never loads.
"""
from __future__ import annotations

from preprocess.features import spec

#: network -> ((type, in, out, activation), ...), PyTorch parameter count (two LSTM biases)
PLUGIN_NETWORKS: dict[str, tuple[tuple[tuple[str, int, int, str], ...], int]] = {
    "EmotionRecognizer": (
        (("dense", 128, 512, "tanh"), ("dense", 512, 256, "tanh"), ("lstm", 256, 128, ""), ("dense", 128, 64, "tanh")),
        403_264,
    ),
    "MelodyTransformer": (
        (("dense", 64, 256, "relu"), ("lstm", 256, 256, ""), ("dense", 256, 256, "relu"), ("dense", 256, 128, "sigmoid")),
        641_664,
    ),
    "HarmonyPredictor": (
        (("dense", 128, 256, "tanh"), ("dense", 256, 128, "tanh"), ("dense", 128, 64, "softmax")),
        74_176,
    ),
    "DynamicsEngine": (
        (("dense", 32, 128, "relu"), ("dense", 128, 64, "relu"), ("dense", 64, 16, "sigmoid")),
        13_520,
    ),
    "GroovePredictor": (
        (("dense", 64, 128, "tanh"), ("dense", 128, 64, "tanh"), ("dense", 64, 32, "tanh")),
        18_656,
    ),
}

#: cache keys of the exported networks, in the plugin's order
EXPORTED = tuple(key for key, network in spec.NETWORKS.items() if network.class_name in PLUGIN_NETWORKS)

#: what each output activation gives: (scale in words, lowest, highest)
OUTPUT_SCALES = {
    "tanh": ("tanh: each value in [-1, 1]", -1.0, 1.0),
    "sigmoid": ("sigmoid: each value in [0, 1]", 0.0, 1.0),
    "softmax": ("softmax: values in [0, 1] that sum to 1", 0.0, 1.0),
    "relu": ("relu: each value >= 0", 0.0, None),
    "": ("linear: unbounded", None, None),
}


def _slice(name: str, offset: int, size: int, low: float | None, high: float | None, meaning: str) -> dict:
    return {"name": name, "offset": offset, "size": size, "min": low, "max": high, "meaning": meaning}


def input_slices(key: str) -> list[dict]:
    """The consecutive parts of a network's input vector: name, offset, size, range ([min, max],
    None where unbounded) and meaning; their sizes add up to the input size."""
    embedding = f"EmotionRecognizer's emotion embedding, values in [-1, 1] ({spec.EMBEDDING_SIZE} values)"
    if key == "emotion":
        a = spec.AUDIO
        return [_slice("audio_features", 0, spec.NETWORKS[key].inputs, None, None,
                       f"{a['n_mels']} log-mel band means in dB of the current {a['window_seconds']:g}-s window "
                       f"of {a['sample_rate']} Hz audio, band 0 the lowest; raw values (the standardisation "
                       "is folded into layer 0)")]
    if key == "harmony":
        return [_slice("emotion_embedding", 0, spec.EMBEDDING_SIZE, -1.0, 1.0, embedding),
                _slice("chord_history", spec.EMBEDDING_SIZE, spec.HARMONY_CLASSES, 0.0, 1.0,
                       f"the last {spec.HARMONY_HISTORY} chords, one value per vocabulary chord, latest weighted "
                       "most, divided by the largest (so the largest is 1); all zeros before the first chord")]
    if key == "dynamics":
        return [_slice("emotion_embedding", 0, spec.DYNAMICS_INPUTS, -1.0, 1.0,
                       f"the first {spec.DYNAMICS_INPUTS} values of {embedding}")]
    return [_slice("emotion_embedding", 0, spec.NETWORKS[key].inputs, -1.0, 1.0, embedding)]


#: key -> (seconds per step or None, one step in words)
STEPS = {
    "emotion": (spec.AUDIO["window_seconds"], f"one call per {spec.AUDIO['window_seconds']:g}-s audio window"),
    "melody": (spec.MIDI["melody_window_seconds"],
               f"one call per {spec.MIDI['melody_window_seconds']:g} s of music: the pitches of the next window"),
    "harmony": (None, "one call per chord: the next chord, given the ones before it"),
    "dynamics": (spec.MIDI["dynamics_window_seconds"],
                 f"one call per {spec.MIDI['dynamics_window_seconds']:g} s of performance"),
    "groove": (None, "one call per bar"),
}

OUTPUT_MEANINGS = {
    "emotion": "the 64-value emotion embedding that the other networks take as input",
    "melody": "per MIDI pitch 0-127, the probability that it sounds in the next window",
    "harmony": "per chord of the 64-chord vocabulary, the probability that it is the next chord",
    "dynamics": "16 expression values describing the performance of the next window",
    "groove": "32 groove values for the next bar (per drum class: density, velocity, ...)",
}


def io_contract(key: str) -> dict:
    """How the plugin calls network `key`: its input slices, its outputs (meaning, scale, range),
    its step, whether its state carries across calls, and its pitch reference."""
    network = spec.NETWORKS[key]
    layers, _ = PLUGIN_NETWORKS[network.class_name]
    scale, low, high = OUTPUT_SCALES[layers[-1][3]]
    seconds, step = STEPS[key]
    pitch = spec.PITCH_REFERENCE.get(key) or "none"
    meaning = OUTPUT_MEANINGS[key]
    if pitch == "tonic":
        meaning += "; key-relative (the tonic on C): add s(tonic) to go back to the key played"
    if network.recurrent:
        state = ("carries: the LSTM keeps its state from one forward() call to the next; call reset() "
                 "once at the start of each new piece or stream, never between its steps")
    else:
        state = "none: each forward() call is independent of the ones before"
    return {
        "input_size": network.inputs,
        "inputs": input_slices(key),
        "output_size": network.outputs,
        "outputs": {"meaning": meaning, "scale": scale, "min": low, "max": high},
        "step": step,
        "step_seconds": seconds,
        "state_carries": bool(network.recurrent),
        "state": state,
        "pitch_reference": pitch,
    }
