"""The reading side of the cache, for training: numpy arrays per network, read in whole blocks.

Depends on numpy, h5py and sqlite3 only. Shards are opened lazily inside the calling process (open
them after any fork/spawn, never before). Only rows of items the manifest currently serves are
returned: a shard on disk that the manifest does not vouch for, or rows of an item that was since
recomputed, are never seen.

    arrays = load_network("cache", "emotion")            # NetworkArrays, whole
    for block in iter_network_blocks("cache", "melody", block_rows=1 << 16):
        ...                                               # the same, streamed
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from preprocess.cache.manifest import (
    LABEL_SOURCE_CODES,
    MANIFEST_NAME,
    SPLIT_CODES,
    ItemRecord,
    Manifest,
    current_feature_version,
)
from preprocess.errors import KellyError
from preprocess.features import spec

STATS_NAME = "stats.json"
DEFAULT_BLOCK_ROWS = 1 << 16


@dataclass
class NetworkArrays:
    """Rows of one network's training data.

    inputs float32 [n, Din]; targets float32 [n, Dout] (harmony: int64 [n] chord classes);
    split uint8 [n] (0 train, 1 validation, 2 test); item int64 [n], an index into item_ids and
    sources; window int32 [n], the row's window within its item; valence, arousal float32 [n], the
    item's labels; label_source uint8 [n] (0 annotated, 1 proxy). item_ids, sources: per item.
    """

    inputs: np.ndarray
    targets: np.ndarray
    split: np.ndarray
    item: np.ndarray
    window: np.ndarray
    valence: np.ndarray
    arousal: np.ndarray
    label_source: np.ndarray
    item_ids: list[str]
    sources: list[str]

    def __len__(self) -> int:
        return int(self.window.shape[0])

    def select(self, rows: np.ndarray) -> "NetworkArrays":
        """The rows picked by a boolean mask or an index array (item lists shared)."""
        return NetworkArrays(
            self.inputs[rows], self.targets[rows], self.split[rows], self.item[rows], self.window[rows],
            self.valence[rows], self.arousal[rows], self.label_source[rows], self.item_ids, self.sources)

    def split_rows(self, split: str) -> "NetworkArrays":
        """Rows of one split ("train", "validation", "test")."""
        return self.select(self.split == SPLIT_CODES[split])


def _check_network(network: str) -> tuple[int, int, tuple[str, ...]]:
    if network not in spec.NETWORKS:
        raise KellyError(f"unknown network {network!r}; the cache holds {', '.join(spec.NETWORKS)}")
    return spec.NETWORKS[network]


def _open_checked(cache_dir: Path) -> Manifest:
    """Open the manifest read-only; a missing, empty or other-version cache is a KellyError."""
    if not cache_dir.is_dir():
        raise KellyError(f"{cache_dir}: no feature cache here (no such directory); run `kelly preprocess all` first")
    manifest = Manifest.open(cache_dir)
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

    item_ids: list[str]
    sources: list[str]
    records: list[ItemRecord]
    shards: dict[str, dict[int, int]]       # shard name -> {index within shard: global item index}


def _plan(cache_dir: Path, network: str, sources: Iterable[str] | None) -> _Plan:
    network_sources = _check_network(network)[2]
    wanted = list(network_sources) if sources is None else [s for s in network_sources if s in set(sources)]
    with _open_checked(cache_dir) as manifest:
        with_rows = manifest.served_rows(network, wanted)
        records = [r for r in manifest.served(wanted) if with_rows.get((r.source, r.item_id), 0) > 0]
    if not records:
        raise KellyError(f"{cache_dir}: no {network} samples in the cache (sources {', '.join(wanted) or 'none'}); "
                         f"run `kelly preprocess` for {' or '.join(network_sources)}")
    shards: dict[str, dict[int, int]] = {}
    for index, record in enumerate(records):
        shards.setdefault(record.shard, {})[int(record.shard_item)] = index
    return _Plan([r.item_id for r in records], [r.source for r in records], records, shards)


def _blocks(cache_dir: Path, network: str, plan: _Plan, block_rows: int | None) -> Iterator[NetworkArrays]:
    import h5py

    split = np.array([SPLIT_CODES[r.split] for r in plan.records], dtype=np.uint8)
    valence = np.array([np.nan if r.valence is None else r.valence for r in plan.records], dtype=np.float32)
    arousal = np.array([np.nan if r.arousal is None else r.arousal for r in plan.records], dtype=np.float32)
    label_source = np.array([LABEL_SOURCE_CODES[r.label_source] for r in plan.records], dtype=np.uint8)
    for name in sorted(plan.shards):
        path = cache_dir / name
        try:
            h5 = h5py.File(path, "r")
        except (OSError, FileNotFoundError) as exc:
            raise KellyError(f"{path}: shard listed in the manifest cannot be read ({exc}); "
                             f"run `kelly preprocess` to rebuild it") from exc
        with h5:
            if network not in h5:
                continue
            group = h5[network]
            n_items = h5["items/item_id"].shape[0]
            local_to_global = np.full(n_items, -1, dtype=np.int64)
            for local, global_index in plan.shards[name].items():
                local_to_global[local] = global_index
            total = group["window"].shape[0]
            step = total if block_rows is None else max(1, int(block_rows))
            for start in range(0, total, step):
                stop = min(total, start + step)
                local_item = group["item"][start:stop]
                item = local_to_global[local_item]
                keep = item >= 0
                if not keep.any():
                    continue
                everything = bool(keep.all())
                inputs = group["inputs"][start:stop]
                targets = group["targets"][start:stop]
                window = group["window"][start:stop]
                if not everything:
                    inputs, targets, window, item = inputs[keep], targets[keep], window[keep], item[keep]
                yield NetworkArrays(
                    inputs=inputs, targets=targets, split=split[item], item=item, window=window,
                    valence=valence[item], arousal=arousal[item], label_source=label_source[item],
                    item_ids=plan.item_ids, sources=plan.sources)


def iter_network_blocks(cache_dir: str | Path, network: str, block_rows: int = DEFAULT_BLOCK_ROWS, *,
                        sources: Iterable[str] | None = None) -> Iterator[NetworkArrays]:
    """Stream a network's rows as NetworkArrays blocks of at most `block_rows` rows.

    Each block is one contiguous slice of one shard (blocks never span shards); item indices are
    global and stable across blocks. For sources bigger than memory.
    """
    cache_dir = Path(cache_dir)
    plan = _plan(cache_dir, network, sources)
    yield from _blocks(cache_dir, network, plan, block_rows)


def load_network(cache_dir: str | Path, network: str, *, sources: Iterable[str] | None = None) -> NetworkArrays:
    """All served rows of a network, each shard's datasets read whole. sources: restrict to these."""
    cache_dir = Path(cache_dir)
    plan = _plan(cache_dir, network, sources)
    blocks = list(_blocks(cache_dir, network, plan, None))
    if not blocks:
        raise KellyError(f"{cache_dir}: the manifest lists {network} samples but no shard holds them; "
                         f"run `kelly preprocess` to rebuild the cache")
    return NetworkArrays(
        inputs=np.concatenate([b.inputs for b in blocks]),
        targets=np.concatenate([b.targets for b in blocks]),
        split=np.concatenate([b.split for b in blocks]),
        item=np.concatenate([b.item for b in blocks]),
        window=np.concatenate([b.window for b in blocks]),
        valence=np.concatenate([b.valence for b in blocks]),
        arousal=np.concatenate([b.arousal for b in blocks]),
        label_source=np.concatenate([b.label_source for b in blocks]),
        item_ids=plan.item_ids, sources=plan.sources)


