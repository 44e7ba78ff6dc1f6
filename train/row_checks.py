"""A block of cache rows checked against its network's layout before it trains: one clear line per fault."""
from __future__ import annotations

import numpy as np

from common.errors import KellyError
from preprocess.cache import layout
from preprocess.cache.rows import Rows
from preprocess.features import spec

__all__ = ["check_block", "at", "network_name"]

TEST = len(spec.SPLITS) - 1   # the highest split code (spec.SPLITS: train, validation, test)


def check_block(rows: Rows, key: str, n_in: int, n_out: int, source: str) -> None:
    """The block's stored arrays against the network's layout, and their values: a KellyError naming
    the network and the fault."""
    name = f"{network_name(key)} ({key})"
    n = len(rows)
    if rows.network != key:
        raise KellyError(f"{at(source)}{name} was given rows of {rows.network}")
    width = layout.item_width(key)
    if width + (spec.HARMONY_CLASSES if key == "harmony" else layout.row_width(key)) != n_in:
        raise KellyError(f"{at(source)}{name}: the cache layout does not add up to {n_in} inputs")
    if rows.row_inputs.shape != (n, layout.row_width(key)):
        raise KellyError(f"{at(source)}{name} row inputs have shape {rows.row_inputs.shape}, "
                         f"expected [{n}, {layout.row_width(key)}]")
    shape, dtype = layout.target_shape(key, n), layout.target_dtype(key)
    if rows.stored_targets.shape != shape or rows.stored_targets.dtype != dtype:
        raise KellyError(f"{at(source)}{name} targets are {rows.stored_targets.dtype} {rows.stored_targets.shape}, "
                         f"expected {dtype} {list(shape)}")
    if key == "harmony":
        bad = rows.stored_targets >= n_out
        if bad.any():
            raise KellyError(f"{at(source)}{name} has {int(bad.sum())} chord classes outside [0, {n_out})")
        previous = rows.row_inputs
        bad = ((previous >= spec.HARMONY_CLASSES) & (previous != spec.NO_PREVIOUS_CHORD)).any(1)
        if bad.any():
            raise KellyError(f"{at(source)}{name} has {int(bad.sum())} rows with previous chords outside [0, {n_out})")
    for what, values in (("targets", rows.stored_targets), ("inputs", rows.row_inputs)):
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad_rows = int((~np.isfinite(values.reshape(n, -1))).any(1).sum())
            raise KellyError(f"{at(source)}{name} has {bad_rows} rows with NaN or infinite {what}")
    if width and n:
        used = np.unique(rows.item)
        bad_items = used[~np.isfinite(rows.items.embedding[used, :width]).all(1)]
        if bad_items.size:
            bad_rows = int(np.isin(rows.item, bad_items).sum())
            raise KellyError(f"{at(source)}{name} has {bad_rows} rows with NaN or infinite inputs "
                             f"(the embedding of {bad_items.size} items)")
    if n and rows.items.split.max(initial=0) > TEST:
        raise KellyError(f"{at(source)}{name} has split values other than 0/1/2")


def at(source: str) -> str:
    """The prefix naming where rows came from, for messages ('' when unknown)."""
    return f"{source}: " if source else ""


def network_name(key: str) -> str:
    """The network's class name for messages (the key itself when unknown)."""
    from train.config import NETWORK_NAMES

    return NETWORK_NAMES.get(key, key)
