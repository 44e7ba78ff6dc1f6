"""The manifest's rows as Python values: items done or failed, committed shards, and what the
writer and the job hand the manifest to record."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ItemRecord:
    """One row of the manifest's items table."""

    source: str
    item_id: str
    content_hash: str
    feature_version: str
    label_digest: str
    status: str
    split: str
    label_source: str
    valence: float | None
    arousal: float | None
    source_path: str
    shard: str | None
    shard_item: int | None
    stage: str | None
    reason: str | None
    error: str | None


@dataclass(frozen=True)
class ShardRecord:
    """One row of the shards table: a committed shard file, relative to the cache directory."""

    name: str
    source: str
    items: int
    rows: dict[str, int]
    bytes: int
    feature_version: str
    digest: str | None = None          # `digests.file_hash` of the file as written (None: not recorded)
    mtime_ns: int | None = None        # its modification time as written (None: not recorded)


@dataclass(frozen=True)
class DoneEntry:
    """What the writer commits for one item of a shard."""

    source: str
    item_id: str
    content_hash: str
    label_digest: str
    split: str
    label_source: str
    valence: float | None
    arousal: float | None
    source_path: str
    shard_item: int
    rows: dict[str, int]


@dataclass(frozen=True)
class FailureEntry:
    """What the job records for an item that produced no samples."""

    source: str
    item_id: str
    content_hash: str
    label_digest: str
    split: str
    label_source: str
    source_path: str
    stage: str
    reason: str          # "error" | "crash" | "timeout"
    error: str
