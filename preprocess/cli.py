"""`kelly sample-data` and `kelly preprocess`: the command line of the preprocess stage."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from preprocess.features.spec import SOURCES

SOURCE_CHOICES = ("all", *SOURCES)


def _number(text: str, kind: type, wanted: str) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = _number(text, int, "a whole number of at least 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _number(text, int, "a whole number (0 or more)")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _fraction(text: str) -> float:
    value = _number(text, float, "a fraction in [0, 1)")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _seconds(text: str) -> float:
    value = _number(text, float, "a positive number of seconds")
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _megabytes(text: str) -> float:
    value = _number(text, float, "a positive number of megabytes")
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of megabytes, got {text}")
    return value


def add_parsers(subparsers) -> None:
    """Register `sample-data` and `preprocess` on the `kelly` command."""
    s = subparsers.add_parser(
        "sample-data", help="write small sample datasets in every supported layout",
        description="Write small sample datasets (real musical content, synthesised) to DIR, laid out as the "
                    "real datasets are distributed, so the whole pipeline can run without downloads.")
    s.add_argument("dir", type=Path, metavar="DIR", help="where to write the datasets (e.g. ./datasets)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    s.add_argument("--legacy", action="store_true", help="use the older guides' simpler layouts")
    s.add_argument("--small", action="store_true", help="a few items per source (seconds instead of tens of seconds)")
    s.set_defaults(func=sample_data_command)

    from preprocess.job import DEFAULT_FILE_TIMEOUT, DEFAULT_SHARD_ITEMS, DEFAULT_SHARD_MEGABYTES

    p = subparsers.add_parser(
        "preprocess", help="turn the datasets into the HDF5 feature cache",
        description="Read the datasets, compute every network's inputs and targets in parallel worker processes "
                    "and write them to the feature cache. Reruns skip files already done (same content, same "
                    "feature version); a file that crashes or hangs a worker is recorded as failed and the run "
                    "goes on.")
    p.add_argument("source", choices=SOURCE_CHOICES, nargs="?",
                   help="one source, or all sources found (with --failures: only that source's failures)")
    p.add_argument("--datasets-dir", type=Path, default=Path("datasets"), help="where the datasets are (default: ./datasets)")
    p.add_argument("--cache-dir", type=Path, default=Path("cache"), help="where the cache goes (default: ./cache)")
    p.add_argument("--workers", type=_positive_int, default=None, help="worker processes (default: every core)")
    p.add_argument("--limit", type=_non_negative_int, default=None, help="only the first N items of each source")
    p.add_argument("--force", action="store_true", help="recompute every item, even those already done")
    p.add_argument("--retry-failed", action="store_true", help="recompute items that failed in an earlier run")
    p.add_argument("--file-timeout", type=_seconds, default=DEFAULT_FILE_TIMEOUT, metavar="SECONDS",
                   help=f"seconds one file may take before it is recorded as a timeout (default: {DEFAULT_FILE_TIMEOUT:g})")
    p.add_argument("--layout", default=None, help="force a dataset layout (one source only, e.g. lmd_matched)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split for datasets without an official one (default: 0)")
    p.add_argument("--validation-split", type=_fraction, default=0.2, help="validation fraction where there is no official split (default: 0.2)")
    p.add_argument("--test-split", type=_fraction, default=0.0, help="test fraction where there is no official split (default: 0)")
    p.add_argument("--backend", choices=("loky", "dask"), default="loky",
                   help="loky: processes on this machine; dask: a dask.distributed cluster (default: loky)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="dask scheduler address, e.g. tcp://10.0.0.5:8786 (--backend dask; default: a local cluster)")
    p.add_argument("--shard-items", type=_positive_int, default=DEFAULT_SHARD_ITEMS,
                   help=f"items per shard file (default: {DEFAULT_SHARD_ITEMS})")
    p.add_argument("--shard-megabytes", type=_megabytes, default=DEFAULT_SHARD_MEGABYTES, metavar="MB",
                   help=f"a shard is also written once its arrays reach this size (default: {DEFAULT_SHARD_MEGABYTES:g})")
    p.add_argument("--check", action="store_true",
                   help="compare every shard of the sources with the content digest recorded when it was written "
                        "(reads the whole cache; every run checks sizes, and digests where a file was written to "
                        "since): a damaged shard is dropped and its items computed again")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--failures", action="store_true",
                   help="compute nothing: list every failure recorded in --cache-dir, with its reason")
    p.set_defaults(func=preprocess_command)


def sample_data_command(args) -> int:
    from common.files import check_output_dir
    from preprocess.sample_data import make_sample_data

    check_output_dir(args.dir, "sample-data DIR")
    summary = make_sample_data(args.dir, seed=args.seed, legacy=args.legacy, small=args.small)
    print(f"sample data {'found' if summary.get('reused') else 'written'} in {args.dir}:")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0


def preprocess_command(args) -> int:
    import sys

    from common.errors import KellyError
    from preprocess.job import run_preprocess
    from preprocess.stopping import Stopped

    if args.failures:
        print(format_failures(args.cache_dir, None if args.source in (None, "all") else args.source))
        return 0
    if args.source is None:
        raise KellyError(f"name a source ({', '.join(SOURCE_CHOICES)}), or give --failures to list the failures "
                         "recorded in the cache")
    if args.scheduler and args.backend != "dask":
        raise KellyError("--scheduler needs --backend dask")
    if args.validation_split + args.test_split >= 1.0:
        raise KellyError(f"--validation-split {args.validation_split:g} and --test-split {args.test_split:g} "
                         "leave nothing to train on: they must add up to less than 1")
    try:
        summary = run_preprocess(
            args.source, datasets_dir=args.datasets_dir, cache_dir=args.cache_dir, workers=args.workers,
            limit=args.limit, force=args.force, retry_failed=args.retry_failed, file_timeout=args.file_timeout,
            layout=args.layout, seed=args.seed, validation_split=args.validation_split, test_split=args.test_split,
            backend=args.backend, scheduler=args.scheduler, shard_items=args.shard_items,
            shard_megabytes=args.shard_megabytes, check=args.check, progress=not args.quiet)
    except Stopped as stop:
        print(f"kelly preprocess: {format_stop(stop)}", file=sys.stderr)
        return stop.exit_code
    print(format_summary(summary))
    return 0


def format_stop(stop) -> str:
    """The one line `kelly preprocess` prints when a signal stopped it: what the cache kept."""
    kept = stop.kept
    if kept is None:
        return f"stopped by {stop.name} before the cache was opened: nothing was computed"
    failed = f" and {kept['failed']:,} failure(s)" if kept["failed"] else ""
    return (f"stopped by {stop.name}: kept {kept['new']:,} item(s) computed by this run{failed} "
            f"({kept['done']:,} done in {kept['cache_dir']} in all); the items in progress were discarded, "
            f"and the same command again computes the rest")


def failures_command_line(cache_dir: str | Path) -> str:
    """The command that lists every failure recorded in `cache_dir` (quoted for a POSIX shell)."""
    import shlex

    return f"kelly preprocess --failures --cache-dir {shlex.quote(str(cache_dir))}"


def format_failures(cache_dir: str | Path, source: str | None = None) -> str:
    """Every failure the manifest of `cache_dir` records for the current feature version (or for
    one source), one line each: the file, the kind (error, crash, timeout) and the reason."""
    from preprocess.cache.manifest import Manifest, current_feature_version

    with Manifest.open(cache_dir) as manifest:       # KellyError when there is no cache
        records = manifest.failures(source)
    where = f"{cache_dir}" + (f", source {source}" if source else "")
    if not records:
        return f"no failures recorded in {where} (feature version {current_feature_version()})"
    lines = [f"{len(records):,} failure(s) recorded in {where} (feature version {current_feature_version()}):"]
    by_source: dict[str, list] = {}
    for record in records:
        by_source.setdefault(record.source, []).append(record)
    for name, found in by_source.items():
        lines.append(f"{name} ({len(found):,}):")
        for record in found:
            item = "" if record.item_id in record.source_path else f" [item {record.item_id}]"
            lines.append(f"  {record.source_path}{item}: {record.reason}: {record.error}")
    lines.append("(`kelly preprocess SOURCE --retry-failed` computes them again)")
    return "\n".join(lines)


def format_summary(summary: dict) -> str:
    """The summary `preprocess.job.run_preprocess` returns, as the lines `kelly preprocess` prints."""
    from preprocess.cache.layout import SHARD_FORMAT
    from preprocess.datasets.base import missing_lines, unused_lines

    lines = [f"preprocess: {len(summary['sources'])} source(s) in {summary['seconds']:.1f} s "
             f"-> {summary['cache_dir']} (feature version {summary['feature_version']})"]
    if summary.get("rebuilt_from"):
        lines.append(f"  the cache was in the layout {summary['rebuilt_from']}, rebuilt in {SHARD_FORMAT}")
    for name, s in summary["sources"].items():
        extra = ["unchanged since the last complete run, not read again"] if s.get("unchanged") else []
        if s["already_done"]:
            extra.append(f"{s['already_done']:,} already done")
        if s["failed_before"]:
            extra.append(f"{s['failed_before']:,} failed before (--retry-failed retries them)")
        if s["split_changes"]:
            extra.append(f"{s['split_changes']:,} moved to another split")
        if s["removed"]:
            extra.append(f"{s['removed']:,} no longer in the dataset, dropped")
        if s["limited"]:
            extra.append("--limit applied")
        rate = s["computed"] / s["seconds"] if s["seconds"] > 0 else 0.0
        lines.append(f"  {name:<8} {s['items']:>8,} items ({s['layout']}): computed {s['computed']:,} "
                     f"({s['done']:,} done, {s['failed']:,} failed) in {s['seconds']:.1f} s ({rate:.1f} files/s)"
                     + (f"; {'; '.join(extra)}" if extra else ""))
        lines += [f"  {'':<8} {line}" for line in missing_lines(s.get("missing", {}))]
        lines += [f"  {'':<8} {line}" for line in unused_lines(s.get("unused", {}))]
    if summary["not_found"]:
        lines.append(f"  not found under {summary['datasets_dir']}: {', '.join(summary['not_found'])}")
    lines.append("samples in the cache (train / validation / test):")
    for network, splits in summary["samples"].items():
        new = summary["new_samples"].get(network, 0)
        lines.append(f"  {network:<9} {splits['train']:>10,} / {splits['validation']:>9,} / {splits['test']:>9,}"
                     + (f"   (+{new:,} this run)" if new else ""))
    unlisted = 0
    if summary["failures"]:
        lines.append("failures this run:")
        for reason, bucket in sorted(summary["failures"].items()):
            lines.append(f"  {reason}: {bucket['count']:,}")
            for ex in bucket["examples"]:
                lines.append(f"    {ex['file']}: {ex['error']}")
            if bucket["count"] > len(bucket["examples"]):
                lines.append(f"    ... and {bucket['count'] - len(bucket['examples']):,} more")
                unlisted += bucket["count"] - len(bucket["examples"])
    else:
        lines.append("failures this run: none")
    failed_before = sum(s["failed_before"] for s in summary["sources"].values())
    if unlisted or failed_before:
        shown = [f"{unlisted:,} more this run" if unlisted else "",
                 f"{failed_before:,} from earlier runs" if failed_before else ""]
        lines.append(f"every failure with its reason ({' and '.join(x for x in shown if x)} not listed above): "
                     f"{failures_command_line(summary['cache_dir'])}")
    check = summary.get("shard_check")
    if check and (check["dropped"] or check["verified_all"]):
        how = "content digests compared" if check["verified_all"] else "sizes checked"
        lines.append(f"shards checked: {check['checked']:,} ({how}); damaged and recomputed: {len(check['dropped']):,}")
        lines += [f"  {entry['shard']}: {entry['problem']} ({entry['items']:,} item(s) computed again)"
                  for entry in check["dropped"]]
    cleanup = {k: v for k, v in summary["cleanup"].items() if v and k != "damaged_shards_dropped"}
    if cleanup:
        lines.append("cleaned up: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in cleanup.items()))
    if summary["stats"]["networks"]:
        state = "computed" if summary["stats"]["recomputed"] else "unchanged"
        lines.append(f"input statistics ({state}): {', '.join(summary['stats']['networks'])}")
    return "\n".join(lines)
