"""What one item contributes to the cache (`ItemResult`), and the HDF5 shard that stores many of them.

A shard is ``<cache>/<source>/shard-XXXX.h5``, written whole under ``shard-XXXX.h5.tmp`` and renamed
into place with ``os.replace``; a reader never sees a half-written file. Layout (layout.SHARD_FORMAT):

    attrs: format, source, feature_version, created
    items/item_id, items/content_hash, items/source_path, items/split, items/label_source   str [I]
    items/valence, items/arousal                          float32 [I]
    items/embedding                                       float32 [I, 64] (the item's emotion embedding)
    items/attributes                                      str [I] (JSON: proxy-label attributes)
    items/clip                                            float32 [I, 128] (deam: clip summary)
    <network>/item      uint [N]   row -> index into items/* (the smallest unsigned type that holds it)
    <network>/window    uint [N]   the window (or step) the row came from within its item (likewise)
    <network>/targets   as spec.CACHE_LAYOUT says: melody uint8 [N, 128] (fraction * 255),
                        harmony uint8 [N] (chord class), the others float32 [N, Dout]
    <network>/inputs    only where a row has inputs of its own: emotion float32 [N, 128] (log-mel),
                        harmony uint8 [N, 4] (previous chords); the rest of an input is the item's
                        embedding, which the reader gathers

Rows are ordered by item, then window. Datasets are contiguous and uncompressed: these arrays are
small, and contiguous reads are the fast ones. Measured with h5py on 200,000 x 128 float32 (2
cores): a whole read takes 29 ms contiguous against 93 ms chunked with lzf, and 256 scattered
rows 1.5 ms against 46 ms.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from common.errors import KellyError
from preprocess.cache import layout
from preprocess.cache.layout import SHARD_FORMAT
from preprocess.features import spec

SHARD_PATTERN = re.compile(r"^shard-(\d{4,})\.h5$")
TMP_SUFFIX = ".tmp"


@dataclass
class ItemResult:
    """Everything one item adds to the cache, in the cache's layout (`spec.CACHE_LAYOUT`).

    samples: {network: {"targets": [n, ...] as stored (`layout.encode_targets`), "window": int [n],
    and "inputs": [n, row_width] for networks whose rows have inputs of their own (emotion's
    log-mel windows, harmony's previous chords)}}. embedding: the item's emotion embedding,
    float32 [64], the first part of every row's input. valence/arousal: the item's labels in
    [-1, 1] (annotated, or derived when label_source is "proxy"). attributes: the musical attributes
    proxy labels were derived from. clip: DEAM's clip summary, float32 [128] (None elsewhere).
    """

    source: str
    item_id: str
    split: str
    content_hash: str
    label_source: str
    valence: float
    arousal: float
    source_path: str
    samples: dict[str, dict[str, np.ndarray]]
    embedding: np.ndarray | None = None
    clip: np.ndarray | None = None
    attributes: dict[str, float] = field(default_factory=dict)
    label_digest: str = ""

    def rows(self) -> dict[str, int]:
        """Rows per network."""
        return {network: int(arrays["window"].shape[0]) for network, arrays in self.samples.items()}

    def nbytes(self) -> int:
        """Bytes of the arrays (what a shard buffer holds for this item)."""
        own = sum(a.nbytes for a in (self.embedding, self.clip) if a is not None)
        return own + sum(a.nbytes for arrays in self.samples.values() for a in arrays.values())


class InvalidResult(ValueError):
    """An ItemResult whose arrays do not match the network table (a bug in a feature function)."""

    stage = "validate"


def _check_targets(network: str, targets, n: int) -> np.ndarray:
    """The targets of n rows in their stored dtype and shape, or InvalidResult."""
    targets = np.asarray(targets)
    shape, dtype = layout.target_shape(network, n), layout.target_dtype(network)
    if targets.shape != shape:
        raise InvalidResult(f"{network}: targets shape {targets.shape}, expected {shape}")
    if network == "harmony":
        if not np.issubdtype(targets.dtype, np.integer):
            raise InvalidResult(f"harmony: targets must be integer classes [{n}], got {targets.dtype}")
        if n and (targets.min() < 0 or targets.max() >= spec.HARMONY_CLASSES):
            raise InvalidResult(f"harmony: chord class outside [0, {spec.HARMONY_CLASSES})")
        return targets.astype(dtype)
    if dtype.kind != "f":
        if targets.dtype != dtype:
            raise InvalidResult(f"{network}: targets must be stored as {dtype} (layout.encode_targets), got {targets.dtype}")
        return targets
    targets = targets.astype(dtype, copy=False)
    if not np.all(np.isfinite(targets)):
        raise InvalidResult(f"{network}: non-finite targets")
    return targets


def _check_row_inputs(network: str, arrays: dict, n: int) -> np.ndarray | None:
    """A network's per-row inputs in their stored dtype, or None when its rows have none."""
    width, dtype = layout.row_width(network), layout.row_dtype(network)
    if not width:
        if "inputs" in arrays:
            raise InvalidResult(f"{network}: rows carry no inputs of their own (the item's embedding is gathered)")
        return None
    if "inputs" not in arrays:
        raise InvalidResult(f"{network}: missing ['inputs']")
    inputs = np.asarray(arrays["inputs"])
    if inputs.shape != (n, width):
        raise InvalidResult(f"{network}: inputs shape {inputs.shape}, expected ({n}, {width})")
    if network == "harmony":
        if not np.issubdtype(inputs.dtype, np.integer):
            raise InvalidResult(f"harmony: inputs must be the previous chord classes, got {inputs.dtype}")
        valid = (inputs >= 0) & ((inputs < spec.HARMONY_CLASSES) | (inputs == spec.NO_PREVIOUS_CHORD))
        if not valid.all():
            raise InvalidResult(f"harmony: previous chords must be classes 0..{spec.HARMONY_CLASSES - 1} or {spec.NO_PREVIOUS_CHORD}")
        return inputs.astype(dtype)
    inputs = inputs.astype(dtype, copy=False)
    if not np.all(np.isfinite(inputs)):
        raise InvalidResult(f"{network}: non-finite inputs")
    return inputs


def validate_result(result: ItemResult) -> ItemResult:
    """Check shapes, dtypes and finiteness against `spec.NETWORKS` and `spec.CACHE_LAYOUT`; sort rows
    by window.

    Returns the result with arrays in their stored dtypes; raises InvalidResult naming the network and fault.
    """
    if result.source not in spec.SOURCES:
        raise InvalidResult(f"unknown source {result.source!r}")
    for label in ("valence", "arousal"):
        value = getattr(result, label)
        if value is None or not np.isfinite(value) or not -1.0 <= float(value) <= 1.0:
            raise InvalidResult(f"{label} = {value!r} is not a number in [-1, 1]")
    if result.clip is not None:
        clip = np.asarray(result.clip, dtype=np.float32)
        if clip.shape != (spec.AUDIO_FEATURES,) or not np.all(np.isfinite(clip)):
            raise InvalidResult(f"clip summary has shape {clip.shape} or non-finite values; expected finite [{spec.AUDIO_FEATURES}]")
        result.clip = clip
    if result.embedding is not None:
        embedding = np.asarray(result.embedding, dtype=np.float32)
        if embedding.shape != (spec.EMBEDDING_SIZE,) or not np.all(np.isfinite(embedding)):
            raise InvalidResult(f"embedding has shape {embedding.shape} or non-finite values; "
                                f"expected finite [{spec.EMBEDDING_SIZE}]")
        result.embedding = embedding
    checked: dict[str, dict[str, np.ndarray]] = {}
    for network, arrays in result.samples.items():
        if network not in spec.TRAINED_NETWORKS:
            raise InvalidResult(f"unknown network {network!r}")
        sources = spec.TRAINED_NETWORKS[network].sources
        if result.source not in sources:
            raise InvalidResult(f"{network} samples from source {result.source!r} (expected one of {sources})")
        missing = {"targets", "window"} - set(arrays)
        if missing:
            raise InvalidResult(f"{network}: missing {sorted(missing)}")
        if layout.item_width(network) and result.embedding is None:
            raise InvalidResult(f"{network}: the item has no embedding, which its rows' inputs start with")
        window = np.asarray(arrays["window"])
        n = window.shape[0] if window.ndim == 1 else -1
        if window.ndim != 1 or not np.issubdtype(window.dtype, np.integer) or (n and window.min() < 0):
            raise InvalidResult(f"{network}: window must be non-negative integers [n], got {window.dtype} {window.shape}")
        row_inputs = _check_row_inputs(network, arrays, n)
        targets = _check_targets(network, arrays["targets"], n)
        order = np.argsort(window, kind="stable")
        checked[network] = {"targets": np.ascontiguousarray(targets[order]), "window": window[order].astype(np.int32)}
        if row_inputs is not None:
            checked[network]["inputs"] = np.ascontiguousarray(row_inputs[order])
    result.samples = checked
    return result


def shard_name(source: str, number: int) -> str:
    """Shard path relative to the cache directory: "deam/shard-0007.h5"."""
    return f"{source}/shard-{number:04d}.h5"


def shard_number(name: str) -> int | None:
    """The number in a shard file name, or None if the name is not a shard's."""
    match = SHARD_PATTERN.match(Path(name).name)
    return int(match.group(1)) if match else None


def shard_files(cache_dir: str | Path) -> list[str]:
    """Shard files on disk (committed or not), relative to the cache directory."""
    cache_dir = Path(cache_dir)
    out = []
    for source in spec.SOURCES:
        folder = cache_dir / source
        if folder.is_dir():
            out += [f"{source}/{p.name}" for p in sorted(folder.iterdir()) if SHARD_PATTERN.match(p.name)]
    return out


def temporary_files(cache_dir: str | Path) -> list[Path]:
    """Leftover ``*.tmp`` files of interrupted writes, in the cache root or a source folder."""
    cache_dir = Path(cache_dir)
    found = list(cache_dir.glob(f"*{TMP_SUFFIX}"))
    for source in spec.SOURCES:
        found += list((cache_dir / source).glob(f"*{TMP_SUFFIX}"))
    return sorted(found)


def _strings(values: Sequence[str]):
    import h5py

    return np.array(list(values), dtype=h5py.string_dtype("utf-8"))


def write_shard(cache_dir: str | Path, name: str, results: Sequence[ItemResult], feature_version: str) -> int:
    """Write `results` (all of one source) as the shard `name`; return its size in bytes.

    The file is written under ``<name>.tmp``, flushed to disk, then renamed into place; a write that
    fails (disk full: KellyError naming the shard) or is interrupted leaves no temporary behind.
    """
    final = Path(cache_dir) / name
    tmp = final.with_name(final.name + TMP_SUFFIX)
    try:
        return _write_shard_file(cache_dir, name, results, feature_version)
    except OSError as exc:              # a full disk, an I/O error: nothing half-written stays
        tmp.unlink(missing_ok=True)
        raise KellyError(f"{final}: cannot write this shard: {_os_fault(exc)}; what was committed before is kept: "
                         f"free space (or fix the disk) and run `kelly preprocess` again") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _os_fault(exc: OSError) -> str:
    """The fault in words, on one line (h5py's messages span several, with a time stamp)."""
    if exc.errno:
        return os.strerror(exc.errno)
    return " ".join(str(exc).split()) or type(exc).__name__


def _write_shard_file(cache_dir: str | Path, name: str, results: Sequence[ItemResult], feature_version: str) -> int:
    """Write `results` (all of one source) as the shard `name`; return its size in bytes.

    The file is written under ``<name>.tmp``, flushed to disk, then renamed into place.
    """
    import h5py

    if not results:
        raise ValueError("a shard needs at least one item")
    source = results[0].source
    if any(r.source != source for r in results):
        raise ValueError(f"shard {name}: items from several sources")
    final = Path(cache_dir) / name
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + TMP_SUFFIX)
    networks = [n for n, (_, _, sources) in spec.TRAINED_NETWORKS.items() if source in sources]
    with h5py.File(tmp, "w", libver="latest") as h5:
        h5.attrs["format"] = SHARD_FORMAT
        h5.attrs["source"] = source
        h5.attrs["feature_version"] = feature_version
        h5.attrs["created"] = time.time()
        items = h5.create_group("items")
        items["item_id"] = _strings([r.item_id for r in results])
        items["content_hash"] = _strings([r.content_hash for r in results])
        items["source_path"] = _strings([r.source_path for r in results])
        items["split"] = _strings([r.split for r in results])
        items["label_source"] = _strings([r.label_source for r in results])
        items["valence"] = np.array([r.valence for r in results], dtype=np.float32)
        items["arousal"] = np.array([r.arousal for r in results], dtype=np.float32)
        items["attributes"] = _strings([json.dumps(r.attributes, sort_keys=True) for r in results])
        embedding = np.zeros((len(results), spec.EMBEDDING_SIZE), dtype=np.float32)
        for i, r in enumerate(results):
            embedding[i] = np.nan if r.embedding is None else r.embedding
        items["embedding"] = embedding
        if any(r.clip is not None for r in results):
            clip = np.full((len(results), spec.AUDIO_FEATURES), np.nan, dtype=np.float32)
            for i, r in enumerate(results):
                if r.clip is not None:
                    clip[i] = r.clip
            items["clip"] = clip
        for network in networks:
            parts = [(i, r.samples[network]) for i, r in enumerate(results) if network in r.samples]
            group = h5.create_group(network)
            group["item"] = layout.smallest_uint(np.concatenate(
                [np.full(len(p["window"]), i, dtype=np.int64) for i, p in parts] or [np.zeros(0, np.int64)]))
            group["window"] = layout.smallest_uint(np.concatenate(
                [p["window"] for _, p in parts] or [np.zeros(0, np.int64)]))
            dtype = layout.target_dtype(network)
            group["targets"] = (np.concatenate([p["targets"] for _, p in parts]).astype(dtype, copy=False) if parts
                                else np.zeros(layout.target_shape(network, 0), dtype=dtype))
            if layout.row_width(network):
                dtype = layout.row_dtype(network)
                group["inputs"] = (np.concatenate([p["inputs"] for _, p in parts]).astype(dtype, copy=False) if parts
                                   else np.zeros((0, layout.row_width(network)), dtype=dtype))
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    return final.stat().st_size


def remove_uncommitted(cache_dir: str | Path, committed: set[str]) -> dict[str, int]:
    """Delete leftover ``.tmp`` files and shard files not in `committed` (names relative to the cache)."""
    cache_dir = Path(cache_dir)
    leftovers = temporary_files(cache_dir)
    for path in leftovers:
        path.unlink(missing_ok=True)
    orphans = [name for name in shard_files(cache_dir) if name not in committed]
    for name in orphans:
        (cache_dir / name).unlink(missing_ok=True)
    return {"tmp_files_removed": len(leftovers), "orphan_shards_removed": len(orphans)}
