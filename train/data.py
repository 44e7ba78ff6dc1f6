"""Training tensors from the feature cache, in memory or block by block through one code path.

A network's cache rows (one per window) become a list of blocks: when they fit the memory budget
the list has one block read once and kept (on the training device); when they do not, the blocks
are read from the cache again on every pass. Either way the trainer sees the same thing: for each
block, shuffled mini-batches. Shuffling is global within a block, so in memory it is global.

Samples:
  * dense networks (harmony, dynamics, groove): one sample per row.
  * LSTM networks (emotion, melody): one sample per run of up to `sequence_length` consecutive
    windows of one item. A run ends where the item changes or a window index is skipped; a longer
    run is cut into chunks of `sequence_length`. A shorter tail is KEPT: it is padded at the end
    and its padding is masked out of the loss (post-padding does not change a causal LSTM's
    outputs at the real steps). Streamed blocks hold back their last item's rows for the next
    block, so a sequence never straddles two blocks.

Splits: the cache's own `split` column (0 train, 1 validation, 2 test). Only when the cache has
no validation rows for a network, `validation_split` moves a seeded fraction of its training
ITEMS (never single windows) to validation: an item goes to validation when
sha1("{seed}:{item id}") maps below the fraction; with none below it, the lowest one goes, so
that a network with at least two items always has a validation side.

Inputs are not rescaled here: the model standardises them with its input_mean/input_std buffers,
which `NetworkData.input_mean/input_std` fill (the cache's training statistics when it has them,
else computed from the training rows).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from preprocess.errors import KellyError
from preprocess.features import spec

TRAIN, VALIDATION, TEST = 0, 1, 2
SPLIT_NAMES = {TRAIN: "train", VALIDATION: "validation", TEST: "test"}
RECURRENT = ("emotion", "melody")
#: rows read per block when streaming
BLOCK_ROWS = 65_536
#: the fewest samples a network trains on (and validates on: 1)
MIN_TRAIN_SAMPLES = 2


@dataclass
class Rows:
    """Cache rows of one network as numpy arrays, one entry per window.

    inputs float32 [N, Din]; targets float32 [N, Dout] (harmony: int64 [N], a chord class);
    split uint8 [N]; item int64 [N] (global item index); window int32 [N] (window within the item);
    valence, arousal float32 [N] (the item's labels); item_ids, sources: per item, indexed by `item`.
    """

    inputs: np.ndarray
    targets: np.ndarray
    split: np.ndarray
    item: np.ndarray
    window: np.ndarray
    valence: np.ndarray
    arousal: np.ndarray
    item_ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def from_arrays(cls, arrays) -> "Rows":
        """From the cache reader's NetworkArrays (or anything with the same attributes)."""
        n = len(arrays.inputs)
        return cls(
            inputs=np.asarray(arrays.inputs, dtype=np.float32),
            targets=np.asarray(arrays.targets),
            split=np.asarray(arrays.split, dtype=np.uint8),
            item=np.asarray(arrays.item, dtype=np.int64),
            window=np.asarray(arrays.window, dtype=np.int32),
            valence=np.asarray(getattr(arrays, "valence", np.zeros(n)), dtype=np.float32),
            arousal=np.asarray(getattr(arrays, "arousal", np.zeros(n)), dtype=np.float32),
            item_ids=list(getattr(arrays, "item_ids", []) or []),
            sources=list(getattr(arrays, "sources", []) or []),
        )

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in _ROW_ARRAYS)

    def take(self, index) -> "Rows":
        """The rows at `index` (a boolean mask, integer positions or a slice)."""
        arrays = {name: getattr(self, name)[index] for name in _ROW_ARRAYS}
        return Rows(**arrays, item_ids=self.item_ids, sources=self.sources)

    @staticmethod
    def concat(parts: list["Rows"]) -> "Rows":
        if len(parts) == 1:
            return parts[0]
        arrays = {name: np.concatenate([getattr(p, name) for p in parts]) for name in _ROW_ARRAYS}
        return Rows(**arrays, item_ids=max((p.item_ids for p in parts), key=len),
                    sources=max((p.sources for p in parts), key=len))

    def item_identity(self, item: int) -> str:
        """"source:item id" from the cache (the global item index as text when it gives no ids)."""
        if not 0 <= item < len(self.item_ids):
            return str(item)
        source = self.sources[item] if item < len(self.sources) else ""
        return f"{source}:{self.item_ids[item]}"


