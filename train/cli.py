"""`kelly train` and `kelly evaluate`.

`kelly train` trains the chosen networks one after another from the cache and writes
`<output>/checkpoints/`, `history/` and `plots/` (file names: `train.outputs`). Before the first
epoch it checks that those folders can be written and removes the temporaries a killed run left
there. A network that fails (too little data, a NaN loss) is reported and the others go on; the
exit code is then 1. `run_training(options)` is the same run from Python (the pipeline command uses it).

Nothing heavy is imported at module level: torch, numpy and h5py load when a handler runs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from common.errors import KellyError
from preprocess.features.spec import LABELLER_KEY
from train.config import (DEVICES, LR_SCHEDULES, MIXED_PRECISION, NETWORK_NAMES, TRAINED_NAMES, NetworkConfig,
                          TrainOptions)

_DEFAULTS = NetworkConfig()
#: command-line flag dest -> NetworkConfig field (the flags that override training settings)
SETTING_FLAGS = ("epochs", "batch_size", "learning_rate", "weight_decay", "validation_split",
                 "early_stopping_patience", "early_stopping_min_delta", "grad_clip", "lr_schedule",
                 "sequence_length", "seed", "device", "memory_budget_mb", "carry_state", "mixed_precision",
                 "threads")
#: settings a resumed run may change (the rest come from the checkpoint, or the result would differ)
RESUME_FLAGS = ("epochs", "device", "memory_budget_mb", "threads")


def _number(kind: type, low: float, *, inclusive: bool = True, high: float | None = None):
    """An argparse type: a `kind` number >= low (> low when not inclusive, and < high when given);
    anything else is a usage error (exit 2) naming the bound, before any work."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value != value or (value < low if inclusive else value <= low) or (high is not None and value >= high):
            bound = f"{'>=' if inclusive else '>'} {low:g}" + (f" and < {high:g}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be {bound}")
        return value
    parse.__name__ = kind.__name__                      # argparse names the type in its messages
    return parse


POSITIVE_INT, COUNT = _number(int, 1), _number(int, 0)
POSITIVE, NON_NEGATIVE = _number(float, 0, inclusive=False), _number(float, 0)
FRACTION = _number(float, 0, high=1)


