"""`kelly label`: (valence, arousal) for MIDI files from a trained EmotionLabeller, and the labels
the cache's unannotated MIDI items train on.

    kelly label --checkpoint-dir runs/x/checkpoints song.mid folder/ [--output labels.csv]
    kelly label --checkpoint-dir runs/x/checkpoints --cache-dir cache

With paths: every file named, and every .mid/.midi file under every folder named (recursively), is
labelled; the CSV (``path,valence,arousal,quadrant``; valence and arousal in [-1, 1], quadrant
Q1..Q4 from their signs, 0 counting as +) goes to --output, written whole at the end, or to stdout.
A file that cannot be read (not MIDI, damaged, no pitched note, a parser crash or hang) gets one
line on stderr and no row, and is counted in the summary line; the run goes on. Files are read in
isolated worker processes (`preprocess.parallel`), so a file that crashes the parser costs that
file only.

With --cache-dir: every Lakh and MAESTRO item of the cache whose label source is "proxy" is
labelled from its source file, and the labels go to the cache's labels table
(`preprocess.cache.labels`), which the trainer applies when it reads the cache: no feature is
recomputed, human labels always win, and Groove keeps its proxies (drum kits alone; see that
module). Items whose file cannot be read keep their proxy, counted.

One clear line and a non-zero exit, nothing written, when the whole command cannot do its job:
no labeller checkpoint in the folder, a checkpoint that is not a labeller or was trained on frames
of another version, no MIDI file under the paths given, an output that cannot be written.

This command lives in the roof (kelly/): it reads MIDI (preprocess) and runs the model (train).
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

from common.errors import KellyError

#: seconds one file may take to read before it counts as unreadable
FILE_TIMEOUT = 120.0
COLUMNS = ("path", "valence", "arousal", "quadrant")


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "label", help="label MIDI files (or the cache's unannotated MIDI items) with a trained EmotionLabeller",
        description="Label MIDI files and folders (recursively) with the EmotionLabeller in --checkpoint-dir: "
                    "a CSV path,valence,arousal,quadrant. With --cache-dir instead of paths, label the cache's "
                    "proxy-labelled Lakh and MAESTRO items for training (human labels always win).")
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="MIDI files and folders")
    p.add_argument("--checkpoint-dir", type=Path, required=True,
                   help="the folder holding emotionlabeller_best.pt (a training output or its checkpoints/)")
    p.add_argument("--output", "-o", type=Path, help="the CSV to write (default: stdout)")
    p.add_argument("--cache-dir", type=Path, help="label this cache's unannotated MIDI items instead of PATHs")
    p.add_argument("--labeller-axes", nargs="+", choices=("valence", "arousal"), metavar="AXIS",
                   help="with --cache-dir: the axes the labeller's values take whatever the held-out EMOPIA "
                        "clips say (default: each axis where it is closer to the annotators than "
                        "the proxy rules)")
    p.add_argument("--workers", type=int, help="processes reading files (default: every core)")
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best", help="(default: best)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=handle_label)


def handle_label(args: argparse.Namespace) -> int:
    if args.cache_dir is not None:
        if args.paths or args.output is not None:
            raise KellyError("--cache-dir labels the cache's items: give no PATH and no --output with it")
        summary = label_cache(args.checkpoint_dir, args.cache_dir, workers=args.workers, kind=args.checkpoint,
                              progress=not args.no_progress, axes=args.labeller_axes)
        print(format_cache_summary(summary))
        return 0
    if args.labeller_axes:
        raise KellyError("--labeller-axes chooses what the cache's items take: give it with --cache-dir")
    if not args.paths:
        raise KellyError("give MIDI files or folders to label (or --cache-dir)")
    summary = label_paths(args.checkpoint_dir, args.paths, output=args.output, workers=args.workers,
                          kind=args.checkpoint, progress=not args.no_progress)
    return 0 if summary["labelled"] else 1


# --- the labeller ----------------------------------------------------------------------------------

def find_labeller(checkpoint_dir: str | Path, kind: str = "best"):
    """(model, checkpoint dict, checkpoint path, label source "labeller:<id>") of the labeller in
    `checkpoint_dir` (or its checkpoints/); KellyError naming the folder or file otherwise."""
    from preprocess.features import spec
    from train.labeller_checkpoint import labeller_id, load_labeller
    from train.outputs import checkpoint_name, find_checkpoint

    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise KellyError(f"{checkpoint_dir}: checkpoint folder not found")
    try:
        path = find_checkpoint(checkpoint_dir, spec.LABELLER_KEY, kind)
    except KellyError:
        raise KellyError(f"{checkpoint_dir}: no EmotionLabeller checkpoint ({checkpoint_name(spec.LABELLER_KEY, kind)}, "
                         f"here or in checkpoints/); train one: kelly preprocess emopia, kelly train --models "
                         f"labeller") from None
    model, checkpoint = load_labeller(path)
    return model, checkpoint, path, f"{spec.LABEL_LABELLER}:{labeller_id(path)}"


def label_frames(model, frames) -> tuple[float, float, str]:
    """(valence, arousal, "Q1".."Q4") of one piece's frames [T, D]."""
    from train.labeller_model import label_piece, quadrant_of

    valence, arousal = (float(x) for x in label_piece(model, frames))
    return valence, arousal, f"Q{int(quadrant_of(valence, arousal))}"


