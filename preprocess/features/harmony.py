"""HarmonyPredictor samples: (emotion embedding, recent chords) -> the next chord.

Chord classes are key-relative when spec.PITCH_REFERENCE["harmony"] is "tonic" (the default): the
extractor moves every chord's root by s(tonic) of its key, so the key's tonic is C, before the
samples are made, and the history and the target are both relative (`classes_at_reference`;
the rule in preprocess.features.key_relative). A written progression's key is that of its chord
tones (`progression_key`); a recognised one's that of its notes.

For a progression c_0, c_1, ..., c_{n} (class indices from preprocess.features.chords, usually
`chord_sequence`'s output: N dropped, repeats merged) and the piece's emotion embedding [64],
there is one sample per chord after the first, and with `opening=True` (what the cache holds) one
for the first chord too, with an empty history (i = 0: all zeros), as the plugin starts a
progression; without it the network never sees the input it gets at every reset():

    context_i = [ embedding (64) | history_i (64) ]          float32 [128]
    target_i  = c_i                                           int64, 0..63

    history_i[k] = sum over j = 1..HISTORY with c_{i-j} == k of 2^-(j-1)   (weights 1, 1/2, 1/4, 1/8)
                   then divided by its maximum, so the largest entry is 1

A chord that comes back within the history adds its weights (A, F, A: A = 1 + 1/4, F = 1/2,
scaled to A = 1, F = 0.4). The chord just before the target always ends at 1, since the older
weights add up to at most 7/8. The first samples of a progression see fewer than HISTORY chords.

The cache stores a sample's history as the chords themselves (`previous_chords`, uint8 [n, 4]) and
the trainer rebuilds the 64 values from them (`history_vectors`), equal to `chord_history`'s.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from preprocess.features import spec
from preprocess.features.key_relative import tonic_shift

HISTORY: int = spec.HARMONY_HISTORY
CLASSES: int = spec.HARMONY_CLASSES
HISTORY_WEIGHTS = spec.HARMONY_HISTORY_WEIGHTS      # 1, 1/2, 1/4, 1/8
NO_PREVIOUS_CHORD: int = spec.NO_PREVIOUS_CHORD      # stored history: no chord yet (not the chord class N)


def chord_history(previous: Sequence[int]) -> np.ndarray:
    """float32 [64]: the decayed one-hot of the last HISTORY chords of `previous` (latest last),
    scaled so its maximum is 1; all zeros when `previous` is empty."""
    history = np.zeros(CLASSES, dtype=np.float64)
    recent = list(previous)[-HISTORY:][::-1]                  # latest first
    for weight, c in zip(HISTORY_WEIGHTS, recent):
        history[int(c)] += weight
    top = history.max()
    return (history / top if top > 0 else history).astype(np.float32)


def previous_chords(chord_classes: Sequence[int], *, opening: bool = False) -> np.ndarray:
    """uint8 [n, HISTORY]: for each sample (as `harmony_samples` makes them), the chords before its
    target c_i, latest first (c_{i-1}, c_{i-2}, ...), NO_PREVIOUS_CHORD where the progression has fewer.
    n = len(chord_classes) - 1, or len(chord_classes) with opening=True (the first chord a sample
    too, with nothing before it)."""
    classes = np.asarray(list(chord_classes), dtype=np.int64).ravel()
    first = 0 if opening else 1
    n = max(classes.size - first, 0)
    out = np.full((n, HISTORY), NO_PREVIOUS_CHORD, dtype=np.uint8)
    for lag in range(1, HISTORY + 1):
        # row r predicts c_{r + first}; its chord `lag` back is c_{r + first - lag}, present when >= 0
        start = max(lag - first, 0)
        out[start:, lag - 1] = classes[start + first - lag: max(n + first - lag, 0)]
    return out


def history_vectors(previous: np.ndarray) -> np.ndarray:
    """float32 [n, 64]: `chord_history` of each row of `previous_chords`' output (uint8 [n, HISTORY]).

    Every sum of the weights 1, 1/2, 1/4, 1/8 is exact in float32, and so is the one division by the
    row's maximum; the values are chord_history's bit for bit.
    """
    previous = np.asarray(previous)
    n = previous.shape[0]
    history = np.zeros((n, CLASSES), dtype=np.float32)
    rows = np.arange(n)
    for lag, weight in enumerate(HISTORY_WEIGHTS):
        chord = previous[:, lag].astype(np.int64)
        present = chord != NO_PREVIOUS_CHORD
        np.add.at(history, (rows[present], chord[present]), np.float32(weight))
    top = history.max(axis=1, keepdims=True) if n else np.zeros((0, 1), np.float32)
    np.divide(history, top, out=history, where=top > 0)
    return history


def harmony_samples(chord_classes: Sequence[int], embedding, *, opening: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(contexts float32 [n, 128], targets int64 [n]) with n = len(chord_classes) - 1 (0 if shorter).

    opening=True adds the progression's first chord as a sample with an empty history (first,
    n = len(chord_classes)): what the network sees when the plugin starts a progression.

    chord_classes: class indices 0..63. embedding: float32 [64], the piece's emotion embedding.
    Raises ValueError for classes out of range or an embedding of the wrong shape or not finite.
    """
    classes = np.asarray(list(chord_classes), dtype=np.int64).ravel()
    if classes.size and (classes.min() < 0 or classes.max() >= CLASSES):
        raise ValueError(f"chord classes must be in 0..{CLASSES - 1}, got {classes.min()}..{classes.max()}")
    emb = np.asarray(embedding, dtype=np.float32)
    if emb.shape != (spec.EMBEDDING_SIZE,) or not np.isfinite(emb).all():
        raise ValueError(f"embedding must be {spec.EMBEDDING_SIZE} finite values, got shape {emb.shape}")
    first = 0 if opening else 1
    n = max(classes.size - first, 0)
    contexts = np.empty((n, spec.HARMONY_CONTEXT), dtype=np.float32)
    contexts[:, : spec.EMBEDDING_SIZE] = emb
    for i in range(first, classes.size):
        contexts[i - first, spec.EMBEDDING_SIZE:] = chord_history(classes[max(0, i - HISTORY):i])
    return contexts, classes[first:].copy() if n else np.zeros(0, dtype=np.int64)