def add_parsers(subparsers) -> None:
    d = _DEFAULTS
    p = subparsers.add_parser(
        "train", help="train the networks from the feature cache",
        description="Train the five networks (or --models) from the cache. Settings: defaults < "
                    "--config file < command-line flags.")
    p.add_argument("--cache-dir", type=Path, default=Path("cache"), help="the feature cache (default: ./cache)")
    p.add_argument("--output", "-o", type=Path, default=Path("."),
                   help="root for checkpoints/, history/, plots/ (default: .)")
    p.add_argument("--models", nargs="+", metavar="MODEL",
                   help=f"networks to train, by key or class name (default: the plugin's five: "
                        f"{', '.join(NETWORK_NAMES)}; the EmotionLabeller, which labels MIDI for them, "
                        "is trained when named: labeller)")
    p.add_argument("--config", type=Path, dest="config_file", metavar="CONFIG.json",
                   help='JSON with "training", "models", "datasets" sections')
    p.add_argument("--epochs", "-e", type=POSITIVE_INT, help=f"(default: {d.epochs})")
    p.add_argument("--batch-size", "-b", type=POSITIVE_INT,
                   help=f"(default: {d.batch_size}, per network: train.config.NETWORK_DEFAULTS)")
    p.add_argument("--learning-rate", "-lr", type=POSITIVE, help=f"Adam's learning rate (default: {d.learning_rate})")
    p.add_argument("--weight-decay", type=NON_NEGATIVE, help=f"(default: {d.weight_decay})")
    p.add_argument("--validation-split", "-v", type=FRACTION,
                   help="fraction of ITEMS moved to validation, only for a cache without validation rows "
                        f"(default: {d.validation_split})")
    p.add_argument("--early-stopping-patience", type=COUNT,
                   help=f"epochs without improvement before stopping, 0 = never (default: {d.early_stopping_patience})")
    p.add_argument("--early-stopping-min-delta", type=NON_NEGATIVE,
                   help=f"smallest validation-loss drop that counts (default: {d.early_stopping_min_delta})")
    p.add_argument("--grad-clip", type=NON_NEGATIVE, help=f"max gradient norm, 0 = off (default: {d.grad_clip})")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, help=f"(default: {d.lr_schedule})")
    p.add_argument("--sequence-length", type=POSITIVE_INT,
                   help=f"windows per training sequence of the LSTM networks (default: {d.sequence_length})")
    p.add_argument("--seed", type=int, help=f"(default: {d.seed})")
    p.add_argument("--device", "-d", choices=DEVICES, help=f"(default: {d.device})")
    p.add_argument("--memory-budget-mb", type=POSITIVE,
                   help="a network's cache rows above this are streamed block by block "
                        f"(default: {d.memory_budget_mb:g})")
    p.add_argument("--carry-state", action=argparse.BooleanOptionalAction, default=None,
                   help="LSTM networks: carry the state from chunk to chunk within a piece, as the plugin runs "
                        f"them (default: {'on' if d.carry_state else 'off'})")
    p.add_argument("--mixed-precision", choices=MIXED_PRECISION,
                   help="autocast on CUDA: bf16 where supported, else fp16 with a gradient scaler; auto is off "
                        f"on the CPU (default: {d.mixed_precision})")
    p.add_argument("--threads", type=POSITIVE_INT,
                   help=f"torch's CPU threads per process; 1 keeps a shared machine fast (default: {d.threads})")
    p.add_argument("--nproc", type=POSITIVE_INT, default=1,
                   help="processes training each network data-parallel (started through torchrun; gloo on "
                        "the CPU, nccl on CUDA) (default: 1)")
    p.add_argument("--resume", metavar="MODEL",
                   help="continue MODEL (key or class name, or 'all') from checkpoints/<classname>_latest.pt; "
                        "its settings come from the checkpoint")
    p.add_argument("--use-synthetic", action="store_true",
                   help="make the sample datasets under <output>/synthetic, preprocess them, and train on that cache")
    p.add_argument("--no-history", action="store_true", help="write no history/ files")
    p.add_argument("--no-plots", action="store_true", help="draw no plots/")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--max-steps", type=POSITIVE_INT, metavar="N",
                   help="stop each network after N optimizer steps (smoke runs; timing the first batch)")
    p.set_defaults(func=handle_train)

    e = subparsers.add_parser(
        "evaluate", help="held-out metrics of trained networks beside a trivial baseline",
        description="Evaluate <checkpoint-dir>/<classname>_best.pt on the cache's test split (validation when "
                    "there is none); LSTM networks run one step per call as in the plugin.")
    e.add_argument("--checkpoint-dir", type=Path, default=Path("checkpoints"), help="(default: ./checkpoints)")
    e.add_argument("--cache-dir", type=Path, default=Path("cache"), help="(default: ./cache)")
    e.add_argument("--output", "-o", type=Path, default=Path("evaluation.json"),
                   help="where to save the JSON report (default: ./evaluation.json)")
    e.add_argument("--models", nargs="+", metavar="MODEL", help="networks to evaluate (default: all with a checkpoint)")
    e.add_argument("--checkpoint", choices=("best", "latest"), default="best", help="which checkpoint (default: best)")
    e.add_argument("--device", "-d", choices=DEVICES, default="cpu", help="(default: cpu)")
    e.add_argument("--plots-dir", type=Path,
                   help="where to draw the emotion-response heatmaps and the EmotionRecognizer's scatter plot "
                        "(default: plots/ beside the report)")
    e.add_argument("--grid-size", type=int, default=7,
                   help="cells per side of the valence/arousal grid of the emotion response, 7 or more (default: 7)")
    e.set_defaults(func=handle_evaluate)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    return TrainOptions(
        cache_dir=args.cache_dir, output=args.output, models=args.models, resume=args.resume,
        config_file=args.config_file, write_history=not args.no_history,
        write_plots=not args.no_plots, progress=not args.no_progress, max_steps=args.max_steps,
        overrides={name: getattr(args, name) for name in SETTING_FLAGS if getattr(args, name) is not None},
    )


