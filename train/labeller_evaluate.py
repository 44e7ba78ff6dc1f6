"""The EmotionLabeller's held-out accuracy, as `kelly evaluate` reports it.

The held-out clips are the cache's official EMOPIA test split when it has one, else its official
validation split: clips the labeller never trained on and that never steered its training
(`train.labeller_data`). Each clip is labelled as `kelly label` labels a piece
(`train.labeller_model.label_piece`: windows averaged), and its predicted quadrant (the signs of
valence and arousal, 0 counting as +) compared with the annotated one.

Metrics: quadrant_accuracy (4 classes), valence_accuracy, arousal_accuracy (each sign), their
balanced accuracies (the mean of the recall of each side), confusion (annotated quadrant ->
predicted quadrant counts) and mean_abs_valence / mean_abs_arousal (the labels' degree). The
baseline predicts the training clips' majority quadrant for every clip.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from train.labeller_data import TEST, TRAIN, VALIDATION, from_cache

PRIMARY = ("quadrant_accuracy", "max")
SPLIT_NAMES = {VALIDATION: "validation", TEST: "test"}


def balanced_accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean over the classes present in `truth` of the share of their items predicted right."""
    classes = np.unique(truth)
    return float(np.mean([np.mean(predicted[truth == c] == c) for c in classes])) if classes.size else float("nan")


def quadrants(signs: np.ndarray) -> np.ndarray:
    """Quadrant 1..4 of (valence, arousal) rows [N, 2] (0 counts as +)."""
    from train.labeller_model import quadrant_of

    return quadrant_of(signs[:, 0], signs[:, 1])


def sign_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Accuracy metrics of predicted (valence, arousal) [N, 2] against the annotated signs [N, 2]."""
    p_side, t_side = predicted >= 0, truth > 0
    p_quadrant, t_quadrant = quadrants(predicted), quadrants(truth)
    confusion = {f"Q{t}": {f"Q{p}": int(np.sum((t_quadrant == t) & (p_quadrant == p))) for p in range(1, 5)}
                 for t in range(1, 5)}
    return {
        "quadrant_accuracy": float(np.mean(p_quadrant == t_quadrant)),
        "valence_accuracy": float(np.mean(p_side[:, 0] == t_side[:, 0])),
        "arousal_accuracy": float(np.mean(p_side[:, 1] == t_side[:, 1])),
        "valence_balanced_accuracy": balanced_accuracy(p_side[:, 0], t_side[:, 0]),
        "arousal_balanced_accuracy": balanced_accuracy(p_side[:, 1], t_side[:, 1]),
        "mean_abs_valence": float(np.mean(np.abs(predicted[:, 0]))),
        "mean_abs_arousal": float(np.mean(np.abs(predicted[:, 1]))),
        "confusion": confusion,
    }


def evaluate_labeller(checkpoint_path: str | Path, cache_dir: str | Path) -> dict:
    """The labeller of `checkpoint_path` on the cache's held-out EMOPIA clips (module docstring),
    in the form of `train.evaluate.evaluate_network`'s result."""
    from train.labeller_model import label_piece
    from train.labeller_checkpoint import load_labeller
    from train.labeller_network import single_thread

    model, checkpoint = load_labeller(checkpoint_path)
    config = checkpoint["config"]
    data = from_cache(cache_dir, validation_split=config["validation_split"], seed=config["seed"])
    split = TEST if (data.official == TEST).any() else VALIDATION
    held = np.flatnonzero(data.official == split)
    if held.size == 0:
        from common.errors import KellyError

        raise KellyError(f"{cache_dir}: no official validation or test EMOPIA clips to evaluate the labeller on")
    with single_thread():
        predicted = np.stack([label_piece(model, data.clips[c]) for c in held]).astype(np.float64)
    truth = data.signs[held].astype(np.float64)
    training = data.signs[data.side == TRAIN]
    values, counts = np.unique(quadrants(training), return_counts=True)
    majority = {1: (1.0, 1.0), 2: (-1.0, 1.0), 3: (-1.0, -1.0), 4: (1.0, -1.0)}[int(values[np.argmax(counts)])]
    result, base = sign_metrics(predicted, truth), sign_metrics(np.tile(majority, (len(held), 1)), truth)
    return {
        "network": "labeller", "network_name": model.name, "split": SPLIT_NAMES[split],
        "rows": int(held.size), "items": int(held.size), "stepwise": False, "primary": PRIMARY[0],
        "beats_baseline": bool(result[PRIMARY[0]] > base[PRIMARY[0]]),
        "metrics": result, "baseline": base, "checkpoint": str(checkpoint_path), "epoch": checkpoint["epoch"],
        "labeller_version": checkpoint.get("labeller_version"),
    }
