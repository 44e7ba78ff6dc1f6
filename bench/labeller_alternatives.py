"""Labellers the project did not choose, on held-out EMOPIA clips: a sequence model over note events
(the kind of the published MIDI-like LSTM-Attn) and classifiers on note-level clip features.

    python bench/labeller_alternatives.py --emopia DIR [--models events,features-logreg,features-trees]
                                          [--pitch absolute|relative] [--epochs 15] [--folds 5]

DIR holds ``midis/Q{n}_{youtubeID}_{clip}.mid`` and ``split/train.csv``, ``split/val.csv`` (the
layout of bench/labeller_models.py). Every model predicts the valence and arousal sides; printed:
accuracy 4Q / valence / arousal.

- ``events``: each clip as its notes in onset order, one step per note: embeddings of the pitch
  (MIDI 0..127; ``--pitch relative`` subtracts the tonic of the clip's main key,
  `preprocess.features.keys.estimate_keys`; ``absolute`` transposes each training view by a random
  -6..+6 semitones), the time since the previous onset (31 log bins, 10 ms .. 4 s), the duration
  (31 log bins, 30 ms .. 8 s) and the velocity (32 bins; dropped to 0 for 30% of the training
  views) summed, a bidirectional LSTM (hidden 64), attention pooling, Linear -> 2. At most 512 notes
  (a random run of them in training, the middle ones otherwise). Trained like the labeller (AdamW,
  label smoothing 0.1, a moving average of the weights), early-stopped on the held-out songs of the
  training clips; scored on the official validation clips. About 20 CPU s per epoch on one thread.
- ``features-logreg`` / ``features-trees``: a logistic regression (standardised, C 0.01) / gradient-boosted
  trees (scikit-learn, depth 3, 200 rounds: train.labeller_trees's settings) on each clip's
  per-frame labeller columns summarised (mean and spread, as bench/labeller_models.py) and the
  piece's 23 note-level values (`preprocess.features.clip_features`); ``frames-logreg``: the
  summary alone. Scored on the official validation clips and over K song folds of every clip
  (--folds; accuracy pooled over the clips).

Measured (EMOPIA's 965 shared clips, frames kelly-labeller-3; the network alone, as chosen before
the trees: 0.692 / 0.756 / 0.924 on the validation clips, 0.668 / 0.741 / 0.908 over 5 song folds):

                                       validation               5 song folds
    events, absolute pitch, 15 epochs  0.571 / 0.601 / 0.914    (not run: 15 epochs of ~25 CPU s each)
    frames-logreg                      0.636 / 0.747 / 0.864    0.654 / 0.749 / 0.877
    features-logreg                    0.657 / 0.732 / 0.899    0.684 / 0.756 / 0.898
    features-trees                     0.702 / 0.773 / 0.899    0.709 / 0.776 / 0.907

The event model (the kind of the published MIDI-like LSTM-Attn, 0.833 valence on EMOPIA's test
split) stays far below the frames here; the trees on the note-level values read valence best, and
`kelly train --models labeller` takes their valence beside the network's arousal (train.labeller_trees).
"""
from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from preprocess.features import spec  # noqa: E402
from preprocess.features.keys import estimate_keys  # noqa: E402
from preprocess.features.labeller_input import labeller_frames  # noqa: E402
from preprocess.features.midi import load_notes  # noqa: E402
from train.labeller_trees import TREE_SETTINGS, window_summary  # noqa: E402

TIME_BINS = np.concatenate([[0.0], np.geomspace(0.01, 4.0, 30)])      # s since the previous onset
DURATION_BINS = np.geomspace(0.03, 8.0, 31)                            # s
MAX_NOTES = 512


def song_of(name: str) -> str:
    return name.rsplit("_", 1)[0][3:]


def sides(names: list[str]) -> np.ndarray:
    """(valence, arousal) sides in {-1, +1} [N, 2] from the quadrant in each clip's name."""
    q = np.array([int(n[1]) for n in names])
    return np.stack([np.where((q == 1) | (q == 4), 1.0, -1.0), np.where(q <= 2, 1.0, -1.0)], 1).astype(np.float32)


