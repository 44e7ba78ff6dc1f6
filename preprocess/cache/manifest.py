"""The cache's manifest: which items are done (in which shard), which failed and why, and file hashes.

One SQLite file, ``<cache>/manifest.sqlite`` (stdlib sqlite3), written by the preprocess job only:

- ``items``: one row per (source, item_id) with the content hash of its file, the feature version
  and the label digest it was computed with, its status ("done" or "failed"), its split and labels,
  and for done items the shard and the item's index in it; for failures the stage, the reason kind
  ("error", "crash", "timeout") and the message.
- ``item_samples``: rows per network for each done item.
- ``shards``: every shard file the manifest vouches for, with its size, content digest
  (`digests.file_hash`) and modification time as written, so that a damaged file is found
  (`integrity`). A shard on disk that is not here was renamed into place by a run killed before its
  commit; `clean_cache` deletes it. (Manifests written before the digest and mtime columns get
  them, empty, when the job opens them; `integrity` fills them in.)
- ``stat_cache``: (path, size, mtime_ns) -> content hash, so an unchanged rerun does not re-read files.

A done item is *served* (its rows are training data) while its row's feature version is the code's
`spec.FEATURE_VERSION`. Recomputing an item replaces its row, so its old rows stop being served at
the same commit that makes the new ones visible. Each shard is committed in one transaction.

The meta table records the layout the shards are written in (``cache_format``,
`layout.SHARD_FORMAT`; a manifest without it was written in the first layout). When the job opens
a cache of another layout, the manifest forgets every item and shard (`Manifest.open` with
`create`; `rebuilt_from` says it happened), and the whole cache is computed again; a reader
refuses such a cache.

A write the disk refuses (``database or disk is full``, an I/O error) rolls its transaction back
(SQLite does so itself for a full disk) and becomes a KellyError naming the manifest and the
fault: what was committed before stays, and a rerun once the disk has room goes on from there.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from common.errors import KellyError
from preprocess.cache.digests import file_hash, label_digest          # noqa: F401 (served from here too)
from preprocess.cache.layout import FIRST_SHARD_FORMAT, SHARD_FORMAT
from preprocess.cache.records import DoneEntry, FailureEntry, ItemRecord, ShardRecord   # noqa: F401
from preprocess.features import spec

MANIFEST_NAME = "manifest.sqlite"
SCHEMA_VERSION = "1"
CACHE_FORMAT_KEY = "cache_format"
SPLIT_CODES = {name: code for code, name in enumerate(spec.SPLITS)}
LABEL_SOURCE_CODES = {name: code for code, name in enumerate(spec.LABEL_SOURCES)}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    source TEXT NOT NULL,
    item_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    feature_version TEXT NOT NULL,
    label_digest TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    split TEXT NOT NULL,
    label_source TEXT NOT NULL,
    valence REAL,
    arousal REAL,
    source_path TEXT NOT NULL,
    shard TEXT,
    shard_item INTEGER,
    stage TEXT,
    reason TEXT,
    error TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (source, item_id)
);
CREATE INDEX IF NOT EXISTS items_by_shard ON items (shard);
CREATE TABLE IF NOT EXISTS item_samples (
    source TEXT NOT NULL,
    item_id TEXT NOT NULL,
    network TEXT NOT NULL,
    rows INTEGER NOT NULL,
    PRIMARY KEY (source, item_id, network)
);
CREATE TABLE IF NOT EXISTS shards (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    items INTEGER NOT NULL,
    rows TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    feature_version TEXT NOT NULL,
    created REAL NOT NULL,
    digest TEXT,
    mtime_ns INTEGER
);
CREATE TABLE IF NOT EXISTS stat_cache (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_hash TEXT NOT NULL
);
"""


def current_feature_version() -> str:
    """The feature version of the running code (read at call time, so tests can patch it)."""
    return spec.FEATURE_VERSION