def handle_train(args: argparse.Namespace) -> int:
    if args.nproc > 1:
        return start_processes(args)
    summary = run_training(options_from_args(args))
    if summary.get("rank", 0) == 0:
        print(format_summary(summary))
    return 0 if not summary["failed"] else 1


def handle_evaluate(args: argparse.Namespace) -> int:
    from common.files import check_output_dir
    from train.outputs import checkpoints_present

    keys = _keys(args.models) if args.models else None
    checkpoints_present(args.checkpoint_dir, keys or [*NETWORK_NAMES, LABELLER_KEY], args.checkpoint)  # before torch loads
    from train.evaluate import evaluate, format_table, write_report
    from train.response import MIN_GRID_SIZE

    if args.grid_size < MIN_GRID_SIZE:
        raise KellyError(f"--grid-size {args.grid_size}: the emotion-response grid needs at least {MIN_GRID_SIZE} "
                         "cells per side")
    plots_dir = args.plots_dir if args.plots_dir is not None else args.output.parent / "plots"
    check_output_dir(args.output.parent, "the folder of --output")
    check_output_dir(plots_dir, "--plots-dir")
    report = evaluate(args.checkpoint_dir, args.cache_dir, models=keys,
                      device=args.device, kind=args.checkpoint, plots_dir=plots_dir, grid_size=args.grid_size)
    print(format_table(report))
    print(f"saved {write_report(report, args.output)}")
    return 0


def start_processes(args: argparse.Namespace) -> int:
    """`kelly train --nproc N`: the same command in N processes with torchrun's environment
    (`train.distributed.launch`), after the checks that need no cache."""
    from train.distributed import launch

    if os.environ.get("WORLD_SIZE", "1") != "1":
        raise KellyError("--nproc: this process was itself started as one of several (torchrun); "
                         "give either torchrun or --nproc")
    options = options_from_args(args)
    settled(options)                                    # bad settings: one line here, not one per rank
    return launch(train_argv(args), args.nproc)


def train_argv(args: argparse.Namespace) -> list[str]:
    """The `kelly train` command line that gives `args` again, without --nproc (each process's own;
    --use-synthetic's cache, made already, is passed as --cache-dir)."""
    argv = ["train", "--cache-dir", str(args.cache_dir), "--output", str(args.output)]
    if args.models:
        argv += ["--models", *args.models]
    if args.config_file:
        argv += ["--config", str(args.config_file)]
    for name in SETTING_FLAGS:
        value = getattr(args, name)
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif value is not None:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    if args.resume:
        argv += ["--resume", args.resume]
    if args.max_steps is not None:
        argv += ["--max-steps", str(args.max_steps)]
    argv += [flag for flag, on in (("--no-history", args.no_history), ("--no-plots", args.no_plots),
                                   ("--no-progress", args.no_progress)) if on]
    return argv


def settled(options: TrainOptions) -> tuple[list[str], set[str], dict[str, NetworkConfig]]:
    """(networks in order, those resumed, each one's settings), checked before the cache opens:
    a bad setting, an unknown network, or a device that is not there is a KellyError (exit 2)."""
    from train.config import load_config_file, resolve

    file_config = load_config_file(options.config_file) if options.config_file else None
    keys = _keys(options.models) if options.models else list(NETWORK_NAMES)
    resumed = set()
    if options.resume:
        resumed = set(keys) if options.resume == "all" else set(_keys([options.resume]))
        keys = keys if options.resume == "all" else [k for k in keys if k in resumed] or sorted(resumed)
    configs = {key: None if key in resumed else resolve(key, file_config, options.overrides) for key in keys}
    devices = {c.device for c in configs.values() if c is not None} | {options.overrides.get("device", "auto")}
    if devices & {"cuda", "mps"}:
        from train.loop import resolve_device

        for device in devices:
            resolve_device(device)                      # KellyError: not on this machine
    return keys, resumed, configs


