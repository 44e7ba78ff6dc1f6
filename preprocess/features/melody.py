"""MelodyTransformer targets: which pitches sound, and for how long, in each window of a file.

Window w covers [w * window_seconds, (w + 1) * window_seconds). Its target row holds, for every
MIDI pitch p, the fraction of the window during which p sounds on any non-drum track (a pitch
doubled on two tracks, or repeated with overlapping notes, counts once). Rows are not
histograms: a four-note chord held through the window has four entries of 1.0.

`melody_windows` gives these rows at absolute pitch; `melody_targets`, what the cache stores,
gives them at the pitch reference of spec.PITCH_REFERENCE["melody"]: "tonic" moves each window
so that its key's tonic is C (preprocess.features.key_relative), "absolute" leaves them.
"""
from __future__ import annotations

import numpy as np

from preprocess.features import spec
from preprocess.features.key_relative import to_tonic
from preprocess.features.midi import BOUNDARY_SECONDS, NoteArrays, window_count, window_of, window_overlaps

N_PITCHES = spec.MELODY_TARGETS


def pitch_intervals(onset: np.ndarray, offset: np.ndarray, pitch: np.ndarray):
    """Per-pitch union of note spans: (start s, end s, pitch) arrays [K], overlapping notes merged."""
    order = np.argsort(pitch, kind="stable") if np.all(np.diff(onset) >= 0) else np.lexsort((onset, pitch))
    onset, offset, pitch = onset[order], offset[order], pitch[order]
    # shift every pitch to its own time range so one running maximum serves all pitches at once
    shift = (float(offset.max()) + 1.0) * pitch.astype(np.float64)
    start, end = onset + shift, offset + shift
    reach = np.maximum.accumulate(end)
    new = np.r_[True, start[1:] > reach[:-1]]
    first = np.flatnonzero(new)
    last = np.r_[first[1:], start.size] - 1
    return onset[first], reach[last] - shift[first], pitch[first]


def melody_windows(notes: NoteArrays, window_seconds: float = spec.MIDI["melody_window_seconds"],
                   min_notes: int = spec.MIDI["min_notes_per_window"]):
    """Fraction of each window during which each pitch sounds (non-drum notes).

    Returns (targets float32 [W, 128] in [0, 1], window_index int32 [W]): one row per window in
    which at least `min_notes` non-drum notes sound; window_index is the window's position in
    the file (consecutive windows have consecutive indices). A file with no pitched notes gives
    W = 0.
    """
    pitched = ~notes.is_drum
    onset, offset, pitch = notes.onset[pitched], notes.offset[pitched], notes.pitch[pitched]
    if onset.size == 0:
        return np.zeros((0, N_PITCHES), np.float32), np.zeros(0, np.int32)
    n_windows = window_count(notes.duration, window_seconds)

    # notes sounding in each window: +1 at a note's first window, -1 after its last
    first = window_of(onset, window_seconds, n_windows)
    after = np.maximum(np.ceil(offset / window_seconds - BOUNDARY_SECONDS).astype(np.int64), first + 1)
    sounding = np.cumsum(np.bincount(first, minlength=n_windows + 1)[:n_windows + 1]
                         - np.bincount(np.minimum(after, n_windows), minlength=n_windows + 1))[:n_windows]

    keep = np.flatnonzero(sounding >= max(min_notes, 1))
    row = np.full(n_windows, -1, dtype=np.int64)
    row[keep] = np.arange(keep.size)

    start, end, merged_pitch = pitch_intervals(onset, offset, pitch)
    item, window, seconds = window_overlaps(start, end, window_seconds, n_windows)
    kept = row[window] >= 0
    # accumulate straight into the float32 output: no full-size float64 temporaries
    targets = np.zeros(keep.size * N_PITCHES, dtype=np.float32)
    np.add.at(targets, row[window[kept]] * N_PITCHES + merged_pitch[item[kept]],
              (seconds[kept] / window_seconds).astype(np.float32))
    np.minimum(targets, 1.0, out=targets)
    return targets.reshape(keep.size, N_PITCHES), keep.astype(np.int32)


def melody_targets(notes: NoteArrays, keys=None, window_seconds: float = spec.MIDI["melody_window_seconds"],
                   min_notes: int = spec.MIDI["min_notes_per_window"],
                   pitch_reference: str = spec.PITCH_REFERENCE["melody"]):
    """`melody_windows` at the pitch reference the networks train on.

    pitch_reference "tonic": each row moved by s(tonic) of the key sounding at its window's centre
    (key_relative.to_tonic), so the tonic is C and the mode is kept; "absolute": the rows as they
    are. keys: the file's `preprocess.features.keys.KeyTrack` (estimated here when None). Returns
    (targets float32 [W, 128] in [0, 1], window_index int32 [W]).
    """
    if pitch_reference not in ("tonic", "absolute"):
        raise ValueError(f"unknown pitch reference {pitch_reference!r}; expected 'tonic' or 'absolute'")
    targets, window = melody_windows(notes, window_seconds, min_notes)
    if pitch_reference == "absolute" or len(window) == 0:
        return targets, window
    if keys is None:
        from preprocess.features.keys import estimate_keys

        keys = estimate_keys(notes)
    tonic, _ = keys.at((window + 0.5) * window_seconds)
    return to_tonic(targets, tonic), window
