"""Which EmotionLabeller: count features against sequence models, on held-out EMOPIA clips.

Every model reads the same input (`preprocess.features.labeller_input.labeller_frames`) of
EMOPIA's official training clips and is scored on the official validation clips (198 clips of 63
songs that share no song with the training clips). Model selection (the logistic regression's C,
early stopping) uses a split of the training clips grouped by song (spec.split_fraction of the
YouTube id < --stop-fraction): clips cut from one recording are near copies.

Models:
- ``logreg``: logistic regression (one for valence, one for arousal) on each clip's summary: the
  mean of its frames and the standard deviation over its sounding frames (the counts: key-relative
  pitch-class histograms, density, velocity, register, articulation, mode); C picked on the
  stopping clips; ``logreg-aug``: the same trained on every clip twice, as it is and with its
  velocities removed (the sequence models' velocity augmentation, for counts).
- ``gru``: train.labeller_model.EmotionLabeller (frames -> GRU -> attention pooling), windows
  averaged over a clip as `label_piece` does; ``gru+summary``: the same with the frame mean beside
  the pooled state (LabellerConfig(summary=True), the default); ``gru+summary-novel``: trained
  without velocity augmentation (drop_velocity 0, velocity_scale 0); ``gru+summary-crops``:
  hidden 48, dropout 0.3, training crops of half a window to a window.
- ``gru+summary+cues``: the same with the clip's cues (train.labeller_cues: notes per second, mean
  velocity over notes, velocity known, articulation, minor-chord and minor-key shares, mode
  contrast) into a linear term of the output; ``-novel``: without velocity augmentation;
  ``-nosmooth``: without label smoothing; ``gru+summary+prior``: the cues model starting from the
  hand rule's arousal (EmotionLabeller(prior=True)), learning a gain and a correction.
- ``rule``: the two-term hand rule read from the same cues (train.labeller_cues.rule_of_cues):
  valence the mode contrast, arousal the mean of the density and loudness terms; nothing learnt.
- ``counts``: EmotionLabeller(sequence=False), the logistic regression's features (mean, spread)
  as a network trained like the others (crops, velocity augmentation, early stopping).
- ``A&B``: models A and B of each seed, their outputs averaged (LabellerEnsemble).
- ``ens:NAME``: the mean of the NAME models of every seed.

Printed per model: accuracy 4Q / valence / arousal and balanced accuracy valence / arousal, mean
+- sd over the seeds, on the stopping clips (the selection set; for logreg they are also fitted, so
not held out), on the validation clips as they are, with their velocities removed (the
frames of a file without velocity information: another corpus may have flat velocities) and an
octave up (another register), and the training CPU time per seed; the published anchors (EMOPIA's test split) beside.

    python bench/labeller_models.py --emopia DIR [--models logreg,gru,gru+summary] [--seeds 3]
                                    [--cache /tmp/labeller_frames.pkl] [--folds 5]

With --folds K the official split is set aside: the training and validation clips are pooled and
cut by song into K folds (spec.split_fraction of the YouTube id, seed 1); each fold is scored by
models trained on the other K - 1 (their own stopping clips held out by song as above), and the
figures are the mean +- sd over the folds and the pooled accuracy over every clip. A few hundred
clips of some sixty songs give a validation figure that moves by several points with the songs
drawn; the folds use every song once.

DIR holds ``midis/Q{n}_{youtubeID}_{clip}.mid`` and ``split/train.csv``, ``split/val.csv``.
"""
from __future__ import annotations

import argparse
import csv
import pickle
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from preprocess.features import spec
from preprocess.features.labeller_input import labeller_frames
from preprocess.features.midi import load_notes
from train.labeller_cues import clip_cues, rule_of_cues
from train.labeller_fit import LabellerConfig, fit_labeller
from train.labeller_model import (VELOCITY, VELOCITY_KNOWN, LabellerEnsemble, label_piece, quadrant_of,
                                  quadrant_signs)

