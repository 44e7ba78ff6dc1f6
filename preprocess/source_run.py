"""One source's part of a preprocess run (`SourceRun`), and every source's tasks computed as one stream.

    run_sources({name: read_result, ...}, manifest, cache_dir, pool.map, on_finished, limit=None, ...)

A `SourceRun` plans its items when made (`plan.plan_source`), records what planning found (new
hashes, split changes, unreadable files, items gone from the dataset), files each returned task
into its shard writer or its failures, and shows a progress bar. The failures of a batch of tasks
and the hashes the workers computed are committed with the shard they came with.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from preprocess.cache.manifest import FailureEntry, Manifest, file_hash
from preprocess.cache.shards import ItemResult
from preprocess.cache.writer import ShardWriter
from preprocess.parallel import Ok
from preprocess.plan import ExtractTask, plan_source

#: reader notes kept per source for the summary
NOTE_EXAMPLES = 5


def failure_entry(task: ExtractTask, kind: str, message: str, stage: str) -> FailureEntry:
    """The manifest's record of a task that produced no result (kind: error, crash or timeout)."""
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
            entry = failure_entry(task, outcome.kind, outcome.message, outcome.stage)
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
            "reader_notes": list(self.result.notes[:NOTE_EXAMPLES]),
            "missing": self.result.missing_summary(),
            "unused": self.result.unused_summary(),
            "seconds": self.seconds,
        }

    def close(self) -> None:
        self.bar.close()


def run_sources(read: dict, manifest: Manifest, cache_dir: Path, map_tasks: Callable[[Iterator[ExtractTask]], Iterator],
                on_finished: Callable[[str, dict], None], **options) -> None:
    """Plan every source of `read` (name -> the reader's result), compute all their tasks as one
    stream, so that the workers never wait at a source's end, and hand each source's summary to
    `on_finished` as soon as its last result is filed.

    map_tasks: tasks -> (task, outcome) in any order (`parallel.WorkerPool.map`); options: the
    `SourceRun` settings (limit, force, retry_failed, shard_items, shard_megabytes, progress).
    """
    runs: dict[str, SourceRun] = {}
    try:
        for name, result in read.items():
            runs[name] = SourceRun(name, result, manifest, cache_dir, bar_position=len(runs), **options)
        for name, run in runs.items():
            if not run.plan.tasks:
                on_finished(name, run.finish())
        if not any(run.plan.tasks for run in runs.values()):
            return
        feed = (task for run in runs.values() for task in run.tasks())
        for task, outcome in map_tasks(feed):
            run = runs[task.item.source]
            run.take(task, outcome)
            if run.complete:
                on_finished(task.item.source, run.finish())
    finally:
        for run in runs.values():
            run.close()