_ITEM_COLUMNS = (
    "source, item_id, content_hash, feature_version, label_digest, status, split, label_source, "
    "valence, arousal, source_path, shard, shard_item, stage, reason, error"
)


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class Manifest:
    """The manifest of one cache directory. Open it with ``Manifest.open(cache_dir)``."""

    def __init__(self, connection: sqlite3.Connection, path: Path, readonly: bool):
        self._db = connection
        self.path = path
        self.readonly = readonly
        self._shard_checks = _has_shard_check_columns(connection)
        #: set by `open(create=True)` when the cache was in another layout and was emptied: that layout
        self.rebuilt_from: str | None = None

    # --- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, cache_dir: str | Path, *, create: bool = False) -> "Manifest":
        """Open ``<cache_dir>/manifest.sqlite``; `create` makes the directory and file when absent.

        Without `create` the manifest is opened read-only and a missing one is a KellyError.
        """
        cache_dir = Path(cache_dir)
        path = cache_dir / MANIFEST_NAME
        if create:
            cache_dir.mkdir(parents=True, exist_ok=True)
            try:
                db = sqlite3.connect(str(path), timeout=60, isolation_level=None)
                db.execute("PRAGMA journal_mode=DELETE")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
                _add_shard_check_columns(db)
                stored = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if stored is None:
                    db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
            except sqlite3.OperationalError as exc:
                raise write_refused(path, exc) from None
            except sqlite3.DatabaseError as exc:
                raise KellyError(f"{path}: not a readable manifest ({exc}); delete {cache_dir} and run "
                                 f"`kelly preprocess` again") from None
            if stored is not None and stored[0] != SCHEMA_VERSION:
                raise KellyError(f"{path}: manifest schema {stored[0]}, this code reads schema {SCHEMA_VERSION}; "
                                 f"delete {cache_dir} and run `kelly preprocess` again")
            manifest = cls(db, path, readonly=False)
            found = manifest.cache_format()
            if found is not None and found != SHARD_FORMAT:
                manifest._forget_layout()
                manifest.rebuilt_from = found
            manifest.set_meta(CACHE_FORMAT_KEY, SHARD_FORMAT)
            return manifest
        if not path.is_file():
            raise KellyError(f"{cache_dir}: no feature cache here (no {MANIFEST_NAME}); run `kelly preprocess all` first")
        # Read-write where allowed, though only read: after a writer was killed mid-transaction the
        # first reader must roll its journal back, which a read-only connection cannot do.
        uri = path.resolve().as_uri()
        try:
            try:
                db = sqlite3.connect(uri + "?mode=rw", uri=True, timeout=60, isolation_level=None)
                db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            except sqlite3.OperationalError:
                db = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=60, isolation_level=None)
                db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise KellyError(f"{path}: not a readable manifest ({exc}); delete {cache_dir} and run "
                             f"`kelly preprocess` again") from None
        return cls(db, path, readonly=True)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reading ---------------------------------------------------------------------------------
    def _records(self, where: str = "", params: Sequence[Any] = ()) -> list[ItemRecord]:
        rows = self._db.execute(f"SELECT {_ITEM_COLUMNS} FROM items {where}", params).fetchall()
        return [ItemRecord(*row) for row in rows]

    def records(self, source: str) -> dict[str, ItemRecord]:
        """Every item row of a source, by item_id."""
        return {r.item_id: r for r in self._records("WHERE source = ?", (source,))}

    def served(self, sources: Iterable[str] | None = None, feature_version: str | None = None) -> list[ItemRecord]:
        """Done items of the given feature version (default: the code's), ordered by source, shard, index."""
        version = feature_version or current_feature_version()
        where, params = "WHERE status = 'done' AND feature_version = ?", [version]
        if sources is not None:
            sources = list(sources)
            where += f" AND source IN ({','.join('?' * len(sources))})"
            params += sources
        return self._records(where + " ORDER BY source, shard, shard_item", params)

    def served_items(self, network: str, sources: Iterable[str]) -> list[tuple]:
        """The served items with rows of `network`, ordered by source, shard, index in the shard:
        (source, item_id, split, label_source, valence, arousal, shard, shard_item) each, what the
        reader needs (plain tuples: a cache of Lakh's size lists 176,581)."""
        sources = list(sources)
        rows = self._db.execute(
            "SELECT i.source, i.item_id, i.split, i.label_source, i.valence, i.arousal, i.shard, i.shard_item "
            "FROM items i JOIN item_samples s ON s.source = i.source AND s.item_id = i.item_id AND s.network = ? "
            f"WHERE i.status = 'done' AND i.feature_version = ? AND s.rows > 0 "
            f"AND i.source IN ({','.join('?' * len(sources))}) ORDER BY i.source, i.shard, i.shard_item",
            [network, current_feature_version(), *sources]).fetchall()
        return rows

    def failures(self, source: str | None = None) -> list[ItemRecord]:
        """Failed items of the code's feature version, oldest first within each source."""
        where, params = "WHERE status = 'failed' AND feature_version = ?", [current_feature_version()]
        if source is not None:
            where += " AND source = ?"
            params.append(source)
        return self._records(where + " ORDER BY source, updated, item_id", params)

    def feature_versions(self) -> dict[str, int]:
        """Item rows per feature version found in the manifest."""
        rows = self._db.execute("SELECT feature_version, COUNT(*) FROM items GROUP BY feature_version").fetchall()
        return dict(rows)

    def samples_by_split(self) -> dict[str, dict[str, int]]:
        """Served rows per network and split: {network: {split: rows}}."""
        rows = self._db.execute(
            "SELECT s.network, i.split, SUM(s.rows) FROM items i JOIN item_samples s "
            "ON s.source = i.source AND s.item_id = i.item_id "
            "WHERE i.status = 'done' AND i.feature_version = ? GROUP BY s.network, i.split",
            (current_feature_version(),)).fetchall()
        out: dict[str, dict[str, int]] = {}
        for network, split, n in rows:
            out.setdefault(network, {})[split] = int(n)
        return out

    def shards(self, source: str | None = None) -> dict[str, ShardRecord]:
        """Committed shards (name relative to the cache directory, e.g. "deam/shard-0003.h5")."""
        where, params = ("WHERE source = ?", (source,)) if source else ("", ())
        checks = ", digest, mtime_ns" if self._shard_checks else ", NULL, NULL"
        rows = self._db.execute(
            f"SELECT name, source, items, rows, bytes, feature_version{checks} FROM shards {where} ORDER BY name", params
        ).fetchall()
        return {r[0]: ShardRecord(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7]) for r in rows}

    def referenced_shards(self) -> set[str]:
        """Shards some item row still points to."""
        return {r[0] for r in self._db.execute("SELECT DISTINCT shard FROM items WHERE shard IS NOT NULL")}

    def stat_cache(self) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, content hash)."""
        return {p: (s, m, h) for p, s, m, h in self._db.execute("SELECT path, size, mtime_ns, content_hash FROM stat_cache")}

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def cache_format(self) -> str | None:
        """The layout the cache's shards are written in: the recorded one; for a manifest that records
        none, FIRST_SHARD_FORMAT when it lists any item, else None (a new cache)."""
        stored = self.get_meta(CACHE_FORMAT_KEY)
        if stored is not None:
            return stored
        has_items = self._db.execute("SELECT 1 FROM items LIMIT 1").fetchone() is not None
        return FIRST_SHARD_FORMAT if has_items else None

    def status_counts(self, source: str) -> dict[str, int]:
        """{status: items} of one source ("done", "failed")."""
        return dict(self._db.execute("SELECT status, COUNT(*) FROM items WHERE source = ? GROUP BY status", (source,)))

    def status_since(self, since: float) -> dict[str, int]:
        """{status: items} of the rows written at or after `since` (time.time(); 0: every row)."""
        return dict(self._db.execute("SELECT status, COUNT(*) FROM items WHERE updated >= ? GROUP BY status",
                                     (since,)))

    # --- writing (one transaction each) ----------------------------------------------------------
    def set_meta(self, key: str, value: str | None) -> None:
        """Store (or, with None, delete) a value in the meta table."""
        with self._transaction() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _transaction(self):
        if self.readonly:
            raise RuntimeError(f"{self.path} is open read-only")
        return _Transaction(self._db, self.path)

    def _forget_layout(self) -> None:
        """Forget every item, shard and source fingerprint (the stat cache of file hashes stays): the
        shard files, no longer listed, are deleted by the job's clean-up and everything is recomputed."""
        with self._transaction() as db:
            db.execute("DELETE FROM items")
            db.execute("DELETE FROM item_samples")
            db.execute("DELETE FROM shards")
            db.execute("DELETE FROM meta WHERE key != 'schema'")

    def commit_shard(self, name: str, source: str, entries: Sequence[DoneEntry], nbytes: int,
                     digest: str | None = None, mtime_ns: int | None = None) -> None:
        """Record a shard already renamed into place (its size, content digest and mtime as written)
        and every item in it, atomically."""
        version = current_feature_version()
        rows: dict[str, int] = {}
        for entry in entries:
            for network, n in entry.rows.items():
                rows[network] = rows.get(network, 0) + int(n)
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO shards (name, source, items, rows, bytes, feature_version, created, digest, "
                "mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, source, len(entries), json.dumps(rows, sort_keys=True), int(nbytes), version, now, digest,
                 None if mtime_ns is None else int(mtime_ns)))
            db.executemany(
                f"INSERT OR REPLACE INTO items ({_ITEM_COLUMNS}, updated) "
                "VALUES (?, ?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?)",
                [(e.source, e.item_id, e.content_hash, version, e.label_digest, e.split, e.label_source,
                  _finite_or_none(e.valence), _finite_or_none(e.arousal), e.source_path, name, e.shard_item, now)
                 for e in entries])
            db.executemany("DELETE FROM item_samples WHERE source = ? AND item_id = ?",
                           [(e.source, e.item_id) for e in entries])
            db.executemany(
                "INSERT INTO item_samples (source, item_id, network, rows) VALUES (?, ?, ?, ?)",
                [(e.source, e.item_id, network, int(n)) for e in entries for network, n in e.rows.items()])

    def refresh_shard(self, name: str, digest: str, mtime_ns: int) -> None:
        """Record the digest and mtime a listed shard was found with, once its content was verified
        (a copy that did not keep modification times; a manifest that recorded no digest)."""
        with self._transaction() as db:
            db.execute("UPDATE shards SET digest = ?, mtime_ns = ? WHERE name = ?", (digest, int(mtime_ns), name))

    def record_failures(self, failures: Sequence[FailureEntry]) -> None:
        """Record failed items (replacing whatever the manifest held for them)."""
        if not failures:
            return
        version, now = current_feature_version(), time.time()
        with self._transaction() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO items ({_ITEM_COLUMNS}, updated) "
                "VALUES (?, ?, ?, ?, ?, 'failed', ?, ?, NULL, NULL, ?, NULL, NULL, ?, ?, ?, ?)",
                [(f.source, f.item_id, f.content_hash, version, f.label_digest, f.split, f.label_source,
                  f.source_path, f.stage, f.reason, f.error, now) for f in failures])
            db.executemany("DELETE FROM item_samples WHERE source = ? AND item_id = ?",
                           [(f.source, f.item_id) for f in failures])

    def update_splits(self, source: str, splits: dict[str, str]) -> None:
        """Move items to another split (a new seed or split fraction): no recomputation needed."""
        if not splits:
            return
        with self._transaction() as db:
            db.executemany("UPDATE items SET split = ? WHERE source = ? AND item_id = ?",
                           [(split, source, item_id) for item_id, split in splits.items()])

    def forget_items(self, source: str, item_ids: Iterable[str]) -> None:
        """Drop items (their files left the dataset); their rows stop being served."""
        keys = [(source, item_id) for item_id in item_ids]
        if not keys:
            return
        with self._transaction() as db:
            db.executemany("DELETE FROM items WHERE source = ? AND item_id = ?", keys)
            db.executemany("DELETE FROM item_samples WHERE source = ? AND item_id = ?", keys)

    def forget_shards(self, names: Iterable[str]) -> None:
        """Drop shard rows and any item rows still pointing at them (to be recomputed)."""
        names = list(names)
        if not names:
            return
        with self._transaction() as db:
            for name in names:
                doomed = db.execute("SELECT source, item_id FROM items WHERE shard = ?", (name,)).fetchall()
                db.executemany("DELETE FROM item_samples WHERE source = ? AND item_id = ?", doomed)
                db.execute("DELETE FROM items WHERE shard = ?", (name,))
                db.execute("DELETE FROM shards WHERE name = ?", (name,))

    def remember_hashes(self, rows: Iterable[tuple[str, int, int, str]]) -> None:
        """Store (path, size, mtime_ns, content hash) rows in the stat cache."""
        rows = list(rows)
        if not rows:
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO stat_cache (path, size, mtime_ns, content_hash) VALUES (?, ?, ?, ?)", rows)