ANCHORS = (  # EMOPIA official test split, Hung et al. ISMIR 2021 Table 4: (4Q, valence, arousal)
    ("logistic regression (paper)", 0.581, 0.651, 0.849),
    ("LSTM-Attn, MIDI-like (paper)", 0.684, 0.833, 0.882),
    ("LSTM-Attn, REMI (paper)", 0.615, 0.746, 0.890),
)
SEQUENCE_MODELS = {
    "gru": LabellerConfig(summary=False),
    "gru+summary": LabellerConfig(summary=True),
    "gru+summary-novel": LabellerConfig(summary=True, drop_velocity=0.0, velocity_scale=0.0),
    "gru+summary-crops": LabellerConfig(summary=True, dropout=0.3, hidden=48, shortest_crop=0.5),
    "counts": LabellerConfig(sequence=False, dropout=0.1, learning_rate=1e-2, epochs=80, patience=10),
    "gru+summary+cues": LabellerConfig(summary=True, cues=True),
    "gru+summary+cues-novel": LabellerConfig(summary=True, cues=True, drop_velocity=0.0, velocity_scale=0.0),
    "gru+summary+cues-nosmooth": LabellerConfig(summary=True, cues=True, smoothing=0.0),
    "gru+summary+prior": LabellerConfig(summary=True, cues=True, prior=True),
    "gru+summary+rule-arousal": LabellerConfig(summary=True, cues=True, prior=True, correct_arousal=False),
}


def song_of(name: str) -> str:
    """The YouTube id of a clip named Q{n}_{id}_{clip}."""
    return name.rsplit("_", 1)[0][3:]


def load_clips(emopia: Path, cache: Path | None) -> tuple[dict, list[str], list[str]]:
    """({clip name: frames}, training clip names, validation clip names)."""
    split = {part: [row["fname"] for row in csv.DictReader(open(emopia / "split" / f"{part}.csv"))]
             for part in ("train", "val")}
    frames = None
    if cache is not None and cache.is_file():
        stored = pickle.loads(cache.read_bytes())
        if stored.get("version") == spec.LABELLER_VERSION:
            frames = stored["frames"]
    if frames is None:
        frames = {name: labeller_frames(load_notes(emopia / "midis" / f"{name}.mid"))
                  for name in split["train"] + split["val"]}
        if cache is not None:
            cache.write_bytes(pickle.dumps({"version": spec.LABELLER_VERSION, "frames": frames}))
    return frames, split["train"], split["val"]


def without_velocity(x: np.ndarray) -> np.ndarray:
    """Frames as a file without velocity information gives them."""
    x = x.copy()
    x[:, VELOCITY] = 0.0
    x[:, VELOCITY_KNOWN] = 0.0
    return x


def octave_up(x: np.ndarray) -> np.ndarray:
    """Frames of the same piece played an octave higher (only the register columns move: by 12/48
    where a note sounds; preprocess.features.labeller_input)."""
    x = x.copy()
    sounding = x[:, spec.LABELLER_COLUMNS.index("silent")] == 0
    for name in ("mean_pitch", "low_pitch", "high_pitch"):
        x[sounding, spec.LABELLER_COLUMNS.index(name)] += 12.0 / 48.0
    return x


def summary(x: np.ndarray) -> np.ndarray:
    """A clip's count features: frame mean and the sounding frames' standard deviation, [2 D]."""
    sounding = x[x[:, spec.LABELLER_COLUMNS.index("silent")] == 0]
    return np.concatenate([x.mean(axis=0), (sounding if len(sounding) else x).std(axis=0)])


def rule_values(clips: list[np.ndarray]) -> np.ndarray:
    """(valence, arousal) [N, 2] of the two-term hand rule read from the frames' cues
    (train.labeller_cues.rule_of_cues)."""
    rows = [clip_cues(torch.as_tensor(x)[None], torch.ones((1, len(x)), dtype=torch.bool)) for x in clips]
    return np.concatenate([rule_of_cues(cues).numpy() for cues in rows])


def scores(values: np.ndarray, quadrant: np.ndarray) -> dict:
    """Accuracy 4Q / V / A and balanced accuracy V / A of (valence, arousal) values [N, 2]."""
    signs = quadrant_signs(quadrant)
    out = {"4Q": float(np.mean(quadrant_of(values[:, 0], values[:, 1]) == quadrant))}
    for j, axis in enumerate("VA"):
        right = (values[:, j] >= 0) == (signs[:, j] > 0)
        out[axis] = float(np.mean(right))
        out[f"bal{axis}"] = float(np.mean([np.mean(right[signs[:, j] == s]) for s in (-1.0, 1.0)]))
    return out


