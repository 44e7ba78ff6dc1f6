"""`kelly pipeline`: preprocess all, the labels, train, evaluate, export and verify, in one command.

    kelly pipeline --sample                      # make the sample datasets first, run everything on them
    kelly pipeline --datasets-dir datasets/      # the same on real datasets

Each stage is the same code its own subcommand runs; the pipeline only passes the folders on:

    <output>/cache/            the feature cache           (kelly preprocess all)
    <output>/checkpoints/      the EmotionLabeller, when EMOPIA is there (kelly train --models labeller)
    <output>/cache/labels.json its labels for the unannotated MIDI items (kelly label --cache-dir)
    <output>/checkpoints/      best/latest per network     (kelly train)
    <output>/history/, plots/
    <output>/evaluation.json   held-out metrics and emotion response (kelly evaluate; its plots in plots/)
    <output>/models/*.json     RTNeural files, verified    (kelly export, kelly verify --check-specs)
    <output>/models/*.h        their C++ headers (RTNeural's compile-time API, the I/O contract)

The order is EMOPIA -> labeller -> labels -> the networks -> export: with EMOPIA clips in the
cache, the EmotionLabeller is trained first and labels every Lakh and MAESTRO item that has no
human label, and the conditioned networks train on those labels. Without EMOPIA (or when the
labeller cannot be trained) the pipeline says so and they train on the proxy labels
(preprocess.features.proxy_labels); a labels table an earlier run left in the cache is removed
then, so that the labels are the ones this run says. The labeller is never exported (the plugin
does not run it).

With --sample the datasets are written to <output>/datasets/ (default output: runs/sample), and
training stops SAMPLE_PATIENCE epochs after the best one (the labeller after SAMPLE_LABELLER_EPOCHS)
unless --early-stopping-patience or --epochs says otherwise.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common.errors import KellyError

SAMPLE_OUTPUT = Path("runs/sample")
#: the EmotionLabeller's epochs on the sample data unless --epochs is given: its ~100 clips learn what
#: they can in that many (kelly pipeline --sample stays under a minute)
SAMPLE_LABELLER_EPOCHS = 6
#: early-stopping patience on the sample data unless --early-stopping-patience is given: its few hundred
#: rows stop improving within a few epochs, and ten more epochs of waiting cost a third of the run
#: (the whole run: 62 s with patience 5, 54 s with 3; every network still beats its baseline)
SAMPLE_PATIENCE = 3
#: training settings the pipeline passes on to `kelly train` when given
TRAIN_FLAGS = ("epochs", "batch_size", "learning_rate", "early_stopping_patience", "seed", "device")


def add_parsers(subparsers) -> None:
    from train.config import DEVICES

    p = subparsers.add_parser(
        "pipeline", help="preprocess, train, evaluate, export and verify in one command",
        description="Run every stage in order: preprocess all -> train -> evaluate -> export -> "
                    "verify --check-specs. With --sample, make the sample datasets first.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--sample", action="store_true", help="make the sample datasets and run on them")
    where.add_argument("--datasets-dir", type=Path, help="raw datasets (see datasets/README.md)")
    p.add_argument("--output", "-o", type=Path,
                   help=f"root for cache/, checkpoints/, history/, plots/, models/ (default: {SAMPLE_OUTPUT} "
                        "with --sample, else .)")
    p.add_argument("--cache-dir", type=Path, help="feature cache (default: <output>/cache)")
    p.add_argument("--workers", type=int, help="preprocess worker processes (default: every core)")
    p.add_argument("--limit", type=int, help="preprocess at most N items per source")
    p.add_argument("--models", nargs="+", metavar="MODEL",
                   help="networks to train and export (default: the labeller, when EMOPIA is there, and all five)")
    p.add_argument("--epochs", "-e", type=int, help="training epochs per network")
    p.add_argument("--batch-size", "-b", type=int)
    p.add_argument("--learning-rate", "-lr", type=float)
    p.add_argument("--early-stopping-patience", type=int)
    p.add_argument("--device", "-d", choices=DEVICES)
    p.add_argument("--seed", type=int, default=0, help="sample data, splits and training seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=handle_pipeline)


def handle_pipeline(args: argparse.Namespace) -> int:
    summary = run_pipeline(
        sample=args.sample, datasets_dir=args.datasets_dir, output=args.output, cache_dir=args.cache_dir,
        workers=args.workers, limit=args.limit, models=args.models, progress=not args.no_progress,
        train_settings={name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None},
    )
    return 0 if summary["ok"] else 1


def run_pipeline(*, sample: bool = False, datasets_dir: Path | None = None, output: Path | None = None,
                 cache_dir: Path | None = None, workers: int | None = None, limit: int | None = None,
                 models: list[str] | None = None, progress: bool = True, train_settings: dict | None = None) -> dict:
    """Run every stage; returns {"ok": bool, "stages": {...}, "seconds": float}."""
    from export.cli import NETWORK_KEYS, export_networks, print_reports
    from common.files import check_output_dir
    from preprocess.features.spec import LABELLER_KEY
    from train.cli import format_summary as train_report, run_training
    from train.config import TrainOptions, network_key
    from train.evaluate import evaluate, format_table, write_report

    started = time.perf_counter()
    train_settings = dict(train_settings or {})
    if sample:
        train_settings.setdefault("early_stopping_patience", SAMPLE_PATIENCE)
    output = Path(output) if output is not None else (SAMPLE_OUTPUT if sample else Path("."))
    cache_dir = Path(cache_dir) if cache_dir is not None else output / "cache"
    check_output_dir(output, "--output")            # before any stage starts
    check_output_dir(cache_dir, "--cache-dir")
    stages: dict = {}

    if sample:
        from preprocess.sample_data import make_sample_data

        datasets_dir = output / "datasets"
        _stage("sample data", datasets_dir)
        made = make_sample_data(datasets_dir, seed=train_settings.get("seed", 0))
        stages["sample_data"] = {"root": str(datasets_dir), "summary": made}
    elif datasets_dir is None or not Path(datasets_dir).is_dir():
        raise KellyError(f"{datasets_dir}: datasets folder not found")

    _stage("preprocess all", f"{datasets_dir} -> {cache_dir}")
    stages["preprocess"] = preprocess_stage(datasets_dir, cache_dir, workers=workers, limit=limit,
                                            seed=train_settings.get("seed", 0), progress=progress)

    keys = [network_key(m) for m in models] if models else [LABELLER_KEY, *NETWORK_KEYS]
    labeller_trained = False
    if LABELLER_KEY in keys:
        settings = dict(train_settings)
        if sample:
            settings.setdefault("epochs", SAMPLE_LABELLER_EPOCHS)
        stages["labels"] = labels_stage(cache_dir, output, progress=progress, train_settings=settings)
        labeller_trained = stages["labels"]["labeller_trained"]
    else:
        from preprocess.cache.labels import read_labels

        kept = read_labels(cache_dir)
        if kept is not None:
            print(f"\n== labels: the cache's labels table ({kept.label_source}) labels its unannotated MIDI items",
                  flush=True)
    keys = [k for k in keys if k != LABELLER_KEY]
    _stage("train", ", ".join(keys))
    trained = run_training(TrainOptions(cache_dir=cache_dir, output=output, models=keys, progress=progress,
                                        overrides=train_settings)) if keys else {"failed": [], "networks": {}}
    if keys:
        print(train_report(trained))
    stages["train"] = trained
    trained_keys = [k for k in keys if k not in trained["failed"]]
    if not trained_keys and not labeller_trained:
        raise KellyError("no network finished training; nothing to evaluate or export")

    checkpoint_dir = output / "checkpoints"
    _stage("evaluate", f"{checkpoint_dir} on the held-out split")
    report = evaluate(checkpoint_dir, cache_dir, models=trained_keys + ([LABELLER_KEY] if labeller_trained else []),
                      plots_dir=output / "plots")
    print(format_table(report))
    stages["evaluate"] = {"path": str(write_report(report, output / "evaluation.json"))}

    models_dir = output / "models"
    _stage("export + verify --check-specs", models_dir)
    exported = export_networks(checkpoint_dir, models_dir, trained_keys)
    print_reports([verdict for _, verdict in exported])         # faults on stderr, as kelly export
    failed_exports = [str(path) for path, verdict in exported if not verdict.ok]
    stages["export"] = {"files": [str(path) for path, _ in exported], "failed": failed_exports}

    ok = not trained["failed"] and not failed_exports and stages.get("labels", {}).get("ok", True)
    seconds = time.perf_counter() - started
    print(f"\npipeline {'finished' if ok else 'FAILED'} in {seconds:.0f} s: {len(exported)} network(s) exported "
          f"to {models_dir}" + (f"; failed: {', '.join(list(trained['failed']) + failed_exports)}"
                                if not ok else ", every one verified against its checkpoint and the plugin's spec"))
    return {"ok": ok, "stages": stages, "seconds": seconds, "output": str(output)}


def labels_stage(cache_dir: Path, output: Path, *, progress: bool = True, train_settings: dict | None = None) -> dict:
    """EMOPIA -> labeller -> labels: with EMOPIA rows in the cache, train the EmotionLabeller and
    label the cache's unannotated MIDI items with it (`kelly.label.label_cache`); without them, or
    when it cannot be trained, fall back to the proxy labels and say so. Returns {"labeller_trained",
    "ok", "fallback" (why, or None), "train", "labels"}."""
    from preprocess.cache import reader
    from preprocess.cache.labels import read_labels, remove_labels
    from preprocess.features.spec import LABELLER_KEY
    from train.cli import format_summary as train_report, run_training
    from train.config import TrainOptions
    from kelly.label import format_cache_summary, label_cache

    clips = sum(reader.cache_summary(cache_dir)["samples"].get(LABELLER_KEY, {}).values())
    result = {"labeller_trained": False, "ok": True, "fallback": None, "train": None, "labels": None}
    if clips:
        _stage("train the EmotionLabeller", f"{clips:,} EMOPIA frames in {cache_dir}")
        trained = run_training(TrainOptions(cache_dir=cache_dir, output=output, models=[LABELLER_KEY],
                                            progress=progress, overrides=dict(train_settings or {})))
        print(train_report(trained))
        result["train"] = trained
        if not trained["failed"]:
            _stage("labels", f"the EmotionLabeller labels the unannotated MIDI items of {cache_dir}")
            summary = label_cache(output / "checkpoints", cache_dir, progress=progress)
            print(format_cache_summary(summary), flush=True)
            result.update(labeller_trained=True, labels=summary)
            return result
        result.update(ok=False, fallback="the EmotionLabeller could not be trained")
    else:
        result["fallback"] = "no EMOPIA clips in the cache"
    previous = read_labels(cache_dir)
    if previous is not None:
        remove_labels(cache_dir)
        print(f"removed the labels table an earlier run left in {cache_dir} ({previous.label_source})")
    print(f"\n== labels: {result['fallback']}: the networks train on the proxy labels "
          f"(preprocess.features.proxy_labels); human labels are kept", flush=True)
    return result


def preprocess_stage(datasets_dir: Path, cache_dir: Path, **options) -> dict:
    """`kelly preprocess all` from `datasets_dir` into `cache_dir`: its summary, printed and returned.
    options: `preprocess.job.run_preprocess`'s."""
    from preprocess.cli import format_summary
    from preprocess.job import run_preprocess

    summary = run_preprocess("all", datasets_dir=datasets_dir, cache_dir=cache_dir, **options)
    print(format_summary(summary), flush=True)
    return summary


def make_sample_cache(root: Path, *, progress: bool = True) -> Path:
    """The sample datasets under `root/datasets` (kept when already there), preprocessed into
    `root/cache` (the job skips what that cache already holds); returns the cache folder
    (`kelly train --use-synthetic` trains on it)."""
    from preprocess.sample_data import make_sample_data

    datasets, cache = root / "datasets", root / "cache"
    if datasets.is_dir() and any(datasets.iterdir()):
        print(f"using the sample data already in {datasets}", flush=True)
    else:
        print(f"making sample data in {datasets}", flush=True)
        make_sample_data(datasets)
    print(f"preprocessing {datasets} into {cache}", flush=True)
    preprocess_stage(datasets, cache, progress=progress)
    return cache


def _stage(name: str, detail) -> None:
    print(f"\n== {name}: {detail}", flush=True)
