"""The `preprocess` job: datasets -> feature cache, in parallel, resumable, with one writer.

The worker processes start first, and import the feature code while the dataset readers list every
source's items. Items the manifest already holds for the same (content hash, feature version, label
digest) are skipped; the rest of all sources go through `isolated_map` as one stream (worker
processes compute arrays and return them; a crash or a hang is one item's failure), so that no
worker waits at the end of a source. The parent alone writes shards from the stream of results,
per source, flushing one every `shard_items` items or `shard_megabytes` MB, and commits each to
the manifest in one transaction. Killing the job at any
moment loses at most the shard being written; the next run cleans up and computes the rest.

After the sources: shards no item points to any more are deleted, and the per-band mean and std of
each network's training inputs are written to ``<cache>/stats.json`` with the cache identity.

    summary = run_preprocess("all", datasets_dir="datasets", cache_dir="cache", workers=8)
"""
from __future__ import annotations

import functools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from kelly.files import check_output_dir, describe_os_error, make_dir
from preprocess.cache.layout import SHARD_FORMAT
from preprocess.cache.manifest import (
    DoneEntry,
    FailureEntry,
    MANIFEST_NAME,
    Manifest,
    current_feature_version,
    file_hash,
    label_digest,
)
from preprocess.cache.shards import (
    ItemResult,
    remove_uncommitted,
    shard_files,
    shard_name,
    shard_number,
    write_shard,
)
from preprocess.datasets.base import missing_lines
from kelly.errors import KellyError
from preprocess.extract import metadata_read, prepare_worker
from preprocess.features import spec
from preprocess.parallel import IsolatedRunner, Ok, isolated_map, start_workers, stop_workers

DEFAULT_FILE_TIMEOUT = 120.0
DEFAULT_SHARD_ITEMS = 512
DEFAULT_SHARD_MEGABYTES = 64.0
LOCK_NAME = ".lock"
FAILURE_EXAMPLES = 5


def default_workers() -> int:
    """Every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# --- the task a worker runs ------------------------------------------------------------------------

@dataclass
class ExtractTask:
    """One item to compute, with what the parent already knows about its file."""

    item: Any                            # preprocess.datasets.Item
    content_hash: str | None             # None: the worker hashes the file
    label_digest: str
    stat: tuple[int, int] | None         # (size, mtime_ns) when planned, for the stat cache


def run_extract_task(task: ExtractTask, extract: Callable[..., ItemResult]) -> ItemResult:
    """Worker side: compute one item's arrays (exceptions become recorded failures)."""
    result = extract(task.item, content_hash=task.content_hash)
    result.label_digest = task.label_digest
    return result


def _default_extract():
    from preprocess.extract import extract_item

    return extract_item


# --- the writer ------------------------------------------------------------------------------------

class ShardWriter:
    """Buffers results of one source and writes them as shards (write, rename, commit)."""

    def __init__(self, cache_dir: Path, manifest: Manifest, source: str, *, max_items: int, max_bytes: float):
        self.cache_dir, self.manifest, self.source = cache_dir, manifest, source
        self.max_items, self.max_bytes = max(1, int(max_items)), max_bytes
        taken = [shard_number(n) for n in manifest.shards(source)] + \
                [shard_number(n) for n in shard_files(cache_dir) if n.startswith(source + "/")]
        self.next_number = 1 + max([n for n in taken if n is not None], default=0)
        self.buffer: list[ItemResult] = []
        self.buffered_bytes = 0
        self.shards_written = 0

    def add(self, result: ItemResult) -> bool:
        """Buffer one result; returns True when that filled the buffer and a shard was written."""
        self.buffer.append(result)
        self.buffered_bytes += result.nbytes()
        if len(self.buffer) >= self.max_items or self.buffered_bytes >= self.max_bytes:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        if not self.buffer:
            return
        name = shard_name(self.source, self.next_number)
        version = current_feature_version()
        nbytes = write_shard(self.cache_dir, name, self.buffer, version)
        entries = [
            DoneEntry(source=r.source, item_id=r.item_id, content_hash=r.content_hash, label_digest=r.label_digest,
                      split=r.split, label_source=r.label_source, valence=r.valence, arousal=r.arousal,
                      source_path=r.source_path, shard_item=i, rows=r.rows())
            for i, r in enumerate(self.buffer)]
        self.manifest.commit_shard(name, self.source, entries, nbytes)
        self.next_number += 1
        self.shards_written += 1
        self.buffer, self.buffered_bytes = [], 0


