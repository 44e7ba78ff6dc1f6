"""The reading side of the cache, for training: a network's `Rows`, read in whole blocks.

Depends on numpy, h5py and sqlite3 only. Shards are opened lazily inside the calling process (open
them after any fork/spawn, never before). Only rows of items the manifest currently serves are
returned: a shard on disk that the manifest does not vouch for, or rows of an item that was since
recomputed, are never seen. A cache in another layout than this code's (`layout.SHARD_FORMAT`) or
of another feature version is refused with a KellyError that says to rebuild it.

Before a shard is opened it is compared with what the manifest recorded when it was written
(`integrity.inspect_shard`: present, its size, HDF5's signature, and its content digest when its
modification time changed); a shard that fails, or that h5py cannot read, is a KellyError naming
the shard, what is wrong, and the command that drops it and computes its items again
(`kelly preprocess SOURCE --check ...`).

    rows = load_network("cache", "emotion")               # Rows, whole
    for block in iter_network_blocks("cache", "melody", block_rows=1 << 16):
        ...                                               # the same, streamed
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from common.errors import KellyError
from preprocess.cache import layout
from preprocess.cache.integrity import DATASETS_DIR_KEY, inspect_shard, repair_command
from preprocess.cache.manifest import (
    LABEL_SOURCE_CODES,
    MANIFEST_NAME,
    SPLIT_CODES,
    ItemRecord,
    Manifest,
    ShardRecord,
    current_feature_version,
)
from preprocess.cache.rows import ItemTable, Rows
from preprocess.cache.layout import SHARD_FORMAT
from preprocess.features import spec

DEFAULT_BLOCK_ROWS = 1 << 16


def check_network(network: str) -> spec.Network:
    """The network's entry in `spec.NETWORKS`; KellyError for an unknown name."""
    if network not in spec.NETWORKS:
        raise KellyError(f"unknown network {network!r}; the cache holds {', '.join(spec.NETWORKS)}")
    return spec.NETWORKS[network]


def _rebuild_hint(cache_dir: Path, found: str, current: str, what: str) -> str:
    return (f"{cache_dir}: the cache was written with {what} {found}, this code reads {current}; "
            f"run `kelly preprocess all` to rebuild it")


def _open_checked(cache_dir: Path) -> Manifest:
    """Open the manifest read-only; a missing, empty, other-layout or other-version cache is a KellyError."""
    if not cache_dir.is_dir():
        raise KellyError(f"{cache_dir}: no feature cache here (no such directory); run `kelly preprocess all` first")
    manifest = Manifest.open(cache_dir)
    found_format = manifest.cache_format()
    if found_format is not None and found_format != SHARD_FORMAT:
        manifest.close()
        raise KellyError(_rebuild_hint(cache_dir, found_format, SHARD_FORMAT, "the cache layout"))
    versions = manifest.feature_versions()
    current = current_feature_version()
    if not versions:
        manifest.close()
        raise KellyError(f"{cache_dir}: the feature cache is empty ({MANIFEST_NAME} lists no items); run `kelly preprocess all`")
    if current not in versions:
        manifest.close()
        found = ", ".join(sorted(versions))
        raise KellyError(f"{cache_dir}: the cache was built with feature version {found}, this code computes {current}; "
                         f"run `kelly preprocess all` to rebuild it")
    return manifest


@dataclass
class _Plan:
    """Which rows to read: served items of a network, grouped by shard, with global item indices."""

    items: ItemTable
    shards: dict[str, np.ndarray]       # shard name -> global item index per item of the shard (-1: not served)
    records: dict[str, ShardRecord]     # shard name -> what the manifest recorded when it was written
    repairs: dict[str, str]             # source -> the command that drops its damaged shards and recomputes them


