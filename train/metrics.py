"""How well a network does: its training loss, the metric tracked per epoch, and evaluation metrics.

Losses (torch, on one batch; `mask` [B, T] weights the time steps of padded sequences):
  emotion   MSE on the 64-d embedding (tanh output)
  melody    binary cross-entropy on the 128 pitch activities, from logits (BCEWithLogits)
  harmony   cross-entropy over the 64 chord classes, from logits
  dynamics  MSE on the 16 expression values (sigmoid output)
  groove    MSE on the 32 groove values (tanh output)
  labeller  binary cross-entropy of each sign (valence, arousal) of a clip's quadrant
            (train.labeller_network, on frames [B, T, D] and the clip's signs [B, 2])

The per-epoch metric (`METRIC`) is MAE for the regressions, F1 at 0.5 for melody and top-1
accuracy for harmony and the labeller (its quadrant: both signs right). The evaluation functions at the bottom are numpy, on whole held-out arrays.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

LOSS = {"emotion": "mse", "melody": "bce", "harmony": "cross_entropy", "dynamics": "mse", "groove": "mse",
        "labeller": "bce_signs"}
#: network -> (metric name, "min" or "max" for better)
METRIC = {
    "emotion": ("mae", "min"),
    "melody": ("f1", "max"),
    "harmony": ("accuracy", "max"),
    "dynamics": ("mae", "min"),
    "groove": ("mae", "min"),
    "labeller": ("accuracy", "max"),
}
MELODY_THRESHOLD = 0.5
EPS = 1e-7


def batch_loss(key: str, model, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None):
    """(mean loss over the batch's real steps, the output the metric reads: values, or logits)."""
    if key == "labeller":                     # its mask marks frames, its loss is per clip
        from train.labeller_network import batch_loss as labeller_batch_loss

        return labeller_batch_loss(model, x, y, mask)
    total, out, _ = loss_sum(key, model, x, y, mask)
    return total / (len(y) if mask is None else mask.sum()), out


def loss_sum(key: str, model, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None,
             state: dict | None = None):
    """(the loss summed over the batch's real samples or steps, the output the metric reads, the
    LSTM state after the batch: {} for dense networks). `state` is where the LSTMs start (zeros
    when None). The model is called, not its methods, so that a DistributedDataParallel wrapper
    sees every forward."""
    if key == "labeller":                     # per clip: the mean over the batch's clips times their number
        from train.labeller_network import batch_loss as labeller_batch_loss

        loss, out = labeller_batch_loss(model, x, y, mask)
        return loss * len(x), out, {}
    if key == "harmony":
        logits = model(x, logits=True)
        return F.cross_entropy(logits, y, reduction="sum"), logits, {}
    if key == "melody":
        out, new_state = model(x, state, return_state=True, logits=True)
        per_step = F.binary_cross_entropy_with_logits(out, y, reduction="none").mean(-1)
    else:
        out, new_state = model(x, state, return_state=True)
        per_step = (out - y).square().mean(-1)
    return (per_step.sum() if mask is None else (per_step * mask).sum()), out, new_state


def constant_loss(key: str, prediction: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None):
    """The loss of predicting `prediction` (the training mean, or for harmony the class prior) everywhere."""
    if key == "labeller":
        from train.labeller_network import constant_loss as labeller_constant_loss

        return labeller_constant_loss(prediction, y)
    if key == "harmony":
        return -torch.log(prediction.clamp_min(EPS))[y].mean()
    p = prediction.expand_as(y)
    if key == "melody":
        p = p.clamp(EPS, 1 - EPS)
        per_step = -(y * torch.log(p) + (1 - y) * torch.log1p(-p)).mean(-1)
    else:
        per_step = (p - y).square().mean(-1)
    return per_step.mean() if mask is None else (per_step * mask).sum() / mask.sum()


class MetricSum:
    """Accumulates the per-epoch metric over batches: sums stay on the device (no host sync until
    `value`), counts are kept on the host; a few cheap ops per batch."""

    def __init__(self, key: str):
        self.key = key
        self.sums: list[torch.Tensor] | None = None
        self.count = 0.0

    @torch.no_grad()
    def add(self, out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        if self.key == "harmony":
            sums = [(out.argmax(-1) == y).sum()]
            self.count += len(y)
        elif self.key == "labeller":
            from train.labeller_network import quadrant_hits

            sums = [quadrant_hits(out, y)]
            self.count += len(y)
        elif self.key == "melody":
            predicted = out > 0                                  # sigmoid(logit) > 0.5
            truth = y >= MELODY_THRESHOLD
            if mask is not None:
                real = mask.bool()[..., None]
                predicted, truth = predicted & real, truth & real
            sums = [(predicted & truth).sum(), predicted.sum(), truth.sum()]      # tp, tp + fp, tp + fn
        elif mask is None:
            sums = [torch.sub(out, y).abs_().sum()]
            self.count += y.numel()
        else:
            sums = [(torch.sub(out, y).abs_().sum(-1) * mask).sum(), mask.sum() * y.shape[-1]]
        if self.sums is None:
            self.sums = sums
        else:
            for total, s in zip(self.sums, sums):
                total.add_(s)

    def value(self) -> float:
        if self.sums is None:
            return float("nan")
        s = [float(v) for v in self.sums]
        if self.key == "melody":
            tp, predicted, true = s
            return 2 * tp / (predicted + true) if predicted + true > 0 else 1.0
        count = s[1] if len(s) == 2 else self.count
        return s[0] / count if count else float("nan")


def add_constant(metric: MetricSum, prediction: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """Add one batch of a constant prediction (the baseline) to `metric`: the output the metric reads
    is the prediction's log (harmony), its logit (melody) or itself, repeated over the batch."""
    if metric.key == "harmony":
        metric.add(prediction.log().expand(len(y), -1), y)
    elif metric.key == "labeller":
        metric.add(prediction.expand_as(y), y)
    elif metric.key == "melody":
        metric.add(torch.logit(prediction.clamp(EPS, 1 - EPS)).expand_as(y), y, mask)
    else:
        metric.add(prediction.expand_as(y), y, mask)


# --- evaluation on held-out arrays (numpy; float64 sums) ------------------------------------------

def regression(pred: np.ndarray, target: np.ndarray, names: tuple[str, ...] | None = None) -> dict:
    """MSE and MAE overall and per output. pred, target [N, D]."""
    err = pred.astype(np.float64) - target
    out = {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))}
    if names is not None:
        out["mse_per_output"] = dict(zip(names, np.mean(err**2, 0).tolist()))
        out["mae_per_output"] = dict(zip(names, np.mean(np.abs(err), 0).tolist()))
    return out


def cosine_similarity(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean over rows of the cosine between predicted and target vectors [N, D]."""
    dot = np.sum(pred * target, -1, dtype=np.float64)
    norms = np.linalg.norm(pred.astype(np.float64), axis=-1) * np.linalg.norm(target.astype(np.float64), axis=-1)
    return float(np.mean(dot / np.maximum(norms, 1e-12)))


def mean_correlation(pred: np.ndarray, target: np.ndarray) -> float | None:
    """Pearson correlation per dimension over rows, averaged over the dimensions where both vary.

    None when no dimension varies in both (e.g. a constant prediction)."""
    p = pred.astype(np.float64) - pred.mean(0)
    t = target.astype(np.float64) - target.mean(0)
    denominator = np.sqrt((p**2).sum(0) * (t**2).sum(0))
    ok = (np.ptp(pred, 0) > 0) & (np.ptp(target, 0) > 0) & (denominator > 0)
    if not ok.any():
        return None
    return float(np.mean((p * t).sum(0)[ok] / denominator[ok]))


def r2(pred: np.ndarray, target: np.ndarray) -> float:
    """Coefficient of determination of a 1-d prediction (1 is perfect, 0 is the target's mean)."""
    residual = np.sum((target.astype(np.float64) - pred) ** 2)
    total = np.sum((target - np.mean(target, dtype=np.float64)) ** 2)
    return float(1.0 - residual / total) if total > 0 else float("nan")


def multilabel(prob: np.ndarray, target: np.ndarray, *, threshold: float = MELODY_THRESHOLD, k: int = 3) -> dict:
    """Melody: BCE, top-k accuracy, precision, recall, F1. prob, target [N, 128] in [0, 1].

    A pitch is active where target >= threshold. top_k_accuracy: over rows with any active pitch,
    the share of the k highest-scoring pitches that are active, out of min(k, active pitches).
    Precision/recall/F1 count (row, pitch) pairs, predicted active where prob >= threshold.
    """
    p = np.clip(prob.astype(np.float64), EPS, 1 - EPS)
    bce = float(-np.mean(target * np.log(p) + (1 - target) * np.log1p(-p)))
    truth = target >= threshold
    predicted = prob >= threshold
    tp = float(np.sum(predicted & truth))
    fp = float(np.sum(predicted & ~truth))
    fn = float(np.sum(~predicted & truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    rows = truth.any(1)
    top = np.argsort(-prob[rows], axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(truth[rows], top, 1).sum(1)
    top_k = float(np.mean(hits / np.minimum(k, truth[rows].sum(1)))) if rows.any() else float("nan")
    return {"bce": bce, f"top{k}_accuracy": top_k, "precision": precision, "recall": recall, "f1": f1}


def classification(prob: np.ndarray, labels: np.ndarray) -> dict:
    """Harmony: cross-entropy, top-1 and top-5 accuracy. prob [N, C] (rows sum to 1), labels int [N]."""
    picked = prob[np.arange(len(labels)), labels]
    top5 = np.argsort(-prob, axis=1, kind="stable")[:, :5]
    return {
        "cross_entropy": float(-np.mean(np.log(np.maximum(picked.astype(np.float64), EPS)))),
        "top1_accuracy": float(np.mean(top5[:, 0] == labels)),
        "top5_accuracy": float(np.mean((top5 == labels[:, None]).any(1))),
    }
