"""Emotion response: does a conditioned network carry valence and arousal into what it outputs?

Each emotion-conditioned network (melody, harmony, dynamics, groove) is run over a G x G grid of
(valence, arousal) cell centres covering [-1, 1]^2 (G = GRID_SIZE, 7 by default), its input being
the emotion embedding `embed(v, a)` (the DynamicsEngine gets its first 32 values), and the
descriptors of train.descriptors are computed from its output:

  melody    MelodyTransformer stepped MELODY_STEPS times from a zero state with the same input,
            as the plugin steps it (one call per window); the mean of the steps' outputs.
  harmony   HarmonyPredictor run as a chord generator: HARMONY_CHAINS chains per cell start from
            an empty chord history; at each of HARMONY_STEPS steps the next chord is drawn from
            the output (seeded) and goes into the history (preprocess.features.harmony's rule).
            The mean of the output distributions over steps and chains.
  dynamics, groove   one forward pass per cell.

The data side: the held-out rows of the network (every row not in the training split: validation
and test, which training never fits) are binned on the same grid by their item's valence and
arousal; a cell's data descriptor is the descriptor of the mean target vector of its rows (for
harmony, of the one-hot targets: the cell's chord distribution), as the network's output is the
conditional mean it was trained towards. Per descriptor the report gives:

  data_valence_r, data_arousal_r   Pearson correlation over held-out ITEMS of the descriptor of
                    each item's mean target with the item's valence / arousal;
  tied              max(|data_valence_r|, |data_arousal_r|) >= TIE_THRESHOLD: the data ties the
                    descriptor to emotion;
  fidelity          Pearson correlation of model and data over the cells that hold data, each cell
                    weighted by the held-out items it holds (every item counts once: a cell of one
                    item, whose mean is mostly that item's own character, counts a tenth of a cell
                    of ten; the same as correlating, over the held-out items, the model's value at
                    each item's cell with the data's mean there);
  training_data_fidelity   the same for the TRAINING data's cell values in place of the model's
                    (over the cells both hold, weighted the same): what a network that reproduced
                    exactly what it was shown would score. Cells hold few items, so the data's own
                    noise caps fidelity; this is that cap, measured;
  range_ratio       model spread / data spread, the spread being the standard deviation over those
                    cells of the least-squares plane d = b0 + bv v + ba a fitted to the values (so
                    the noise of a cell with one item does not count as range); range_ratio_raw
                    is the same with the plain standard deviations of the cell values;
  model_slopes, data_slopes   (bv, ba) of those planes; slope_ratio model / data per axis (how much
                    of the data's rise along valence or arousal the model reproduces: the
                    MelodyTransformer's mode score should rise with valence over at least half the
                    data's rise, slope_ratio["valence"] >= 0.5); slope_signs_agree where the data's
                    slope is clear (|slope| * 2 above SLOPE_CLEAR of the data spread);
  followed          for a tied descriptor: fidelity >= FIDELITY_BAR and RANGE_BARS[0] <= range_ratio
                    <= RANGE_BARS[1]; None when not tied.
  model_grid, data_grid, data_rows, data_items   [G][G] lists, row = arousal (low first),
                    column = valence (low first); data_grid is None where a cell holds no rows.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from preprocess.cache import layout
from preprocess.features import spec
from train import descriptors

CONDITIONED = descriptors.CONDITIONED
GRID_SIZE = 7
MIN_GRID_SIZE = 7
MELODY_STEPS = 16
HARMONY_CHAINS = 32
HARMONY_STEPS = 16
TIE_THRESHOLD = 0.5
FIDELITY_BAR = 0.8
RANGE_BARS = (0.5, 1.5)
SLOPE_CLEAR = 0.25


def grid_centres(size: int = GRID_SIZE) -> np.ndarray:
    """float64 [size]: the cell centres of `size` equal cells over [-1, 1]."""
    if size < 2:
        raise ValueError("the grid needs at least 2 cells per side")
    return -1.0 + (2.0 * np.arange(size) + 1.0) / size


def grid_cell(values, size: int = GRID_SIZE) -> np.ndarray:
    """int64: the cell (0 .. size-1) each value in [-1, 1] falls in (values outside are clipped)."""
    x = np.clip(np.asarray(values, dtype=np.float64), -1.0, 1.0)
    return np.minimum(np.floor((x + 1.0) / 2.0 * size).astype(np.int64), size - 1)


def grid_embeddings(size: int = GRID_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valence [size*size], arousal [size*size], embedding float32 [size*size, 64]), cells in
    row-major order of [arousal][valence]."""
    from preprocess.features.embedding import embed

    centres = grid_centres(size)
    arousal, valence = np.meshgrid(centres, centres, indexing="ij")
    valence, arousal = valence.ravel(), arousal.ravel()
    return valence, arousal, np.asarray(embed(valence, arousal), dtype=np.float32)


