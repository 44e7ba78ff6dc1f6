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
from contextlib import contextmanager
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
from preprocess.cache.labels import apply_labels, labels_digest, read_labels
from preprocess.cache.layout import SHARD_FORMAT
from preprocess.features import spec

DEFAULT_BLOCK_ROWS = 1 << 16


def check_network(network: str) -> spec.Network:
    """The network's entry in `spec.TRAINED_NETWORKS` (the plugin's five and the labeller); KellyError
    for an unknown name."""
    if network not in spec.TRAINED_NETWORKS:
        raise KellyError(f"unknown network {network!r}; the cache holds {', '.join(spec.TRAINED_NETWORKS)}")
    return spec.TRAINED_NETWORKS[network]


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


def _shard_records(manifest: Manifest, cache_dir: Path, network: str) -> tuple[dict[str, ShardRecord], dict[str, str]]:
    """Every shard's record, and per source of `network` the command that repairs its shards."""
    repairs = {source: repair_command(cache_dir, source, manifest.get_meta(DATASETS_DIR_KEY + source))
               for source in check_network(network).sources}
    return manifest.shards(), repairs


#: what h5py raises reading bytes damaged inside a shard (OSError: "Can't synchronously read data
#: ...", KeyError: "Unable to synchronously open object ...") and what garbage indices give
_READ_FAULTS = (OSError, KeyError, ValueError, IndexError, TypeError)


@contextmanager
def _open_shard(cache_dir: Path, name: str, record: ShardRecord | None, repairs: dict[str, str]):
    """A shard listed in the manifest, checked against its record (`integrity.inspect_shard`) and
    opened read-only; a failed check, or a read in the block that h5py refuses, is a KellyError
    naming the shard and its repair command; a shard of another layout, one saying to rebuild."""
    import h5py

    path = cache_dir / name

    def fault(problem: str) -> KellyError:
        repair = repairs.get(record.source if record else name.partition("/")[0]) or "kelly preprocess all --check"
        return KellyError(f"{path}: shard listed in the manifest: {problem}; repair it (the shard is dropped "
                          f"and its items computed again): {repair}")

    if record is None:
        raise fault("not in the manifest's list of shards, though items are served from it")
    state = inspect_shard(cache_dir, record)
    if state.problem is not None:
        raise fault(state.problem)
    try:
        h5 = h5py.File(path, "r")
        found = h5.attrs.get("format", "")
    except _READ_FAULTS as exc:
        raise fault(f"cannot be read ({type(exc).__name__}: {exc})") from None
    found = found.decode() if isinstance(found, bytes) else str(found)
    if found != SHARD_FORMAT:
        h5.close()
        raise KellyError(_rebuild_hint(path, found or "no recorded layout", SHARD_FORMAT, "the shard layout"))
    try:
        yield h5
    except _READ_FAULTS as exc:
        raise fault(f"cannot be read ({type(exc).__name__}: {exc})") from None
    finally:
        h5.close()