class _Shard:
    """A shard listed in the manifest, checked against its record and opened read-only; any fault
    in it (a failed check, a read h5py refuses) is a KellyError naming it and its repair command.

        with _Shard(cache_dir, record, repair) as shard:
            values = shard.read(lambda h5: h5["items/embedding"][()])
    """

    def __init__(self, cache_dir: Path, record: ShardRecord, repair: str):
        self.path, self.repair = cache_dir / record.name, repair
        state = inspect_shard(cache_dir, record)
        if state.problem is not None:
            raise self.fault(state.problem)
        import h5py

        try:
            self.h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise self.fault(f"cannot be read ({exc})") from None
        found = self.read(lambda h5: h5.attrs.get("format", ""))
        found = found.decode() if isinstance(found, bytes) else str(found)
        if found != SHARD_FORMAT:
            self.h5.close()
            raise KellyError(_rebuild_hint(self.path, found or "no recorded layout", SHARD_FORMAT, "the shard layout"))

    def fault(self, problem: str) -> KellyError:
        return KellyError(f"{self.path}: shard listed in the manifest: {problem}; repair it (the shard is dropped "
                          f"and its items computed again): {self.repair}")

    def read(self, what):
        """what(h5): the values it reads; a read that fails (bytes damaged inside) is the shard's fault."""
        try:
            return what(self.h5)
        except (OSError, KeyError, ValueError, IndexError, TypeError) as exc:
            raise self.fault(f"cannot be read ({type(exc).__name__}: {exc})") from None

    def __enter__(self) -> "_Shard":
        return self

    def __exit__(self, *exc) -> None:
        self.h5.close()


def _plan(cache_dir: Path, network: str, sources: Iterable[str] | None) -> _Plan:
    """The network's served items as an ItemTable (labels from the manifest, embeddings from the
    shards' item tables, one small read per shard) and where their rows are."""
    network_sources = check_network(network).sources
    wanted = list(network_sources) if sources is None else [s for s in network_sources if s in set(sources)]
    with _open_checked(cache_dir) as manifest:
        served = manifest.served_items(network, wanted)
        records = manifest.shards()
        repairs = {name: repair_command(cache_dir, name, manifest.get_meta(DATASETS_DIR_KEY + name))
                   for name in network_sources}
    if not served:
        raise KellyError(f"{cache_dir}: no {network} samples in the cache (sources {', '.join(wanted) or 'none'}); "
                         f"run `kelly preprocess` for {' or '.join(network_sources)}")
    source, item_id, split, label_source, valence, arousal, shard, shard_item = zip(*served)
    del served
    embedding = np.full((len(item_id), spec.EMBEDDING_SIZE), np.nan, dtype=np.float32)
    by_shard: dict[str, list[tuple[int, int]]] = {}
    for index, (name, local) in enumerate(zip(shard, shard_item)):
        by_shard.setdefault(name, []).append((int(local), index))
    shards: dict[str, np.ndarray] = {}
    for name in sorted(by_shard):
        record = records.get(name)
        if record is None:
            first_source = source[by_shard[name][0][1]]
            raise KellyError(f"{cache_dir / name}: items are served from a shard the manifest does not list; "
                             f"repair it: {repairs[first_source]}")
        with _Shard(cache_dir, record, repairs[record.source]) as shard:
            if not shard.read(lambda h5: network in h5):
                continue
            item_embedding = shard.read(lambda h5: h5["items/embedding"][()])
            local, global_index = np.array(by_shard[name], dtype=np.int64).T
            if item_embedding.shape != (record.items, spec.EMBEDDING_SIZE) or local.max() >= record.items:
                raise shard.fault(f"holds {item_embedding.shape[0]} item(s), {record.items} when written")
            local_to_global = np.full(record.items, -1, dtype=np.int64)
            local_to_global[local] = global_index
            embedding[global_index] = item_embedding[local]
        shards[name] = local_to_global
    items = ItemTable(
        item_ids=list(item_id), sources=list(source),
        split=np.array([SPLIT_CODES[s] for s in split], dtype=np.uint8),
        valence=np.array([np.nan if v is None else v for v in valence], dtype=np.float32),
        arousal=np.array([np.nan if a is None else a for a in arousal], dtype=np.float32),
        label_source=np.array([LABEL_SOURCE_CODES[c] for c in label_source], dtype=np.uint8),
        embedding=embedding)
    return _Plan(items, shards, records, repairs)