def run_training(options: TrainOptions | dict) -> dict:
    """Train the networks `options` names; a summary dict (see `format_summary`) per network.

    Started by torchrun (or `--nproc`), each network trains data-parallel over the processes;
    rank 0 alone writes and prints, and the summary carries the rank."""
    run_started = time.time()          # first_batch_seconds counts from here
    if isinstance(options, dict):
        options = TrainOptions(**options)
    keys, resumed, configs = settled(options)
    from train.distributed import world_size_from_environment

    main = os.environ.get("RANK", "0") == "0" or world_size_from_environment() == 1
    if main:
        prepare_output(options.output, resumed, history=options.write_history, plots=options.write_plots)
    cache_dir = Path(options.cache_dir)

    from preprocess.cache import reader
    from train import data as train_data
    from train.distributed import LostPeer, from_environment
    from train.loop import resolve_device, train_network

    identity = reader.cache_identity(cache_dir)          # KellyError for a missing or empty cache
    summary = {"cache_dir": str(cache_dir), "cache_identity": identity, "output": str(options.output),
               "networks": {}, "failed": []}
    say = print if main else (lambda *a, **k: None)
    started = time.perf_counter()
    for key in keys:
        entry = {"network": key, "network_name": TRAINED_NAMES[key]}
        try:
            config = configs[key] or resumed_config(options, key, quiet=not main)
            world = from_environment(resolve_device(config.device))
            summary["rank"], summary["processes"] = world.rank, world.size
            if key == LABELLER_KEY:
                from train import labeller_data

                if world.size > 1:
                    raise KellyError("the EmotionLabeller trains in one process (about 600 clips): "
                                     "train it without torchrun or --nproc")
                data = labeller_data.from_cache(cache_dir, validation_split=config.validation_split, seed=config.seed)
                say(f"{TRAINED_NAMES[key]}: {data.counts['train']} training / {data.counts['validation']} "
                    f"validation clips ({data.counts['train_songs']} / {data.counts['validation_songs']} songs, "
                    f"held out of the official training clips by song); {data.counts['official_validation']} "
                    f"official validation and {data.counts['official_test']} test clips kept for kelly evaluate",
                    flush=True)
            else:
                data = train_data.from_cache(cache_dir, key, sequence_length=config.sequence_length,
                                             validation_split=config.validation_split, seed=config.seed,
                                             memory_budget_mb=config.memory_budget_mb)
                say(f"{NETWORK_NAMES[key]}: {data.counts['train']} training / {data.counts['validation']} "
                    f"validation {'sequences' if data.sequence_length else 'samples'} from {data.counts['items']} "
                    f"items ({'in memory' if data.in_memory else 'streamed'}"
                    f"{', validation split by item' if data.resplit_by_item else ''}); batch {config.batch_size}, "
                    f"learning rate {config.learning_rate:g}, {config.threads} thread(s)"
                    f"{f', {world.size} processes' if world.size > 1 else ''}", flush=True)
            result = train_network(key, data, config, output=options.output, resume=key in resumed,
                                   cache_identity=identity, write_history=options.write_history,
                                   progress=options.progress, max_steps=options.max_steps, world=world)
            if key == LABELLER_KEY:
                from train.labeller_trees import attach_valence_trees

                say(f"{TRAINED_NAMES[key]}: {attach_valence_trees(options.output, data)}", flush=True)
        except LostPeer:
            raise                                         # the other processes are gone: nothing can go on
        except KellyError as exc:                         # every rank meets the same: rank 0 says it
            if main:
                print(f"{TRAINED_NAMES[key]}: error: {exc}", file=sys.stderr, flush=True)
            summary["failed"].append(key)
            summary["networks"][key] = dict(entry, error=str(exc))
            continue
        if result.first_batch_at is not None and "first_batch_seconds" not in summary:
            summary["first_batch_seconds"] = result.first_batch_at - run_started
            summary["first_batch_after_process_start_seconds"] = seconds_since_start(result.first_batch_at)
            say(f"first batch {summary['first_batch_seconds']:.2f} s into the run "
                f"({summary['first_batch_after_process_start_seconds']:.2f} s after the process started)", flush=True)
        if options.write_plots and result.history and main:
            from train.history import plot_history
            from train.metrics import LOSS

            plot_history(options.output, key, result.history, network_name=result.name, loss=LOSS[key],
                         metric=result.metric, baseline=result.baseline)
        summary["networks"][key] = dict(
            entry, best_epoch=result.best_epoch, val_loss=result.best_val_loss, metric=result.metric,
            val_metric=result.best_val_metric, baseline_loss=result.baseline["loss"],
            baseline_metric=result.baseline["metric"], epochs=len(result.history), epochs_run=result.epochs_run,
            stopped_early=result.stopped_early, seconds=result.seconds, steps=result.steps,
            batch_size=config.batch_size, learning_rate=config.learning_rate,
            samples_per_second=result.samples / result.seconds if result.seconds else None)
    summary["seconds"] = time.perf_counter() - started
    return summary


