"""What a preprocess run does with each item of a source: skip it (done, or failed before, with
the same content, feature version and labels), record it as unreadable, or compute it, as an
`ExtractTask` a worker runs.

    plan = plan_source(items, manifest, force=False, retry_failed=False)
    plan.tasks          # [ExtractTask]: the items to compute
    plan.already_done, plan.failed_before, plan.unreadable, plan.split_changes

A file's content hash is taken from the manifest's stat cache when its size and mtime are those
recorded, and computed only where an item has a record to compare with; a new item is hashed by
the worker that computes it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from preprocess.cache.manifest import FailureEntry, Manifest, current_feature_version, file_hash, label_digest
from preprocess.cache.shards import ItemResult
from preprocess.extract import metadata_read


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
