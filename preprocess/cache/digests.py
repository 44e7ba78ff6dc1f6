"""Content digests: of a file's bytes (source files, shards) and of the labels an item is computed with.

    file_hash("datasets/lmd_full/0/0a1b.mid")     # 32 hex characters, BLAKE2b-128 of the bytes
    label_digest(item, metadata_read(item))       # changes when an annotation does
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any


def file_hash(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Content hash of a file: BLAKE2b-128 of its bytes, 32 hex characters."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_bytes)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """JSON-able form of label metadata (arrays as lists, NaN as None), for hashing."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def label_digest(item, metadata: dict[str, Any] | None = None) -> str:
    """Digest of what extraction reads from an Item besides its file: its labels and `metadata`
    (the metadata extraction reads; default: all of it). Not the split.

    A changed annotation (a corrected label, a new dynamic curve) changes this, and the item is
    recomputed even though its audio or MIDI file did not change.
    """
    payload = {
        "label_source": item.label_source,
        "valence": _plain(item.valence),
        "arousal": _plain(item.arousal),
        "metadata": _plain(item.metadata if metadata is None else metadata),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