def read_frames(paths: list[Path], *, workers: int | None, progress: bool, desc: str):
    """Yield (path, frames or the preprocess.parallel.Failed why not) for every path, in completion
    order, each file read by `preprocess.labeller_frames.file_frames` in an isolated worker."""
    from tqdm import tqdm

    from preprocess.labeller_frames import file_frames, prepare_worker
    from preprocess.parallel import Ok, WorkerPool, default_workers

    workers = max(1, min(workers or default_workers(), len(paths)))
    with WorkerPool(file_frames, workers=workers, file_timeout=FILE_TIMEOUT, prepare=prepare_worker) as pool, \
            tqdm(total=len(paths), desc=desc, unit="file", disable=not progress, file=sys.stderr) as bar:
        pool.ready(True)
        for path, outcome in pool.map([str(p) for p in paths]):
            bar.update(1)
            yield Path(path), (outcome.value if isinstance(outcome, Ok) else outcome)


# --- files and folders -------------------------------------------------------------------------------

def midi_files(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """(the files to label, lines for the paths that are neither file nor folder): every file named,
    and the .mid/.midi files under every folder named, recursively, in name order, once each.
    KellyError when there is none."""
    from preprocess.datasets.base import MIDI_EXTENSIONS, iter_files

    files: dict[Path, None] = {}
    problems = []
    for path in paths:
        if path.is_file():
            files[path] = None
        elif path.is_dir():
            found = [Path(absolute) for _, absolute in iter_files(path, MIDI_EXTENSIONS)]
            if not found:
                problems.append(f"{path}: no .mid or .midi file in this folder")
            files.update(dict.fromkeys(found))
        else:
            problems.append(f"{path}: no such file or folder")
    if not files:
        raise KellyError("; ".join(problems) if problems else "nothing to label")
    return list(files), problems


def label_paths(checkpoint_dir: str | Path, paths: list[Path], *, output: Path | None = None,
                workers: int | None = None, kind: str = "best", progress: bool = True) -> dict:
    """Label `paths` (files and folders) and write the CSV (module docstring); returns
    {"labelled": n, "skipped": n, "rows": [(path, valence, arousal, quadrant)], "seconds": s}."""
    from common.files import atomic_write, check_output_dir

    started = time.perf_counter()
    if output is not None:
        if output.is_dir():
            raise KellyError(f"--output {output}: is a folder; give the CSV file to write")
        check_output_dir(output.parent if str(output.parent) else Path("."), "the folder of --output")
    model, _, checkpoint_path, source = find_labeller(checkpoint_dir, kind)
    files, problems = midi_files(paths)
    for line in problems:
        print(f"kelly label: skipped {line}", file=sys.stderr)
    from train.labeller_network import single_thread

    labelled: dict[Path, tuple[float, float, str]] = {}
    skipped = len(problems)
    with single_thread():
        for path, frames in read_frames(files, workers=workers, progress=progress, desc="label"):
            if not hasattr(frames, "shape"):
                print(f"kelly label: skipped {path}: {frames.message}", file=sys.stderr)
                skipped += 1
                continue
            labelled[path] = label_frames(model, frames)
    rows = [(str(p), *labelled[p]) for p in files if p in labelled]
    text = csv_text(rows)
    if output is not None:
        with atomic_write(output, "w", newline="") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    seconds = time.perf_counter() - started
    print(f"kelly label: labelled {len(rows)} file(s), skipped {skipped} that could not be read, in {seconds:.1f} s "
          f"({source}, {checkpoint_path})" + (f"; wrote {output}" if output is not None else ""), file=sys.stderr)
    return {"labelled": len(rows), "skipped": skipped, "rows": rows, "seconds": seconds, "label_source": source}


def csv_text(rows) -> str:
    """The CSV of (path, valence, arousal, quadrant) rows, with its header; values to 4 decimals."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for path, valence, arousal, quadrant in rows:
        writer.writerow((path, f"{valence:.4f}", f"{arousal:.4f}", quadrant))
    return buffer.getvalue()


# --- the cache ---------------------------------------------------------------------------------------

def label_cache(checkpoint_dir: str | Path, cache_dir: str | Path, *, workers: int | None = None,
                kind: str = "best", progress: bool = True, axes: list[str] | None = None) -> dict:
    """Label the cache's proxy-labelled Lakh and MAESTRO items into its labels table and refresh its
    input statistics; returns {"label_source", "labelled": {source: n}, "unreadable": {source: n},
    "examples": [...], "annotated": n, "groove_proxy": n, "path", "seconds"}."""
    from preprocess.cache.labels import LABELLED_SOURCES, LabelTable, labels_path, remove_labels, write_labels
    from preprocess.cache.manifest import Manifest
    from preprocess.cache.stats import update_input_stats
    from preprocess.cache.writer import cache_lock
    from preprocess.features import spec
    from train.labeller_network import single_thread

    started = time.perf_counter()
    cache_dir = Path(cache_dir)
    if not (cache_dir / "manifest.sqlite").is_file():
        raise KellyError(f"{cache_dir}: no feature cache here; run `kelly preprocess` first")
    model, _, checkpoint_path, source = find_labeller(checkpoint_dir, kind)
    with cache_lock(cache_dir):
        with Manifest.open(cache_dir) as manifest:
            served = manifest.served()
        todo = [r for r in served if r.source in LABELLED_SOURCES and r.label_source == spec.LABEL_PROXY]
        by_path: dict[str, list] = {}
        for record in todo:
            by_path.setdefault(record.source_path, []).append(record)
        table = LabelTable(label_source=source, labeller_version=spec.LABELLER_VERSION,
                           checkpoint=str(checkpoint_path))
        with single_thread():
            table.axes, table.agreement = measured_axes(model, served, workers=workers, forced=axes)
        if "labeller" not in table.axes.values():
            by_path = {}                # the proxies agree better on both axes: nothing to relabel
        labelled = {s: 0 for s in LABELLED_SOURCES}
        unreadable = {s: 0 for s in LABELLED_SOURCES}
        examples = []
        if by_path:
            with single_thread():
                for path, frames in read_frames([Path(p) for p in by_path], workers=workers, progress=progress,
                                                desc="label cache"):
                    records = by_path[str(path)]
                    if not hasattr(frames, "shape"):
                        for record in records:
                            unreadable[record.source] += 1
                        if len(examples) < 5:
                            examples.append(f"{path}: {frames.message}")
                        continue
                    valence, arousal, _ = label_frames(model, frames)
                    for record in records:
                        table.add(record.source, record.item_id, record.content_hash,
                                  valence if table.axes["valence"] == "labeller" else record.valence,
                                  arousal if table.axes["arousal"] == "labeller" else record.arousal)
                        labelled[record.source] += 1
        if len(table):
            written = write_labels(cache_dir, table)
        else:
            remove_labels(cache_dir)
            written = labels_path(cache_dir)
        update_input_stats(cache_dir)
    return {"label_source": source, "checkpoint": str(checkpoint_path), "labelled": labelled,
            "axes": dict(table.axes), "agreement": table.agreement, "table_written": bool(len(table)),
            "unreadable": unreadable, "examples": examples, "path": str(written),
            "annotated": sum(r.label_source == spec.LABEL_ANNOTATED for r in served),
            "groove_proxy": sum(r.source == "groove" and r.label_source == spec.LABEL_PROXY for r in served),
            "seconds": time.perf_counter() - started}


def measured_axes(model, served, *, workers: int | None = None, forced: list[str] | None = None
                  ) -> tuple[dict[str, str], dict]:
    """(axis -> "labeller" | "proxy", the figures it was chosen on): the labeller and the proxy rules
    on the cache's held-out EMOPIA clips (kelly.label_choice). `forced`: the axes the labeller takes
    whatever the figures say (the others keep the proxy's values)."""
    import numpy as np

    from kelly.label_choice import AXES, compare, held_out_clips
    from preprocess.features.midi import MidiError, load_notes
    from preprocess.features.proxy_labels import proxy_labels

    split, records = held_out_clips(served)
    ours, theirs, truth = [], [], []
    if records:
        by_path = {str(Path(r.source_path)): r for r in records}
        for path, frames in read_frames([Path(p) for p in by_path], workers=workers, progress=False,
                                        desc="held-out clips"):
            if not hasattr(frames, "shape"):
                continue
            try:
                proxy = proxy_labels(load_notes(path), "maestro")
            except (MidiError, OSError, ValueError):
                continue
            record = by_path[str(path)]
            ours.append(label_frames(model, frames)[:2])
            theirs.append((proxy.valence, proxy.arousal))
            truth.append((record.valence, record.arousal))
    if forced is not None:
        choice = {axis: "labeller" if axis in forced else "proxy" for axis in AXES}
    elif not truth:
        choice = {axis: "labeller" for axis in AXES}          # nothing to measure against: the labeller's
    if not truth:
        return choice, {}
    measured, figures = compare(*(np.asarray(x, dtype=np.float64) for x in (ours, theirs, truth)))
    figures["split"] = split
    return (choice if forced is not None else measured), figures


def format_cache_summary(summary: dict) -> str:
    written = summary.get("table_written", True)
    lines = [f"{'labels table ' + summary['path'] if written else 'no labels table written'} "
             f"({summary['label_source']}, from {summary['checkpoint']}), {summary['seconds']:.1f} s:"]
    from kelly.label_choice import format_choice

    axes, agreement = summary.get("axes") or {}, summary.get("agreement") or {}
    if agreement:
        lines.append("  " + format_choice(agreement["split"], agreement, axes).replace("\n", "\n  "))
    if axes and "labeller" not in axes.values():
        lines.append("  the labeller is not closer to EMOPIA's annotators on either axis: every item "
                     "keeps its proxy labels")
    for source, n in summary["labelled"].items():
        lines.append(f"  {source:<8} {n:>7,} items labelled by the labeller, {summary['unreadable'][source]:,} "
                     f"unreadable kept their proxy labels")
    if axes and list(axes.values()).count("labeller") == 1:
        kept = [a for a, v in axes.items() if v == "proxy"][0]
        lines.append(f"  their {kept} stays the proxy's: the labeller is not closer to listeners there")
    lines.append(f"  {summary['annotated']:,} items keep their human labels; {summary['groove_proxy']:,} Groove "
                 f"items keep their proxy labels (drum kits alone: the labeller reads pitched notes)")
    for example in summary["examples"]:
        lines.append(f"  unreadable: {example}")
    return "\n".join(lines)
