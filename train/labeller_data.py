"""The EmotionLabeller's training data: the cache's EMOPIA rows as whole clips, split by song.

The cache holds one "labeller" row per frame of a clip (the frame's values as the row's inputs, the
clip's (valence, arousal) signs as its targets; `preprocess.extract.extract_emopia`). Here the rows
become one array of frames per clip, [T, spec.LABELLER_INPUTS], with the clip's signs [2].

Splits. The official validation and test clips (the cache's split) are never trained on and never
steer training: `kelly evaluate` reports the labeller on them. Early stopping watches clips held
out of the official TRAINING clips, grouped by song (the YouTube id in the clip's name,
spec.EMOPIA_CLIP_NAME): a song goes to that validation side when `spec.split_fraction(song, seed)`
is below `validation_split` (at least one song each side), so no song's clips sit on both sides.

Batches (`LabellerData.batches`), what the training loop (train.loop) asks of every network's data:
  training    each clip a random crop of at most one labelling window with the velocity
              augmentation of `train.labeller_model.augment_frames`, its randomness drawn from the
              loop's shuffle generator (so a resumed run draws the same crops);
  validation  each clip cut into the windows `label_piece` labels it by (`window_starts`), each
              window one sample, no augmentation.
Each batch is (frames float32 [B, T, D] zero-padded, signs float32 [B, 2], mask float32 [B, T]).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.errors import KellyError
from preprocess.cache.rows import Rows
from preprocess.features import spec
from train.labeller_model import WINDOW_FRAMES, augment_frames, pad_batch, window_starts

KEY = spec.LABELLER_KEY
TRAIN, VALIDATION, TEST = range(3)
_CLIP = re.compile(spec.EMOPIA_CLIP_NAME)


def song_of(item_id: str) -> str:
    """The song of an EMOPIA clip (its YouTube id) from the clip's name; the name itself when it is
    not a clip name (such an item is a song of its own)."""
    match = _CLIP.match(item_id)
    return match["song"] if match else item_id


def held_out_songs(songs: list[str], fraction: float, seed: int) -> set[str]:
    """The songs whose clips go to the early-stopping side: split_fraction(song, seed) < fraction;
    with none below it the lowest goes, and with all below it the highest stays (two songs or more)."""
    distinct = sorted(set(songs))
    if fraction <= 0 or len(distinct) < 2:
        return set()
    u = {song: spec.split_fraction(song, seed) for song in distinct}
    chosen = {song for song, value in u.items() if value < fraction}
    if not chosen:
        chosen = {min(u, key=u.get)}
    if len(chosen) == len(u):
        chosen.discard(max(u, key=u.get))
    return chosen


def clips_of(rows: Rows) -> tuple[list[int], list[np.ndarray]]:
    """(item index per clip, frames float32 [T, D] per clip, in window order) from labeller rows."""
    order = np.lexsort((rows.window, rows.item))
    item = rows.item[order]
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]]) if len(item) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(item)]
    frames = np.asarray(rows.row_inputs, dtype=np.float32)[order]
    return [int(item[s]) for s in starts], [frames[s:e] for s, e in zip(starts, ends)]


@dataclass
class LabellerData:
    """The labeller's clips and their splits, served as the training loop's batches.

    clips: frames per clip; signs float32 [C, 2]; side int [C]: TRAIN (trained on), VALIDATION
    (held-out songs of the training clips: early stopping), or -1 (the official validation and
    test clips, for `kelly evaluate`); official uint8 [C]: the cache's split; item_ids [C].
    """

    clips: list[np.ndarray]
    signs: np.ndarray
    side: np.ndarray
    official: np.ndarray
    item_ids: list[str]
    counts: dict
    key: str = KEY
    sequence_length: int | None = None
    in_memory: bool = True
    resplit_by_item: bool = True
    input_mean: np.ndarray = field(default_factory=lambda: np.zeros(spec.LABELLER_INPUTS, np.float32))
    input_std: np.ndarray = field(default_factory=lambda: np.ones(spec.LABELLER_INPUTS, np.float32))
    target_mean: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))

    def indices(self, split: int) -> np.ndarray:
        return np.flatnonzero(self.side == split)

    def batches(self, split: int, device, batch_size: int, generator: torch.Generator | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(frames, signs, mask) mini-batches of one side (module docstring): training crops and
        augments with randomness from `generator`; validation (or no generator) cuts each clip into
        its labelling windows."""
        index = self.indices(split)
        if split == TRAIN and generator is not None:
            order = index[torch.randperm(len(index), generator=generator).numpy()]
            for start in range(0, len(order), batch_size):
                chosen = order[start:start + batch_size]
                seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
                rng = np.random.default_rng(seed)
                yield self._batch([augment_frames(self.clips[c], rng) for c in chosen], self.signs[chosen], device)
            return
        views, signs = [], []
        for c in index:
            frames = self.clips[c]
            length = min(WINDOW_FRAMES, len(frames))
            for s in window_starts(len(frames)):
                views.append(frames[s:s + length])
                signs.append(self.signs[c])
        for start in range(0, len(views), batch_size):
            yield self._batch(views[start:start + batch_size], np.asarray(signs[start:start + batch_size]), device)

    def steps(self, split: int, device, batch_size: int, generator: torch.Generator | None = None, *,
              carry_state: bool = False, rank: int = 0, world: int = 1):
        """`batches` as the training loop steps them, (frames, signs, mask, reset, count): no state is
        carried from batch to batch (each clip is labelled on its own) and the count is the batch's
        clips, which the loss is the mean over. One process only."""
        if world != 1:
            raise ValueError("the labeller trains in one process")
        for frames, signs, mask in self.batches(split, device, batch_size, generator):
            yield frames, signs, mask, None, float(len(frames))

    @staticmethod
    def _batch(views: list[np.ndarray], signs: np.ndarray, device):
        frames, lengths = pad_batch(views)
        mask = (torch.arange(frames.shape[1])[None, :] < lengths[:, None]).to(torch.float32)
        return (frames.to(device), torch.as_tensor(np.asarray(signs, dtype=np.float32), device=device),
                mask.to(device))


