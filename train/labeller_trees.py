"""The EmotionLabeller's valence: gradient-boosted trees on each window's summary.

    trees = fit_valence_trees(clips, signs)            # clips: frames [T_i, D]; signs [N, 2] in {-1, +1}
    model = TreeValence(network, trees)                # (valence, arousal) [B, 2]: valence the trees'
    saved = trees_to_bytes(trees); trees = trees_from_bytes(saved)     # as a checkpoint holds them

The network (`train.labeller_network.LabellerNetwork`) reads arousal well (it is the two-term hand
rule of density and loudness, its gain learnt) but valence no better than a linear model of the
clip's counts. Valence is read by trees (scikit-learn's HistGradientBoostingClassifier: depth 3,
200 rounds, learning rate 0.05, L2 1.0, fixed seed) from a window's summary: the mean and the
standard deviation over its sounding frames of every frame column, among them the piece's
note-level values (`preprocess.features.clip_features`). The valence is 2 P(side +) - 1.

Measured on EMOPIA's 965 shared clips, accuracy 4Q / valence / arousal:

    on the official validation clips (198), trained on the 767 training clips as `kelly train --models
    labeller` trains (bench/emotion_labels.py --checkpoint-dir):
      the network alone (before the trees)        0.692 / 0.753 / 0.924
      the trees' valence, the network's arousal   0.712 / 0.768 / 0.924   (balanced 0.715 / 0.771 / 0.925)
      the proxy rules (the fallback)              0.652 / 0.707 / 0.934
    over five song folds of all 965 (bench/labeller_models.py, bench/labeller_alternatives.py):
      the network alone                           0.668 / 0.741 / 0.908
      trees on both sides                         0.709 / 0.776 / 0.907

The trees are fitted after the network, on every official training clip (no early stopping: the
rounds are fixed), deterministically; a checkpoint holds them pickled (`trees_to_bytes`), so a
labeller checkpoint is trusted as a pickle is: load only your own.
"""
from __future__ import annotations

import pickle

import numpy as np
import torch
from torch import nn

from preprocess.features import spec

SILENT = spec.LABELLER_COLUMNS.index("silent")

TREE_SETTINGS = {"max_depth": 3, "learning_rate": 0.05, "max_iter": 200, "l2_regularization": 1.0,
                 "random_state": 0}


def window_summary(frames, lengths=None) -> np.ndarray:
    """float64 [B, 2 D]: each row's frame mean and the standard deviation over its sounding frames
    (over all its frames when none sounds), of frames [B, T, D] or [T, D] (numpy or torch) within
    `lengths` [B]. The numbers of `train.labeller_model.EmotionLabeller.counts`, computed in float64
    and without the small constant that keeps that one's gradient finite: the trees' bins are exact."""
    x = np.asarray(frames.detach().cpu() if isinstance(frames, torch.Tensor) else frames, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    n = np.full(len(x), x.shape[1]) if lengths is None else np.asarray(lengths).astype(int)
    rows = []
    for clip, length in zip(x, n):
        clip = clip[:max(int(length), 1)]
        sounding = clip[clip[:, SILENT] == 0]
        rows.append(np.concatenate([clip.mean(0), (sounding if len(sounding) else clip).std(0)]))
    return np.stack(rows)


def fit_valence_trees(clips: list[np.ndarray], signs: np.ndarray):
    """The valence trees fitted on clips (frames [T_i, D]) and their signs [N, 2]; None when the
    clips hold only one valence side (nothing to tell apart)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    positive = np.asarray(signs)[:, 0] > 0
    if positive.all() or not positive.any():
        return None
    return HistGradientBoostingClassifier(**TREE_SETTINGS).fit(window_summary_of(clips), positive)


def window_summary_of(clips: list[np.ndarray]) -> np.ndarray:
    """window_summary of clips of different lengths, one row each."""
    return np.concatenate([window_summary(clip) for clip in clips])


def trees_to_bytes(trees) -> bytes:
    return pickle.dumps(trees, protocol=pickle.HIGHEST_PROTOCOL)


def trees_from_bytes(data: bytes):
    return pickle.loads(data)


class TreeValence(nn.Module):
    """A labeller network with its valence replaced by the trees' (module docstring): frames
    [B, T, D] (+ lengths [B]) -> (valence, arousal) [B, 2] in [-1, 1]."""

    def __init__(self, network: nn.Module, trees):
        super().__init__()
        self.network = network
        self.trees = trees
        self.name = getattr(network, "name", type(network).__name__)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        values = self.network(frames, lengths).clone()
        positive = self.trees.predict_proba(window_summary(frames, lengths))[:, 1]
        values[:, 0] = torch.as_tensor(2.0 * positive - 1.0, dtype=values.dtype)
        return values


def attach_valence_trees(output, data) -> str:
    """Fit the valence trees on `data`'s official training clips (`train.labeller_data.LabellerData`:
    side TRAIN or VALIDATION) and write them into the labeller's best and latest checkpoints under
    `output` (each rewritten atomically). Returns one line saying what was done."""
    from train import checkpoints

    training = np.flatnonzero(data.side >= 0)
    trees = fit_valence_trees([data.clips[i] for i in training], data.signs[training])
    if trees is None:
        return (f"valence trees: not fitted (the {training.size} training clips are all on one valence side); "
                "the network's valence is kept")
    saved = trees_to_bytes(trees)
    for kind in ("best", "latest"):
        path = checkpoints.checkpoint_path(output, spec.LABELLER_KEY, kind)
        if path.is_file():
            checkpoint = checkpoints.load_checkpoint(path)
            checkpoint["valence_trees"] = saved
            checkpoints.save_checkpoint(path, checkpoint)
    return f"valence trees: fitted on {training.size} training clips ({len(saved) // 1024} KiB in the checkpoints)"
