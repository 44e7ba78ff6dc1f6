"""The `preprocess` job: datasets -> feature cache, in parallel, resumable, with one writer.

The worker processes start first, and import the feature code while the dataset readers list every
source's items (a reader's error stops the run before any work). Sources whose files and settings
are those of their last complete run are not read again (`fingerprint`). Items the manifest already
holds for the same (content hash, feature version, label digest) are skipped (`plan`); the rest of
all sources go through `isolated_map` as one stream (worker processes compute arrays and return
them; a crash or a hang is one item's failure), so that no worker waits at the end of a source
(`source_run`). The parent alone writes shards from the stream of results, per source, flushing
one every `shard_items` items or `shard_megabytes` MB, and commits each to the manifest in one
transaction (`cache.writer`). Killing the job at any moment loses at most the shard being written;
the next run cleans up and computes the rest. Before any work, the shards of the sources run are
checked against what the manifest recorded when they were written (`cache.integrity`: size and
signature, the content digest where the file was written to since, every digest with `check`):
a damaged shard is dropped, with a line on stderr, and its items are computed by this same run.

SIGTERM, SIGINT and SIGHUP stop the run cleanly (`stopping`): the shard being written is finished
and committed, the worker processes are ended, temporaries removed, and `Stopped` reaches the
caller with what the cache kept; a rerun goes on from there.

After the sources: shards no item points to any more are deleted, and the per-band mean and std of
each network's training inputs are written to ``<cache>/stats.json`` (`cache.stats`).

    summary = run_preprocess("all", datasets_dir="datasets", cache_dir="cache", workers=8)
    print(preprocess.cli.format_summary(summary))
"""
from __future__ import annotations

import functools
import math
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from common.errors import KellyError
from common.files import check_output_dir
from preprocess.cache.integrity import DATASETS_DIR_KEY
from preprocess.cache.layout import SHARD_FORMAT
from preprocess.cache.manifest import MANIFEST_NAME, Manifest, current_feature_version
from preprocess.cache.shards import ItemResult
from preprocess.cache.stats import update_input_stats
from preprocess.cache.writer import ShardCheck, cache_lock, check_shards, clean_cache
from preprocess.extract import prepare_worker
from preprocess.features import spec
from preprocess.fingerprint import (
    forget_fingerprint,
    remember_fingerprint,
    source_fingerprint,
    unchanged_source_summary,
    unchanged_sources,
)
from preprocess.parallel import WorkerPool, check_scheduler, default_workers
from preprocess.plan import run_extract_task
from preprocess.stopping import Stopped, stop_on_signals
from preprocess.source_run import run_sources

DEFAULT_FILE_TIMEOUT = 120.0
DEFAULT_SHARD_ITEMS = 512
DEFAULT_SHARD_MEGABYTES = 64.0
FAILURE_EXAMPLES = 5


def _reporting_stops(job: Callable[..., dict]) -> Callable[..., dict]:
    """`job` run with SIGTERM, SIGINT and SIGHUP turned into `Stopped` (`stopping.stop_on_signals`);
    a Stopped leaves with what the cache kept (`Stopped.kept`)."""
    @functools.wraps(job)
    def run(*args, **options) -> dict:
        since = time.time()
        with stop_on_signals():         # inside it, a second signal does not cut the report short
            try:
                return job(*args, **options)
            except Stopped as stop:
                stop.kept = _what_a_stop_kept(Path(options.get("cache_dir", "cache")), since)
                raise

    return run


def _what_a_stop_kept(cache_dir: Path, since: float) -> dict | None:
    """{"cache_dir", "new": items done since `since` (time.time()), "failed": failures recorded since,
    "done": done items in the cache}; None when the stopped run had no cache to open yet."""
    if not (cache_dir / MANIFEST_NAME).is_file():
        return None
    with Manifest.open(cache_dir) as manifest:
        new = manifest.status_since(since)
        done = manifest.status_since(0.0).get("done", 0)
    return {"cache_dir": str(cache_dir), "new": new.get("done", 0), "failed": new.get("failed", 0), "done": done}