# --- housekeeping ----------------------------------------------------------------------------------

class CacheLock:
    """An exclusive lock on a cache directory for the job's duration (released by the OS on kill)."""

    def __init__(self, cache_dir: Path):
        self.path = cache_dir / LOCK_NAME
        self.handle = None

    def __enter__(self) -> "CacheLock":
        make_dir(self.path.parent, "--cache-dir")
        try:
            self.handle = open(self.path, "a+")
        except OSError as exc:
            raise KellyError(f"{self.path.parent}: cannot write the cache here: {describe_os_error(exc)} "
                             f"(opening its lock file {self.path.name})") from None
        try:
            import fcntl

            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no fcntl (Windows): one job at a time is then up to the user
            pass
        except OSError as exc:
            self.handle.close()
            raise KellyError(f"{self.path.parent}: another `kelly preprocess` is writing this cache") from exc
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.close()


def clean_cache(cache_dir: Path, manifest: Manifest) -> dict[str, int]:
    """Make the files on disk agree with the manifest, before a run and after it.

    Deletes leftover ``.tmp`` files, shards the manifest does not list (a run killed between
    rename and commit) and shards no item points to any more; forgets listed shards whose file is
    gone (their items are recomputed). Returns counts of what it did.
    """
    listed = manifest.shards()
    removed = remove_uncommitted(cache_dir, set(listed))
    missing = [name for name in listed if not (cache_dir / name).is_file()]
    manifest.forget_shards(missing)
    referenced = manifest.referenced_shards()
    unreferenced = [name for name in listed if name not in referenced and name not in missing]
    for name in unreferenced:
        (cache_dir / name).unlink(missing_ok=True)
    manifest.forget_shards(unreferenced)
    return {**removed, "missing_shards_forgotten": len(missing), "unreferenced_shards_removed": len(unreferenced)}


def _welford_merge(count, mean, m2, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray):
    """Chan et al.'s pairwise update of (count, mean, M2) with a block's (count, mean, M2) (float64)."""
    if n_b == 0:
        return count, mean, m2
    if count == 0:
        return n_b, mean_b, m2_b
    total = count + n_b
    delta = mean_b - mean
    return total, mean + delta * (n_b / total), m2 + m2_b + delta**2 * (count * n_b / total)


def training_input_stats(cache_dir: Path, network: str) -> dict | None:
    """Per-band mean and std (population) of a network's training-split inputs, streamed block by block.

    None when the network has no training rows. Bands with zero variance get std 1.
    """
    from preprocess.cache import reader

    try:
        blocks = reader.iter_network_blocks(cache_dir, network)
        count, mean, m2 = 0, None, None
        for block in blocks:
            count, mean, m2 = _welford_merge(count, mean, m2, *block.take(block.split == 0).input_moments())
    except KellyError:
        return None
    if count == 0:
        return None
    std = np.sqrt(m2 / count)
    std = np.where(std > 1e-8, std, 1.0)
    return {"rows": int(count), "mean": [float(x) for x in mean], "std": [float(x) for x in std]}


def write_input_stats(cache_dir: Path) -> dict:
    """Compute `training_input_stats` for every network and write ``stats.json`` (atomically)."""
    from preprocess.cache import reader

    identity = reader.cache_identity(cache_dir)
    networks = {}
    for network in spec.NETWORKS:
        stats = training_input_stats(cache_dir, network)
        if stats is not None:
            networks[network] = stats
    payload = {"feature_version": current_feature_version(), "identity": identity, "networks": networks}
    path = cache_dir / reader.STATS_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)
    return payload


def _stats_current(cache_dir: Path) -> bool:
    from preprocess.cache import reader

    path = cache_dir / reader.STATS_NAME
    try:
        stats = json.loads(path.read_text())
        return (stats.get("feature_version") == current_feature_version()
                and stats.get("identity") == reader.cache_identity(cache_dir))
    except (OSError, ValueError, KellyError):
        return False


