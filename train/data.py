"""One network's training data from the feature cache, in memory or block by block through one code path.

A network's cache rows (`preprocess.cache.rows.Rows`, one per window, in the cache's compact
layout) become a list of blocks: when they fit the memory budget the list has one block read once
and kept (on the training device); when they do not, the blocks are read from the cache again on
every pass, the next one in a background thread while the current one trains (`train.prefetch`).
Either way the trainer sees the same thing: for each block, shuffled mini-batches of `Samples`
(`train.samples`: one per row for dense networks, chunks of consecutive windows for the LSTM
networks). Shuffling is global within a block, so in memory it is global. Streamed blocks hold
back their last item's rows for the next block, so a sequence never straddles two blocks.

Splits: the cache's own split of each item (0 train, 1 validation, 2 test). Only when the cache
has no validation rows for a network, `validation_split` moves a seeded fraction of its training
ITEMS (never single windows) to validation: an item goes to validation when its
`spec.split_fraction(item id, seed)` is below the fraction; with none below it, the lowest one
goes, so that a network with at least two items always has a validation side.

Inputs are not rescaled here: the model standardises them with its input_mean/input_std buffers,
which `NetworkData.input_mean/input_std` fill (the cache's training statistics when it has them,
else computed from the training rows the same way, `preprocess.cache.stats.InputMoments`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.errors import KellyError
from preprocess.cache.rows import ItemTable, Rows
from preprocess.cache.stats import InputMoments, floor_std
from preprocess.features import spec
from train.prefetch import prefetch
from train.row_checks import at as _at
from train.row_checks import check_block as _check_block
from train.row_checks import network_name as _network_name
from train.samples import Samples, batch_order, sequence_index

__all__ = ["Rows", "ItemTable", "Samples", "NetworkData", "prepare", "from_cache", "from_rows", "sequence_index",
           "validation_items", "batch_order", "prefetch", "TRAIN", "VALIDATION", "TEST", "SPLIT_NAMES"]

TRAIN, VALIDATION, TEST = range(3)                   # the codes of spec.SPLITS
SPLIT_NAMES = dict(enumerate(spec.SPLITS))
#: the networks trained on sequences (the LSTM networks)
RECURRENT = tuple(key for key, network in spec.NETWORKS.items() if network.recurrent)
#: rows read per block when streaming
BLOCK_ROWS = 65_536
#: rows decoded at a time for the statistics (bounds the float64 temporaries)
STATS_ROWS = 65_536
#: the fewest samples a network trains on (and validates on: 1)
MIN_TRAIN_SAMPLES = 2


def validation_items(identities: dict[int, str], fraction: float, seed: int) -> set[int]:
    """The items (keys of `identities`: item index -> id) that go to validation; see the module doc."""
    if fraction <= 0 or len(identities) < 2:
        return set()
    u = {item: spec.split_fraction(identity, seed) for item, identity in identities.items()}
    chosen = {item for item, value in u.items() if value < fraction}
    if not chosen:
        chosen = {min(u, key=u.get)}
    if len(chosen) == len(u):
        chosen.discard(max(u, key=u.get))
    return chosen


# --- one network's data ---------------------------------------------------------------------------

@dataclass
class NetworkData:
    """One network's training and validation samples, with the statistics training needs.

    `read_blocks()` yields the cache rows as blocks (a single block when in memory) with the
    final split already applied. Counts are in samples (sequences for LSTM networks) and windows.
    """

    key: str
    read_blocks: Callable[[], Iterable[Rows]]
    in_memory: bool
    sequence_length: int | None          # None for dense networks
    input_mean: np.ndarray                # float32 [Din]
    input_std: np.ndarray                 # float32 [Din]
    target_mean: np.ndarray               # training mean target [Dout]; harmony: class prior [64]
    counts: dict[str, int]                # train/validation/test samples and *_windows, items
    resplit_by_item: bool = False         # True when validation came from `validation_split`
    source: str = ""                      # where the rows came from (for messages)
    _cached: dict = field(default_factory=dict, repr=False)

    def blocks(self, split: int, device) -> Iterator[Samples]:
        """Samples of one split, block by block (made once and kept on the device when in memory)."""
        cache_key = (split, str(device))
        if cache_key in self._cached:
            return iter(self._cached[cache_key])
        parts = (rows.split_rows(split) for rows in self.read_blocks())
        made = (Samples.from_rows(part, self.sequence_length, device) for part in parts if len(part))
        if not self.in_memory:
            return prefetch(made)           # the next block is read and made while this one trains
        self._cached[cache_key] = list(made)
        return iter(self._cached[cache_key])

    def batches(self, split: int, device, batch_size: int, generator: torch.Generator | None = None):
        """(inputs, targets, mask) mini-batches over every block of one split (shuffled with `generator`)."""
        for samples in self.blocks(split, device):
            yield from samples.batches(batch_size, generator)

    def steps(self, split: int, device, batch_size: int, generator: torch.Generator | None = None, *,
              carry_state: bool = False, rank: int = 0, world: int = 1):
        """This rank's `train.samples.Step`s over every block of one split: mini-batches (shuffled with
        `generator`), or for sequences with `carry_state` lanes that walk whole pieces in order."""
        carry = carry_state and self.sequence_length is not None
        for samples in self.blocks(split, device):
            yield from samples.steps(batch_size, generator, carry_state=carry, rank=rank, world=world)

    def rows(self, split: int) -> Rows:
        """All rows of one split in memory (evaluation; streamed caches are read block by block)."""
        parts = [rows.split_rows(split) for rows in self.read_blocks()]
        parts = [p for p in parts if len(p)]
        if not parts:
            raise KellyError(f"{_at(self.source)}{self.key} has no {SPLIT_NAMES[split]} rows")
        return Rows.concat(parts)


def prepare(
    key: str,
    read_blocks: Callable[[], Iterable[Rows]],
    *,
    sequence_length: int = 16,
    validation_split: float = 0.2,
    seed: int = 0,
    memory_budget_mb: float = 2048.0,
    input_stats: tuple[np.ndarray, np.ndarray] | None = None,
    source: str = "",
) -> NetworkData:
    """Check a network's rows, settle the split, and gather the statistics (two passes at most).

    `read_blocks()` must yield the rows afresh on every call (Rows blocks, in cache order).
    """
    n_in, n_out, _ = spec.NETWORKS[key]
    name = _network_name(key)
    length = sequence_length if key in RECURRENT else None
    budget = memory_budget_mb * 2**20

    kept: list[Rows] = []
    fits = True
    split_windows = np.zeros(3, dtype=np.int64)
    train_items: dict[int, str] = {}
    for rows in _whole_items(read_blocks()):
        _check_block(rows, key, n_in, n_out, source)
        split = rows.split
        split_windows += np.bincount(split, minlength=3)[:3]
        for item in np.unique(rows.item[split == TRAIN]).tolist():
            train_items.setdefault(item, rows.item_identity(item))
        if fits:
            kept.append(rows)
            fits = sum(r.nbytes for r in kept) + kept[0].items.nbytes <= budget
            if not fits:
                kept = []
    if split_windows.sum() == 0:
        raise KellyError(f"{_at(source)}the cache has no rows for {name} ({key})")

    moved: set[int] = set()
    if split_windows[VALIDATION] == 0:
        moved = validation_items(train_items, validation_split, seed)

    def resplit(blocks: Iterable[Rows]) -> Iterator[Rows]:
        """The blocks with the moved items on the validation side (one new item table per pass)."""
        made: dict[int, tuple[ItemTable, ItemTable]] = {}
        for rows in blocks:
            if moved:
                if id(rows.items) not in made:
                    split = rows.items.split.copy()
                    index = np.fromiter(moved, dtype=np.int64)
                    split[index] = np.where(split[index] == TRAIN, VALIDATION, split[index])
                    made = {id(rows.items): (rows.items, rows.items.with_split(split))}
                rows = rows.with_items(made[id(rows.items)][1])
            yield rows

    if fits:
        whole = list(resplit([Rows.concat(kept)]))
        source_blocks = lambda: whole  # noqa: E731  (the in-memory block list)
    else:
        source_blocks = lambda: resplit(_whole_items(read_blocks()))  # noqa: E731

    # statistics pass: counts in samples, training input and target statistics
    counts = {f"{s}_windows": 0 for s in SPLIT_NAMES.values()} | {s: 0 for s in SPLIT_NAMES.values()}
    moments = InputMoments()
    target_sum = np.zeros(n_out)
    items = set()
    table = None
    for rows in source_blocks():
        table = rows.items
        items.update(np.unique(rows.item).tolist())
        split = rows.split
        for code, split_name in SPLIT_NAMES.items():
            part = rows.take(split == code)
            counts[f"{split_name}_windows"] += len(part)
            counts[split_name] += len(part) if length is None else len(sequence_index(part.item, part.window, length))
            if code == TRAIN and len(part):
                moments.add_rows(part)
                if key == "harmony":
                    target_sum += np.bincount(part.stored_targets, minlength=n_out)[:n_out]
                else:
                    for start in range(0, len(part), STATS_ROWS):       # decoded a slice at a time
                        target_sum += part.take(slice(start, start + STATS_ROWS)).targets.astype(np.float64).sum(0)
    counts["items"] = len(items)
    #: items per label source ("annotated", "proxy", "labeller:<id>"), for the exported metadata
    counts["label_sources"] = table.label_source_counts(items) if table is not None else {}
    if counts["train"] < MIN_TRAIN_SAMPLES or counts["validation"] < 1:
        unit = "sequences" if length else "samples"
        raise KellyError(
            f"{_at(source)}too few samples to train {name} ({key}): {counts['train']} training and "
            f"{counts['validation']} validation {unit} ({counts['train_windows']} and "
            f"{counts['validation_windows']} windows, {counts['items']} items); it needs at least "
            f"{MIN_TRAIN_SAMPLES} training and 1 validation"
            + ("" if split_windows[VALIDATION] or validation_split > 0 else
               "; the cache has no validation rows: give a validation split")
        )

    if input_stats is not None:
        mean, std = (np.asarray(a, dtype=np.float32).reshape(-1) for a in input_stats)
        if mean.shape != (n_in,) or std.shape != (n_in,):
            raise KellyError(f"{_at(source)}{key} input statistics have {mean.size} values, expected {n_in}")
        std = floor_std(std)
    else:
        mean, std = moments.mean_std()
    if key == "harmony":
        target_mean = (target_sum + 1.0) / (target_sum.sum() + n_out)      # Laplace-smoothed prior
    else:
        target_mean = target_sum / moments.count
    return NetworkData(
        key=key, read_blocks=source_blocks, in_memory=fits, sequence_length=length,
        input_mean=mean.astype(np.float32), input_std=std.astype(np.float32),
        target_mean=target_mean.astype(np.float32), counts=counts, resplit_by_item=bool(moved), source=source,
    )


def from_cache(cache_dir: str | Path, key: str, *, sequence_length: int = 16, validation_split: float = 0.2,
               seed: int = 0, memory_budget_mb: float = 2048.0, block_rows: int = BLOCK_ROWS) -> NetworkData:
    """`prepare` over the cache reader's blocks for network `key`."""
    from preprocess.cache import reader, stats

    cache_dir = Path(cache_dir)

    def read_blocks() -> Iterator[Rows]:
        return reader.iter_network_blocks(cache_dir, key, block_rows=block_rows)

    return prepare(key, read_blocks, sequence_length=sequence_length, validation_split=validation_split,
                   seed=seed, memory_budget_mb=memory_budget_mb, input_stats=stats.input_stats(cache_dir, key),
                   source=str(cache_dir))


def from_rows(rows: Rows, key: str, *, block_rows: int | None = None, **options) -> NetworkData:
    """`prepare` over rows already in memory, served whole or (block_rows) as streamed blocks."""
    if block_rows is None:
        return prepare(key, lambda: [rows], **options)
    starts = range(0, len(rows), block_rows)
    return prepare(key, lambda: (rows.take(slice(s, s + block_rows)) for s in starts), **options)


# --- helpers --------------------------------------------------------------------------------------

def _whole_items(blocks: Iterable[Rows]) -> Iterator[Rows]:
    """Blocks re-cut so that no item's rows straddle two blocks (the last item is held back)."""
    held: Rows | None = None
    for rows in blocks:
        if held is not None:
            rows = Rows.concat([held, rows])
            held = None
        if not len(rows):
            continue
        tail = rows.item == rows.item[-1]
        if tail.all():
            held = rows
            continue
        start = len(rows) - int(np.argmin(tail[::-1]))      # first row of the trailing run of the last item
        held = rows.take(slice(start, None))
        yield rows.take(slice(0, start))
    if held is not None and len(held):
        yield held
