"""Emotion labels against listeners: the proxy rules, before and after, and the learned labeller,
on held-out EMOPIA clips.

    python bench/emotion_labels.py [--emopia DIR] [--split val] [--checkpoint-dir DIR] [--cues]

DIR holds EMOPIA's clips as shared: `midis/Q{n}_{song id}_{clip}.mid` (the quadrant listeners
gave: Q1 +valence +arousal, Q2 -V +A, Q3 -V -A, Q4 +V -A) and `split/{train,val,test}.csv`
(`fname,label`). Default: the emopia folder of the real-file corpus beside the checkout (or under
$KELLY_REAL_CORPUS), its official validation split; where that is absent, the sample source
(`preprocess.sample_data.emopia`) written into a temporary folder, its val and test clips.

Systems, each giving (valence, arousal) in [-1, 1] per clip, the quadrant from their signs (0
counts as positive):

- proxy lakh / maestro (new): `preprocess.features.proxy_labels.proxy_labels` as the preprocess
  job computes it for a Lakh or MAESTRO file;
- proxy lakh / maestro (old): the rules before kelly-features-4, reproduced here: valence the same
  mode term; arousal (tempo + density) / 2 for lakh, with the density of all notes around 8
  notes/s, and (tempo + register) / 2 for maestro, the tempo read from the onsets when the file
  carries the 120-bpm placeholder;
- labeller (with --checkpoint-dir): `kelly label --checkpoint-dir DIR` on the same files.

Figures: accuracy for 4 quadrants, valence side and arousal side; balanced accuracy (mean recall
over the classes) for the same three; the 4x4 confusion matrix (rows: listeners, columns: the
system); the published anchors on EMOPIA's test split printed beside. --cues adds the AUC of each
raw cue for the valence and arousal sides on the train split and on the scored split (the
evidence the proxy rules were chosen on). The last line is `proxy-new valence X arousal Y 4q Z`
(balanced accuracies, 4q accuracy) for the new maestro route.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from preprocess.features.midi import MidiError, NoteArrays, load_notes
from preprocess.features.proxy_labels import (has_placeholder_tempo, mean_bpm, mode_valence, proxy_labels,
                                              tempo_term)

REAL = Path(os.environ.get("KELLY_REAL_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "real-corpus")

#: Hung et al., ISMIR 2021 (EMOPIA), Table 4, symbolic classifiers on the official test split: accuracy
#: (4 quadrants, arousal, valence); MidiBERT-Piano (Chou et al. 2021) reports 4 quadrants only
ANCHORS = (
    ("logistic regression", 0.581, 0.849, 0.651),
    ("LSTM-Attn, MIDI-like", 0.684, 0.882, 0.833),
    ("LSTM-Attn, REMI", 0.615, 0.890, 0.746),
    ("MidiBERT-Piano", 0.679, None, None),
)


# --- clips -----------------------------------------------------------------------------------------

def read_clips(folder: Path, splits: list[str]) -> list[tuple[Path, int]]:
    """(MIDI path, annotated quadrant 1..4) of every clip the named split files list, in file order."""
    clips = []
    for split in splits:
        table = folder / "split" / f"{split}.csv"
        if not table.is_file():
            raise SystemExit(f"{table}: no such split file (EMOPIA's layout: midis/ and split/{{train,val,test}}.csv)")
        with table.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                path = folder / "midis" / f"{row['fname']}.mid"
                label = row["label"].strip()
                if len(label) != 2 or label[0] != "Q" or label[1] not in "1234":
                    raise SystemExit(f"{table}: label {label!r} of {row['fname']} is not Q1..Q4")
                clips.append((path, int(label[1])))
    return clips


def quadrant(valence: np.ndarray, arousal: np.ndarray) -> np.ndarray:
    """Quadrants 1..4 from signs (0 counts as positive), int [N]."""
    valence, arousal = np.asarray(valence) >= 0, np.asarray(arousal) >= 0
    return np.where(arousal, np.where(valence, 1, 2), np.where(valence, 4, 3))


# --- the rules before kelly-features-4, as they were --------------------------------------------

def previous_onset_tempo(onset: np.ndarray, *, frame_seconds: float = 0.01, min_bpm: float = 40.0,
                         max_bpm: float = 240.0, prior_bpm: float = 120.0) -> float:
    """The old maestro route's beat rate: the autocorrelation of the onset train (onsets within
    30 ms one event, 20 ms Gaussian smoothing) under a log-normal prior around 120 bpm; NaN with
    fewer than 8 onset groups."""
    onset = np.sort(np.asarray(onset, dtype=np.float64))
    starts = onset[np.r_[True, np.diff(onset) > 0.03]] if onset.size else onset
    if starts.size < 8:
        return float("nan")
    sigma = 0.02 * np.sqrt(2.0) / frame_seconds
    max_lag = int(np.ceil(60.0 / min_bpm / frame_seconds))
    reach = (max_lag + 4 * sigma) * frame_seconds
    stop = np.searchsorted(starts, starts + reach, side="right")
    count = stop - np.arange(starts.size) - 1
    first = np.repeat(np.arange(starts.size), count)
    second = first + 1 + np.arange(first.size) - np.repeat(np.cumsum(count) - count, count)
    lag_frames = np.round((starts[second] - starts[first]) / frame_seconds).astype(np.int64)
    n_bins = max_lag + int(4 * sigma) + 2
    histogram = np.bincount(lag_frames, minlength=n_bins)[:n_bins].astype(np.float64)
    taps = np.arange(-int(4 * sigma), int(4 * sigma) + 1)
    autocorr = np.convolve(histogram, np.exp(-0.5 * (taps / sigma) ** 2), mode="same")
    lags = np.arange(max(1, int(np.floor(60.0 / max_bpm / frame_seconds))), max_lag + 1)
    bpm = 60.0 / (lags * frame_seconds)
    score = autocorr[lags] * np.exp(-0.5 * np.log2(bpm / prior_bpm) ** 2)
    return float(bpm[np.argmax(score)]) if np.any(score > 0) else float("nan")


def previous_labels(notes: NoteArrays, source: str) -> tuple[float, float]:
    """(valence, arousal) by the rules of kelly-features-3."""
    valence, _ = mode_valence(notes)
    pitched = ~notes.is_drum
    if source == "maestro":
        bpm = previous_onset_tempo(notes.onset[pitched]) if has_placeholder_tempo(notes) else float("nan")
        if not np.isfinite(bpm):
            bpm = mean_bpm(notes)
        mean_pitch = float(notes.pitch[pitched].mean()) if pitched.any() else 60.0
        register = float(np.clip((mean_pitch - 60.0) / 12.0, -1.0, 1.0))
        return valence, float(np.clip((tempo_term(bpm) + register) / 2.0, -1.0, 1.0))
    span = max(notes.duration - float(notes.onset.min()), 1e-3)
    density = float(np.clip(np.log2(max(len(notes) / span, 1e-6) / 8.0) / 2.0, -1.0, 1.0))
    return valence, float(np.clip((tempo_term(mean_bpm(notes)) + density) / 2.0, -1.0, 1.0))


# --- scoring -------------------------------------------------------------------------------------

def balanced(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean recall over the classes present in `truth`."""
    return float(np.mean([np.mean(predicted[truth == c] == c) for c in np.unique(truth)]))