def _plan(cache_dir: Path, network: str, sources: Iterable[str] | None) -> _Plan:
    """The network's served items as an ItemTable (labels from the manifest, embeddings from the
    shards' item tables, one small read per shard, then the labels table's labels on the
    proxy-labelled items it covers, `labels.apply_labels`) and where their rows are."""
    network_sources = check_network(network).sources
    wanted = list(network_sources) if sources is None else [s for s in network_sources if s in set(sources)]
    with _open_checked(cache_dir) as manifest:
        served = manifest.served_items(network, wanted)
        records, repairs = _shard_records(manifest, cache_dir, network)
    if not served:
        raise KellyError(f"{cache_dir}: no {network} samples in the cache (sources {', '.join(wanted) or 'none'}); "
                         f"run `kelly preprocess` for {' or '.join(network_sources)}")
    source, item_id, split, label_source, valence, arousal, shard, shard_item = zip(*served)
    del served
    table = read_labels(cache_dir)
    content_hash: list[str | None] = [None] * len(item_id)
    embedding = np.full((len(item_id), spec.EMBEDDING_SIZE), np.nan, dtype=np.float32)
    by_shard: dict[str, list[tuple[int, int]]] = {}
    for index, (name, local) in enumerate(zip(shard, shard_item)):
        by_shard.setdefault(name, []).append((int(local), index))
    shards: dict[str, np.ndarray] = {}
    for name in sorted(by_shard):
        with _open_shard(cache_dir, name, records.get(name), repairs) as h5:
            if network not in h5:
                continue
            local_to_global = np.full(h5["items/item_id"].shape[0], -1, dtype=np.int64)
            local, global_index = np.array(by_shard[name], dtype=np.int64).T
            local_to_global[local] = global_index
            embedding[global_index] = h5["items/embedding"][()][local]
            if table is not None and h5.attrs.get("source") in table.items:
                for index, value in zip(global_index.tolist(), h5["items/content_hash"][()][local]):
                    content_hash[index] = value.decode() if isinstance(value, bytes) else str(value)
        shards[name] = local_to_global
    items = ItemTable(
        item_ids=list(item_id), sources=list(source),
        split=np.array([SPLIT_CODES[s] for s in split], dtype=np.uint8),
        valence=np.array([np.nan if v is None else v for v in valence], dtype=np.float32),
        arousal=np.array([np.nan if a is None else a for a in arousal], dtype=np.float32),
        label_source=np.array([LABEL_SOURCE_CODES[c] for c in label_source], dtype=np.uint8),
        embedding=embedding)
    return _Plan(apply_labels(items, content_hash, table), shards)


def _blocks(cache_dir: Path, network: str, plan: _Plan, block_rows: int | None) -> Iterator[Rows]:
    has_row_inputs = layout.row_width(network) > 0
    with Manifest.open(cache_dir) as manifest:
        records, repairs = _shard_records(manifest, cache_dir, network)
    for name, local_to_global in plan.shards.items():
        with _open_shard(cache_dir, name, records.get(name), repairs) as h5:
            group = h5[network]
            total = group["window"].shape[0]
            step = total if block_rows is None else max(1, int(block_rows))
            for start in range(0, total, step):
                stop = min(total, start + step)
                item = local_to_global[group["item"][start:stop]]
                keep = item >= 0
                if not keep.any():
                    continue
                window = group["window"][start:stop].astype(np.int32)
                targets = group["targets"][start:stop]
                row_inputs = (group["inputs"][start:stop] if has_row_inputs
                              else layout.empty_row_inputs(network, stop - start))
                rows = Rows(network, item, window, row_inputs, targets, plan.items)
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


def identity_of(records: Iterable[ItemRecord], feature_version: str, labels: str = "") -> str:
    """Hash of the served items (source, id, content hash, label digest, split), the feature version,
    the cache layout and (when not "") the labels table's digest (`labels.labels_digest`)."""
    digest = hashlib.sha256(f"{feature_version}\t{SHARD_FORMAT}".encode("utf-8"))
    if labels:
        digest.update(f"\tlabels {labels}".encode("utf-8"))
    for r in sorted(records, key=lambda r: (r.source, r.item_id)):
        digest.update(f"\n{r.source}\t{r.item_id}\t{r.content_hash}\t{r.label_digest}\t{r.split}".encode("utf-8"))
    return digest.hexdigest()[:32]


def cache_identity(cache_dir: str | Path) -> str:
    """An identity of the cache's current content: changes whenever any served row could change."""
    cache_dir = Path(cache_dir)
    with _open_checked(cache_dir) as manifest:
        return identity_of(manifest.served(), current_feature_version(), labels_digest(cache_dir))


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
        identity = identity_of(served, current_feature_version(), labels_digest(cache_dir))
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
        "samples": {n: {s: samples.get(n, {}).get(s, 0) for s in SPLIT_CODES} for n in spec.TRAINED_NETWORKS},
        "failures": by_reason,
        "shards": len(shards),
        "bytes": sum(s.bytes for s in shards.values()),
    }