# --- planning --------------------------------------------------------------------------------------

@dataclass
class SourcePlan:
    """What a run does with one source's items."""

    tasks: list[ExtractTask] = field(default_factory=list)
    already_done: int = 0
    failed_before: int = 0
    unreadable: list[FailureEntry] = field(default_factory=list)
    split_changes: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0
    hashed: list[tuple[str, int, int, str]] = field(default_factory=list)   # new stat-cache rows


def plan_source(items: Sequence[Any], manifest: Manifest, *, force: bool, retry_failed: bool) -> SourcePlan:
    """Decide, per item, whether it is done, failed before, or to be computed."""
    plan = SourcePlan()
    if not items:
        return plan
    source = items[0].source
    records = manifest.records(source)
    stat_cache = manifest.stat_cache()
    version = current_feature_version()
    seen: set[str] = set()
    hashes: dict[str, str | None] = {}       # path -> hash (files shared by several items: harmony JSON)
    for item in items:
        if item.item_id in seen:
            plan.duplicates += 1
            continue
        seen.add(item.item_id)
        path = os.path.abspath(item.path)
        digest = label_digest(item, metadata_read(item))
        try:
            st = os.stat(path)
        except OSError as exc:
            plan.unreadable.append(FailureEntry(
                source=source, item_id=item.item_id, content_hash="", label_digest=digest, split=item.split,
                label_source=item.label_source, source_path=str(item.path), stage="open", reason="error",
                error=f"open: cannot read {item.path}: {exc.strerror or exc}"))
            continue
        stat = (int(st.st_size), int(st.st_mtime_ns))
        if path not in hashes:
            cached = stat_cache.get(path)
            hashes[path] = cached[2] if cached and cached[:2] == stat else None
        record = records.get(item.item_id)
        if record is not None and not force:
            if hashes[path] is None:
                hashes[path] = file_hash(path)
                plan.hashed.append((path, *stat, hashes[path]))
            same = (record.content_hash == hashes[path] and record.feature_version == version
                    and record.label_digest == digest)
            if same and (record.status == "done" or not retry_failed):
                if record.status == "done":
                    plan.already_done += 1
                else:
                    plan.failed_before += 1
                if record.split != item.split:
                    plan.split_changes[item.item_id] = item.split
                continue
        plan.tasks.append(ExtractTask(item=item, content_hash=hashes[path], label_digest=digest, stat=stat))
    return plan


# --- the job ---------------------------------------------------------------------------------------

def _failure_entry(task: ExtractTask, kind: str, message: str, stage: str) -> FailureEntry:
    item = task.item
    content_hash = task.content_hash
    if content_hash is None:
        try:
            content_hash = file_hash(item.path)
        except OSError:
            content_hash = ""
    # the file is recorded on its own: drop it from the message where an error repeats it
    message = message.replace(f"{item.path}: ", "").replace(f"{os.path.abspath(item.path)}: ", "")
    return FailureEntry(source=item.source, item_id=item.item_id, content_hash=content_hash,
                        label_digest=task.label_digest, split=item.split, label_source=item.label_source,
                        source_path=str(item.path), stage=stage or kind, reason=kind, error=message)


def _check_scheduler(scheduler: str | None) -> None:
    if not scheduler:
        return
    try:
        from distributed import Client
    except ImportError as exc:
        raise KellyError("--backend dask needs dask[distributed]: pip install 'kelly-ml[dask]'") from exc
    try:
        Client(scheduler, timeout=10, set_as_default=False).close()
    except (OSError, TimeoutError, ValueError) as exc:
        raise KellyError(f"dask scheduler {scheduler}: cannot connect ({exc})") from exc


def _local_dask_cluster(workers: int):
    try:
        from distributed import LocalCluster
    except ImportError as exc:
        raise KellyError("--backend dask needs dask[distributed]: pip install 'kelly-ml[dask]'") from exc
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