def prepare_output(output: str | Path, resumed=(), *, history: bool = True, plots: bool = True) -> None:
    """Before any work: check that the output folders can be written (KellyError naming the folder
    otherwise), remove the temporaries a killed run left there, and give the files of networks
    about to be resumed from a run made under the earlier names (`emotion_latest.pt`) the current ones."""
    from train import outputs

    outputs.check_outputs(output, history=history, plots=plots)
    removed = outputs.remove_stale_outputs(output)
    if removed:
        print(f"removed {len(removed)} temporary file(s) an interrupted run left under {output}", flush=True)
    for key in sorted(resumed):
        for old, new in outputs.adopt_earlier_names(output, key):
            print(f"{TRAINED_NAMES[key]}: renamed {old} to {new.name}", flush=True)


def resumed_config(options: TrainOptions, key: str, *, quiet: bool = False) -> NetworkConfig:
    """The checkpoint's settings, with only RESUME_FLAGS taken from the command line."""
    from dataclasses import replace

    from train.checkpoints import checkpoint_path, load_checkpoint

    checkpoint = load_checkpoint(checkpoint_path(options.output, key, "latest"))
    config = NetworkConfig(**checkpoint["config"])
    ignored = sorted(set(options.overrides) - set(RESUME_FLAGS))
    if ignored and not quiet:
        print(f"{TRAINED_NAMES[key]}: resuming with the checkpoint's settings; ignoring "
              f"{', '.join('--' + k.replace('_', '-') for k in ignored)}", file=sys.stderr)
    config = replace(config, **{k: v for k, v in options.overrides.items() if k in RESUME_FLAGS})
    config.validate(f"{TRAINED_NAMES[key]} settings")
    return config


def format_summary(summary: dict) -> str:
    lines = [f"{'network':<18} {'best epoch':>10} {'val loss':>10} {'metric':>18} {'baseline':>10} {'time':>8}"]
    for key, n in summary["networks"].items():
        if "error" in n:
            lines.append(f"{n['network_name']:<18} FAILED: {n['error']}")
            continue
        metric = f"{n['metric']} {n['val_metric']:.4f}"
        lines.append(f"{n['network_name']:<18} {n['best_epoch']:>10} {n['val_loss']:>10.4f} {metric:>18} "
                     f"{n['baseline_loss']:>10.4f} {n['seconds']:>7.1f}s")
    lines.append("(val loss and metric at the best epoch; baseline: the validation loss of predicting "
                 "the training mean, for harmony the training prior)")
    return "\n".join(lines)


def seconds_since_start(moment: float) -> float:
    """Seconds from this process's start to `moment` (a time.time()); from this module's import
    where the process start is unknown (no /proc)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        started = time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        started = _IMPORTED
    return moment - started


def _keys(names: list[str]) -> list[str]:
    from train.config import network_key

    keys = []
    for name in names:
        try:
            key = network_key(name)
        except ValueError as exc:
            raise KellyError(f"--models/--resume: {exc}") from None
        if key not in keys:
            keys.append(key)
    return keys


_IMPORTED = time.time()