def scores(truth_q: np.ndarray, valence: np.ndarray, arousal: np.ndarray) -> dict:
    predicted_q = quadrant(valence, arousal)
    true_v, true_a = np.isin(truth_q, (1, 4)), np.isin(truth_q, (1, 2))
    pred_v, pred_a = np.asarray(valence) >= 0, np.asarray(arousal) >= 0
    confusion = np.zeros((4, 4), dtype=np.int64)
    np.add.at(confusion, (truth_q - 1, predicted_q - 1), 1)
    return {"acc_4q": float(np.mean(predicted_q == truth_q)), "acc_v": float(np.mean(pred_v == true_v)),
            "acc_a": float(np.mean(pred_a == true_a)), "bal_4q": balanced(predicted_q, truth_q),
            "bal_v": balanced(pred_v, true_v), "bal_a": balanced(pred_a, true_a), "confusion": confusion}


def auc(values: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive item's value exceeds a negative one's (ties count half)."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    values, positive = values[keep], np.asarray(positive, bool)[keep]
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size)
    sorted_values = values[order]
    ranks[order] = np.arange(1, values.size + 1)
    for v in np.unique(sorted_values):                      # average ranks of ties
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def cues(notes: NoteArrays) -> dict[str, float]:
    """Raw cues of one clip (the proxy terms' inputs and those tried beside them)."""
    pitched = notes.select(~notes.is_drum)
    onset = np.sort(pitched.onset)
    starts = onset[np.r_[True, np.diff(onset) > 0.03]]
    length = pitched.offset - pitched.onset
    following = np.searchsorted(starts, pitched.onset + 0.03, side="right")
    gap = np.where(following < starts.size, starts[np.minimum(following, starts.size - 1)] - pitched.onset, np.nan)
    labels = proxy_labels(notes, "maestro")
    return {"mean velocity": float(pitched.velocity.mean()),
            "notes per second": labels.attributes["notes_per_second"],
            "mean note length (s)": float(length.mean()),
            "sounding / inter-onset": float(np.nanmedian(np.clip(length / np.maximum(gap, 1e-3), 0, 4))),
            "onset tempo (old)": previous_onset_tempo(pitched.onset),
            "mean pitch (old register)": float(pitched.pitch.mean()),
            "mode (r_major - r_minor)": labels.attributes["r_major"] - labels.attributes["r_minor"]}