class SourceRun:
    """One source's part of a run: its plan, its shard writer, its counts and its progress bar.

    `tasks()` hands out the planned tasks; `take(task, outcome)` files each result as it comes back
    (in any order, interleaved with other sources' results); once `complete`, `finish()` writes the
    last shard and returns the source's summary.
    """

    def __init__(self, source: str, result, manifest: Manifest, cache_dir: Path, *, limit: int | None,
                 force: bool, retry_failed: bool, shard_items: int, shard_megabytes: float, bar_position: int,
                 progress: bool):
        from tqdm import tqdm

        self.source, self.result, self.manifest = source, result, manifest
        started = time.perf_counter()
        items = list(result.items)
        self.limited = limit is not None and len(items) > limit
        if limit is not None:
            items = items[:limit]
        self.items = len(items)
        self.plan = plan_source(items, manifest, force=force, retry_failed=retry_failed)
        manifest.remember_hashes(self.plan.hashed)
        manifest.update_splits(source, self.plan.split_changes)
        manifest.record_failures(self.plan.unreadable)
        self.removed = 0
        if limit is None:
            listed = {item.item_id for item in items}
            gone = [item_id for item_id in manifest.records(source) if item_id not in listed]
            manifest.forget_items(source, gone)
            self.removed = len(gone)
        self.writer = ShardWriter(cache_dir, manifest, source, max_items=shard_items,
                                  max_bytes=shard_megabytes * 2**20)
        self.failures: list[FailureEntry] = list(self.plan.unreadable)
        self.pending_failures: list[FailureEntry] = []
        self.pending_hashes: list[tuple[str, int, int, str]] = []
        self.samples: dict[str, int] = {}
        self.done = self.returned = 0
        self.seconds = time.perf_counter() - started       # planning; computing adds from the first task on
        self.first_task_at: float | None = None
        self.bar = tqdm(total=len(self.plan.tasks), desc=f"{source:<8}", unit="file", position=bar_position,
                        disable=not progress or not self.plan.tasks, dynamic_ncols=True, file=sys.stderr)

    @property
    def complete(self) -> bool:
        return self.returned == len(self.plan.tasks)

    def tasks(self) -> Iterator[ExtractTask]:
        for task in self.plan.tasks:
            if self.first_task_at is None:
                self.first_task_at = time.perf_counter()
            yield task

    def _commit_side_records(self) -> None:
        self.manifest.record_failures(self.pending_failures)
        self.manifest.remember_hashes(self.pending_hashes)
        self.pending_failures.clear()
        self.pending_hashes.clear()

    def take(self, task: ExtractTask, outcome) -> None:
        """File one returned task: its arrays into the shard buffer, or its failure into the records."""
        if self.returned == 0:
            self.bar.reset()            # the bar's clock starts with the source's work, not with the run
        if isinstance(outcome, Ok):
            item_result: ItemResult = outcome.value
            if task.stat is not None:
                self.pending_hashes.append((os.path.abspath(task.item.path), *task.stat, item_result.content_hash))
            for network, n in item_result.rows().items():
                self.samples[network] = self.samples.get(network, 0) + n
            self.done += 1
            if self.writer.add(item_result):
                self._commit_side_records()
        else:
            entry = _failure_entry(task, outcome.kind, outcome.message, outcome.stage)
            self.failures.append(entry)
            self.pending_failures.append(entry)
            if entry.content_hash and task.stat is not None:
                self.pending_hashes.append((os.path.abspath(task.item.path), *task.stat, entry.content_hash))
            if len(self.pending_failures) >= 64:
                self._commit_side_records()
            self.bar.set_postfix(failed=len(self.failures) - len(self.plan.unreadable), refresh=False)
        self.returned += 1
        self.bar.update(1)

    def finish(self) -> dict:
        """Write what is buffered and return the source's summary (call once `complete`)."""
        self.writer.flush()
        self._commit_side_records()
        self.bar.close()
        if self.first_task_at is not None:
            self.seconds += time.perf_counter() - self.first_task_at
        return {
            "layout": self.result.layout,
            "root": str(self.result.root),
            "items": self.items,
            "limited": self.limited,
            "already_done": self.plan.already_done,
            "failed_before": self.plan.failed_before,
            "computed": len(self.plan.tasks),
            "done": self.done,
            "failed": len(self.failures),
            "split_changes": len(self.plan.split_changes),
            "removed": self.removed,
            "duplicates": self.plan.duplicates,
            "shards_written": self.writer.shards_written,
            "samples": self.samples,
            "failures": self.failures,
            "reader_counts": dict(self.result.counts),
            "reader_notes": list(self.result.notes[:FAILURE_EXAMPLES]),
            "missing": self.result.missing_summary(),
            "seconds": self.seconds,
        }

    def close(self) -> None:
        self.bar.close()


