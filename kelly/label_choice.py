"""Which labels follow listeners better, axis by axis: the EmotionLabeller's or the proxy rules'.

Before the labeller relabels a cache, both are scored on the cache's held-out EMOPIA clips (the
official test split, else the official validation split: clips the labeller never trained or
stopped on), by the balanced accuracy of each sign against the annotators' quadrant. For each axis
(valence, arousal) the labeller's value replaces the proxy's only where the labeller agrees with
listeners at least as well; on the other axis the item keeps its proxy value. A label is a claim
about what people hear, so the claim with the better measured agreement is the one kept.

    choice = choose_axes(labeller_metrics, proxy_metrics)     # {"valence": "labeller", "arousal": "proxy"}
"""
from __future__ import annotations

from pathlib import Path

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


def proxy_metrics(records) -> dict:
    """The proxy rules (preprocess.features.proxy_labels, the MIDI routes) on annotated clips:
    `train.labeller_evaluate.sign_metrics` of their (valence, arousal) against the clips' signs.
    Clips that cannot be read are left out of both sides."""
    from preprocess.features.midi import load_notes
    from preprocess.features.proxy_labels import proxy_labels
    from train.labeller_evaluate import sign_metrics

    predicted, truth = [], []
    for record in records:
        try:
            labels = proxy_labels(load_notes(Path(record.source_path)), "maestro")
        except (OSError, ValueError):
            continue
        predicted.append((labels.valence, labels.arousal))
        truth.append((record.valence, record.arousal))
    if not predicted:
        return {}
    return sign_metrics(np.asarray(predicted, dtype=np.float64), np.asarray(truth, dtype=np.float64))


def choose_axes(labeller: dict, proxy: dict) -> dict[str, str]:
    """axis -> "labeller" or "proxy": the labeller where its balanced accuracy is at least the proxy's
    (and wherever the proxy could not be measured)."""
    choice = {}
    for axis in AXES:
        key = f"{axis}_balanced_accuracy"
        ours, theirs = labeller.get(key), proxy.get(key)
        choice[axis] = "labeller" if theirs is None or (ours is not None and ours >= theirs) else "proxy"
    return choice


def format_choice(split: str, n: int, labeller: dict, proxy: dict, choice: dict[str, str]) -> str:
    """One line per axis: both balanced accuracies on the held-out clips and which labels are kept."""
    lines = [f"labels against EMOPIA's annotators on {n} held-out {split} clip(s) (balanced accuracy):"]
    for axis in AXES:
        key = f"{axis}_balanced_accuracy"
        figures = "  ".join(f"{name} {m[key]:.3f}" if m.get(key) is not None else f"{name} -"
                            for name, m in (("labeller", labeller), ("proxy", proxy)))
        lines.append(f"  {axis:<8} {figures}  -> {choice[axis]} labels")
    return "\n".join(lines)
