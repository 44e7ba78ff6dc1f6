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

Keys come from `preprocess.features.keys` (a key per section: the key sounding at each window's
or chord's time), so a piece that modulates is moved section by section. Each section's s is that
of its own key, which keeps the rule the plugin inverts a function of the current key alone; the
price is that the same modulating piece written in another key can have a section an octave higher
or lower in key-relative pitch (where its tonic and the main key's fall on either side of F# | G).
"""
from __future__ import annotations

import numpy as np


N_PITCHES = 128


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