def _process_sources(runs: dict[str, SourceRun], on_finished: Callable[[str, dict], None], *, workers: int,
                     file_timeout: float | None, backend: str, scheduler: str | None,
                     func: Callable[[ExtractTask], ItemResult], runner) -> None:
    """Compute every source's tasks as one stream, so that the workers never wait at a source's end,
    and hand each source's summary to `on_finished` as soon as its last result is filed."""
    def finish(name: str) -> None:
        on_finished(name, runs[name].finish())

    for name, run in runs.items():
        if not run.plan.tasks:
            finish(name)
    if not any(run.plan.tasks for run in runs.values()):
        return
    feed = (task for run in runs.values() for task in run.tasks())
    for task, outcome in isolated_map(func, feed, workers=workers, file_timeout=file_timeout, backend=backend,
                                      scheduler=scheduler, runner=runner):
        run = runs[task.item.source]
        run.take(task, outcome)
        if run.complete:
            finish(task.item.source)


FINGERPRINT_KEY = "source-fingerprint:"


def source_fingerprint(datasets_dir: Path, source: str, settings: dict) -> str | None:
    """A digest of everything a source's reader and extraction see: the relative path, size and
    mtime of every file under the source's root, and the settings. None when no root is found."""
    import hashlib

    from preprocess.datasets import locate

    try:
        root, found_layout = locate(datasets_dir, source, settings["layout"])
    except KellyError:
        return None
    digest = hashlib.sha1(json.dumps([source, found_layout, str(Path(root).resolve()), settings],
                                     sort_keys=True).encode("utf-8"))

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_dir(follow_symlinks=True):
                    walk(entry.path, f"{prefix}{entry.name}/")
                elif entry.is_file(follow_symlinks=True):
                    st = entry.stat()
                    digest.update(f"{prefix}{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))

    walk(str(root), "")
    return digest.hexdigest()


def _unchanged_sources(cache_dir: Path, fingerprints: dict[str, str | None]) -> dict[str, dict]:
    """The sources whose fingerprint equals the one the last complete run of each stored."""
    if not fingerprints or not (cache_dir / MANIFEST_NAME).is_file():
        return {}
    with Manifest.open(cache_dir) as manifest:
        if manifest.cache_format() not in (None, SHARD_FORMAT):
            return {}                   # another layout: the whole cache is rebuilt
        stored = {name: manifest.get_meta(FINGERPRINT_KEY + name) for name in fingerprints}
    out = {}
    for name, fingerprint in fingerprints.items():
        info = json.loads(stored[name]) if stored[name] else None
        if fingerprint is not None and info is not None and info["fingerprint"] == fingerprint:
            out[name] = info
    return out


def _unchanged_source(info: dict, status_counts: dict[str, int]) -> dict:
    """The per-source summary of a source skipped because nothing changed since its last complete run."""
    return {"layout": info["layout"], "root": info["root"], "items": info["items"], "limited": False,
            "already_done": status_counts.get("done", 0), "failed_before": status_counts.get("failed", 0),
            "computed": 0, "done": 0, "failed": 0, "split_changes": 0, "removed": 0,
            "duplicates": info["duplicates"], "shards_written": 0, "samples": {}, "failures": [],
            "reader_counts": info["reader_counts"], "reader_notes": [], "missing": info.get("missing", {}),
            "seconds": 0.0, "read_seconds": 0.0, "unchanged": True}


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
    progress: bool = True,
) -> dict:
    """Preprocess `sources` ("all" or names from spec.SOURCES) into `cache_dir`; return the summary.

    workers: processes (default: every core); limit: first N items per source; force: recompute
    everything; retry_failed: recompute items that failed before; file_timeout: seconds one item
    may take; layout/seed/validation_split/test_split: passed to the dataset readers; backend,
    scheduler: see `preprocess.parallel.isolated_map`; extract: item -> ItemResult (default
    `preprocess.extract.extract_item`; must be a module-level function).
    """
    from preprocess.datasets import available_sources, load_source

    started = time.perf_counter()
    datasets_dir, cache_dir = Path(datasets_dir), Path(cache_dir)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise KellyError(f"--workers must be at least 1, got {workers}")
    if limit is not None and limit < 0:
        raise KellyError(f"--limit must be >= 0, got {limit}")
    if backend not in ("loky", "dask"):
        raise KellyError(f"--backend must be loky or dask, got {backend!r}")
    extract = extract or _default_extract()

    if isinstance(sources, str):
        sources = [sources]
    if list(sources) == ["all"]:
        if layout is not None:
            raise KellyError("--layout applies to one source; name it (e.g. `kelly preprocess lakh --layout lmd_matched`)")
        if not datasets_dir.is_dir():
            raise KellyError(f"{datasets_dir}: datasets folder not found (set --datasets-dir)")
        wanted = available_sources(datasets_dir)
        not_found = [s for s in spec.SOURCES if s not in wanted]
        if not wanted:
            raise KellyError(f"{datasets_dir}: no dataset found (looked for {', '.join(spec.SOURCES)}); "
                             f"see datasets/README.md, or `kelly sample-data {datasets_dir}`")
    else:
        wanted = list(sources)
        unknown = [s for s in wanted if s not in spec.SOURCES]
        if unknown:
            raise KellyError(f"unknown source {unknown[0]!r}; known: {', '.join(spec.SOURCES)}")
        not_found = []
    check_output_dir(cache_dir, "--cache-dir")      # before any work starts
    if backend == "dask":
        _check_scheduler(scheduler)

    # A source whose files and settings are what the last complete run saw is not read again
    # (reading parses the label files and imports pandas: most of an unchanged rerun's time).
    settings = {"layout": layout, "seed": seed, "validation_split": validation_split, "test_split": test_split,
                "extract": f"{getattr(extract, '__module__', '')}.{getattr(extract, '__qualname__', repr(extract))}",
                "feature_version": current_feature_version()}
    fingerprints = {name: source_fingerprint(datasets_dir, name, settings) for name in wanted} if limit is None else {}
    unchanged = {} if force or retry_failed else _unchanged_sources(cache_dir, fingerprints)

    to_read = [name for name in wanted if name not in unchanged]
    func = functools.partial(run_extract_task, extract=extract)
    # one isolated child for all sources: the 1-worker path, and where a broken pool's suspects run
    runner = IsolatedRunner(func, file_timeout, prepare=functools.partial(prepare_worker, tuple(to_read)))
    local_workers = backend == "loky" and bool(to_read)
    # the workers start, and import the feature code, while the datasets are read
    workers_up = start_workers(workers, runner) if local_workers else set
    ended = False

    def end_workers() -> None:
        nonlocal ended
        if not ended:
            ended = True
            runner.close()
            if local_workers and workers > 1:
                stop_workers()      # the pool ends with the job: no idle processes left behind
    local_cluster = None
    try:
        # read every other source first: a reader's error stops the run before any work
        results, read_seconds = {}, {}
        for name in to_read:
            began = time.perf_counter()
            results[name] = load_source(datasets_dir, name, layout, seed=seed, validation_split=validation_split,
                                        test_split=test_split)
            read_seconds[name] = time.perf_counter() - began
        workers_up()
        if backend == "dask" and not scheduler and any(r.items for r in results.values()):
            local_cluster = _local_dask_cluster(workers)  # one for all sources
            scheduler = local_cluster.scheduler_address
        with CacheLock(cache_dir):
            manifest = Manifest.open(cache_dir, create=True)
            rebuilt_from = manifest.rebuilt_from
            try:
                if manifest.rebuilt_from:
                    print(f"{cache_dir}: the cache was written in the layout {manifest.rebuilt_from}, this code "
                          f"writes {SHARD_FORMAT}: rebuilding it (every item is computed again)", file=sys.stderr)
                cleanup = clean_cache(cache_dir, manifest)
                finished: dict[str, dict] = {}

                def source_finished(name: str, info: dict) -> None:
                    info["read_seconds"] = read_seconds[name]
                    finished[name] = info
                    if name in fingerprints:         # the source is complete: an unchanged rerun may skip it
                        manifest.set_meta(FINGERPRINT_KEY + name, json.dumps({
                            "fingerprint": fingerprints[name], "layout": info["layout"], "root": info["root"],
                            "items": info["items"], "duplicates": info["duplicates"],
                            "reader_counts": info["reader_counts"], "missing": info["missing"]}))

                runs: dict[str, SourceRun] = {}
                try:
                    for name in to_read:
                        manifest.set_meta(FINGERPRINT_KEY + name, None)  # set again once the source is complete
                        runs[name] = SourceRun(name, results[name], manifest, cache_dir, limit=limit, force=force,
                                               retry_failed=retry_failed, shard_items=shard_items,
                                               shard_megabytes=shard_megabytes, bar_position=len(runs),
                                               progress=progress)
                    _process_sources(runs, source_finished, workers=workers, file_timeout=file_timeout,
                                     backend=backend, scheduler=scheduler, func=func, runner=runner)
                finally:
                    for run in runs.values():
                        run.close()
                per_source = {name: (_unchanged_source(unchanged[name], manifest.status_counts(name))
                                     if name in unchanged else finished[name]) for name in wanted}
                runs.clear()        # every item is filed: the items and plans are not needed any more
                results.clear()
                after = clean_cache(cache_dir, manifest)
                cleanup["unreferenced_shards_removed"] += after["unreferenced_shards_removed"]
                cache_samples = manifest.samples_by_split()
            finally:
                manifest.close()
            end_workers()           # nothing left for them: they do not wait through the statistics
            stats_networks: list[str] = []
            stats_recomputed = False
            if cache_samples and not _stats_current(cache_dir):
                stats_networks = sorted(write_input_stats(cache_dir)["networks"])
                stats_recomputed = True
            elif cache_samples:
                stats_networks = sorted(json.loads((cache_dir / "stats.json").read_text())["networks"])
    finally:
        end_workers()
        if local_cluster is not None:
            local_cluster.close()
    summary = _summary(datasets_dir, cache_dir, per_source, not_found, cleanup, cache_samples,
                       stats_networks, stats_recomputed, time.perf_counter() - started)
    summary["rebuilt_from"] = rebuilt_from
    return summary


