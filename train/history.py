"""Per-epoch training history: `history/<classname>_history.json` and `.csv`, `plots/<classname>_loss.png`
and `_metric.png` (the names are `train.outputs`').

One row per epoch with COLUMNS: train_loss is the mean of the epoch's batch losses, val_loss the
mean loss per validation window, train_metric/val_metric the network's metric (train.metrics.METRIC)
over the same, lr the learning rate the epoch ran with, seconds its wall time (validation and
checkpoints included). The JSON also names the network, its loss and metric and the baseline; the
CSV holds the rows alone, with full float precision, so both read back equal.
matplotlib (Agg) and pandas are imported only when writing. Every file is written atomically
(`common.files`), so a reader never sees half of one.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from common.files import atomic_write, write_text
from train.outputs import history_paths, plot_paths  # noqa: F401  (the names, defined once there)

COLUMNS = ("epoch", "train_loss", "val_loss", "train_metric", "val_metric", "lr", "seconds")


def _finite_or_none(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None


def write_history(output: str | Path, key: str, rows: list[dict], *, network_name: str, loss: str,
                  metric: str, baseline: dict | None = None, settings: dict | None = None) -> tuple[Path, Path]:
    """Write the JSON and CSV history (atomically, so a reader never sees half a file). The JSON
    also holds `settings`: the training settings the run used (batch size, learning rate, ...)."""
    import pandas as pd

    json_path, csv_path = history_paths(output, key)
    rows = [{c: _finite_or_none(row[c]) for c in COLUMNS} for row in rows]
    document = {"network": key, "network_name": network_name, "loss": loss, "metric": metric,
                "baseline": baseline, "settings": settings, "columns": list(COLUMNS), "epochs": rows}
    write_text(json_path, json.dumps(document, indent=1))
    write_text(csv_path, pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(index=False, float_format=None))
    return json_path, csv_path


def read_history_json(path: str | Path) -> list[dict]:
    return json.loads(Path(path).read_text())["epochs"]


def read_history_csv(path: str | Path) -> list[dict]:
    import pandas as pd

    frame = pd.read_csv(path)
    return [{c: (int(v) if c == "epoch" else (None if v != v else float(v))) for c, v in row.items()}
            for row in frame.to_dict("records")]


def plot_history(output: str | Path, key: str, rows: list[dict], *, network_name: str, loss: str,
                 metric: str, baseline: dict | None = None) -> tuple[Path, Path]:
    """Loss and metric curves (train and validation per epoch, the baseline as a dashed line)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    loss_path, metric_path = plot_paths(output, key)
    epochs = [r["epoch"] for r in rows]
    for path, column, label in ((loss_path, "loss", loss), (metric_path, "metric", metric)):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for split, style in (("train", "-o"), ("val", "-s")):
            values = [r[f"{split}_{column}"] for r in rows]
            ax.plot(epochs, [math.nan if v is None else v for v in values], style, markersize=3,
                    label="training" if split == "train" else "validation")
        if baseline and baseline.get(column) is not None:
            ax.axhline(baseline[column], linestyle="--", color="grey", label="baseline")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{network_name}: {label}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        try:
            with atomic_write(path, "wb") as handle:
                fig.savefig(handle, format="png")
        finally:
            plt.close(fig)
    return loss_path, metric_path