def _has_shard_check_columns(db: sqlite3.Connection) -> bool:
    return {"digest", "mtime_ns"} <= {row[1] for row in db.execute("PRAGMA table_info(shards)")}


def _add_shard_check_columns(db: sqlite3.Connection) -> None:
    """Give a manifest written before shards had a recorded digest and mtime those columns (empty)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(shards)")}
    for column, kind in (("digest", "TEXT"), ("mtime_ns", "INTEGER")):
        if column not in columns:
            db.execute(f"ALTER TABLE shards ADD COLUMN {column} {kind}")


def write_refused(path: Path, exc: sqlite3.Error) -> KellyError:
    """The KellyError for a manifest write the database refused (disk full, I/O error, ...)."""
    return KellyError(f"{path}: cannot write the cache's manifest: {exc}; what was committed before is kept: "
                      f"free space (or fix the disk) and run `kelly preprocess` again")


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception; a write the database refuses
    (disk full, I/O error) is a KellyError naming the manifest."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self.db, self.path = db, path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise write_refused(self.path, exc) from None
        return self.db

    def _rollback(self) -> None:
        # SQLite ends the transaction itself on some errors (a full disk): no ROLLBACK is then possible
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
            except sqlite3.OperationalError as error:
                self._rollback()
                raise write_refused(self.path, error) from None
            return
        self._rollback()
        if isinstance(exc, sqlite3.OperationalError):
            raise write_refused(self.path, exc) from None