@_reporting_stops
def run_preprocess(
    sources: str | Sequence[str] = "all",
    *,
    datasets_dir: str | Path = "datasets",
    cache_dir: str | Path = "cache",
    workers: int | None = None,
    limit: int | None = None,
    force: bool = False,
    retry_failed: bool = False,
    file_timeout: float | None = DEFAULT_FILE_TIMEOUT,
    layout: str | None = None,
    seed: int = 0,
    validation_split: float = 0.2,
    test_split: float = 0.0,
    backend: str = "loky",
    scheduler: str | None = None,
    extract: Callable[..., ItemResult] | None = None,
    shard_items: int = DEFAULT_SHARD_ITEMS,
    shard_megabytes: float = DEFAULT_SHARD_MEGABYTES,
    check: bool = False,
    progress: bool = True,
) -> dict:
    """Preprocess `sources` ("all" or names from spec.SOURCES) into `cache_dir`; return the summary.

    workers: processes (default: every core); limit: first N items per source; force: recompute
    everything; retry_failed: recompute items that failed before; file_timeout: seconds one item
    may take; layout/seed/validation_split/test_split: passed to the dataset readers; backend,
    scheduler: see `preprocess.parallel.isolated_map`; extract: item -> ItemResult (default
    `preprocess.extract.extract_item`; must be a module-level function); check: compare every
    shard of `sources` with its recorded content digest, not only its size (`cache.integrity`).
    Either way a damaged shard is dropped and its items are computed again by this run.

    SIGTERM, SIGINT and SIGHUP stop it cleanly: `preprocess.stopping.Stopped` with `kept` (what the
    cache holds; a rerun goes on from there).
    """
    started = time.perf_counter()
    datasets_dir, cache_dir = Path(datasets_dir), Path(cache_dir)
    workers = _checked_options(workers, limit, backend, shard_items, shard_megabytes)
    extract = extract or _default_extract()
    wanted, not_found = _wanted_sources(sources, datasets_dir, layout)
    check_output_dir(cache_dir, "--cache-dir")      # before any work starts
    if backend == "dask":
        check_scheduler(scheduler)
    reading = {"layout": layout, "seed": seed, "validation_split": validation_split, "test_split": test_split}
    fingerprints = {} if limit is not None else {
        name: source_fingerprint(datasets_dir, name, _settings(reading, extract)) for name in wanted}
    unchanged = {} if force or retry_failed or check else unchanged_sources(cache_dir, fingerprints)
    to_read = [name for name in wanted if name not in unchanged]

    func = functools.partial(run_extract_task, extract=extract)
    with WorkerPool(func, workers=workers, file_timeout=file_timeout, backend=backend, scheduler=scheduler,
                    prepare=functools.partial(prepare_worker, tuple(to_read)), start=bool(to_read)) as pool:
        read, read_seconds = _read_sources(datasets_dir, to_read, reading)
        pool.ready(any(result.items for result in read.values()))
        with cache_lock(cache_dir):
            with Manifest.open(cache_dir, create=True) as manifest:
                rebuilt_from = manifest.rebuilt_from
                shard_check = _check_shards(manifest, cache_dir, datasets_dir, wanted, read, unchanged, check)
                cleanup = clean_cache(cache_dir, manifest)
                cleanup["damaged_shards_dropped"] = len(shard_check.dropped)
                per_source = _fill_cache(manifest, cache_dir, wanted, read, read_seconds, unchanged, fingerprints,
                                         pool, limit=limit, force=force, retry_failed=retry_failed,
                                         shard_items=shard_items, shard_megabytes=shard_megabytes, progress=progress)
                cleanup["unreferenced_shards_removed"] += clean_cache(cache_dir, manifest)["unreferenced_shards_removed"]
                cache_samples = manifest.samples_by_split()
            pool.end()                  # nothing left for the workers: they do not wait through the statistics
            stats_networks, stats_recomputed = update_input_stats(cache_dir) if cache_samples else ([], False)
    summary = _summary(datasets_dir, cache_dir, per_source, not_found, cleanup, cache_samples,
                       stats_networks, stats_recomputed, time.perf_counter() - started)
    summary["rebuilt_from"] = rebuilt_from
    summary["shard_check"] = {"checked": shard_check.checked, "digests": shard_check.digests,
                              "verified_all": check, "dropped": shard_check.dropped}
    return summary


# --- the steps -------------------------------------------------------------------------------------

def _check_shards(manifest: Manifest, cache_dir: Path, datasets_dir: Path, wanted: list[str], read: dict,
                  unchanged: dict[str, dict], verify_all: bool) -> ShardCheck:
    """Drop the damaged shards of the wanted sources (a line each on stderr), so that this run computes
    their items again, and record the datasets folder each source is read from (the reader names it)."""
    report = check_shards(cache_dir, manifest, wanted, verify_all=verify_all)
    for entry in report.dropped:
        print(f"{cache_dir / entry['shard']}: {entry['problem']}: dropped from the manifest, its "
              f"{entry['items']:,} item(s) computed again", file=sys.stderr)
    for name in report.sources & set(unchanged):
        # damaged since this run looked (a moment ago) and not read: the next run computes them
        forget_fingerprint(manifest, name)
        print(f"{cache_dir}: {name} was not read in this run: `kelly preprocess {name}` computes the items "
              f"of its dropped shard(s)", file=sys.stderr)
    for name in read:
        manifest.set_meta(DATASETS_DIR_KEY + name, str(datasets_dir.resolve()))
    return report


def _fill_cache(manifest: Manifest, cache_dir: Path, wanted: list[str], read: dict, read_seconds: dict[str, float],
                unchanged: dict[str, dict], fingerprints: dict[str, str | None], pool: WorkerPool,
                **options) -> dict[str, dict]:
    """Compute what the sources just read need, into the cache; returns every wanted source's summary
    (the unchanged ones' from what their last complete run stored)."""
    if manifest.rebuilt_from:
        print(f"{cache_dir}: the cache was written in the layout {manifest.rebuilt_from}, this code "
              f"writes {SHARD_FORMAT}: rebuilding it (every item is computed again)", file=sys.stderr)
    finished: dict[str, dict] = {}

    def source_finished(name: str, summary: dict) -> None:
        summary["read_seconds"] = read_seconds[name]
        finished[name] = summary
        if name in fingerprints:             # the source is complete: an unchanged rerun may skip it
            remember_fingerprint(manifest, name, fingerprints[name], summary)

    for name in read:
        forget_fingerprint(manifest, name)          # remembered again once the source is complete
    run_sources(read, manifest, cache_dir, pool.map, source_finished, **options)
    read.clear()                        # every item is filed: the items are not needed any more
    return {name: finished[name] if name not in unchanged else
            unchanged_source_summary(unchanged[name], manifest.status_counts(name)) for name in wanted}


