"""How a network's rows are stored in the cache, and how they are read back: `spec.CACHE_LAYOUT` applied.

Pure numpy functions, from arrays to arrays (no h5py, no feature code beyond the harmony history):

    stored = encode_targets("melody", fractions)          # float32 [n, 128] -> uint8 [n, 128]
    targets = decode_targets("melody", stored)            # uint8 -> float32 [n, 128], within 1/510
    inputs = decode_inputs("harmony", embedding_rows, row_inputs)   # float32 [n, 128]

A network's input is made of the item's embedding (its first `item_width` values, the same on every
row of an item, stored once per item) followed by what each row stores itself (`row_dtype`,
`row_width`): DEAM's log-mel windows, harmony's previous chords. Integer columns (item, window)
go to disk in the smallest unsigned type that holds them (`smallest_uint`).
"""
from __future__ import annotations

import numpy as np

from preprocess.features import spec

#: the cache's layout (shards.py describes it); a cache written in another one is rebuilt
#: (manifest.Manifest.open) and never read (reader)
SHARD_FORMAT = "kelly-shard-2"
#: the first layout, where every row held its network's whole float32 input and target; a manifest
#: that records no layout was written in it
FIRST_SHARD_FORMAT = "kelly-shard-1"


def item_width(network: str) -> int:
    """How many of the item embedding's first values the network's input starts with (0: none)."""
    return spec.CACHE_LAYOUT[network][0]


def row_dtype(network: str) -> np.dtype | None:
    """dtype of the inputs a row stores itself (None when a row stores none)."""
    stored = spec.CACHE_LAYOUT[network][1]
    return None if stored is None else np.dtype(stored[0])


def row_width(network: str) -> int:
    """Width of the inputs a row stores itself (0 when a row stores none)."""
    stored = spec.CACHE_LAYOUT[network][1]
    return 0 if stored is None else int(stored[1])


def target_dtype(network: str) -> np.dtype:
    """dtype of the targets as stored."""
    return np.dtype(spec.CACHE_LAYOUT[network][2])


def target_shape(network: str, n: int) -> tuple[int, ...]:
    """Shape of n rows of targets: (n,) for harmony's chord classes, else (n, Dout)."""
    return (n,) if network == "harmony" else (n, spec.TRAINED_NETWORKS[network].outputs)


def empty_row_inputs(network: str, n: int) -> np.ndarray:
    """The row inputs of n rows of a network whose rows store none: float32 [n, 0]."""
    dtype = row_dtype(network)
    return np.zeros((n, row_width(network)), dtype=np.float32 if dtype is None else dtype)


def encode_targets(network: str, targets: np.ndarray) -> np.ndarray:
    """Targets as the network learns them -> as the cache stores them.

    melody: fractions in [0, 1] -> uint8 round(fraction * 255) (values outside [0, 1] are clipped);
    harmony: chord classes 0..63 -> uint8; the others: float32, unchanged.
    """
    if network == "melody":
        scaled = np.rint(np.clip(np.asarray(targets, dtype=np.float64), 0.0, 1.0) * spec.MELODY_TARGET_STEPS)
        return scaled.astype(np.uint8)
    return np.asarray(targets).astype(target_dtype(network), copy=False)


def decode_targets(network: str, stored: np.ndarray) -> np.ndarray:
    """Targets as stored -> as the network learns them: float32 [n, Dout]; harmony int64 [n]."""
    if network == "melody":
        return stored.astype(np.float32) / np.float32(spec.MELODY_TARGET_STEPS)
    if network == "harmony":
        return stored.astype(np.int64)
    return np.asarray(stored, dtype=np.float32)


def decode_row_inputs(network: str, row_inputs: np.ndarray) -> np.ndarray:
    """The part of the network's input a row stores itself, as the network sees it: float32
    [n, Din - item_width] (harmony: the chord history rebuilt from the previous chords)."""
    if network == "harmony":
        from preprocess.features.harmony import history_vectors

        return history_vectors(row_inputs)
    return np.asarray(row_inputs, dtype=np.float32)


def decode_inputs(network: str, embedding_rows: np.ndarray | None, row_inputs: np.ndarray | None) -> np.ndarray:
    """The network's input float32 [n, Din] from the row's item embedding [n, >= item_width] (a gather
    from the item table) and the row's own stored inputs [n, row_width]."""
    parts = []
    width = item_width(network)
    if width:
        parts.append(np.asarray(embedding_rows[:, :width], dtype=np.float32))
    if row_width(network):
        parts.append(decode_row_inputs(network, row_inputs))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def smallest_uint(values: np.ndarray) -> np.ndarray:
    """Non-negative integers in the smallest unsigned type that holds them all (uint8 when empty)."""
    values = np.asarray(values)
    top = int(values.max()) if values.size else 0
    return values.astype(np.min_scalar_type(top) if top > 0 else np.uint8, copy=False)
