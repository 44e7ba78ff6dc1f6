"""Training tensors from the feature cache, in memory or block by block through one code path.

A network's cache rows (`preprocess.cache.rows.Rows`, one per window, in the cache's compact
layout) become a list of blocks: when they fit the memory budget the list has one block read once
and kept (on the training device); when they do not, the blocks are read from the cache again on
every pass, the next one in a background thread while the current one trains. Either way the
trainer sees the same thing: for each block, shuffled mini-batches. Shuffling is global within a
block, so in memory it is global.

On the device a block stays compact (`Samples`): per row its item and its stored targets; per
item of the block the embedding; harmony's chord histories, each distinct one once. Each
mini-batch is rebuilt from them: the input is the rows' item embeddings (a gather) followed by
their own inputs (DEAM's log-mel rows, or a gather of the chord histories), the targets are
decoded (melody: uint8 / 255). These are the arrays `Rows.inputs` and `Rows.targets` give, value
for value.

Samples:
  * dense networks (harmony, dynamics, groove): one sample per row.
  * LSTM networks (emotion, melody): one sample per run of up to `sequence_length` consecutive
    windows of one item. A run ends where the item changes or a window index is skipped; a longer
    run is cut into chunks of `sequence_length`. A shorter tail is KEPT: it is padded at the end
    and its padding is masked out of the loss (post-padding does not change a causal LSTM's
    outputs at the real steps). Streamed blocks hold back their last item's rows for the next
    block, so a sequence never straddles two blocks.

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

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.errors import KellyError
from preprocess.cache import layout
from preprocess.cache.rows import ItemTable, Rows
from preprocess.cache.stats import InputMoments, floor_std
from preprocess.features import spec

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


# --- pure functions -------------------------------------------------------------------------------

def sequence_index(item: np.ndarray, window: np.ndarray, length: int) -> np.ndarray:
    """Row positions of each training sequence: int64 [S, length], -1 where a short tail is padded.

    item int64 [N], window int [N] in any order. Rows are sorted by (item, window); a sequence
    holds consecutive windows of one item, at most `length` of them.
    """
    n = len(item)
    if n == 0:
        return np.zeros((0, length), dtype=np.int64)
    order = np.lexsort((window, item))
    it, wi = item[order], window[order].astype(np.int64)
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = (it[1:] != it[:-1]) | (wi[1:] != wi[:-1] + 1)
    run_id = np.cumsum(new_run) - 1
    position = np.arange(n) - np.flatnonzero(new_run)[run_id]
    new_chunk = new_run | (position % length == 0)
    chunk_id = np.cumsum(new_chunk) - 1
    index = np.full((chunk_id[-1] + 1, length), -1, dtype=np.int64)
    index[chunk_id, position % length] = order
    return index


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


def batch_order(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Sample positions per mini-batch: a permutation from `generator` (in order when None)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.split(batch_size))


# --- tensors on the device -----------------------------------------------------------------------

@dataclass
class Samples:
    """One split of one block on the training device, compact; mini-batches are rebuilt from it.

    item int64 [N], an index into embedding float32 [U, item_width] (the block's items). own: what
    the rows' inputs continue with: emotion's log-mel rows float32 [N, 128] (own_index None), or
    harmony's chord histories, each distinct one once, float32 [H, 64], with own_index int64 [N]
    (each row's); [N, 0] for networks whose input is the embedding alone. targets [N, ...] as stored.
    Dense: a sample is a row, index None. Sequences: the row tensors have one more row, padding
    (zeros), and index int64 [S, L] points into them, mask float32 [S, L] (1 at real steps).
    """

    network: str
    item: torch.Tensor
    embedding: torch.Tensor
    own: torch.Tensor
    targets: torch.Tensor
    own_index: torch.Tensor | None = None
    index: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    steps: torch.Tensor | None = None     # melody: the 255 its stored targets are divided by (on the device)

    def __len__(self) -> int:
        return len(self.item) if self.index is None else len(self.index)

    def inputs_of(self, rows: torch.Tensor) -> torch.Tensor:
        """float32 [*rows.shape, Din]: the network's input at these row positions (Rows.inputs' values)."""
        parts = []
        if self.embedding.shape[-1]:
            parts.append(self.embedding[self.item[rows]])
        if self.own.shape[-1]:
            parts.append(self.own[rows if self.own_index is None else self.own_index[rows]])
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def targets_of(self, rows: torch.Tensor) -> torch.Tensor:
        """The targets at these row positions as the loss takes them (Rows.targets' values)."""
        stored = self.targets[rows]
        if self.steps is not None:
            return stored.float().div_(self.steps)      # by a tensor: a true division, as numpy's
        if self.network == "harmony":
            return stored.long()
        return stored

    def batch(self, positions: torch.Tensor):
        """(inputs, targets, mask) of the samples at `positions`; mask None for dense samples."""
        if self.index is None:
            return self.inputs_of(positions), self.targets_of(positions), None
        rows = self.index[positions]
        return self.inputs_of(rows), self.targets_of(rows), self.mask[positions]

    def batches(self, batch_size: int, generator: torch.Generator | None = None):
        device = self.item.device
        for positions in batch_order(len(self), batch_size, generator):
            yield self.batch(positions.to(device, non_blocking=True))

    @classmethod
    def from_rows(cls, rows: Rows, sequence_length: int | None, device: torch.device | str) -> "Samples":
        network = rows.network
        items, item = np.unique(rows.item, return_inverse=True)
        width = layout.item_width(network)
        embedding = rows.items.embedding[items, :width]
        own, own_index = rows.row_inputs, None
        if network == "harmony":             # each distinct history once, decoded as the reader does
            chords = np.ascontiguousarray(own)
            codes = chords.view(np.dtype((np.void, chords.shape[1] * chords.itemsize))).ravel()
            distinct, own_index = np.unique(codes, return_inverse=True)
            own = layout.decode_row_inputs(network, distinct.view(chords.dtype).reshape(-1, chords.shape[1]))
        targets = rows.stored_targets
        index = mask = None
        if sequence_length is not None:
            index = sequence_index(rows.item, rows.window, sequence_length)
            mask = index >= 0
            index[~mask] = len(rows)                                # the padding row, appended below
            item = np.append(item, len(items))
            embedding = np.concatenate([embedding, np.zeros((1, width), np.float32)])
            own = np.concatenate([own, np.zeros((1, *own.shape[1:]), own.dtype)])
            targets = np.concatenate([targets, np.zeros((1, *targets.shape[1:]), targets.dtype)])

        def tensor(array: np.ndarray | None) -> torch.Tensor | None:
            return None if array is None else torch.from_numpy(np.ascontiguousarray(array)).to(device)

        steps = torch.tensor(float(spec.MELODY_TARGET_STEPS), device=device) if network == "melody" else None
        return cls(network, tensor(item.astype(np.int64)), tensor(embedding.astype(np.float32, copy=False)),
                   tensor(own.astype(np.float32, copy=False)), tensor(targets),
                   tensor(None if own_index is None else own_index.astype(np.int64)), tensor(index),
                   tensor(None if mask is None else mask.astype(np.float32)), steps)


def prefetch(blocks: Iterable, depth: int = 1) -> Iterator:
    """The items of `blocks`, the next `depth` of them made in a background thread while the caller
    works on the current one (reading and decoding a block overlaps training on the one before).

    An exception in the thread is raised in the caller; when the caller stops early, the thread stops
    and `blocks` is closed.
    """
    done = object()
    channel: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                channel.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        iterator = iter(blocks)
        try:
            for value in iterator:
                if not put(value):
                    break
            else:
                put(done)
        except BaseException as exc:        # handed to the caller, raised there
            put(_Raised(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="kelly-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value = channel.get()
            if value is done:
                return
            if isinstance(value, _Raised):
                raise value.exception
            yield value
    finally:
        stop.set()
        thread.join()


@dataclass
class _Raised:
    exception: BaseException


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


def _check_block(rows: Rows, key: str, n_in: int, n_out: int, source: str) -> None:
    """The block's stored arrays against the network's layout, and their values: a KellyError naming
    the network and the fault."""
    name = f"{_network_name(key)} ({key})"
    n = len(rows)
    if rows.network != key:
        raise KellyError(f"{_at(source)}{name} was given rows of {rows.network}")
    width = layout.item_width(key)
    if width + (spec.HARMONY_CLASSES if key == "harmony" else layout.row_width(key)) != n_in:
        raise KellyError(f"{_at(source)}{name}: the cache layout does not add up to {n_in} inputs")
    if rows.row_inputs.shape != (n, layout.row_width(key)):
        raise KellyError(f"{_at(source)}{name} row inputs have shape {rows.row_inputs.shape}, "
                         f"expected [{n}, {layout.row_width(key)}]")
    shape, dtype = layout.target_shape(key, n), layout.target_dtype(key)
    if rows.stored_targets.shape != shape or rows.stored_targets.dtype != dtype:
        raise KellyError(f"{_at(source)}{name} targets are {rows.stored_targets.dtype} {rows.stored_targets.shape}, "
                         f"expected {dtype} {list(shape)}")
    if key == "harmony":
        bad = rows.stored_targets >= n_out
        if bad.any():
            raise KellyError(f"{_at(source)}{name} has {int(bad.sum())} chord classes outside [0, {n_out})")
        previous = rows.row_inputs
        bad = ((previous >= spec.HARMONY_CLASSES) & (previous != spec.NO_PREVIOUS_CHORD)).any(1)
        if bad.any():
            raise KellyError(f"{_at(source)}{name} has {int(bad.sum())} rows with previous chords outside [0, {n_out})")
    for what, values in (("targets", rows.stored_targets), ("inputs", rows.row_inputs)):
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad_rows = int((~np.isfinite(values.reshape(n, -1))).any(1).sum())
            raise KellyError(f"{_at(source)}{name} has {bad_rows} rows with NaN or infinite {what}")
    if width and n:
        used = np.unique(rows.item)
        bad_items = used[~np.isfinite(rows.items.embedding[used, :width]).all(1)]
        if bad_items.size:
            bad_rows = int(np.isin(rows.item, bad_items).sum())
            raise KellyError(f"{_at(source)}{name} has {bad_rows} rows with NaN or infinite inputs "
                             f"(the embedding of {bad_items.size} items)")
    if n and rows.items.split.max(initial=0) > TEST:
        raise KellyError(f"{_at(source)}{name} has split values other than 0/1/2")


def _at(source: str) -> str:
    return f"{source}: " if source else ""


def _network_name(key: str) -> str:
    from train.config import NETWORK_NAMES

    return NETWORK_NAMES.get(key, key)