def logreg_values(train_x, train_q, stop_x, stop_q, tests: list) -> tuple[list, float]:
    """(values [N, 2] in (-1, 1) for each of `tests`, training CPU s) of two logistic regressions
    (valence, arousal) on standardised summaries, C chosen on the stopping clips' log loss."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.process_time()
    out = [np.zeros((len(t), 2)) for t in tests]
    for j in range(2):
        y, y_stop = quadrant_signs(train_q)[:, j] > 0, quadrant_signs(stop_q)[:, j] > 0
        fits = [make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(train_x, y)
                for c in (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)]
        best = min(fits, key=lambda m: log_loss(y_stop, m.predict_proba(stop_x)[:, 1]))
        best.fit(np.concatenate([train_x, stop_x]), np.concatenate([y, y_stop]))
        for o, t in zip(out, tests):
            o[:, j] = 2.0 * best.predict_proba(t)[:, 1] - 1.0
    return out, time.process_time() - start


def report(name: str, runs: list[dict], seconds: list[float]) -> None:
    """One line per view of the validation clips: mean +- sd over the model's runs of every score."""
    for view in runs[0]:
        cells = []
        for k in ("4Q", "V", "A", "balV", "balA"):
            v = np.array([r[view][k] for r in runs])
            cells.append(f"{v.mean():.3f}±{v.std():.3f}")
        print(f"{name:<18} {view:<12} " + " ".join(f"{c:>11}" for c in cells) + f"  {np.mean(seconds):7.1f}")


