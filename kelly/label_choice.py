"""Which labels follow listeners better, axis by axis: the EmotionLabeller's or the proxy rules'.

Before the labeller relabels a cache, both label the cache's held-out EMOPIA clips (the official
test split, else the official validation split: clips the labeller never trained or stopped on),
and each sign is compared with the annotators' quadrant. For each axis (valence, arousal) the
labeller's values replace the proxy's only where the labeller is closer to listeners: over the
clips where exactly one of the two gets the sign right, the labeller must be right on more of them
than the proxy (b > c, b the clips only the labeller gets right, c those only the proxy gets right;
McNemar's z = (b - c) / sqrt(b + c) is reported beside, as a measure of how sure that is). A tie,
or no clip to tell them apart, leaves the axis to the proxy, which every item already has. A label
is a claim about what people hear: the claim measured closer to them is kept.

    choice, figures = compare(labeller_signs, proxy_signs, truth)   # {"valence": "labeller", "arousal": "proxy"}
"""
from __future__ import annotations

import math

import numpy as np

AXES = ("valence", "arousal")


def held_out_clips(served, split_names=("test", "validation")) -> tuple[str, list]:
    """(the split, its EMOPIA records): the first of `split_names` that holds annotated clips."""
    for name in split_names:
        chosen = [r for r in served if r.source == "emopia" and r.split == name
                  and r.valence is not None and r.arousal is not None]
        if chosen:
            return name, chosen
    return "", []


def compare(labeller: np.ndarray, proxy: np.ndarray, truth: np.ndarray) -> tuple[dict[str, str], dict]:
    """(axis -> "labeller" | "proxy", the figures per axis) from (valence, arousal) [N, 2] of the
    labeller and of the proxy rules on the same clips, against the annotated signs [N, 2]."""
    from train.labeller_evaluate import sign_metrics

    choice, figures = {}, {"clips": int(len(truth)), "labeller": sign_metrics(labeller, truth),
                           "proxy": sign_metrics(proxy, truth)}
    for figures_key in ("labeller", "proxy"):
        figures[figures_key].pop("confusion", None)
    for column, axis in enumerate(AXES):
        right = truth[:, column] > 0
        ours, theirs = (labeller[:, column] >= 0) == right, (proxy[:, column] >= 0) == right
        b, c = int(np.sum(ours & ~theirs)), int(np.sum(theirs & ~ours))
        z = (b - c) / math.sqrt(b + c) if b + c else 0.0
        choice[axis] = "labeller" if b > c else "proxy"
        figures[axis] = {"only_labeller_right": b, "only_proxy_right": c, "z": z}
    return choice, figures


def format_choice(split: str, figures: dict, choice: dict[str, str]) -> str:
    """One line per axis: both balanced accuracies on the held-out clips and which labels are kept."""
    lines = [f"labels against EMOPIA's annotators on {figures['clips']} held-out {split} clip(s):"]
    for axis in AXES:
        key = f"{axis}_balanced_accuracy"
        f = figures[axis]
        lines.append(f"  {axis:<8} balanced accuracy labeller {figures['labeller'][key]:.3f}, proxy "
                     f"{figures['proxy'][key]:.3f}; only the labeller right on {f['only_labeller_right']}, "
                     f"only the proxy on {f['only_proxy_right']} (z {f['z']:+.2f}) "
                     f"-> {choice[axis]} labels")
    return "\n".join(lines)