def identity_of(records: Iterable[ItemRecord], feature_version: str) -> str:
    """Hash of the served items (source, id, content hash, label digest, split) and the feature version."""
    digest = hashlib.sha256(feature_version.encode("utf-8"))
    for r in sorted(records, key=lambda r: (r.source, r.item_id)):
        digest.update(f"\n{r.source}\t{r.item_id}\t{r.content_hash}\t{r.label_digest}\t{r.split}".encode("utf-8"))
    return digest.hexdigest()[:32]


def cache_identity(cache_dir: str | Path) -> str:
    """An identity of the cache's current content: changes whenever any served row could change."""
    cache_dir = Path(cache_dir)
    with _open_checked(cache_dir) as manifest:
        return identity_of(manifest.served(), current_feature_version())


def input_stats(cache_dir: str | Path, network: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-band (mean, std) of the network's training inputs, float32 [Din] each.

    None when the cache has no statistics for the network or they were computed for other content
    (the cache changed since; `kelly preprocess` recomputes them). Bands with zero variance have std 1.
    """
    cache_dir = Path(cache_dir)
    _check_network(network)
    path = cache_dir / STATS_NAME
    if not path.is_file():
        return None
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KellyError(f"{path}: unreadable normalisation statistics ({exc}); run `kelly preprocess` again") from exc
    entry = stats.get("networks", {}).get(network)
    if entry is None or stats.get("feature_version") != current_feature_version():
        return None
    if stats.get("identity") != cache_identity(cache_dir):
        return None
    return np.asarray(entry["mean"], dtype=np.float32), np.asarray(entry["std"], dtype=np.float32)


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