def from_rows(rows: Rows, *, validation_split: float = 0.2, seed: int = 0, source: str = "") -> LabellerData:
    """The clips of labeller rows, split as the module docstring says. KellyError when too few
    training clips or songs remain on either side."""
    where = f"{source}: " if source else ""
    items, clips = clips_of(rows)
    if not clips:
        raise KellyError(f"{where}the cache has no EmotionLabeller rows; run `kelly preprocess emopia`")
    table = rows.items
    item_ids = [table.item_ids[i] for i in items]
    signs = np.stack([np.sign(table.valence[items]), np.sign(table.arousal[items])], axis=1).astype(np.float32)
    if not np.isin(signs, (-1.0, 1.0)).all():
        raise KellyError(f"{where}EmotionLabeller rows whose clip has no quadrant (valence or arousal 0 or NaN)")
    official = table.split[items].astype(np.uint8)
    songs = [song_of(i) for i in item_ids]
    training = official == TRAIN
    held = held_out_songs([s for s, t in zip(songs, training) if t], validation_split, seed)
    side = np.where(training, np.where([s in held for s in songs], VALIDATION, TRAIN), -1).astype(np.int64)
    n_train, n_val = int((side == TRAIN).sum()), int((side == VALIDATION).sum())
    if n_train < 2 or n_val < 1:
        raise KellyError(f"{where}too few EMOPIA clips to train the EmotionLabeller: {n_train} training and "
                         f"{n_val} validation clips from {int(training.sum())} official training clips of "
                         f"{len(set(s for s, t in zip(songs, training) if t))} songs; it needs at least 2 and 1 "
                         f"(and a validation split above 0)")
    counts = {
        "train": n_train, "validation": n_val, "items": len(clips),
        "train_songs": len({s for s, d in zip(songs, side) if d == TRAIN}), "validation_songs": len(held),
        "official_validation": int((official == VALIDATION).sum()), "official_test": int((official == TEST).sum()),
        "train_windows": int(sum(len(clips[c]) for c in np.flatnonzero(side == TRAIN))),
        "validation_windows": int(sum(len(clips[c]) for c in np.flatnonzero(side == VALIDATION))),
    }
    data = LabellerData(clips=clips, signs=signs, side=side, official=official, item_ids=item_ids, counts=counts)
    data.target_mean = signs[side == TRAIN].mean(0).astype(np.float32)
    return data


def from_cache(cache_dir: str | Path, *, validation_split: float = 0.2, seed: int = 0, **_) -> LabellerData:
    """`from_rows` over the cache's labeller rows (read whole: EMOPIA's 1,078 clips are ~25 MB)."""
    from preprocess.cache import reader

    return from_rows(reader.load_network(cache_dir, KEY), validation_split=validation_split, seed=seed,
                     source=str(cache_dir))
