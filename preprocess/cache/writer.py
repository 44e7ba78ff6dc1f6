"""The writing side of the cache: one writer at a time, shards written and committed, and the files
on disk made to agree with the manifest.

    with cache_lock(cache_dir), Manifest.open(cache_dir, create=True) as manifest:
        clean_cache(cache_dir, manifest)                    # what a killed run left
        writer = ShardWriter(cache_dir, manifest, "lakh", max_items=512, max_bytes=64 * 2**20)
        for result in results:
            writer.add(result)                              # a shard is written once the buffer is full
        writer.flush()
        clean_cache(cache_dir, manifest)                    # shards no item points to any more

A shard is written whole beside its final name and renamed into place (`shards.write_shard`), then
committed to the manifest with its items in one transaction: killing the writer at any moment loses
at most the shard being written, and the next `clean_cache` removes what it left. The shard's
size, content digest and modification time go into the manifest with it, so that a file damaged
later is found (`integrity`) and dropped by `check_shards`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from common.locks import FolderLock
from preprocess.cache.digests import file_hash
from preprocess.cache.integrity import inspect_shard
from preprocess.cache.manifest import DoneEntry, Manifest, current_feature_version
from preprocess.cache.shards import (
    ItemResult,
    remove_uncommitted,
    shard_files,
    shard_name,
    shard_number,
    write_shard,
)
from preprocess.stopping import deferred

LOCK_NAME = ".lock"


def cache_lock(cache_dir: Path) -> FolderLock:
    """An exclusive lock on a cache folder for a job's duration (released by the OS on kill)."""
    return FolderLock(cache_dir, LOCK_NAME, writes="the cache", what="--cache-dir",
                      busy="another `kelly preprocess` is writing this cache")


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
        """Write the buffered results as one shard and commit it (a stop signal waits for both)."""
        if not self.buffer:
            return
        with deferred():
            self._write_and_commit()
        self.buffer, self.buffered_bytes = [], 0

    def _write_and_commit(self) -> None:
        name = shard_name(self.source, self.next_number)
        version = current_feature_version()
        nbytes = write_shard(self.cache_dir, name, self.buffer, version)
        path = self.cache_dir / name
        digest, mtime_ns = file_hash(path), os.stat(path).st_mtime_ns     # as written (from the page cache)
        entries = [
            DoneEntry(source=r.source, item_id=r.item_id, content_hash=r.content_hash, label_digest=r.label_digest,
                      split=r.split, label_source=r.label_source, valence=r.valence, arousal=r.arousal,
                      source_path=r.source_path, shard_item=i, rows=r.rows())
            for i, r in enumerate(self.buffer)]
        try:
            self.manifest.commit_shard(name, self.source, entries, nbytes, digest, mtime_ns)
        except BaseException:           # not committed (a full disk): not left for the next run to find
            path.unlink(missing_ok=True)
            raise
        self.next_number += 1
        self.shards_written += 1


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


@dataclass
class ShardCheck:
    """What `check_shards` did: the shards it dropped ({"shard", "source", "problem", "items"} each),
    how many it checked and how many digests it computed."""

    dropped: list[dict] = field(default_factory=list)
    checked: int = 0
    digests: int = 0

    @property
    def sources(self) -> set[str]:
        """The sources that lost a shard."""
        return {entry["source"] for entry in self.dropped}


def check_shards(cache_dir: Path, manifest: Manifest, sources: Iterable[str], *, verify_all: bool = False) -> ShardCheck:
    """Check every listed shard of `sources` against its record (`integrity.inspect_shard`: size and
    signature; the digest where the mtime changed, or everywhere with `verify_all`); drop each
    damaged one (its file deleted, its items forgotten, so that the run computes them again).
    A shard whose digest was verified but whose mtime (or digest) was not recorded gets them recorded.
    """
    report = ShardCheck()
    doomed = []
    for source in sources:
        for name, record in manifest.shards(source).items():
            state = inspect_shard(cache_dir, record, verify="always" if verify_all else "changed")
            report.checked += 1
            report.digests += state.digest is not None
            if state.problem is not None:
                doomed.append(name)
                report.dropped.append({"shard": name, "source": record.source, "problem": state.problem,
                                       "items": record.items})
            elif state.digest is not None and (state.digest != record.digest or state.mtime_ns != record.mtime_ns):
                manifest.refresh_shard(name, state.digest, state.mtime_ns)
    manifest.forget_shards(doomed)          # first: the manifest never lists a file that is gone
    for name in doomed:
        try:
            (cache_dir / name).unlink(missing_ok=True)
        except OSError:                     # not a file: left alone; unlisted, it is never read
            pass
    return report