def preprocess_all(datasets_dir: str | Path, cache_dir: str | Path, **options) -> dict:
    """`run_preprocess("all", ...)`: every source found under `datasets_dir`."""
    return run_preprocess("all", datasets_dir=datasets_dir, cache_dir=cache_dir, **options)


# --- the summary -----------------------------------------------------------------------------------

def _summary(datasets_dir: Path, cache_dir: Path, per_source: dict, not_found: list[str], cleanup: dict,
             cache_samples: dict, stats_networks: list[str], stats_recomputed: bool, seconds: float) -> dict:
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
        "samples": {n: {s: cache_samples.get(n, {}).get(s, 0) for s in ("train", "validation", "test")}
                    for n in spec.NETWORKS},
        "failures": failures_by_reason,
        "cleanup": cleanup,
        "stats": {"networks": stats_networks, "recomputed": stats_recomputed},
        "seconds": seconds,
    }


def format_summary(summary: dict) -> str:
    """The summary as the lines `kelly preprocess` prints."""
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
        from preprocess.cli import failures_command_line

        shown = [f"{unlisted:,} more this run" if unlisted else "",
                 f"{failed_before:,} from earlier runs" if failed_before else ""]
        lines.append(f"every failure with its reason ({' and '.join(x for x in shown if x)} not listed above): "
                     f"{failures_command_line(summary['cache_dir'])}")
    cleanup = {k: v for k, v in summary["cleanup"].items() if v}
    if cleanup:
        lines.append("cleaned up: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in cleanup.items()))
    if summary["stats"]["networks"]:
        state = "computed" if summary["stats"]["recomputed"] else "unchanged"
        lines.append(f"input statistics ({state}): {', '.join(summary['stats']['networks'])}")
    return "\n".join(lines)
