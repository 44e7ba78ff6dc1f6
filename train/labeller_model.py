"""The EmotionLabeller: a piece's notes -> the (valence, arousal) that listeners hear in it.

A sixth network, trained on EMOPIA's annotated clips and run here only (the plugin does not run
it; it is not exported). Its input is `preprocess.features.labeller_input.labeller_frames`:
float32 [T, spec.LABELLER_INPUTS] frames of spec.LABELLER["frame_seconds"] each.

    model = EmotionLabeller()
    values = model(frames [B, T, D], lengths [B])        # [B, 2] (valence, arousal) in (-1, 1)
    v, a = label_piece(model, frames [T, D])              # a whole piece of any length
    ensemble = LabellerEnsemble([model, ...])             # seeds averaged; label_piece takes it too
    saved = labeller_checkpoint(ensemble)                 # a dict for torch.save ...
    model = labeller_from_checkpoint(saved)               # ... and back (refuses other frame versions)

Two kinds:

- the sequence model (``sequence=True``), the chosen one (`train.labeller_fit.CHOSEN`, three
  seeds averaged, with the summary, the cues and the prior below): a convolution over time
  (Conv1d(D, hidden), 3 frames wide, stride 2: one step per 0.5 s) + ReLU, a bidirectional GRU
  over the steps, attention pooling (a learnt score per step, softmax over the steps that exist),
  then Linear(2 * hidden, 2) -> z and the output tanh(z). With ``summary=True`` the head also reads the mean of the input frames (the
  piece's counts: pitch-class and chord histograms, density, loudness) beside the pooled state;
- the counts model (``sequence=False``): Linear(2 D, 2) on the frames' mean and the sounding
  frames' standard deviation (`EmotionLabeller.counts`), a logistic regression.

With ``cues=True`` a linear term of the clip's cues (`train.labeller_cues.clip_cues`, derived
exactly from the frames: notes per second, mean velocity over the notes, velocity known,
articulation, minor-chord and minor-key shares, the key-relative profile's mode contrast, each on a
fixed scale) is added to z: the frames hold per-frame ratios, and their mean is not the clip's
notes per second nor its mean velocity over notes, the two terms arousal is best read from. With
``prior=True`` z also has gain * `train.labeller_cues.rule_of_cues` (the two-term hand rule: the
mean of the density and loudness terms, density alone for flat velocities), the gain learnt from
(0, PRIOR_GAIN) and every other output layer starting at zero: an untrained model is the rule's
arousal, and training learns the valence and a correction; ``correct_arousal=False`` keeps the
arousal the rule's (only its gain, its confidence, learnt).

Measured (bench/labeller_models.py, EMOPIA's official validation clips, 198 clips of 63 songs,
trained on 638 training clips, early stopping on 129 clips of 48 other songs (the selection set);
accuracy 4Q / valence / arousal, mean +- sd over 3 seeds; CPU s per seed, 1 thread, on a shared
machine):

    hand rule on the notes (bench/emotion_labels.py, main)                        0.652 / 0.710 / 0.935
    hand rule read from the frames' cues (rule_of_cues)                           0.631 / 0.687 / 0.929
      the same on the selection set                                               0.682 / 0.744 / 0.907
    logistic regression on the clip's counts (sklearn, C on the stopping clips)   0.652 / 0.747 / 0.874
      the same trained with velocity-free copies of every clip                    0.662 / 0.747 / 0.884
    counts model (torch, trained like the GRU)     0.631±0.004 / 0.727±0.004 / 0.872±0.002
    GRU, no summary                                0.635±0.006 / 0.749±0.006 / 0.867±0.002
    GRU + summary                                  0.626±0.004 / 0.744±0.002 / 0.865±0.006   42 s
    GRU + summary + cues                           0.640±0.006 / 0.751±0.006 / 0.874±0.007   49 s
      without velocity augmentation                0.648±0.005 / 0.754±0.006 / 0.877±0.002   (no velocity: A 0.614)
      without label smoothing                      0.636±0.011 / 0.749±0.010 / 0.870±0.005
    GRU + summary + cues + prior (rule's arousal)  0.672±0.011 / 0.744±0.013 / 0.916±0.005   46 s
      on the selection set                         0.716±0.010 / 0.780±0.013 / 0.897±0.004
    the same, the rule's arousal kept (chosen)     0.692±0.004 / 0.756±0.005 / 0.924±0.000   38 s
      ensemble of its 3 seeds                      0.692 / 0.753 / 0.924   (114 s CPU to train)
      on the selection set                         0.729±0.006 / 0.780±0.015 / 0.907±0.000
      velocities removed / an octave up            0.646 / 0.753 / 0.869  ;  0.684 / 0.747 / 0.924

Chosen on the selection set, where it has the best 4Q and arousal (the rule's, 0.907, against 0.897
with the correction learnt). On the validation clips it beats the notes' hand rule on 4Q (0.692 vs
0.652) and valence (0.756 vs 0.710) and stays 0.011 short of it on arousal (0.924 vs 0.935,
balanced 0.925 vs 0.935: two clips): its arousal is the rule's read from the frames (density over
the frames from 0 s, windows of 40 s averaged), which differs from the notes' rule on a few clips.

The validation clips are 63 songs: a figure on them moves by several points with the songs drawn.
Over five song folds of all 965 training and validation clips (bench/labeller_models.py --folds 5,
one seed per fold; pooled accuracy 4Q / valence / arousal, sd over the folds in brackets):

    hand rule read from the frames' cues          0.666 / 0.728 / 0.912   (0.045 / 0.044 / 0.008)
    logistic regression on the clip's counts      0.656 / 0.746 / 0.883   (0.049 / 0.059 / 0.028)
    the chosen labeller                           0.668 / 0.741 / 0.908   (0.035 / 0.045 / 0.008)

so across songs it is the rule's arousal with a valence a little better than the rule's, and no
model here has its valence near 0.80.

A logistic regression on the seven cues alone reaches arousal 0.899 on these clips (0.904 on
density and loudness alone, its weights fitted): a fitted boundary on 638 clips lands a few clips
worse than the rule's equal weights at 6 notes/s and velocity 64, on the selection set as here, so
a learnt correction of the rule's arousal costs accuracy where the rule is already near its best.
The velocity augmentation costs nothing measurable (0.877 without it, within a seed's spread) and
keeps arousal when velocities are missing (0.860 with it, 0.614 without); label smoothing neither.

The labeller that `kelly train --models labeller` writes takes its valence from gradient-boosted
trees fitted after this network on each window's summary, the piece's note-level values among it
(`train.labeller_trees`, `preprocess.features.clip_features`): on the validation clips 0.712 /
0.768 / 0.924 against this network's 0.692 / 0.753 / 0.924; its arousal stays this network's.

The sign of each output is the quadrant's side (valence + for Q1 and Q4, arousal + for Q1 and
Q2); its size is the labeller's confidence, so a label carries degree.

Training target (`labeller_loss`): the annotated quadrant's signs s in {-1, +1}. With the output
y = tanh(z), P(side +) = (y + 1) / 2 = sigmoid(2z), and the loss is binary cross-entropy of
sigmoid(2z) against (s + 1) / 2, with label smoothing (targets 1 - e and e) so the outputs keep
away from +-1 and the labels' size stays a degree rather than saturating.

A piece longer than a window (spec.LABELLER["window_seconds"], about an EMOPIA clip) is labelled
window by window, one every spec.LABELLER["hop_seconds"], the last window ending with the piece,
and the windows' outputs are averaged (`label_piece`). Training crops clips to the same window,
so the network never sees inputs longer than it will be asked about.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from preprocess.features import spec
from train.labeller_cues import CUES, clip_cues, rule_of_cues

FRAME_SECONDS = spec.LABELLER["frame_seconds"]
WINDOW_FRAMES = int(round(spec.LABELLER["window_seconds"] / FRAME_SECONDS))     # 160
HOP_FRAMES = int(round(spec.LABELLER["hop_seconds"] / FRAME_SECONDS))           # 80
VELOCITY = spec.LABELLER_COLUMNS.index("velocity")
VELOCITY_KNOWN = spec.LABELLER_COLUMNS.index("velocity_known")
SILENT = spec.LABELLER_COLUMNS.index("silent")
PRIOR_GAIN = 2.0       # z per unit of the rule at the start: a rule value of 0.5 gives tanh(1) = 0.76


class EmotionLabeller(nn.Module):
    """Frames [B, T, D] (+ lengths [B]) -> (valence, arousal) [B, 2] in (-1, 1) (module docstring)."""

    def __init__(self, inputs: int = spec.LABELLER_INPUTS, hidden: int = 64, dropout: float = 0.2,
                 summary: bool = False, sequence: bool = True, cues: bool = False, prior: bool = False,
                 correct_arousal: bool = True):
        super().__init__()
        self.config = {"inputs": int(inputs), "hidden": int(hidden), "dropout": float(dropout),
                       "summary": bool(summary), "sequence": bool(sequence), "cues": bool(cues),
                       "prior": bool(prior), "correct_arousal": bool(correct_arousal)}
        # the clip's cues (train.labeller_cues) enter the output linearly, beside the head
        self.cue_head = nn.Linear(len(CUES), 2) if cues else None
        # prior: z = gain * the hand rule's (valence, arousal) + the learnt terms, which start at 0;
        # the gain starts at (0, PRIOR_GAIN): the rule's arousal, its valence learnt like any cue
        self.gain = nn.Parameter(torch.tensor([0.0, PRIOR_GAIN])) if prior else None
        if not sequence:
            # the counts alone: a logistic regression on the frames' mean and the sounding frames' spread
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * inputs, 2))
            self._start_at_prior()
            return
        # two frames per step (0.5 s), each step reading three frames: half the GRU's sequential work
        self.frame = nn.Conv1d(inputs, hidden, kernel_size=3, stride=2, padding=1)
        self.frame_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.score = nn.Linear(2 * hidden, 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden + (inputs if summary else 0), 2))
        self._start_at_prior()

    def _start_at_prior(self) -> None:
        """With a prior, the learnt output layers start at zero: an untrained model is the rule."""
        if self.gain is None:
            return
        for layer in (self.head[-1], self.cue_head):
            if layer is not None:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    @staticmethod
    def counts(frames: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """[B, 2 D]: each row's frame mean and the standard deviation over its sounding frames;
        frames [B, T, D], present [B, T] bool (the frames within each row's length)."""
        weight = present.to(frames.dtype)
        mean = torch.einsum("bt,btd->bd", weight / weight.sum(1, keepdim=True), frames)
        sounding = weight * (frames[..., SILENT] == 0).to(frames.dtype)
        sounding = torch.where(sounding.sum(1, keepdim=True) > 0, sounding, weight)
        sounding = sounding / sounding.sum(1, keepdim=True)
        centre = torch.einsum("bt,btd->bd", sounding, frames)
        spread = torch.einsum("bt,btd->bd", sounding, (frames - centre[:, None]) ** 2)
        return torch.cat([mean, torch.sqrt(spread + 1e-8)], dim=1)

    def logits(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """z [B, 2] with outputs tanh(z); frames [B, T, D] float32, lengths [B] int (all T when None).
        Frames past a row's length are padding and change nothing."""
        batch, steps, _ = frames.shape
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long)
        lengths = lengths.to(torch.long).cpu().clamp(1, steps)
        within = torch.arange(steps)[None, :] < lengths[:, None]
        cue_logits = 0.0
        if self.cue_head is not None:
            cue_logits = self.cue_head(clip_cues(frames, within.to(frames.device)))
        if not self.config["sequence"]:
            return self._with_prior(self.head(self.counts(frames, within)) + cue_logits, frames, within)
        summary = None
        if self.config["summary"]:
            weight = (torch.arange(steps)[None, :] < lengths[:, None]).to(frames.dtype) / lengths[:, None]
            summary = torch.einsum("bt,btd->bd", weight.to(frames.device), frames)
        # frames past a row's length are zeros, as the convolution's own padding: a row's steps see
        # the same inputs alone or in a batch
        frames = frames * (torch.arange(steps)[None, :, None] < lengths[:, None, None]).to(frames)
        x = self.frame_dropout(torch.relu(self.frame(frames.transpose(1, 2)).transpose(1, 2)))
        lengths = (lengths + 1) // 2
        steps = x.shape[1]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        hidden, _ = self.gru(packed)
        hidden, _ = nn.utils.rnn.pad_packed_sequence(hidden, batch_first=True, total_length=steps)
        present = torch.arange(steps)[None, :] < lengths[:, None]
        score = self.score(hidden).squeeze(-1).masked_fill(~present.to(hidden.device), float("-inf"))
        pooled = torch.einsum("bt,btd->bd", torch.softmax(score, dim=1), hidden)
        if summary is not None:
            pooled = torch.cat([pooled, summary], dim=1)
        return self._with_prior(self.head(pooled) + cue_logits, frames, within)

    def _with_prior(self, learnt: torch.Tensor, frames: torch.Tensor, within: torch.Tensor) -> torch.Tensor:
        """z [B, 2]: the learnt terms, plus gain * the rule with a prior; with correct_arousal False
        the arousal is the rule's alone (only its gain learnt: its sign is the rule's)."""
        if self.gain is None:
            return learnt
        if not self.config["correct_arousal"]:
            learnt = torch.stack([learnt[:, 0], torch.zeros_like(learnt[:, 1])], dim=1)
        return learnt + self.gain * rule_of_cues(clip_cues(frames, within.to(frames.device)))

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(valence, arousal) [B, 2] in (-1, 1)."""
        return torch.tanh(self.logits(frames, lengths))


class LabellerEnsemble(nn.Module):
    """Labellers (other seeds, or other kinds) with their outputs averaged: frames [B, T, D]
    (+ lengths [B]) -> (valence, arousal) [B, 2] in (-1, 1), the mean of the members' outputs.
    `label_piece` takes it as it takes one EmotionLabeller."""

    def __init__(self, members: list[EmotionLabeller]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one labeller")
        self.members = nn.ModuleList(members)
        self.config = {"members": [dict(m.config) for m in members]}

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([m(frames, lengths) for m in self.members]).mean(dim=0)


def labeller_loss(logits: torch.Tensor, signs: torch.Tensor, smoothing: float = 0.1) -> torch.Tensor:
    """Mean BCE of P(side +) = sigmoid(2 z) against the quadrant's sides; logits z [B, 2] and signs
    [B, 2] in {-1, +1} (valence, arousal), targets smoothed to [smoothing / 2, 1 - smoothing / 2]."""
    target = (signs.to(logits.dtype) + 1.0) / 2.0 * (1.0 - smoothing) + smoothing / 2.0
    return F.binary_cross_entropy_with_logits(2.0 * logits, target)


def quadrant_signs(quadrant) -> np.ndarray:
    """Russell quadrant(s) 1..4 -> (valence, arousal) signs float32 [..., 2]: Q1 (+,+), Q2 (-,+),
    Q3 (-,-), Q4 (+,-)."""
    q = np.asarray(quadrant, dtype=np.int64)
    if np.any((q < 1) | (q > 4)):
        raise ValueError(f"quadrants are 1..4, got {np.unique(q[(q < 1) | (q > 4)]).tolist()}")
    valence = np.where((q == 1) | (q == 4), 1.0, -1.0)
    arousal = np.where(q <= 2, 1.0, -1.0)
    return np.stack([valence, arousal], axis=-1).astype(np.float32)


def quadrant_of(valence, arousal) -> np.ndarray:
    """(valence, arousal) values (any sizes, same shape) -> Russell quadrant 1..4 (int64); a value
    of exactly 0 counts as positive."""
    v, a = np.asarray(valence) >= 0, np.asarray(arousal) >= 0
    return np.where(a, np.where(v, 1, 2), np.where(v, 4, 3)).astype(np.int64)


def window_starts(n_frames: int, window: int = WINDOW_FRAMES, hop: int = HOP_FRAMES) -> np.ndarray:
    """First frame of each window labelling a piece of `n_frames` frames (int64 [K], K >= 1): one
    every `hop` frames, the last ending with the piece; one window at 0 for a piece not longer
    than `window`."""
    if n_frames <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_frames - window, hop, dtype=np.int64)
    return np.append(starts, n_frames - window)


@torch.no_grad()
def label_piece(model: nn.Module, frames, window: int = WINDOW_FRAMES, hop: int = HOP_FRAMES,
                ) -> np.ndarray:
    """(valence, arousal) float32 [2] in (-1, 1) of a whole piece: frames [T, D] (numpy or torch)
    labelled by windows (`window_starts`) and the windows' outputs averaged."""
    x = torch.as_tensor(np.asarray(frames, dtype=np.float32))
    starts = window_starts(x.shape[0], window, hop)
    length = min(window, x.shape[0])
    batch = torch.stack([x[s:s + length] for s in starts])
    was_training = model.training
    model.eval()
    try:
        values = model(batch)
    finally:
        model.train(was_training)
    return values.mean(dim=0).numpy().astype(np.float32)


def augment_frames(frames: np.ndarray, rng: np.random.Generator, window: int = WINDOW_FRAMES,
                   drop_velocity: float = 0.3, velocity_scale: float = 0.2, shortest: float = 1.0) -> np.ndarray:
    """A training view of one clip's frames [T, D] (float32, a copy): a random crop of L frames, L
    drawn uniformly between `shortest` * min(T, window) and min(T, window); with probability `drop_velocity` the velocity columns cleared as for a file
    without velocity information (velocity 0, velocity_known 0), else the velocities scaled by a
    factor in [1 - velocity_scale, 1 + velocity_scale] (clipped to [0, 1]): arousal must also be
    read from density and articulation, and from loudness recorded at another level."""
    n = frames.shape[0]
    longest = min(n, window)
    length = int(rng.integers(max(int(np.ceil(shortest * longest)), 1), longest + 1))
    start = int(rng.integers(0, n - length + 1))
    x = np.array(frames[start:start + length], dtype=np.float32)
    if x[:, VELOCITY_KNOWN].any():
        if rng.random() < drop_velocity:
            x[:, VELOCITY] = 0.0
            x[:, VELOCITY_KNOWN] = 0.0
        else:
            x[:, VELOCITY] = np.clip(x[:, VELOCITY] * rng.uniform(1 - velocity_scale, 1 + velocity_scale), 0, 1)
    return x


def pad_batch(clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips [T_i, D] -> (frames float32 [B, max T_i, D] zero-padded, lengths int64 [B])."""
    lengths = torch.tensor([c.shape[0] for c in clips], dtype=torch.long)
    out = torch.zeros((len(clips), int(lengths.max()), clips[0].shape[1]), dtype=torch.float32)
    for i, c in enumerate(clips):
        out[i, :c.shape[0]] = torch.as_tensor(c)
    return out, lengths


CHECKPOINT_KIND = "EmotionLabeller"


def labeller_checkpoint(model: nn.Module) -> dict:
    """What to save of a labeller or an ensemble (for torch.save): its kind, the frame version it
    reads (spec.LABELLER_VERSION), its config and its weights."""
    return {"kind": CHECKPOINT_KIND, "labeller_version": spec.LABELLER_VERSION,
            "config": dict(model.config), "state_dict": model.state_dict()}


def labeller_from_checkpoint(checkpoint) -> nn.Module:
    """The labeller (or ensemble) saved by `labeller_checkpoint`, in eval mode.

    Raises ValueError, saying what is wrong, for anything else: not a labeller's checkpoint, or one
    made for frames of another version than this code computes."""
    if not isinstance(checkpoint, dict) or checkpoint.get("kind") != CHECKPOINT_KIND:
        raise ValueError("not an EmotionLabeller checkpoint")
    version = checkpoint.get("labeller_version")
    if version != spec.LABELLER_VERSION:
        raise ValueError(f"the labeller was trained on frames of version {version!r}; this code computes "
                         f"{spec.LABELLER_VERSION!r}: train it again")
    config = dict(checkpoint["config"])
    if "members" in config:
        model = LabellerEnsemble([EmotionLabeller(**member) for member in config["members"]])
    else:
        model = EmotionLabeller(**config)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
