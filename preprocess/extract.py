"""Per-source extraction: one dataset Item -> the arrays it adds to the cache (an ItemResult).

    deam     "emotion": inputs = the clip's 0.5-s log-mel windows [W, 128]; targets = embed(v, a) per
             window, from DEAM's 2-Hz dynamic labels where the window has one, else the static labels.
             Plus the clip summary [128].
    lakh     "melody": one row per 1-s window, targets = the window's sounding pitches [W, 128];
             "harmony": one chord per beat, repeats merged. Both at the pitch reference of
             spec.PITCH_REFERENCE (key-relative: tonic on C), keys section by section.
    maestro  "dynamics": one row per 2-s window, targets = 16 expression values; plus "melody" and
             "harmony" as for lakh.
    groove   "groove": one row per bar, targets = 32 groove values (the fill flag from the metadata's
             beat_type when present).
    harmony  "harmony": the progression's written chord symbols; an unknown symbol fails the
             progression (naming the symbol), it is never guessed. Key-relative like the others,
             the key being that of the progression's chord tones.
    emopia   "labeller": one row per frame of the clip (preprocess.features.labeller_input), the
             frame's values as the row's inputs, the clip's annotated (valence, arousal) signs as
             its targets: what the EmotionLabeller (not a plugin network) trains on.

The embedding is `embed(valence, arousal)` of the item's labels: annotated ones, or for items
whose label_source is "proxy" the documented proxy labels (`proxy_labels`), recorded in the result
with the attributes they came from. It is the first part of the melody, harmony, dynamics (its
first 32 values) and groove inputs, the same on every row of an item: the result holds it once
(`ItemResult.embedding`) and the rows only what is their own, packed as the cache stores it
(`preprocess.cache.layout`: melody targets in uint8 steps of 1/255, harmony's context as its
previous chords). Every failure raises `ExtractionError` with the stage it
happened in ("read", "midi", "audio", "labels", "melody", "dynamics", "groove", "chords",
"harmony", "keys", "validate", "samples"); the job records it and goes on.

Feature modules are imported inside the functions: the parent process imports this module to
hand `extract_item` to workers, and only workers pay for scipy.fft, soundfile, soxr and symusic;
`prepare_worker` pays it when a worker starts, before its first item.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Callable

import numpy as np

from preprocess.cache.layout import encode_targets
from preprocess.cache.manifest import file_hash
from preprocess.cache.shards import ItemResult, validate_result
from preprocess.features import spec

DEAM_DYNAMIC_START_SECONDS = 15.0     # DEAM's first dynamic annotation (sample_15000ms)
DEAM_DYNAMIC_RATE_HZ = 2.0


#: The metadata keys extraction reads, per source. Only these reach the feature functions, and only
#: these (with the labels) make the label digest that keys the cache: a change to any other metadata
#: (a path, an MSD id) recomputes nothing. A key read here but missing from this table would be a bug.
METADATA_READ: dict[str, tuple[str, ...]] = {
    "deam": ("dynamic_valence", "dynamic_arousal", "dynamic_start_seconds", "dynamic_rate_hz"),
    "lakh": (),
    "maestro": (),
    "groove": ("beat_type", "style", "bpm"),
    "harmony": ("chords",),
    "emopia": (),
}


def metadata_read(item) -> dict[str, Any]:
    """The part of an item's metadata that extraction reads (see METADATA_READ); for EMOPIA also the
    version of the labeller's frames (spec.LABELLER_VERSION), so that a change to them recomputes
    the clips while FEATURE_VERSION stays."""
    metadata = item.metadata or {}
    read = {key: metadata[key] for key in METADATA_READ.get(item.source, ()) if key in metadata}
    if item.source == "emopia":
        read["labeller_version"] = spec.LABELLER_VERSION
    return read


class ExtractionError(Exception):
    """An item that gives no samples: `stage` is the step that failed, the message says why."""

    def __init__(self, stage: str, message: str):
        self.stage = stage
        super().__init__(message)


@contextmanager
def stage(name: str):
    """Turn any exception inside the block into ExtractionError(name, message)."""
    try:
        yield
    except ExtractionError:
        raise
    except Exception as exc:
        raise ExtractionError(name, f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)) from exc


# --- pure helpers ------------------------------------------------------------------------------------

def dynamic_label_windows(n_windows: int, valence: np.ndarray, arousal: np.ndarray, *,
                          start_seconds: float = DEAM_DYNAMIC_START_SECONDS, rate_hz: float = DEAM_DYNAMIC_RATE_HZ,
                          window_seconds: float = spec.AUDIO["window_seconds"]):
    """Dynamic (time-varying) labels mapped onto audio windows.

    valence, arousal: float [K] annotations, sample k at `start_seconds + k / rate_hz` seconds
    (NaN where the annotation file is padded). Window w covers [w * window_seconds,
    (w + 1) * window_seconds). Returns (valence [W], arousal [W], labelled bool [W]): the mean of
    the finite samples falling in each window (DEAM at 2 Hz from 15 s: sample k -> window 30 + k),
    NaN where a window has none.
    """
    v = np.asarray(valence, dtype=np.float64).ravel()
    a = np.asarray(arousal, dtype=np.float64).ravel()
    k = min(v.size, a.size)
    v, a = v[:k], a[:k]
    times = start_seconds + np.arange(k) / rate_hz
    window = np.floor(times / window_seconds + 1e-9).astype(np.int64)
    ok = np.isfinite(v) & np.isfinite(a) & (window >= 0) & (window < n_windows)
    count = np.bincount(window[ok], minlength=n_windows)[:n_windows].astype(np.float64)
    v_sum = np.bincount(window[ok], weights=v[ok], minlength=n_windows)[:n_windows]
    a_sum = np.bincount(window[ok], weights=a[ok], minlength=n_windows)[:n_windows]
    labelled = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(labelled, v_sum / count, np.nan), np.where(labelled, a_sum / count, np.nan), labelled)


def _samples(network: str, targets: np.ndarray, window: np.ndarray, inputs: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """A network's rows as the cache stores them: targets encoded, the row's own inputs where it has any."""
    out = {"targets": encode_targets(network, targets), "window": np.asarray(window, dtype=np.int32)}
    if inputs is not None:
        out["inputs"] = inputs
    return out


# --- labels ------------------------------------------------------------------------------------------

def _annotated_labels(item) -> tuple[float, float]:
    with stage("labels"):
        if item.valence is None or item.arousal is None:
            raise ValueError(f"{item.label_source} item without valence/arousal")
        v, a = float(item.valence), float(item.arousal)
        if not (math.isfinite(v) and math.isfinite(a)):
            raise ValueError(f"valence {item.valence!r}, arousal {item.arousal!r}: not numbers (NaN in the label file?)")
        if not (-1.0 <= v <= 1.0 and -1.0 <= a <= 1.0):
            raise ValueError(f"valence {v}, arousal {a}: outside [-1, 1]")
    return v, a


def _midi_labels(item, notes) -> tuple[float, float, dict[str, Any]]:
    """Annotated labels, or proxy labels computed from the notes (with their attributes)."""
    if item.label_source != spec.LABEL_PROXY:
        v, a = _annotated_labels(item)
        return v, a, {}
    from preprocess.features.proxy_labels import proxy_labels

    with stage("labels"):
        proxy = proxy_labels(notes, item.source, metadata_read(item))
        v, a = float(proxy.valence), float(proxy.arousal)
        if not (math.isfinite(v) and math.isfinite(a)):
            raise ValueError(f"proxy labels are not numbers (valence {v}, arousal {a})")
    return v, a, _plain_attributes(proxy.attributes)


def _plain_attributes(attributes: dict) -> dict:
    out = {}
    for key, value in attributes.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[str(key)] = value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
    return out


def _embedding(v: float, a: float) -> np.ndarray:
    from preprocess.features.embedding import embed

    with stage("embedding"):
        return embed(v, a)


def _load_notes(item, *, pitched: bool):
    from preprocess.features.midi import load_notes

    with stage("midi"):
        notes = load_notes(item.path)
    if pitched and not np.any(~notes.is_drum):
        raise ExtractionError("midi", f"no pitched notes ({len(notes)} drum notes only)")
    return notes


def _chords_and_keys(notes):
    """(ChordTrack, KeyTrack) of a file with pitched notes: one pass over its beats serves both."""
    from preprocess.features.keys import chords_and_keys

    with stage("keys"):
        return chords_and_keys(notes)


def _notes_harmony(chords, keys) -> dict[str, np.ndarray] | None:
    """Harmony samples from a MIDI file's chords (at the pace of the beat), each at the pitch
    reference of the key sounding at its middle, repeats merged; None when too short."""
    from preprocess.features.chords import chord_sequence
    from preprocess.features.harmony import classes_at_reference

    with stage("harmony"):
        tonic, _ = keys.at((chords.start + chords.end) / 2)
        return _progression_samples(chord_sequence(classes_at_reference(chords.chord, tonic)))


def _progression_samples(sequence: list[int]) -> dict[str, np.ndarray] | None:
    """One row per chord, the opening one included (with nothing before it: what the network sees
    when the plugin starts a progression): the chord (target) and the chords before it (the row's
    inputs; the context's other half is the item's embedding, see preprocess.features.harmony)."""
    from preprocess.features.harmony import previous_chords

    classes = np.asarray(sequence, dtype=np.int64)
    if classes.size == 0:
        return None
    return _samples("harmony", classes, np.arange(classes.size), inputs=previous_chords(classes, opening=True))


def _melody(notes, keys) -> dict[str, np.ndarray] | None:
    from preprocess.features.melody import melody_targets

    with stage("melody"):
        targets, window = melody_targets(notes, keys)
    if len(window) == 0:
        return None
    return _samples("melody", targets, window)


def _result(item, content_hash: str, v: float, a: float, embedding: np.ndarray, samples: dict, **extra) -> ItemResult:
    return ItemResult(source=item.source, item_id=item.item_id, split=item.split, content_hash=content_hash,
                      label_source=item.label_source, valence=v, arousal=a, source_path=str(item.path),
                      embedding=embedding, samples={k: s for k, s in samples.items() if s is not None}, **extra)


# --- one function per source -------------------------------------------------------------------------

def extract_deam(item, content_hash: str) -> ItemResult:
    """DEAM clip -> "emotion" rows (per-window targets from dynamic labels where present) + clip summary."""
    from preprocess.features.audio import audio_features
    from preprocess.features.embedding import embed

    v, a = _annotated_labels(item)
    with stage("audio"):
        features = audio_features(item.path)
    n = features.n_windows
    valence, arousal = np.full(n, v), np.full(n, a)
    labelled = np.zeros(n, dtype=bool)
    meta = metadata_read(item)
    if "dynamic_valence" in meta and "dynamic_arousal" in meta:
        with stage("labels"):
            dv, da, labelled = dynamic_label_windows(
                n, meta["dynamic_valence"], meta["dynamic_arousal"],
                start_seconds=float(meta.get("dynamic_start_seconds", DEAM_DYNAMIC_START_SECONDS)),
                rate_hz=float(meta.get("dynamic_rate_hz", DEAM_DYNAMIC_RATE_HZ)))
            valence[labelled], arousal[labelled] = dv[labelled], da[labelled]
    with stage("embedding"):
        targets = embed(valence, arousal)
        embedding = embed(v, a)
    attributes = {"duration_s": features.duration_s, "windows_with_dynamic_labels": int(labelled.sum()),
                  "clipped_fraction": features.clipped_fraction, "rms": features.rms,
                  "original_sr": features.original_sr}
    samples = {"emotion": _samples("emotion", targets, np.arange(n), inputs=features.windows)}
    return _result(item, content_hash, v, a, embedding, samples, clip=features.clip, attributes=attributes)


def extract_lakh(item, content_hash: str) -> ItemResult:
    """Lakh MIDI -> "melody" (1-s windows) + "harmony" (chords per beat)."""
    notes = _load_notes(item, pitched=True)
    v, a, attributes = _midi_labels(item, notes)
    chords, keys = _chords_and_keys(notes)
    samples = {"melody": _melody(notes, keys), "harmony": _notes_harmony(chords, keys)}
    return _result(item, content_hash, v, a, _embedding(v, a), samples, attributes=attributes)


def extract_maestro(item, content_hash: str) -> ItemResult:
    """MAESTRO performance -> "dynamics" (2-s windows) + "melody" + "harmony"."""
    from preprocess.features.dynamics import dynamics_windows

    notes = _load_notes(item, pitched=True)
    v, a, attributes = _midi_labels(item, notes)
    with stage("dynamics"):
        targets, window = dynamics_windows(notes)
    dynamics = _samples("dynamics", targets, window) if len(window) else None
    chords, keys = _chords_and_keys(notes)
    samples = {"dynamics": dynamics, "melody": _melody(notes, keys), "harmony": _notes_harmony(chords, keys)}
    return _result(item, content_hash, v, a, _embedding(v, a), samples, attributes=attributes)


def extract_groove(item, content_hash: str) -> ItemResult:
    """Groove MIDI drum performance -> "groove" (one row per bar)."""
    from preprocess.features.groove import fill_label, groove_windows

    notes = _load_notes(item, pitched=False)
    v, a, attributes = _midi_labels(item, notes)
    with stage("groove"):
        targets, window = groove_windows(notes, is_fill=fill_label(metadata_read(item)))
    groove = _samples("groove", targets, window) if len(window) else None
    return _result(item, content_hash, v, a, _embedding(v, a), {"groove": groove}, attributes=attributes)


def extract_harmony(item, content_hash: str) -> ItemResult:
    """One written chord progression -> "harmony" rows; an unknown symbol fails the progression."""
    from preprocess.features.chords import UnknownChord, chord_class, chord_sequence

    chords = metadata_read(item).get("chords")
    if not chords:
        raise ExtractionError("chords", f"progression {item.item_id} has no chord list in its metadata")
    if item.label_source == spec.LABEL_PROXY:
        raise ExtractionError("labels", "progression without emotion labels: no proxy labels are defined for "
                                        "written chord symbols")
    v, a = _annotated_labels(item)
    classes = []
    for position, symbol in enumerate(chords):
        try:
            classes.append(chord_class(symbol))
        except UnknownChord as exc:
            raise ExtractionError("chords", f"unknown chord symbol {symbol!r} at position {position} of "
                                            f"progression {item.item_id}") from exc
    with stage("harmony"):
        from preprocess.features.harmony import classes_at_reference, progression_key

        classes = classes_at_reference(classes, progression_key(classes)[0])
        harmony = _progression_samples(chord_sequence(classes))
    return _result(item, content_hash, v, a, _embedding(v, a), {"harmony": harmony},
                   attributes={"chords": " ".join(chords)})


def extract_emopia(item, content_hash: str) -> ItemResult:
    """EMOPIA clip -> "labeller" rows: the clip's frames (`labeller_input.labeller_frames`, one row
    per frame, window = the frame's index), each with the clip's annotated (valence, arousal) signs."""
    from preprocess.features.labeller_input import labeller_frames

    v, a = _annotated_labels(item)
    notes = _load_notes(item, pitched=True)
    chords, keys = _chords_and_keys(notes)
    with stage("labeller"):
        frames = labeller_frames(notes, keys, chords)
    targets = np.tile(np.array([v, a], dtype=np.float32), (len(frames), 1))
    samples = {"labeller": _samples("labeller", targets, np.arange(len(frames)), inputs=frames)}
    attributes = {"frames": int(len(frames)), "duration_s": float(len(frames) * spec.LABELLER["frame_seconds"])}
    return _result(item, content_hash, v, a, _embedding(v, a), samples, attributes=attributes)


EXTRACTORS: dict[str, Callable[[Any, str], ItemResult]] = {
    "deam": extract_deam,
    "lakh": extract_lakh,
    "maestro": extract_maestro,
    "groove": extract_groove,
    "harmony": extract_harmony,
    "emopia": extract_emopia,
}


def extract_item(item, content_hash: str | None = None) -> ItemResult:
    """Compute everything one item adds to the cache. Raises ExtractionError (with its stage).

    content_hash: the file's hash when the caller knows it (else it is computed here).
    """
    if item.source not in EXTRACTORS:
        raise ExtractionError("extract", f"no extractor for source {item.source!r}")
    with stage("read"):
        content_hash = content_hash or file_hash(item.path)
    result = EXTRACTORS[item.source](item, content_hash)
    with stage("validate"):
        validate_result(result)
    if not any(result.rows().values()):
        expected = " or ".join(n for n, (_, _, sources) in spec.TRAINED_NETWORKS.items() if item.source in sources)
        raise ExtractionError("samples", f"no {expected} samples: every window is empty")
    return result


#: the feature modules each source's extraction imports
FEATURE_MODULES: dict[str, tuple[str, ...]] = {
    "deam": ("audio", "embedding"),
    "lakh": ("midi", "proxy_labels", "embedding", "key_relative", "melody", "chords", "keys", "harmony"),
    "maestro": ("midi", "proxy_labels", "embedding", "key_relative", "melody", "chords", "keys", "harmony",
                "dynamics"),
    "groove": ("midi", "proxy_labels", "embedding", "groove"),
    "harmony": ("embedding", "chords", "key_relative", "harmony"),
    "emopia": ("midi", "embedding", "chords", "keys", "labeller_input"),
}


def prepare_worker(sources: tuple[str, ...] = tuple(FEATURE_MODULES)) -> None:
    """Import what extracting items of `sources` needs, and build the mel filterbank, in a fresh
    worker process: its start-up (about 0.3-0.5 s, mostly scipy.fft's import) is then paid while the
    parent reads the datasets, not on the worker's first item."""
    import importlib

    names = {name for source in sources for name in FEATURE_MODULES.get(source, ())}
    for name in sorted(names):
        importlib.import_module(f"preprocess.features.{name}")
    if "midi" in names:
        import symusic  # noqa: F401  (the parser, imported where it is first used)
    if "audio" in names:
        from preprocess.features.audio import mel_power

        mel_power(np.zeros(4096, dtype=np.float32))      # filterbank, window and the FFT's plan, cached