# --- the model side -------------------------------------------------------------------------------

@torch.no_grad()
def model_outputs(model, embeddings: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """The network's mean output per grid cell, float64 [C, Dout] (see the module docstring)."""
    model.eval()
    device = next(model.parameters()).device
    key = model.key
    x = torch.as_tensor(embeddings, dtype=torch.float32, device=device)
    if key == "melody":
        state, total = None, torch.zeros((len(x), model.output_size), dtype=torch.float64, device=device)
        for _ in range(MELODY_STEPS):
            y, state = model(x, state, return_state=True)
            total += y.double()
        return (total / MELODY_STEPS).cpu().numpy()
    if key == "harmony":
        return _harmony_chains(model, embeddings, seed=seed)
    if key == "dynamics":
        x = x[:, : spec.DYNAMICS_INPUTS]
    return model(x).double().cpu().numpy()


def _harmony_chains(model, embeddings: np.ndarray, *, seed: int) -> np.ndarray:
    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    n_cells, n = len(embeddings), len(embeddings) * HARMONY_CHAINS
    context = np.zeros((n, spec.HARMONY_CONTEXT), dtype=np.float32)
    context[:, : spec.EMBEDDING_SIZE] = np.repeat(embeddings, HARMONY_CHAINS, axis=0)
    previous = np.full((n, spec.HARMONY_HISTORY), spec.NO_PREVIOUS_CHORD, dtype=np.uint8)   # latest first
    total = np.zeros((n, spec.HARMONY_CLASSES))
    for _ in range(HARMONY_STEPS):
        context[:, spec.EMBEDDING_SIZE:] = layout.decode_row_inputs("harmony", previous)
        probabilities = model(torch.as_tensor(context, device=device)).double().cpu().numpy()
        total += probabilities
        cumulative = np.cumsum(probabilities, axis=1)
        drawn = (cumulative < rng.random((n, 1)) * cumulative[:, -1:]).sum(axis=1)
        previous[:, 1:] = previous[:, :-1].copy()
        previous[:, 0] = np.minimum(drawn, spec.HARMONY_CLASSES - 1)
    return (total / HARMONY_STEPS).reshape(n_cells, HARMONY_CHAINS, -1).mean(axis=1)


# --- the data side --------------------------------------------------------------------------------

def target_vectors(key: str, targets: np.ndarray) -> np.ndarray:
    """Targets as vectors in the network's output layout (harmony: one-hot chord classes)."""
    return descriptors.one_hot(targets) if key == "harmony" else np.asarray(targets, dtype=np.float64)


def _group_means(vectors: np.ndarray, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(groups, minlength=n_groups).astype(np.float64)
    sums = np.zeros((n_groups, vectors.shape[1]))
    np.add.at(sums, groups, vectors)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None], counts


def _pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float | None:
    """Pearson correlation of x and y over the entries where both are finite, each entry weighted by
    `weights` (all 1 when None); None for fewer than 3 entries or no spread."""
    ok = np.isfinite(x) & np.isfinite(y)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    ok &= w > 0
    x, y, w = np.asarray(x, np.float64)[ok], np.asarray(y, np.float64)[ok], w[ok]
    if ok.sum() < 3:
        return None
    dx, dy = x - np.average(x, weights=w), y - np.average(y, weights=w)
    sx, sy = np.sqrt(np.sum(w * dx * dx)), np.sqrt(np.sum(w * dy * dy))
    if sx < 1e-12 * np.sqrt(w.sum()) or sy < 1e-12 * np.sqrt(w.sum()):
        return None
    return float(np.sum(w * dx * dy) / (sx * sy))


def _plane(values: np.ndarray, valence: np.ndarray, arousal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares plane through (valence, arousal, value): ((b0, bv, ba), fitted values)."""
    design = np.stack([np.ones_like(valence), valence, arousal], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    return coefficients, design @ coefficients


def held_out_rows(data):
    """Every row of `data` (train.data.NetworkData) outside the training split: validation and test."""
    from train.data import TEST, VALIDATION, Rows

    parts = [rows.take(rows.split != 0) for rows in data.read_blocks()]
    parts = [p for p in parts if len(p)]
    if not parts:
        from common.errors import KellyError

        raise KellyError(f"{data.source + ': ' if data.source else ''}{data.key} has no held-out (validation or "
                         "test) rows to compare the emotion response with")
    rows = Rows.concat(parts)
    assert set(np.unique(rows.split).tolist()) <= {VALIDATION, TEST}
    return rows


# --- the comparison -------------------------------------------------------------------------------

def _data_cells(key: str, rows, grid_size: int):
    """(cell [n] of each labelled row, vectors [n, D], valence [n], arousal [n], item [n], cell
    descriptors {name: [G*G]}, rows per cell [G*G]) of `rows` binned on the grid."""
    labelled = np.isfinite(rows.valence) & np.isfinite(rows.arousal)
    vectors = target_vectors(key, rows.targets[labelled])
    valence, arousal = rows.valence[labelled].astype(np.float64), rows.arousal[labelled].astype(np.float64)
    cell = grid_cell(arousal, grid_size) * grid_size + grid_cell(valence, grid_size)
    cell_means, cell_rows = _group_means(vectors, cell, grid_size * grid_size)
    grid = descriptors.describe(key, np.nan_to_num(cell_means))
    return cell, vectors, valence, arousal, rows.item[labelled], grid, cell_rows


def emotion_response(model, rows, *, grid_size: int = GRID_SIZE, seed: int = 0, train_rows=None) -> dict:
    """The emotion-response report of one conditioned network against held-out `rows`
    (train.data.Rows of that network: targets, item, valence, arousal). See the module docstring.

    With `train_rows` (the rows the network trained on) each descriptor also gets
    training_data_fidelity: the Pearson correlation over the cells holding both of the training
    data's cell values with the held-out data's, i.e. the fidelity of a network that reproduced
    exactly what it was shown. It says how much of the held-out grid any network trained on this
    data can follow; fidelity is measured against the same held-out cells."""
    if grid_size < MIN_GRID_SIZE:
        raise ValueError(f"the emotion-response grid needs at least {MIN_GRID_SIZE} cells per side, got {grid_size}")
    key = model.key
    names = descriptors.DESCRIPTORS[key]
    cell_valence, cell_arousal, embeddings = grid_embeddings(grid_size)
    model_grid = descriptors.describe(key, model_outputs(model, embeddings, seed=seed))

    cell, vectors, valence, arousal, item, data_grid, cell_rows = _data_cells(key, rows, grid_size)
    train_grid, train_cell_rows = None, None
    if train_rows is not None:
        *_, train_grid, train_cell_rows = _data_cells(key, train_rows, grid_size)
    items, first = np.unique(item, return_index=True)
    item_means, _ = _group_means(vectors, np.searchsorted(items, item), len(items))
    item_values = descriptors.describe(key, item_means)
    cell_items = np.bincount(cell[first], minlength=grid_size * grid_size)
    held = cell_rows > 0

    out = {"grid_size": grid_size, "valence": grid_centres(grid_size).tolist(),
           "arousal": grid_centres(grid_size).tolist(), "held_out_items": int(len(items)),
           "held_out_rows": int(len(cell)), "cells_with_data": int(held.sum()),
           "data_rows": cell_rows.reshape(grid_size, grid_size).astype(int).tolist(),
           "data_items": cell_items.reshape(grid_size, grid_size).astype(int).tolist(),
           "training_items": None if train_rows is None else int(len(np.unique(train_rows.item))),
           "descriptors": {}}
    for name, description in names.items():
        model_values, data_values = model_grid[name], np.where(held, data_grid[name], np.nan)
        usable = held & np.isfinite(model_values) & np.isfinite(data_values)
        r_valence = _pearson(item_values[name], valence[first])
        r_arousal = _pearson(item_values[name], arousal[first])
        tied = max(abs(r_valence or 0.0), abs(r_arousal or 0.0)) >= TIE_THRESHOLD
        entry = {"description": description, "data_valence_r": r_valence, "data_arousal_r": r_arousal,
                 "tied": bool(tied), "cells": int(usable.sum()), "fidelity": None, "range_ratio": None,
                 "training_data_fidelity": None, "range_ratio_raw": None, "model_slopes": None,
                 "data_slopes": None, "slope_ratio": None, "slope_signs_agree": None}
        if train_grid is not None:
            both = held & (train_cell_rows > 0) & np.isfinite(data_values) & np.isfinite(train_grid[name])
            entry["training_data_fidelity"] = _pearson(train_grid[name][both], data_values[both], cell_items[both])
        if usable.sum() >= 4:
            v, a = cell_valence[usable], cell_arousal[usable]
            model_plane, model_fit = _plane(model_values[usable], v, a)
            data_plane, data_fit = _plane(data_values[usable], v, a)
            data_spread = float(np.std(data_fit))
            entry["fidelity"] = _pearson(model_values[usable], data_values[usable], cell_items[usable])
            entry["range_ratio"] = float(np.std(model_fit)) / data_spread if data_spread > 1e-12 else None
            raw_spread = float(np.std(data_values[usable]))
            entry["range_ratio_raw"] = float(np.std(model_values[usable])) / raw_spread if raw_spread > 1e-12 else None
            entry["model_slopes"] = {"valence": float(model_plane[1]), "arousal": float(model_plane[2])}
            entry["data_slopes"] = {"valence": float(data_plane[1]), "arousal": float(data_plane[2])}
            entry["slope_ratio"] = {
                axis: (entry["model_slopes"][axis] / entry["data_slopes"][axis]
                       if abs(entry["data_slopes"][axis]) > 1e-12 else None) for axis in ("valence", "arousal")}
            entry["slope_signs_agree"] = {
                axis: (bool(np.sign(entry["model_slopes"][axis]) == np.sign(entry["data_slopes"][axis]))
                       if abs(entry["data_slopes"][axis]) * 2.0 > SLOPE_CLEAR * max(data_spread, 1e-12) else None)
                for axis in ("valence", "arousal")}
        entry["followed"] = None if not tied else bool(
            entry["fidelity"] is not None and entry["fidelity"] >= FIDELITY_BAR
            and entry["range_ratio"] is not None and RANGE_BARS[0] <= entry["range_ratio"] <= RANGE_BARS[1])
        entry["model_grid"] = _grid_list(model_values, grid_size)
        entry["data_grid"] = _grid_list(data_values, grid_size)
        out["descriptors"][name] = entry
    tied = [n for n, e in out["descriptors"].items() if e["tied"]]
    out["tied"] = tied
    out["all_tied_followed"] = all(out["descriptors"][n]["followed"] for n in tied)
    return out


def summary(networks: dict) -> dict:
    """The report's emotion-response table: per conditioned network (those in `networks`, each an
    evaluate_network result with "emotion_response") and descriptor, the figures without the grids,
    and whether every tied descriptor is followed."""
    table: dict = {}
    for key, result in networks.items():
        response = result.get("emotion_response")
        if not response:
            continue
        table[key] = {name: {k: v for k, v in entry.items() if k not in ("model_grid", "data_grid")}
                      for name, entry in response["descriptors"].items()}
    followed = [e["followed"] for rows in table.values() for e in rows.values() if e["tied"]]
    return {"networks": table, "tied": len(followed), "followed": int(sum(bool(f) for f in followed)),
            "all_tied_followed": all(followed)} if table else {}


def format_summary(table: dict) -> str:
    """The emotion-response table as text: one line per descriptor."""
    lines = ["emotion response (model over the valence/arousal grid vs held-out data): ",
             f"{'network':<10} {'descriptor':<15} {'r(v)':>6} {'r(a)':>6} {'tied':>5} {'fidelity':>8} "
             f"{'(cap)':>6} {'range':>6} {'slope v':>8} {'slope a':>8}  verdict"]
    for key, rows in table["networks"].items():
        for name, e in rows.items():
            slopes = e.get("model_slopes") or {}
            data_slopes = e.get("data_slopes") or {}
            verdict = "-" if e["followed"] is None else ("followed" if e["followed"] else "NOT followed")
            lines.append(
                f"{key:<10} {name:<15} {_fmt(e['data_valence_r']):>6} {_fmt(e['data_arousal_r']):>6} "
                f"{'yes' if e['tied'] else 'no':>5} {_fmt(e['fidelity']):>8} "
                f"{_fmt(e.get('training_data_fidelity')):>6} {_fmt(e['range_ratio']):>6} "
                f"{_signs(slopes.get('valence'), data_slopes.get('valence')):>8} "
                f"{_signs(slopes.get('arousal'), data_slopes.get('arousal')):>8}  {verdict}")
    lines.append(f"{table['followed']} of {table['tied']} descriptor(s) tied to emotion are followed "
                 "(slopes: model/data sign; cap: the training data's own fidelity to the held-out cells; "
                 "tied: |r| >= "
                 f"{TIE_THRESHOLD} over held-out items; followed: fidelity >= {FIDELITY_BAR}, "
                 f"range ratio in [{RANGE_BARS[0]}, {RANGE_BARS[1]}])")
    return "\n".join(lines)


def _signs(model, data) -> str:
    sign = lambda x: "?" if x is None else ("+" if x > 0 else "-")  # noqa: E731
    return f"{sign(model)}/{sign(data)}"


def _grid_list(values: np.ndarray, size: int) -> list[list[float | None]]:
    grid = np.asarray(values, dtype=np.float64).reshape(size, size)
    return [[None if not math.isfinite(x) else float(x) for x in row] for row in grid]


# --- plots ----------------------------------------------------------------------------------------

def _save(fig, path: Path) -> Path:
    """Write a figure atomically (common.files.atomic_write)."""
    from common.files import atomic_write

    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png")
    return path


def plot_response(response: dict, network_name: str, path: str | Path) -> Path:
    """Heatmaps of every descriptor over the valence/arousal plane: model (left) beside held-out
    data (right), on one colour scale per descriptor; empty data cells are blank."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    entries = response["descriptors"]
    size = response["grid_size"]
    fig, axes = plt.subplots(len(entries), 2, figsize=(8.2, 3.3 * len(entries)), dpi=90, squeeze=False)
    for (name, entry), pair in zip(entries.items(), axes):
        model = np.array(entry["model_grid"], dtype=np.float64)
        data = np.array([[np.nan if x is None else x for x in row] for row in entry["data_grid"]])
        both = np.concatenate([model[np.isfinite(model)], data[np.isfinite(data)]])
        lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
        for ax, values, side in ((pair[0], model, "model"), (pair[1], data, "held-out data")):
            image = ax.imshow(np.ma.masked_invalid(values), origin="lower", extent=(-1, 1, -1, 1),
                              vmin=lo, vmax=hi if hi > lo else lo + 1e-9, cmap="viridis", aspect="equal")
            ax.set_xlabel("valence")
            ax.set_ylabel("arousal")
            ax.set_xticks(np.linspace(-1, 1, 5))
            ax.set_yticks(np.linspace(-1, 1, 5))
            ax.set_title(f"{side}: {entry['description']}", fontsize=8)
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        fidelity, ratio = entry["fidelity"], entry["range_ratio"]
        verdict = "" if entry["followed"] is None else ("  followed" if entry["followed"] else "  NOT followed")
        pair[1].text(1.0, -0.28, f"fidelity {_fmt(fidelity)}, range ratio {_fmt(ratio)}{verdict}",
                     transform=pair[1].transAxes, ha="right", fontsize=8)
    fig.suptitle(f"{network_name}: emotion response on a {size}x{size} grid", fontsize=10)
    fig.tight_layout()
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def plot_emotion_scatter(predicted: tuple[np.ndarray, np.ndarray], annotated: tuple[np.ndarray, np.ndarray],
                         path: str | Path, *, r2: tuple[float | None, float | None] = (None, None),
                         title: str = "EmotionRecognizer") -> Path:
    """Predicted against annotated valence and arousal, one panel each, with the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.2), dpi=90)
    for ax, name, pred, true, score in zip(axes, ("valence", "arousal"), predicted, annotated, r2):
        ax.scatter(true, pred, s=6, alpha=0.5)
        ax.plot([-1, 1], [-1, 1], "--", color="grey", linewidth=1)
        ax.set_xlim(-1.05, 1.05)
        ax.set_ylim(-1.05, 1.05)
        ax.set_aspect("equal")
        ax.set_xlabel(f"annotated {name}")
        ax.set_ylabel(f"predicted {name}")
        ax.set_title(f"{name}: R2 {_fmt(score)}, {len(true)} windows", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}: held-out predictions", fontsize=10)
    fig.tight_layout()
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def _fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.2f}"