def scores(values: np.ndarray, names: list[str]) -> str:
    truth = sides(names)
    right = (values >= 0) == (truth > 0)
    return f"{np.mean(right.all(1)):.3f} / {right[:, 0].mean():.3f} / {right[:, 1].mean():.3f}"


def read_clips(emopia: Path) -> dict:
    """{name: dict(part, notes arrays, tonic, frames)} for the train and val clips."""
    clips = {}
    for part in ("train", "val"):
        for row in csv.DictReader(open(emopia / "split" / f"{part}.csv")):
            notes = load_notes(emopia / "midis" / f"{row['fname']}.mid")
            tonic, _ = estimate_keys(notes).main
            pitched = ~notes.is_drum
            order = np.lexsort((notes.pitch[pitched], notes.onset[pitched]))
            clips[row["fname"]] = {
                "part": part, "tonic": int(tonic), "frames": labeller_frames(notes),
                **{k: getattr(notes, k)[pitched][order] for k in ("onset", "offset", "pitch", "velocity")}}
    return clips


# --- a sequence model over note events ------------------------------------------------------------

def events(clip: dict, relative: bool, shift: int = 0, drop_velocity: bool = False,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """int64 [N, 4] (pitch, time-shift bin, duration bin, velocity bin) of at most MAX_NOTES notes."""
    pitch = clip["pitch"].astype(np.int64) - (clip["tonic"] if relative else 0)
    onset = clip["onset"]
    x = np.stack([np.clip(pitch + shift, 0, 127),
                  np.digitize(np.diff(onset, prepend=onset[:1]), TIME_BINS),
                  np.digitize(clip["offset"] - onset, DURATION_BINS),
                  np.zeros_like(pitch) if drop_velocity else np.clip(clip["velocity"] // 4, 0, 31) + 1], 1)
    if len(x) > MAX_NOTES:
        first = rng.integers(0, len(x) - MAX_NOTES + 1) if rng is not None else (len(x) - MAX_NOTES) // 2
        x = x[first:first + MAX_NOTES]
    return x


class EventLabeller(nn.Module):
    def __init__(self, width: int = 48, hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        self.embed = nn.ModuleList([nn.Embedding(n, width) for n in (128, 33, 33, 34)])
        self.lstm = nn.LSTM(width, hidden, batch_first=True, bidirectional=True)
        self.score = nn.Linear(2 * hidden, 1)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.drop(sum(e(x[..., i]) for i, e in enumerate(self.embed)))
        packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        o, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
        mask = torch.arange(x.shape[1])[None] < lengths[:, None]
        weight = self.score(o).squeeze(-1).masked_fill(~mask, -1e9).softmax(1)
        return self.out(self.drop((weight[..., None] * o).sum(1)))           # z; the label is tanh(z)


def padded(xs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    out = np.zeros((len(xs), max(len(x) for x in xs), 4), dtype=np.int64)
    for i, x in enumerate(xs):
        out[i, :len(x)] = x
    return torch.as_tensor(out), torch.as_tensor([len(x) for x in xs])


def label(model: EventLabeller, clips: dict, names: list[str], relative: bool) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([torch.tanh(model(*padded([events(clips[n], relative) for n in names[i:i + 64]]))).numpy()
                               for i in range(0, len(names), 64)])


def fit_events(clips: dict, fit: list[str], stop: list[str], relative: bool, epochs: int, seed: int = 0,
               patience: int = 6) -> EventLabeller:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = EventLabeller()
    average = copy.deepcopy(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    targets = torch.as_tensor((sides(fit) * 0.9 + 1.0) / 2.0)             # label smoothing 0.1
    stop_sides = (sides(stop) + 1.0) / 2.0
    best, best_model, since = np.inf, average, 0
    for epoch in range(epochs):
        model.train()
        started = time.process_time()
        order = rng.permutation(len(fit))
        for first in range(0, len(order), 32):
            rows = order[first:first + 32]
            views = [events(clips[fit[r]], relative, shift=0 if relative else int(rng.integers(-6, 7)),
                            drop_velocity=rng.random() < 0.3, rng=rng) for r in rows]
            loss = F.binary_cross_entropy_with_logits(2.0 * model(*padded(views)), targets[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                for mean, value in zip(average.parameters(), model.parameters()):
                    mean.lerp_(value, 0.02)
        p = np.clip((label(average, clips, stop, relative) + 1.0) / 2.0, 1e-6, 1 - 1e-6)
        stop_loss = float(-np.mean(stop_sides * np.log(p) + (1 - stop_sides) * np.log(1 - p)))
        print(f"  epoch {epoch + 1}: stopping loss {stop_loss:.4f}, {time.process_time() - started:.0f} CPU s", flush=True)
        if stop_loss < best:
            best, best_model, since = stop_loss, copy.deepcopy(average), 0
        else:
            since += 1
            if since >= patience:
                break
    return best_model


# --- classifiers on note-level clip features ------------------------------------------------------

PER_FRAME = len(spec.LABELLER_COLUMNS) - len(spec.LABELLER_CLIP_COLUMNS)     # the clip's columns come last


def frames_summary(frames: np.ndarray) -> np.ndarray:
    """Mean and sounding frames' spread of the per-frame columns (not the clip's)."""
    return window_summary(frames[:, :PER_FRAME])[0]


def classifier(kind: str):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "trees":
        return HistGradientBoostingClassifier(**TREE_SETTINGS)
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=5000))


def feature_values(kind: str, x: np.ndarray, train: np.ndarray, test: np.ndarray, names: list[str]) -> np.ndarray:
    """(valence, arousal) in [-1, 1] [len(test), 2] from one classifier per side trained on `train`."""
    truth = sides(names)
    return np.stack([2.0 * classifier(kind).fit(x[train], truth[train, j] > 0).predict_proba(x[test])[:, 1] - 1.0
                     for j in range(2)], 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emopia", type=Path, required=True)
    parser.add_argument("--models", default="events,frames-logreg,features-logreg,features-trees")
    parser.add_argument("--pitch", choices=("absolute", "relative"), default="absolute")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--stop-fraction", type=float, default=0.15)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if not (args.emopia / "split" / "train.csv").is_file():
        print(f"{args.emopia}: no split/train.csv (an EMOPIA folder has midis/ and split/)", file=sys.stderr)
        return 2
    clips = read_clips(args.emopia)
    names = list(clips)
    train = [n for n in names if clips[n]["part"] == "train"]
    val = [n for n in names if clips[n]["part"] == "val"]
    print(f"{len(train)} training, {len(val)} validation clips; accuracy 4Q / valence / arousal")
    for model in args.models.split(","):
        if model == "events":
            stop = [n for n in train if spec.split_fraction(song_of(n), 0) < args.stop_fraction]
            fit = [n for n in train if n not in set(stop)]
            print(f"events ({args.pitch} pitch): {len(fit)} clips fitted, {len(stop)} stopping", flush=True)
            trained = fit_events(clips, fit, stop, args.pitch == "relative", args.epochs)
            print(f"{'events':<18} validation {scores(label(trained, clips, val, args.pitch == 'relative'), val)}")
            continue
        kind = model.split("-")[1]
        rows = [frames_summary(clips[n]["frames"]) for n in names]
        if model.startswith("features"):
            rows = [np.concatenate([r, clips[n]["frames"][0, PER_FRAME:]]) for r, n in zip(rows, names)]
        x = np.stack(rows)
        is_val = np.array([clips[n]["part"] == "val" for n in names])
        official = feature_values(kind, x, ~is_val, is_val, names)
        fold = np.array([int(spec.split_fraction(song_of(n), 1) * args.folds) for n in names])
        per_fold = [feature_values(kind, x, fold != k, fold == k, names) for k in range(args.folds)]
        pooled = np.zeros((len(names), 2))
        for k, values in enumerate(per_fold):
            pooled[fold == k] = values
        print(f"{model:<18} validation {scores(official, val)}   {args.folds} song folds {scores(pooled, names)}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
