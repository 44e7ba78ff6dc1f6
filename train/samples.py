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

Carried state (truncated back-propagation through time): the chunks of one run of windows (a
piece, or the part of it between two skipped windows) are trained in order, the LSTM state of
one chunk handed to the next (detached at the edge, so gradients stop there). `lane_plan` deals
the pieces, in a seeded random order, to the lanes of the batch, each to the lane with the fewest
chunks so far; each lane walks its pieces one after another, and its state is reset to zeros where
a piece begins (`Step.reset`). A lane with nothing left trains on a blank chunk (mask 0) until
the longest lane ends. Forward through chunks with the state carried equals stepping the whole
piece, as the plugin runs it.

Several processes (`Step` of `Samples.steps`): every rank draws the same global batch and takes
its own contiguous share of it (`torch.tensor_split`), so the ranks' rows never overlap; `count`
is the global batch's real steps, so that each rank's loss sum divided by it, summed over ranks,
is the global batch's mean. A final batch with fewer samples than ranks is dropped there.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from preprocess.cache import layout
from preprocess.cache.rows import Rows
from preprocess.features import spec

__all__ = ["Samples", "Step", "sequence_index", "piece_starts", "lane_plan", "batch_order"]


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


def piece_starts(index: np.ndarray, item: np.ndarray, window: np.ndarray) -> np.ndarray:
    """bool [S]: whether each sequence of `index` (sequence_index's, in its order) begins a run of
    windows, rather than continuing the one before it within the same item."""
    if len(index) == 0:
        return np.zeros(0, dtype=bool)
    count = (index >= 0).sum(1)
    first, last = index[:, 0], index[np.arange(len(index)), count - 1]
    window = window.astype(np.int64)
    starts = np.ones(len(index), dtype=bool)
    starts[1:] = (item[first[1:]] != item[last[:-1]]) | (window[first[1:]] != window[last[:-1]] + 1)
    return starts


def lane_plan(starts: np.ndarray, lanes: int, generator: torch.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """(positions int64 [T, B], reset bool [T, B]): which sequence each of B = min(lanes, pieces)
    lanes trains at each of T steps (-1: nothing left), and where its state starts from zeros.

    `starts` bool [S] marks the sequences that begin a piece (`piece_starts`); a piece's sequences
    follow each other. Pieces are dealt in a random order from `generator` (in order when None),
    each to the lane with the fewest sequences so far (the lowest lane on a tie)."""
    first = np.flatnonzero(starts)
    if len(first) == 0:
        return np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0), dtype=bool)
    length = np.diff(np.append(first, len(starts)))
    order = (torch.randperm(len(first), generator=generator) if generator is not None
             else torch.arange(len(first))).numpy()
    lanes = min(lanes, len(first))
    load = [(0, lane) for lane in range(lanes)]
    lane_of, offset = np.empty(len(first), np.int64), np.empty(len(first), np.int64)
    for piece in order.tolist():
        used, lane = heapq.heappop(load)
        lane_of[piece], offset[piece] = lane, used
        heapq.heappush(load, (used + int(length[piece]), lane))
    steps = max(used for used, _ in load)
    positions = np.full((steps, lanes), -1, dtype=np.int64)
    reset = np.ones((steps, lanes), dtype=bool)
    piece = np.repeat(np.arange(len(first)), length)                     # each sequence's piece
    within = np.arange(len(starts)) - first[piece]
    positions[offset[piece] + within, lane_of[piece]] = np.arange(len(starts))
    reset[offset[piece] + within, lane_of[piece]] = within == 0
    return positions, reset


