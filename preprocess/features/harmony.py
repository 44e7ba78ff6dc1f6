"""HarmonyPredictor samples: (emotion embedding, recent chords) -> the next chord.

For a progression c_0, c_1, ..., c_{n} (class indices from preprocess.features.chords, usually
`chord_sequence`'s output: N dropped, repeats merged) and the piece's emotion embedding [64],
there is one sample per chord after the first:

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

HISTORY: int = spec.HARMONY_HISTORY
CLASSES: int = spec.HARMONY_CLASSES
HISTORY_WEIGHTS = tuple(0.5**j for j in range(HISTORY))      # 1, 1/2, 1/4, 1/8
NO_CHORD: int = spec.NO_CHORD


def chord_history(previous: Sequence[int]) -> np.ndarray:
    """float32 [64]: the decayed one-hot of the last HISTORY chords of `previous` (latest last),
    scaled so its maximum is 1; all zeros when `previous` is empty."""
    history = np.zeros(CLASSES, dtype=np.float64)
    recent = list(previous)[-HISTORY:][::-1]                  # latest first
    for weight, c in zip(HISTORY_WEIGHTS, recent):
        history[int(c)] += weight
    top = history.max()
    return (history / top if top > 0 else history).astype(np.float32)


def previous_chords(chord_classes: Sequence[int]) -> np.ndarray:
    """uint8 [n, HISTORY], n = len(chord_classes) - 1: for the sample predicting c_i, the chords
    c_{i-1}, c_{i-2}, ... (latest first), NO_CHORD where the progression has fewer."""
    classes = np.asarray(list(chord_classes), dtype=np.int64).ravel()
    n = max(classes.size - 1, 0)
    out = np.full((n, HISTORY), NO_CHORD, dtype=np.uint8)
    for lag in range(1, HISTORY + 1):
        # sample i - 1 predicts c_i; its chord `lag` back is c_{i - lag}, present when i >= lag
        out[lag - 1:, lag - 1] = classes[: max(n - lag + 1, 0)]
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
        present = chord != NO_CHORD
        np.add.at(history, (rows[present], chord[present]), np.float32(weight))
    top = history.max(axis=1, keepdims=True) if n else np.zeros((0, 1), np.float32)
    np.divide(history, top, out=history, where=top > 0)
    return history


def harmony_samples(chord_classes: Sequence[int], embedding) -> tuple[np.ndarray, np.ndarray]:
    """(contexts float32 [n, 128], targets int64 [n]) with n = len(chord_classes) - 1 (0 if shorter).

    chord_classes: class indices 0..63. embedding: float32 [64], the piece's emotion embedding.
    Raises ValueError for classes out of range or an embedding of the wrong shape or not finite.
    """
    classes = np.asarray(list(chord_classes), dtype=np.int64).ravel()
    if classes.size and (classes.min() < 0 or classes.max() >= CLASSES):
        raise ValueError(f"chord classes must be in 0..{CLASSES - 1}, got {classes.min()}..{classes.max()}")
    emb = np.asarray(embedding, dtype=np.float32)
    if emb.shape != (spec.EMBEDDING_SIZE,) or not np.isfinite(emb).all():
        raise ValueError(f"embedding must be {spec.EMBEDDING_SIZE} finite values, got shape {emb.shape}")
    n = max(classes.size - 1, 0)
    contexts = np.empty((n, spec.HARMONY_CONTEXT), dtype=np.float32)
    contexts[:, : spec.EMBEDDING_SIZE] = emb
    for i in range(1, classes.size):
        contexts[i - 1, spec.EMBEDDING_SIZE:] = chord_history(classes[max(0, i - HISTORY):i])
    return contexts, classes[1:].copy() if n else np.zeros(0, dtype=np.int64)
