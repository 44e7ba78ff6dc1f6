"""Held-out evaluation of trained networks, each beside a trivial baseline.

The held-out split is the cache's test split when the network has test rows, else validation
(re-made by item from the checkpoint's own settings when training had to make it). The baseline
predicts the training mean for every row (harmony: the training class prior).

The two LSTM networks are run as the plugin runs them: ONE time step per call with the state
carried over, from a zero state at the start of each item (`predict_stepwise`): the metrics are
stateful over whole pieces. Beside them ("reset_per_chunk"), the same metrics with the state reset
to zeros every RESET_EVERY windows, as networks trained on chunks from a zero state saw their input.

Metrics per network:
  emotion   mse, mae, cosine (mean per row), correlation (Pearson per dimension, averaged) on the
            embedding; valence_mae/r2 and arousal_mae/r2 of the decoded embedding against the
            decoded target embedding (the baseline's: the training mean valence and arousal)
  melody    bce, top3_accuracy, precision, recall, f1 (active: >= 0.5; see train.metrics.multilabel)
  harmony   cross_entropy, top1_accuracy, top5_accuracy
  dynamics, groove   mse, mae, and both per output (spec.DYNAMICS_NAMES / GROOVE_NAMES)
  labeller  quadrant, valence and arousal accuracy (and balanced) on the official EMOPIA test (else
            validation) clips, beside the majority quadrant (train.labeller_evaluate); evaluated
            when its checkpoint is there, with the five or when named
A network "beats the baseline" when its PRIMARY metric is better than the baseline's.

Emotion response (train.response, descriptors defined in train.descriptors): each conditioned
network (melody, harmony, dynamics, groove) is run over a grid of (valence, arousal) and the
descriptors of its output are compared with those of the held-out data's targets binned on the
same grid: fidelity, range ratio, slope signs, and whether each descriptor the data ties to
emotion is followed. With a plots folder, heatmaps per network (model beside data,
`<classname>_emotion_response.png`) and the EmotionRecognizer's predicted against annotated valence
and arousal (`emotionrecognizer_scatter.png`) are drawn there (names: train.outputs).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from preprocess.features import spec
from train import metrics
from train.data import SPLIT_NAMES, TEST, TRAIN, VALIDATION, NetworkData, Rows
from train.models import KellyNetwork
from train.outputs import response_plot_path, scatter_plot_path

#: network -> (primary metric, "min" or "max" for better)
PRIMARY = {
    "emotion": ("mse", "min"),
    "melody": ("bce", "min"),
    "harmony": ("cross_entropy", "min"),
    "dynamics": ("mse", "min"),
    "groove": ("mse", "min"),
}
#: windows between state resets in the reset-per-chunk metrics of the LSTM networks
RESET_EVERY = 16
STEP_BATCH_ITEMS = 256          # items stepped side by side (each row of the batch is its own item)
DENSE_BATCH_ROWS = 8192


@torch.no_grad()
def predict_stepwise(model: KellyNetwork, inputs: np.ndarray, item: np.ndarray, window: np.ndarray,
                     device="cpu") -> np.ndarray:
    """Outputs float32 [N, Dout] of a recurrent network fed one step per call, state reset per item.

    inputs float32 [N, Din]; item, window [N]: rows are put in window order within each item.
    Items are stepped side by side (a batch row per item), which is the same as one at a time.
    """
    model.eval()
    out = np.zeros((len(inputs), model.output_size), dtype=np.float32)
    order = np.lexsort((window, item))
    starts = np.flatnonzero(np.r_[True, item[order][1:] != item[order][:-1]])
    runs = [order[s:e] for s, e in zip(starts, np.r_[starts[1:], len(order)])]
    runs.sort(key=len, reverse=True)
    x_all = torch.as_tensor(inputs, dtype=torch.float32, device=device)
    for g in range(0, len(runs), STEP_BATCH_ITEMS):
        group = runs[g:g + STEP_BATCH_ITEMS]
        steps = len(group[0])
        index = np.zeros((len(group), steps), dtype=np.int64)
        for b, rows in enumerate(group):
            index[b, :len(rows)] = rows
        index_t = torch.as_tensor(index, device=device)
        lengths = np.array([len(rows) for rows in group])   # longest first
        state, live = None, len(group)                   # no state: every item starts from zeros
        for t in range(steps):
            if (lengths > t).sum() < live:              # items that ended leave the batch
                live = int((lengths > t).sum())
                state = {k: (h[:, :live], c[:, :live]) for k, (h, c) in state.items()}
            y, state = model(x_all[index_t[:live, t]], state, return_state=True)
            out[index[:live, t]] = y.cpu().numpy()
    return out


@torch.no_grad()
def predict_dense(model: KellyNetwork, inputs: np.ndarray, device="cpu") -> np.ndarray:
    model.eval()
    parts = [model(torch.as_tensor(inputs[s:s + DENSE_BATCH_ROWS], device=device)).cpu().numpy()
             for s in range(0, len(inputs), DENSE_BATCH_ROWS)]
    return np.concatenate(parts) if parts else np.zeros((0, model.output_size), np.float32)


def chunk_ids(item: np.ndarray, window: np.ndarray, every: int) -> np.ndarray:
    """int64 [N]: an id per run of `every` consecutive windows (in window order) of one item, for
    stepping with the state reset at each chunk (`predict_stepwise` resets at each new id)."""
    order = np.lexsort((window, item))
    it = item[order]
    new_item = np.r_[True, it[1:] != it[:-1]]
    position = np.arange(len(order)) - np.flatnonzero(new_item)[np.cumsum(new_item) - 1]
    ids = np.empty(len(order), dtype=np.int64)
    ids[order] = np.cumsum(new_item | (position % every == 0)) - 1
    return ids


def predict(model: KellyNetwork, rows: Rows, device="cpu", reset_every: int | None = None) -> np.ndarray:
    """Outputs [N, Dout] of `model` on `rows`; LSTM networks stepped over whole items, or with the
    state reset every `reset_every` windows."""
    if model.is_recurrent:
        item = rows.item if reset_every is None else chunk_ids(rows.item, rows.window, reset_every)
        return predict_stepwise(model, rows.inputs, item, rows.window, device)
    return predict_dense(model, rows.inputs, device)


def network_metrics(key: str, prediction: np.ndarray, rows: Rows,
                    valence_arousal: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """The metrics of one network's predictions [N, Dout] for the targets in `rows`.

    emotion: `valence_arousal` gives the predicted (valence, arousal) [N] directly (the baseline's
    training means); otherwise they are decoded from the predicted embedding.
    """
    if key == "emotion":
        from preprocess.features.embedding import decode

        out = metrics.regression(prediction, rows.targets)
        out["cosine"] = metrics.cosine_similarity(prediction, rows.targets)
        out["correlation"] = metrics.mean_correlation(prediction, rows.targets)
        valence, arousal = decode(prediction) if valence_arousal is None else valence_arousal
        true_valence, true_arousal = decode(rows.targets)
        for name, pred, true in (("valence", valence, true_valence), ("arousal", arousal, true_arousal)):
            out[f"{name}_mae"] = float(np.mean(np.abs(pred - true)))
            out[f"{name}_r2"] = metrics.r2(pred, true)
        return out
    if key == "melody":
        return metrics.multilabel(prediction, rows.targets)
    if key == "harmony":
        return metrics.classification(prediction, rows.targets.astype(np.int64))
    names = spec.DYNAMICS_NAMES if key == "dynamics" else spec.GROOVE_NAMES
    return metrics.regression(prediction, rows.targets, names)


def evaluate_network(model: KellyNetwork, data: NetworkData, device="cpu", *,
                     plots_dir: str | Path | None = None) -> dict:
    """Metrics of `model` and of the constant baseline on the held-out split of `data`.

    With `plots_dir`, the EmotionRecognizer's held-out predictions are drawn against the annotated
    valence and arousal (`emotionrecognizer_scatter.png`; listed in the result's "plots")."""
    split = TEST if data.counts.get("test", 0) > 0 else VALIDATION
    rows = data.rows(split)
    model.to(device)
    prediction = predict(model, rows, device)
    constant = np.ascontiguousarray(np.broadcast_to(data.target_mean, (len(rows), len(data.target_mean))))
    result = network_metrics(model.key, prediction, rows)
    base = network_metrics(model.key, constant, rows, _training_valence_arousal(data, len(rows))
                           if model.key == "emotion" else None)
    primary, better = PRIMARY[model.key]
    beats = result[primary] < base[primary] if better == "min" else result[primary] > base[primary]
    report = {
        "network": model.key, "network_name": model.name, "split": SPLIT_NAMES[split],
        "rows": len(rows), "items": int(len(np.unique(rows.item))),
        "stepwise": model.is_recurrent, "primary": primary, "beats_baseline": bool(beats),
        "metrics": result, "baseline": base,
    }
    if model.is_recurrent:
        chunked = network_metrics(model.key, predict(model, rows, device, RESET_EVERY), rows)
        report["reset_per_chunk"] = {"reset_every": RESET_EVERY, "metrics": chunked}
        report["whole_piece_beats_chunks"] = bool(result[primary] < chunked[primary] if better == "min"
                                                  else result[primary] > chunked[primary])
    if model.key == "emotion" and plots_dir is not None:
        from preprocess.features.embedding import decode
        from train.response import plot_emotion_scatter

        path = plot_emotion_scatter(decode(prediction), decode(rows.targets), scatter_plot_path(plots_dir),
                                    r2=(result["valence_r2"], result["arousal_r2"]), title=model.name)
        report["plots"] = [str(path)]
    return report


def _training_valence_arousal(data: NetworkData, n: int, sample_rows: int = 4096):
    """The training mean valence and arousal (of the decoded target embeddings, on an evenly spaced
    subsample of at most `sample_rows` rows), repeated n times: the decoded baseline."""
    from preprocess.features.embedding import decode

    targets = data.rows(TRAIN).targets
    step = max(1, len(targets) // sample_rows)
    valence, arousal = decode(targets[::step])
    return np.full(n, valence.mean()), np.full(n, arousal.mean())


def evaluate(checkpoint_dir: str | Path, cache_dir: str | Path, *, models: list[str] | None = None,
             device: str = "cpu", kind: str = "best", plots_dir: str | Path | None = None,
             grid_size: int | None = None) -> dict:
    """Evaluate `<checkpoint_dir>/<classname>_<kind>.pt` for each network on the cache's held-out rows
    (a checkpoint under the earlier name, `<key>_<kind>.pt`, is found too: `train.outputs`),
    with the emotion response of each conditioned network on a `grid_size` grid (default
    train.response.GRID_SIZE); plots go to `plots_dir` when given."""
    from train import response
    from preprocess.cache import reader
    from train import data as train_data
    from train.checkpoints import load_network
    from train.loop import resolve_device
    from train.outputs import checkpoints_present

    checkpoint_dir, cache_dir = Path(checkpoint_dir), Path(cache_dir)
    keys = models or list(spec.NETWORKS)
    # the labeller, when trained, is evaluated with the five
    found = checkpoints_present(checkpoint_dir, keys if models else keys + [spec.LABELLER_KEY], kind)
    torch_device = resolve_device(device)
    report = {"cache_dir": str(cache_dir), "cache_identity": reader.cache_identity(cache_dir),
              "checkpoint_dir": str(checkpoint_dir), "networks": {},
              "missing": [k for k in keys if k not in found]}
    for key, path in found.items():
        if key == spec.LABELLER_KEY:
            from train.labeller_evaluate import evaluate_labeller

            try:
                report["networks"][key] = evaluate_labeller(path, cache_dir)
            except KellyError as exc:
                if models is not None:          # asked for by name: its fault is the command's
                    raise
                report.setdefault("notes", []).append(f"EmotionLabeller not evaluated: {exc}")
            continue
        model, checkpoint = load_network(path)
        config = checkpoint["config"]
        data = train_data.from_cache(cache_dir, key, sequence_length=config["sequence_length"],
                                     validation_split=config["validation_split"], seed=config["seed"],
                                     memory_budget_mb=config["memory_budget_mb"])
        result = evaluate_network(model, data, torch_device, plots_dir=plots_dir)
        trained_on = checkpoint.get("cache_identity")
        result.update(checkpoint=str(path), epoch=checkpoint["epoch"], trained_on_cache=trained_on,
                      same_cache=trained_on == report["cache_identity"])
        if key in response.CONDITIONED:
            emotion = response.emotion_response(model, response.held_out_rows(data), train_rows=data.rows(TRAIN),
                                                grid_size=grid_size or response.GRID_SIZE, seed=config["seed"])
            result["emotion_response"] = emotion
            if plots_dir is not None:
                plot = response.plot_response(emotion, model.name, response_plot_path(plots_dir, key))
                result.setdefault("plots", []).append(str(plot))
        report["networks"][key] = result
    report["emotion_response"] = response.summary(report["networks"])
    return report


def format_table(report: dict) -> str:
    """One line per network and metric: value, baseline, and whether the network wins.

    Per-output values (dynamics, groove) are in the JSON report only."""
    lines = [f"{'network':<18} {'split':<10} {'metric':<16} {'value':>10} {'baseline':>10}"]
    for result in report["networks"].values():
        first = True
        for name, value in result["metrics"].items():
            if isinstance(value, dict):
                continue
            label, split = (result["network_name"], result["split"]) if first else ("", "")
            mark = ""
            if name == result["primary"]:
                verdict = "beats the baseline" if result["beats_baseline"] else "NOT better than the baseline"
                mark = f"  <- primary: {verdict}"
            base = _fmt(result["baseline"].get(name))
            lines.append(f"{label:<18} {split:<10} {name:<16} {_fmt(value):>10} {base:>10}{mark}")
            first = False
        if "reset_per_chunk" in result:
            chunked = result["reset_per_chunk"]
            verdict = ("better" if result["whole_piece_beats_chunks"] else "NOT better") + " over whole pieces"
            lines.append(f"{'':<18} {'':<10} {result['primary']:<16} {_fmt(chunked['metrics'][result['primary']]):>10} "
                         f"{'':>10}  <- state reset every {chunked['reset_every']} windows ({verdict})")
    for key in report.get("missing", []):
        lines.append(f"{key:<18} no checkpoint")
    lines.extend(report.get("notes", []))
    if report.get("emotion_response"):
        from train.response import format_summary

        lines.append(format_summary(report["emotion_response"]))
    changed = [r["network_name"] for r in report["networks"].values() if r.get("same_cache") is False]
    if changed:
        lines.append(f"note: {', '.join(changed)} trained on another version of this cache; items it "
                     f"trained on may now be held out")
    return "\n".join(lines)


def write_report(report: dict, path: str | Path) -> Path:
    from common.files import write_text

    return write_text(path, json.dumps(_jsonable(report), indent=1))


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}"


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value
