"""Key-relative pitch: the key of each window of a piece, and targets moved so that its tonic is C.

Absolute pitches averaged over pieces in all 24 keys lose the mode: C major and A minor sound the
same pitch classes, and the mean profile of many major pieces in many keys is nearly flat. Moved
so that every window's tonic is C (the mode kept: a minor key becomes C minor), the pitches of
major pieces share one profile and those of minor pieces another, and a network that sees only
the emotion can learn major against minor.

The shift (the rule the plugin inverts, also written into every export's metadata):

    s(tonic) = tonic        for tonic in 0..6  (C .. F#: down by 0..6 semitones)
             = tonic - 12   for tonic in 7..11 (G .. B: up by 5..1 semitones)
    relative pitch = absolute pitch - s(tonic)      absolute pitch = relative pitch + s(tonic)

so s is in [-5, 6] and no pitch moves by more than half an octave: the register is kept. A pitch
moved outside 0..127 is dropped (only the extreme notes of a piece in a far key can be).

Keys: `window_keys` is the one place where a window's key comes from. It estimates one key for the
whole file (Krumhansl-Kessler, preprocess.features.proxy_labels) and gives it to every window;
a per-section key tracker takes its place with the same signature.
"""
from __future__ import annotations

import numpy as np

from preprocess.features.midi import NoteArrays

N_PITCHES = 128


def window_keys(notes: NoteArrays, window_starts_seconds) -> tuple[np.ndarray, np.ndarray]:
    """The key at each time: (tonic int64 [T], 0 = C .. 11 = B; minor bool [T]).

    The file's Krumhansl-Kessler key (the best-correlated of the 24 rotated key profiles, from the
    non-drum notes' sounding time per pitch class) for every window; C major when the file has no
    pitched notes. Ties go to major, then to the lower tonic.
    """
    from preprocess.features.proxy_labels import key_correlations, pitch_class_profile

    starts = np.asarray(window_starts_seconds, dtype=np.float64).ravel()
    major, minor = key_correlations(pitch_class_profile(notes))
    is_minor = bool(minor.max() > major.max())
    tonic = int(np.argmax(minor if is_minor else major))
    return np.full(starts.size, tonic, dtype=np.int64), np.full(starts.size, is_minor, dtype=bool)


def tonic_shift(tonic) -> np.ndarray:
    """s(tonic), int64, in [-5, 6]: the semitones a pitch is moved DOWN to put `tonic` on C."""
    t = np.asarray(tonic, dtype=np.int64) % 12
    return np.where(t <= 6, t, t - 12)


def shift_pitch_rows(rows, semitones) -> np.ndarray:
    """Pitch rows [W, 128] moved UP by `semitones` [W] (int; negative moves down), row by row:
    out[w, p + semitones[w]] = rows[w, p]; what leaves 0..127 is dropped, what enters is 0."""
    x = np.asarray(rows)
    shift = np.broadcast_to(np.asarray(semitones, dtype=np.int64), (x.shape[0],))
    out = np.zeros_like(x)
    n = x.shape[1]
    for s in np.unique(shift):
        w = shift == s
        if s >= 0:
            out[w, s:] = x[w, : n - s]
        else:
            out[w, : n + s] = x[w, -s:]
    return out


def to_tonic(rows, tonic) -> np.ndarray:
    """Absolute pitch rows [W, 128] -> key-relative rows: each row moved down by s(tonic[w])."""
    return shift_pitch_rows(rows, -tonic_shift(tonic))


def from_tonic(rows, tonic) -> np.ndarray:
    """Key-relative pitch rows [W, 128] -> absolute: each row moved up by s(tonic[w])."""
    return shift_pitch_rows(rows, tonic_shift(tonic))