_ROW_ARRAYS = ("inputs", "targets", "split", "item", "window", "valence", "arousal")


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


def item_fraction(identity: str, seed: int) -> float:
    """A number in [0, 1) fixed by the seed and the item's identity alone."""
    digest = hashlib.sha1(f"{seed}:{identity}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def validation_items(identities: dict[int, str], fraction: float, seed: int) -> set[int]:
    """The items (keys of `identities`: item index -> id) that go to validation; see the module doc."""
    if fraction <= 0 or len(identities) < 2:
        return set()
    u = {item: item_fraction(identity, seed) for item, identity in identities.items()}
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
    """One split of one block as tensors on the training device.

    Dense: inputs [N, Din], targets [N, Dout] (harmony [N]), index None (a sample is a row).
    Sequences: inputs [N + 1, Din] and targets [N + 1, ...] whose last row is padding, index
    int64 [S, L] into them, mask float32 [S, L] (1 at real steps).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    index: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.inputs) if self.index is None else len(self.index)

    def batch(self, positions: torch.Tensor):
        """(inputs, targets, mask) of the samples at `positions`; mask None for dense samples."""
        if self.index is None:
            return self.inputs[positions], self.targets[positions], None
        rows = self.index[positions]
        return self.inputs[rows], self.targets[rows], self.mask[positions]

    def batches(self, batch_size: int, generator: torch.Generator | None = None):
        device = self.inputs.device
        for positions in batch_order(len(self), batch_size, generator):
            yield self.batch(positions.to(device, non_blocking=True))

    @classmethod
    def from_rows(cls, rows: Rows, sequence_length: int | None, device: torch.device | str) -> "Samples":
        inputs = torch.from_numpy(np.ascontiguousarray(rows.inputs, dtype=np.float32))
        targets = torch.from_numpy(np.ascontiguousarray(rows.targets))
        if sequence_length is None:
            return cls(inputs.to(device), targets.to(device))
        index = sequence_index(rows.item, rows.window, sequence_length)
        padding = len(rows)
        mask = index >= 0
        index[~mask] = padding
        inputs = torch.cat([inputs, inputs.new_zeros((1, *inputs.shape[1:]))])
        targets = torch.cat([targets, targets.new_zeros((1, *targets.shape[1:]))])
        return cls(inputs.to(device), targets.to(device), torch.from_numpy(index).to(device),
                   torch.from_numpy(mask.astype(np.float32)).to(device))


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
        parts = (rows.take(rows.split == split) for rows in self.read_blocks())
        made = (Samples.from_rows(part, self.sequence_length, device) for part in parts if len(part))
        if not self.in_memory:
            return made
        self._cached[cache_key] = list(made)
        return iter(self._cached[cache_key])

    def batches(self, split: int, device, batch_size: int, generator: torch.Generator | None = None):
        """(inputs, targets, mask) mini-batches over every block of one split (shuffled with `generator`)."""
        for samples in self.blocks(split, device):
            yield from samples.batches(batch_size, generator)

    def rows(self, split: int) -> Rows:
        """All rows of one split in memory (evaluation; streamed caches are read block by block)."""
        parts = [rows.take(rows.split == split) for rows in self.read_blocks()]
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
        split_windows += np.bincount(rows.split, minlength=3)[:3]
        for item in np.unique(rows.item[rows.split == TRAIN]).tolist():
            train_items.setdefault(item, rows.item_identity(item))
        if fits:
            kept.append(rows)
            fits = sum(r.nbytes for r in kept) <= budget
            if not fits:
                kept = []
    if split_windows.sum() == 0:
        raise KellyError(f"{_at(source)}the cache has no rows for {name} ({key})")

    moved: set[int] = set()
    if split_windows[VALIDATION] == 0:
        moved = validation_items(train_items, validation_split, seed)

    def resplit(blocks: Iterable[Rows]) -> Iterator[Rows]:
        for rows in blocks:
            if moved:
                rows = replace(rows, split=np.where((rows.split == TRAIN) & np.isin(rows.item, list(moved)),
                                                    np.uint8(VALIDATION), rows.split).astype(np.uint8))
            yield rows

    if fits:
        whole = list(resplit([Rows.concat(kept)]))
        source_blocks = lambda: whole  # noqa: E731  (the in-memory block list)
    else:
        source_blocks = lambda: resplit(_whole_items(read_blocks()))  # noqa: E731

    # statistics pass: counts in samples, training input and target statistics
    counts = {f"{s}_windows": 0 for s in SPLIT_NAMES.values()} | {s: 0 for s in SPLIT_NAMES.values()}
    total, total_sq, n_train = np.zeros(n_in), np.zeros(n_in), 0
    target_sum = np.zeros(n_out)
    items = set()
    for rows in source_blocks():
        items.update(np.unique(rows.item).tolist())
        for split, split_name in SPLIT_NAMES.items():
            part = rows.take(rows.split == split)
            counts[f"{split_name}_windows"] += len(part)
            counts[split_name] += len(part) if length is None else len(sequence_index(part.item, part.window, length))
            if split == TRAIN and len(part):
                x = part.inputs.astype(np.float64)
                total += x.sum(0)
                total_sq += (x * x).sum(0)
                n_train += len(part)
                if key == "harmony":
                    target_sum += np.bincount(part.targets, minlength=n_out)[:n_out]
                else:
                    target_sum += part.targets.astype(np.float64).sum(0)
    counts["items"] = len(items)
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
    else:
        mean = total / n_train
        std = np.sqrt(np.maximum(total_sq / n_train - mean * mean, 0.0))
    std = np.where(std > 1e-6, std, 1.0)
    if key == "harmony":
        target_mean = (target_sum + 1.0) / (target_sum.sum() + n_out)      # Laplace-smoothed prior
    else:
        target_mean = target_sum / n_train
    return NetworkData(
        key=key, read_blocks=source_blocks, in_memory=fits, sequence_length=length,
        input_mean=mean.astype(np.float32), input_std=std.astype(np.float32),
        target_mean=target_mean.astype(np.float32), counts=counts, resplit_by_item=bool(moved), source=source,
    )


def from_cache(cache_dir: str | Path, key: str, *, sequence_length: int = 16, validation_split: float = 0.2,
               seed: int = 0, memory_budget_mb: float = 2048.0, block_rows: int = BLOCK_ROWS) -> NetworkData:
    """`prepare` over the cache reader's blocks for network `key`."""
    from preprocess.cache import reader

    cache_dir = Path(cache_dir)

    def read_blocks() -> Iterator[Rows]:
        for arrays in reader.iter_network_blocks(cache_dir, key, block_rows=block_rows):
            yield Rows.from_arrays(arrays)

    return prepare(key, read_blocks, sequence_length=sequence_length, validation_split=validation_split,
                   seed=seed, memory_budget_mb=memory_budget_mb, input_stats=reader.input_stats(cache_dir, key),
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
    name = f"{_network_name(key)} ({key})"
    if rows.inputs.ndim != 2 or rows.inputs.shape[1] != n_in:
        raise KellyError(f"{_at(source)}{name} inputs have shape {rows.inputs.shape}, expected [N, {n_in}]")
    if key == "harmony":
        if rows.targets.ndim != 1 or not np.issubdtype(rows.targets.dtype, np.integer):
            raise KellyError(f"{_at(source)}{name} targets must be class indices [N], "
                             f"got {rows.targets.dtype} {rows.targets.shape}")
        bad = (rows.targets < 0) | (rows.targets >= n_out)
        if bad.any():
            raise KellyError(f"{_at(source)}{name} has {int(bad.sum())} chord classes outside [0, {n_out})")
    elif rows.targets.shape != (len(rows), n_out):
        raise KellyError(f"{_at(source)}{name} targets have shape {rows.targets.shape}, "
                         f"expected [{len(rows)}, {n_out}]")
    for what in ("inputs", "targets"):
        values = getattr(rows, what)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad_rows = int((~np.isfinite(values.reshape(len(values), -1))).any(1).sum())
            raise KellyError(f"{_at(source)}{name} has {bad_rows} rows with NaN or infinite {what}")
    if rows.split.size and rows.split.max() > TEST:
        raise KellyError(f"{_at(source)}{name} has split values other than 0/1/2")


def _at(source: str) -> str:
    return f"{source}: " if source else ""


def _network_name(key: str) -> str:
    from train.config import NETWORK_NAMES

    return NETWORK_NAMES.get(key, key)