# --- pitch reference -----------------------------------------------------------------------------

def transpose_classes(chord_classes, semitones) -> np.ndarray:
    """int64 [n]: chord classes with their roots moved up by `semitones` (an int or one per chord).

    Classes 5 r + q go to 5 ((r + semitones) mod 12) + q; a diminished set 60 + r goes to
    60 + (r + semitones) mod 3 (the set is symmetric under minor thirds); N (63) stays N.
    """
    c = np.asarray(chord_classes, dtype=np.int64).ravel()
    s = np.broadcast_to(np.asarray(semitones, dtype=np.int64), c.shape)
    out = c.copy()
    rooted = c < spec.DIMINISHED_FIRST
    out[rooted] = 5 * ((c[rooted] // 5 + s[rooted]) % 12) + c[rooted] % 5
    diminished = (c >= spec.DIMINISHED_FIRST) & (c < spec.NO_CHORD)
    out[diminished] = spec.DIMINISHED_FIRST + (c[diminished] - spec.DIMINISHED_FIRST + s[diminished]) % 3
    return out


def classes_to_tonic(chord_classes, tonic) -> np.ndarray:
    """Chord classes at absolute pitch -> key-relative: roots moved down by s(tonic) (see
    preprocess.features.key_relative), so the key's tonic is C."""
    return transpose_classes(chord_classes, -tonic_shift(tonic))


def classes_from_tonic(chord_classes, tonic) -> np.ndarray:
    """Key-relative chord classes -> absolute: roots moved up by s(tonic)."""
    return transpose_classes(chord_classes, tonic_shift(tonic))


def classes_at_reference(chord_classes, tonic, reference: str | None = None) -> np.ndarray:
    """int64 [n]: chord classes (absolute, as recognised or written) at the pitch reference the
    HarmonyPredictor trains on, spec.PITCH_REFERENCE["harmony"] unless `reference` is given:
    "tonic" moves each chord by s(tonic) of its key (`tonic`: one per chord or one for all),
    "absolute" leaves them."""
    reference = reference or spec.PITCH_REFERENCE["harmony"]
    if reference == "absolute":
        return np.asarray(chord_classes, dtype=np.int64).ravel().copy()
    if reference != "tonic":
        raise ValueError(f"unknown pitch reference {reference!r}; expected 'tonic' or 'absolute'")
    return classes_to_tonic(chord_classes, tonic)


def progression_key(chord_classes) -> tuple[int, bool]:
    """(tonic, minor) of a written progression: the Krumhansl-Kessler key of its chord tones (each
    chord's pitch classes counted once per chord); C major for a progression of N only."""
    from preprocess.features.chords import chord_templates
    from preprocess.features.spec import key_correlations

    c = np.asarray(chord_classes, dtype=np.int64).ravel()
    profile = chord_templates()[c].astype(np.float64).sum(axis=0) if c.size else np.zeros(12)
    major, minor = key_correlations(profile)
    is_minor = bool(minor.max() > major.max())
    return int(np.argmax(minor if is_minor else major)), is_minor