def labeller_labels(checkpoint_dir: Path, paths: list[Path]) -> dict[Path, tuple[float, float]]:
    """(valence, arousal) per file from `kelly label --checkpoint-dir DIR`; files it skips are absent."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "labels.csv"
        command = [sys.executable, "-m", "kelly", "label", "--checkpoint-dir", str(checkpoint_dir),
                   *map(str, paths), "--output", str(output)]
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0 or not output.is_file():
            raise SystemExit(f"kelly label failed (exit {run.returncode}): {run.stderr.strip()[-2000:]}")
        with output.open(newline="", encoding="utf-8") as handle:
            return {Path(row["path"]).resolve(): (float(row["valence"]), float(row["arousal"]))
                    for row in csv.DictReader(handle)}


# --- report --------------------------------------------------------------------------------------

def print_scores(results: dict[str, dict], n: int) -> None:
    print(f"\n{'system':26s} {'4Q':>6s} {'valence':>8s} {'arousal':>8s}   balanced: {'4Q':>6s} {'valence':>8s} "
          f"{'arousal':>8s}   ({n} clips)")
    for name, r in results.items():
        print(f"{name:26s} {r['acc_4q']:6.3f} {r['acc_v']:8.3f} {r['acc_a']:8.3f}             {r['bal_4q']:6.3f} "
              f"{r['bal_v']:8.3f} {r['bal_a']:8.3f}")
    print("\npublished, EMOPIA test split (accuracy)")
    for name, q4, arousal, valence in ANCHORS:
        text = lambda x: "     -" if x is None else f"{x:6.3f}"
        print(f"{name:26s} {text(q4)} {text(valence):>8s} {text(arousal):>8s}")
    for name, r in results.items():
        print(f"\nconfusion, {name} (rows: listeners Q1..Q4, columns: predicted Q1..Q4)")
        for q, row in enumerate(r["confusion"], start=1):
            print(f"  Q{q} " + " ".join(f"{v:5d}" for v in row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emopia", type=Path, help="folder with midis/ and split/ (default: the real corpus's)")
    parser.add_argument("--split", help="split file(s) to score, comma-separated (default: val; val,test for the sample)")
    parser.add_argument("--checkpoint-dir", type=Path, help="a trained labeller's checkpoints, scored with kelly label")
    parser.add_argument("--cues", action="store_true", help="print each raw cue's AUC on train and the scored split")
    args = parser.parse_args(argv)

    scratch = None
    folder = args.emopia or REAL / "emopia"
    if args.emopia is None and not folder.is_dir():
        from preprocess.sample_data.emopia import write_emopia

        scratch = tempfile.TemporaryDirectory()
        write_emopia(Path(scratch.name), 0)
        folder = Path(scratch.name) / "emopia"
        print(f"no EMOPIA at {REAL / 'emopia'}: scoring the sample source (seed 0)")
    elif not folder.is_dir():
        raise SystemExit(f"{folder}: no such folder")
    splits = (args.split or ("val,test" if scratch else "val")).split(",")
    clips = read_clips(folder, splits)
    print(f"{folder}: {len(clips)} clips of split {'+'.join(splits)}")

    systems = {"proxy lakh (old)": [], "proxy maestro (old)": [], "proxy lakh (new)": [], "proxy maestro (new)": []}
    truth, kept, skipped = [], [], []
    wall, cpu = time.perf_counter(), time.process_time()
    for path, label in clips:
        try:
            notes = load_notes(path)
        except MidiError as error:
            skipped.append(str(error))
            continue
        for source in ("lakh", "maestro"):
            systems[f"proxy {source} (old)"].append(previous_labels(notes, source))
            new = proxy_labels(notes, source)
            systems[f"proxy {source} (new)"].append((new.valence, new.arousal))
        truth.append(label)
        kept.append(path)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"proxy labels, old and new, both routes: {wall / max(len(kept), 1) * 1e3:.1f} ms wall, "
          f"{cpu / max(len(kept), 1) * 1e3:.1f} ms CPU per clip; {len(skipped)} unreadable skipped")
    for line in skipped:
        print(f"  skipped: {line}")
    truth = np.array(truth)
    results = {name: scores(truth, *np.array(values).T) for name, values in systems.items()}

    if args.checkpoint_dir is not None:
        wall = time.perf_counter()
        labelled = labeller_labels(args.checkpoint_dir, kept)
        print(f"labeller: {len(labelled)} of {len(kept)} clips labelled in {time.perf_counter() - wall:.1f} s wall")
        have = np.array([p.resolve() in labelled for p in kept])
        values = np.array([labelled[p.resolve()] for p in kept if p.resolve() in labelled]).reshape(-1, 2)
        if have.sum():
            results["labeller"] = scores(truth[have], values[:, 0], values[:, 1])
    print_scores(results, len(kept))

    if args.cues:
        train = [] if "train" in splits else read_clips(folder, ["train"])
        for name, subset in (("train", train), ("+".join(splits), clips)):
            if not subset:
                continue
            table = [(cues(load_notes(path)), label) for path, label in subset]
            labels = np.array([label for _, label in table])
            print(f"\ncue AUC on {name} ({len(table)} clips)   arousal  valence")
            for cue in table[0][0]:
                values = np.array([c[cue] for c, _ in table])
                print(f"  {cue:28s} {auc(values, np.isin(labels, (1, 2))):8.3f} {auc(values, np.isin(labels, (1, 4))):8.3f}")
    new = results["proxy maestro (new)"]
    print(f"\nproxy-new valence {new['bal_v']:.3f} arousal {new['bal_a']:.3f} 4q {new['acc_4q']:.3f}")
    if scratch is not None:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