def _blocks(cache_dir: Path, network: str, plan: _Plan, block_rows: int | None) -> Iterator[Rows]:
    has_row_inputs = layout.row_width(network) > 0
    for name, local_to_global in plan.shards.items():
        record = plan.records[name]
        with _Shard(cache_dir, record, plan.repairs[record.source]) as shard:
            total = shard.read(lambda h5: h5[network]["window"].shape[0])
            if total != record.rows.get(network, 0):
                raise shard.fault(f"holds {total:,} {network} row(s), {record.rows.get(network, 0):,} when written")
            step = total if block_rows is None else max(1, int(block_rows))
            for start in range(0, total, step):
                stop = min(total, start + step)

                def block(h5, start=start, stop=stop):
                    group = h5[network]
                    return (group["item"][start:stop], group["window"][start:stop], group["targets"][start:stop],
                            group["inputs"][start:stop] if has_row_inputs else None)

                stored_item, window, targets, row_inputs = shard.read(block)
                if stored_item.size and int(stored_item.max()) >= len(local_to_global):
                    raise shard.fault(f"a {network} row points past the shard's {len(local_to_global)} item(s)")
                item = local_to_global[stored_item]
                keep = item >= 0
                if not keep.any():
                    continue
                if row_inputs is None:
                    row_inputs = layout.empty_row_inputs(network, stop - start)
                rows = Rows(network, item, window.astype(np.int32), row_inputs, targets, plan.items)
                yield rows if keep.all() else rows.take(keep)


def iter_network_blocks(cache_dir: str | Path, network: str, block_rows: int = DEFAULT_BLOCK_ROWS, *,
                        sources: Iterable[str] | None = None) -> Iterator[Rows]:
    """Stream a network's rows as Rows blocks of at most `block_rows` rows.

    Each block is one contiguous slice of one shard (blocks never span shards); item indices are
    global and stable across blocks, and every block refers to the same ItemTable. For sources
    bigger than memory.
    """
    cache_dir = Path(cache_dir)
    plan = _plan(cache_dir, network, sources)
    yield from _blocks(cache_dir, network, plan, block_rows)


def load_network(cache_dir: str | Path, network: str, *, sources: Iterable[str] | None = None) -> Rows:
    """All served rows of a network, each shard's datasets read whole. sources: restrict to these."""
    cache_dir = Path(cache_dir)
    plan = _plan(cache_dir, network, sources)
    blocks = list(_blocks(cache_dir, network, plan, None))
    if not blocks:
        raise KellyError(f"{cache_dir}: the manifest lists {network} samples but no shard holds them; "
                         f"run `kelly preprocess` to rebuild the cache")
    return Rows.concat(blocks)


def identity_of(records: Iterable[ItemRecord], feature_version: str) -> str:
    """Hash of the served items (source, id, content hash, label digest, split), the feature version
    and the cache layout."""
    digest = hashlib.sha256(f"{feature_version}\t{SHARD_FORMAT}".encode("utf-8"))
    for r in sorted(records, key=lambda r: (r.source, r.item_id)):
        digest.update(f"\n{r.source}\t{r.item_id}\t{r.content_hash}\t{r.label_digest}\t{r.split}".encode("utf-8"))
    return digest.hexdigest()[:32]


def cache_identity(cache_dir: str | Path) -> str:
    """An identity of the cache's current content: changes whenever any served row could change."""
    cache_dir = Path(cache_dir)
    with _open_checked(cache_dir) as manifest:
        return identity_of(manifest.served(), current_feature_version())


def cache_summary(cache_dir: str | Path, *, examples: int = 5) -> dict:
    """What the cache holds: items and failures per source, samples per network and split.

    {"cache_dir", "feature_version", "identity", "items": {source: {"done": n, "failed": n}},
     "samples": {network: {"train": n, "validation": n, "test": n}},
     "failures": {reason: {"count": n, "examples": ["file: stage: message", ...]}}, "shards": n, "bytes": n}
    """
    cache_dir = Path(cache_dir)
    with _open_checked(cache_dir) as manifest:
        served = manifest.served()
        failures = manifest.failures()
        samples = manifest.samples_by_split()
        shards = manifest.shards()
        identity = identity_of(served, current_feature_version())
    items: dict[str, dict[str, int]] = {}
    for r in served:
        items.setdefault(r.source, {"done": 0, "failed": 0})["done"] += 1
    by_reason: dict[str, dict] = {}
    for r in failures:
        items.setdefault(r.source, {"done": 0, "failed": 0})["failed"] += 1
        entry = by_reason.setdefault(r.reason, {"count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < examples:
            entry["examples"].append(f"{r.source_path}: {r.error}")
    return {
        "cache_dir": str(cache_dir),
        "feature_version": current_feature_version(),
        "identity": identity,
        "items": items,
        "samples": {n: {s: samples.get(n, {}).get(s, 0) for s in SPLIT_CODES} for n in spec.NETWORKS},
        "failures": by_reason,
        "shards": len(shards),
        "bytes": sum(s.bytes for s in shards.values()),
    }