def fold_scores(name: str, frames: dict, names: list[str], folds: int, seeds: int, stop_fraction: float) -> None:
    """--folds: model `name` (``rule``, ``logreg`` or a SEQUENCE_MODELS entry, ``&`` for pairs)
    scored on each song fold after training on the others; one line of mean +- sd over the folds
    and the accuracy pooled over every clip."""
    quadrant = lambda ns: np.array([int(n[1]) for n in ns])
    fold_of = {n: int(spec.split_fraction(song_of(n), 1) * folds) for n in names}
    per_fold, pooled_values, pooled_names, seconds = [], [], [], 0.0
    for fold in range(folds):
        test = [n for n in names if fold_of[n] == fold]
        rest = [n for n in names if fold_of[n] != fold]
        stop = [n for n in rest if spec.split_fraction(song_of(n), 0) < stop_fraction]
        fit = [n for n in rest if n not in set(stop)]
        started = time.process_time()
        if name == "rule":
            values = rule_values([frames[n] for n in test])
        elif name == "logreg":
            (values,), _ = logreg_values(np.stack([summary(frames[n]) for n in fit]), quadrant(fit),
                                         np.stack([summary(frames[n]) for n in stop]), quadrant(stop),
                                         [np.stack([summary(frames[n]) for n in test])])
        else:
            configs = [SEQUENCE_MODELS[part] for part in name.split("&")]
            members = [fit_labeller([frames[n] for n in fit], quadrant_signs(quadrant(fit)),
                                    [frames[n] for n in stop], quadrant_signs(quadrant(stop)), config, seed=seed)[0]
                       for seed in range(seeds) for config in configs]
            model = LabellerEnsemble(members).eval()
            values = np.stack([label_piece(model, frames[n]) for n in test])
        seconds += time.process_time() - started
        per_fold.append(scores(values, quadrant(test)))
        pooled_values.append(values)
        pooled_names += test
    pooled = scores(np.concatenate(pooled_values), quadrant(pooled_names))
    cells = []
    for k in ("4Q", "V", "A", "balV", "balA"):
        v = np.array([f[k] for f in per_fold])
        cells.append(f"{v.mean():.3f}±{v.std():.3f}")
    print(f"{name:<18} {'folds':<12} " + " ".join(f"{c:>11}" for c in cells) + f"  {seconds / folds:7.1f}")
    print(f"{name:<18} {'pooled':<12} " + " ".join(f"{pooled[k]:>11.3f}" for k in ("4Q", "V", "A", "balV", "balA")))
    sys.stdout.flush()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emopia", type=Path, required=True)
    parser.add_argument("--models", default="logreg,gru,gru+summary")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--stop-fraction", type=float, default=0.15)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=None, help="override LabellerConfig.epochs")
    parser.add_argument("--folds", type=int, default=0, help="score on K song folds of train + val (docstring)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if not (args.emopia / "split" / "train.csv").is_file():
        print(f"{args.emopia}: no split/train.csv (an EMOPIA folder has midis/ and split/)", file=sys.stderr)
        return 2
    frames, train_names, val_names = load_clips(args.emopia, args.cache)
    if args.folds:
        names = train_names + val_names
        print(f"{len(names)} clips of {len({song_of(n) for n in names})} songs in {args.folds} song folds; "
              f"frames {spec.LABELLER_INPUTS} x {spec.LABELLER['frame_seconds']} s, {spec.LABELLER_VERSION}")
        header = " ".join(f"{k:>11}" for k in ("4Q", "V", "A", "balV", "balA"))
        print(f"{'model':<18} {'view':<12} {header}  train CPU s per fold")
        for name in args.models.split(","):
            fold_scores(name, frames, names, args.folds, args.seeds, args.stop_fraction)
        return 0
    stop = [n for n in train_names if spec.split_fraction(song_of(n), 0) < args.stop_fraction]
    stop_set = set(stop)
    fit = [n for n in train_names if n not in stop_set]
    quadrant = lambda names: np.array([int(n[1]) for n in names])
    q_fit, q_stop, q_val = quadrant(fit), quadrant(stop), quadrant(val_names)
    val = {"stop clips": [frames[n] for n in stop], "as is": [frames[n] for n in val_names],
           "no velocity": [without_velocity(frames[n]) for n in val_names],
           "octave up": [octave_up(frames[n]) for n in val_names]}
    print(f"fit {len(fit)} clips ({len({song_of(n) for n in fit})} songs), stop {len(stop)} "
          f"({len({song_of(n) for n in stop})} songs), validation {len(val_names)} "
          f"({len({song_of(n) for n in val_names})} songs); frames {spec.LABELLER_INPUTS} x "
          f"{spec.LABELLER['frame_seconds']} s, {spec.LABELLER_VERSION}")
    header = " ".join(f"{k:>11}" for k in ("4Q", "V", "A", "balV", "balA"))
    print(f"{'model':<18} {'view':<12} {header}  train CPU s (per seed; ens: all seeds)")
    for name in args.models.split(","):
        if name == "rule":
            report(name, [{view: scores(rule_values(clips), q_stop if view == "stop clips" else q_val)
                           for view, clips in val.items()}], [0.0])
            continue
        if name in ("logreg", "logreg-aug"):
            tests = [np.stack([summary(x) for x in val[view]]) for view in val]
            views = (lambda x: x,) if name == "logreg" else (lambda x: x, without_velocity)
            values, seconds = logreg_values(
                np.stack([summary(v(frames[n])) for v in views for n in fit]), np.tile(q_fit, len(views)),
                np.stack([summary(v(frames[n])) for v in views for n in stop]), np.tile(q_stop, len(views)), tests)
            report(name, [{view: scores(v, q_stop if view == "stop clips" else q_val) for view, v in zip(val, values)}],
                   [seconds])
            continue
        configs = [SEQUENCE_MODELS[part] for part in name.split("&")]
        if args.epochs is not None:
            configs = [replace(config, epochs=args.epochs) for config in configs]
        runs, seconds, ensemble = [], [], {view: 0.0 for view in val}
        for seed in range(args.seeds):
            start = time.process_time()
            model = LabellerEnsemble([fit_labeller([frames[n] for n in fit], quadrant_signs(q_fit),
                                                   [frames[n] for n in stop], quadrant_signs(q_stop), config,
                                                   seed=seed)[0] for config in configs]).eval()
            seconds.append(time.process_time() - start)
            run = {}
            for view, clips in val.items():
                values = np.stack([label_piece(model, x) for x in clips])
                ensemble[view] = ensemble[view] + values / args.seeds
                run[view] = scores(values, q_stop if view == "stop clips" else q_val)
            runs.append(run)
        report(name, runs, seconds)
        report(f"ens:{name}", [{view: scores(ensemble[view], q_stop if view == "stop clips" else q_val)
                                for view in val}], [sum(seconds)])
        sys.stdout.flush()
    print("published anchors, EMOPIA test split (4Q / V / A):")
    for name, q4, v, a in ANCHORS:
        print(f"  {name:<30} {q4:.3f} / {v:.3f} / {a:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