def _default_extract():
    from preprocess.extract import extract_item

    return extract_item


def _checked_options(workers: int | None, limit: int | None, backend: str, shard_items: int,
                     shard_megabytes: float) -> int:
    """The number of workers; KellyError for a setting out of range."""
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise KellyError(f"--workers must be at least 1, got {workers}")
    if limit is not None and limit < 0:
        raise KellyError(f"--limit must be >= 0, got {limit}")
    if shard_items < 1:
        raise KellyError(f"--shard-items must be at least 1, got {shard_items}")
    if not (shard_megabytes > 0 and math.isfinite(shard_megabytes)):
        raise KellyError(f"--shard-megabytes must be a positive number of megabytes, got {shard_megabytes}")
    if backend not in ("loky", "dask"):
        raise KellyError(f"--backend must be loky or dask, got {backend!r}")
    return workers


def _wanted_sources(sources: str | Sequence[str], datasets_dir: Path, layout: str | None) -> tuple[list[str], list[str]]:
    """(the sources to preprocess, those "all" looked for and did not find)."""
    from preprocess.datasets import available_sources

    if isinstance(sources, str):
        sources = [sources]
    if list(sources) != ["all"]:
        unknown = [s for s in sources if s not in spec.SOURCES]
        if unknown:
            raise KellyError(f"unknown source {unknown[0]!r}; known: {', '.join(spec.SOURCES)}")
        return list(sources), []
    if layout is not None:
        raise KellyError("--layout applies to one source; name it (e.g. `kelly preprocess lakh --layout lmd_matched`)")
    if not datasets_dir.is_dir():
        raise KellyError(f"{datasets_dir}: datasets folder not found (set --datasets-dir)")
    wanted = available_sources(datasets_dir)
    if not wanted:
        raise KellyError(f"{datasets_dir}: no dataset found (looked for {', '.join(spec.SOURCES)}); "
                         f"see datasets/README.md, or `kelly sample-data {datasets_dir}`")
    return wanted, [s for s in spec.SOURCES if s not in wanted]


def _settings(reading: dict, extract: Callable) -> dict:
    """Everything besides the files that decides a source's items and arrays (for its fingerprint)."""
    return {**reading, "extract": f"{getattr(extract, '__module__', '')}.{getattr(extract, '__qualname__', repr(extract))}",
            "feature_version": current_feature_version()}


def _read_sources(datasets_dir: Path, names: list[str], reading: dict) -> tuple[dict, dict[str, float]]:
    """Each source's reader result, and the seconds each took."""
    from preprocess.datasets import load_source

    read, seconds = {}, {}
    for name in names:
        began = time.perf_counter()
        read[name] = load_source(datasets_dir, name, reading["layout"], seed=reading["seed"],
                                 validation_split=reading["validation_split"], test_split=reading["test_split"])
        seconds[name] = time.perf_counter() - began
    return read, seconds


def _summary(datasets_dir: Path, cache_dir: Path, per_source: dict, not_found: list[str], cleanup: dict,
             cache_samples: dict, stats_networks: list[str], stats_recomputed: bool, seconds: float) -> dict:
    """The run's summary (`preprocess.cli.format_summary` prints it): per source, the failures by
    kind with a few examples each, the samples in the cache, what was cleaned up."""
    failures_by_reason: dict[str, dict] = {}
    new_samples: dict[str, int] = {}
    for name, info in per_source.items():
        for entry in info.pop("failures"):
            bucket = failures_by_reason.setdefault(entry.reason, {"count": 0, "examples": []})
            bucket["count"] += 1
            if len(bucket["examples"]) < FAILURE_EXAMPLES:
                bucket["examples"].append({"source": name, "file": entry.source_path, "item_id": entry.item_id,
                                           "stage": entry.stage, "error": entry.error})
        for network, n in info["samples"].items():
            new_samples[network] = new_samples.get(network, 0) + n
    return {
        "datasets_dir": str(datasets_dir),
        "cache_dir": str(cache_dir),
        "feature_version": current_feature_version(),
        "sources": per_source,
        "not_found": not_found,
        "new_samples": new_samples,
        "samples": {n: {s: cache_samples.get(n, {}).get(s, 0) for s in spec.SPLITS}
                    for n in spec.TRAINED_NETWORKS},
        "failures": failures_by_reason,
        "cleanup": cleanup,
        "stats": {"networks": stats_networks, "recomputed": stats_recomputed},
        "seconds": seconds,
    }
