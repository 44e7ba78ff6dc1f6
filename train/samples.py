"""Training samples on the device: compact per block, each mini-batch rebuilt from them.

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
    outputs at the real steps).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from preprocess.cache import layout
from preprocess.cache.rows import Rows
from preprocess.features import spec

__all__ = ["Samples", "sequence_index", "batch_order"]


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


def batch_order(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Sample positions per mini-batch: a permutation from `generator` (in order when None)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.split(batch_size))


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