class Step(NamedTuple):
    """One optimizer step's share of a batch on this rank.

    inputs [b, Din] or [b, L, Din], targets, mask [b, L] (None for dense samples); reset float [b]
    (1 where the lane's state starts from zeros; None when no state is carried); count: the real
    samples (dense) or steps (sequences) of the whole batch over every rank."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor | None
    reset: torch.Tensor | None
    count: float


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
    (zeros), and index int64 [S + 1, L] points into them, mask float32 [S + 1, L] (1 at real
    steps); the last sequence is blank (all padding, mask 0: a lane with nothing left), and
    starts bool [S] (host) marks the sequences that begin a piece, lengths int64 [S + 1] (host)
    counts each one's real steps.
    """

    network: str
    item: torch.Tensor
    embedding: torch.Tensor
    own: torch.Tensor
    targets: torch.Tensor
    own_index: torch.Tensor | None = None
    index: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    target_scale: torch.Tensor | None = None   # melody: the 255 its stored targets are divided by (on the device)
    starts: np.ndarray | None = None
    lengths: np.ndarray | None = None     # int64 [S + 1] (host): real steps per sequence

    def __len__(self) -> int:
        return len(self.item) if self.index is None else len(self.index) - 1

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
        if self.target_scale is not None:
            return stored.float().div_(self.target_scale)      # by a tensor: a true division, as numpy's
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

    def steps(self, batch_size: int, generator: torch.Generator | None = None, *, carry_state: bool = False,
              rank: int = 0, world: int = 1):
        """This rank's `Step`s over the block: shuffled mini-batches, or with `carry_state` (sequences)
        the lanes of `lane_plan`, one step per sequence position (see the module docstring)."""
        device = self.item.device
        if carry_state and self.index is not None:
            positions, reset = lane_plan(self.starts, batch_size, generator)
            blank = len(self)
            order = [torch.from_numpy(np.where(row < 0, blank, row)) for row in positions]
            resets = [torch.from_numpy(row.astype(np.float32)) for row in reset]
        else:
            order, resets = batch_order(len(self), batch_size, generator), None
        for step, global_positions in enumerate(order):
            if len(global_positions) < world:
                continue
            count = float(len(global_positions) if self.lengths is None else self.lengths[global_positions.numpy()].sum())
            global_positions = global_positions.to(device, non_blocking=True)
            local = global_positions if world == 1 else torch.tensor_split(global_positions, world)[rank]
            x, y, mask = self.batch(local)
            reset = None
            if resets is not None:
                reset = resets[step].to(device, non_blocking=True)
                reset = reset if world == 1 else torch.tensor_split(reset, world)[rank]
            yield Step(x, y, mask, reset, count)

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
        index = mask = starts = None
        if sequence_length is not None:
            index = sequence_index(rows.item, rows.window, sequence_length)
            starts = piece_starts(index, rows.item, rows.window)
            index = np.concatenate([index, np.full((1, sequence_length), -1, np.int64)])   # the blank sequence
            mask = index >= 0
            index[~mask] = len(rows)                                # the padding row, appended below
            item = np.append(item, len(items))
            embedding = np.concatenate([embedding, np.zeros((1, width), np.float32)])
            own = np.concatenate([own, np.zeros((1, *own.shape[1:]), own.dtype)])
            targets = np.concatenate([targets, np.zeros((1, *targets.shape[1:]), targets.dtype)])

        to_gpu = torch.device(device).type == "cuda"

        def tensor(array: np.ndarray | None) -> torch.Tensor | None:
            """On the device; to a GPU through pinned host memory, copied without blocking (the
            prefetch thread's copy overlaps training on the block before)."""
            if array is None:
                return None
            host = torch.from_numpy(np.ascontiguousarray(array))
            return host.pin_memory().to(device, non_blocking=True) if to_gpu else host.to(device)

        scale = torch.tensor(float(spec.MELODY_TARGET_STEPS), device=device) if network == "melody" else None
        return cls(network, tensor(item.astype(np.int64)), tensor(embedding.astype(np.float32, copy=False)),
                   tensor(own.astype(np.float32, copy=False)), tensor(targets),
                   tensor(None if own_index is None else own_index.astype(np.int64)), tensor(index),
                   tensor(None if mask is None else mask.astype(np.float32)), scale, starts,
                   None if mask is None else mask.sum(1).astype(np.int64))
