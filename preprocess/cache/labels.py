"""The cache's labels table: (valence, arousal) a trained EmotionLabeller gave the MIDI items that
have no human label, applied when the cache is read, so relabelling recomputes no feature.

``<cache>/labels.json`` (written whole, atomically, by `kelly label --cache-dir`):

    {"format": "kelly-labels-1", "label_source": "labeller:<id>", "labeller_version": ...,
     "checkpoint": "<path of the labeller's checkpoint>", "created": <unix time>,
     "items": {"<source>": {"<item id>": [content hash, valence, arousal], ...}, ...}}

<id> is a short digest of the labeller's checkpoint file (train.labeller_network.labeller_id).
An entry applies to an item (`apply_labels`) only when the item's label source is "proxy" and its
file's content hash is the entry's: a human label (EMOPIA, DEAM, emotion_labels.json,
drum_labels.json) always wins, and an item whose file changed since it was labelled keeps its
proxy until it is labelled again. Applying replaces the item's valence, arousal, emotion embedding
(`preprocess.features.embedding.embed`, the code every conditioned network's input starts with)
and label source (code 2, named by the table's "labeller:<id>"). The table's digest is part of the
cache's identity (`reader.cache_identity`), so input statistics computed before it are not served.

Sources labelled: Lakh and MAESTRO (`LABELLED_SOURCES`). Groove keeps its proxy labels: its files
are drum kits alone, and the labeller reads pitch classes, bass and top lines, register and the key
(`preprocess.features.labeller_input`), none of which a drum pattern has; its frames refuse files
without pitched notes rather than guess.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from common.errors import KellyError
from common.files import atomic_write
from preprocess.cache.rows import ItemTable
from preprocess.features import spec

LABELS_NAME = "labels.json"
FORMAT = "kelly-labels-1"
#: the sources whose proxy-labelled items the labeller labels (Groove: see the module docstring)
LABELLED_SOURCES = ("lakh", "maestro")
LABELLER_CODE = spec.LABEL_SOURCES.index(spec.LABEL_LABELLER)
PROXY_CODE = spec.LABEL_SOURCES.index(spec.LABEL_PROXY)


@dataclass
class LabelTable:
    """labels.json in memory: label_source "labeller:<id>"; items {source: {item id: (content hash,
    valence, arousal)}}."""

    label_source: str
    labeller_version: str
    checkpoint: str
    items: dict[str, dict[str, tuple[str, float, float]]] = field(default_factory=dict)
    created: float = 0.0
    #: where each axis's values come from: "labeller", or "proxy" where the proxy rules agreed better
    #: with EMOPIA's annotators on held-out clips (kelly.label_choice); the held-out figures beside
    axes: dict[str, str] = field(default_factory=lambda: {"valence": "labeller", "arousal": "labeller"})
    agreement: dict = field(default_factory=dict)

    def source_name(self) -> str:
        """The label source its items are recorded under: "labeller:<id>", and where one axis kept
        the proxy's values, which ("labeller:<id> (valence; arousal: proxy)")."""
        kept = [axis for axis, origin in self.axes.items() if origin == "proxy"]
        if len(kept) == 1:
            used = next(axis for axis in self.axes if axis not in kept)
            return f"{self.label_source} ({used}; {kept[0]}: proxy)"
        return self.label_source

    def __len__(self) -> int:
        return sum(len(entries) for entries in self.items.values())

    def add(self, source: str, item_id: str, content_hash: str, valence: float, arousal: float) -> None:
        """One item's labels, each checked to be a finite number in [-1, 1] (ValueError otherwise)."""
        for name, value in (("valence", valence), ("arousal", arousal)):
            if not (math.isfinite(value) and -1.0 <= value <= 1.0):
                raise ValueError(f"{source}:{item_id}: {name} {value!r} is not a number in [-1, 1]")
        self.items.setdefault(source, {})[item_id] = (str(content_hash), float(valence), float(arousal))

    def to_json(self) -> dict:
        return {"format": FORMAT, "label_source": self.label_source, "labeller_version": self.labeller_version,
                "checkpoint": self.checkpoint, "created": self.created or time.time(),
                "axes": dict(self.axes), "agreement": self.agreement,
                "items": {s: {i: list(e) for i, e in sorted(entries.items())} for s, entries in sorted(self.items.items())}}


def labels_path(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / LABELS_NAME


def write_labels(cache_dir: str | Path, table: LabelTable) -> Path:
    """Write labels.json atomically (a temporary beside it, then renamed)."""
    path = labels_path(cache_dir)
    with atomic_write(path, "w") as handle:
        json.dump(table.to_json(), handle, separators=(",", ":"))
    return path


def remove_labels(cache_dir: str | Path) -> bool:
    """Delete labels.json (the items fall back to their proxy labels); whether there was one."""
    path = labels_path(cache_dir)
    if path.is_file():
        path.unlink()
        return True
    return False


def read_labels(cache_dir: str | Path) -> LabelTable | None:
    """labels.json, or None when the cache has none. KellyError naming the file when it is damaged."""
    path = labels_path(cache_dir)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise KellyError(f"{path}: unreadable labels table ({exc}); run `kelly label --cache-dir` again "
                         f"or delete it") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("items"), dict):
        raise KellyError(f"{path}: not a kelly labels table (format {raw.get('format') if isinstance(raw, dict) else None!r}, "
                         f"expected {FORMAT!r})")
    table = LabelTable(label_source=str(raw.get("label_source", spec.LABEL_LABELLER)),
                       labeller_version=str(raw.get("labeller_version", "")), checkpoint=str(raw.get("checkpoint", "")),
                       created=float(raw.get("created", 0.0)))
    axes = raw.get("axes")
    if isinstance(axes, dict) and all(axes.get(a) in ("labeller", "proxy") for a in ("valence", "arousal")):
        table.axes = {a: axes[a] for a in ("valence", "arousal")}
    if isinstance(raw.get("agreement"), dict):
        table.agreement = raw["agreement"]
    try:
        for source, entries in raw["items"].items():
            for item_id, (content_hash, valence, arousal) in entries.items():
                table.add(source, item_id, content_hash, float(valence), float(arousal))
    except (TypeError, ValueError) as exc:
        raise KellyError(f"{path}: a malformed entry ({exc}); run `kelly label --cache-dir` again") from None
    return table


def labels_digest(cache_dir: str | Path) -> str:
    """A digest of labels.json's bytes ("" when there is none): part of the cache's identity."""
    path = labels_path(cache_dir)
    if not path.is_file():
        return ""
    return hashlib.blake2b(path.read_bytes(), digest_size=8).hexdigest()


def apply_labels(items: ItemTable, content_hashes: list[str | None], table: LabelTable | None) -> ItemTable:
    """`items` with the table's labels on its proxy-labelled items whose content hash matches
    (content_hashes: per item, None where unknown); every other item as it was. A new table
    when anything changed (the given one is not modified)."""
    if table is None or not len(table):
        return items
    from preprocess.features.embedding import embed

    chosen, values = [], []
    for index, (source, item_id) in enumerate(zip(items.sources, items.item_ids)):
        if items.label_source[index] != PROXY_CODE:
            continue
        entry = table.items.get(source, {}).get(item_id)
        if entry is None or content_hashes[index] is None or entry[0] != content_hashes[index]:
            continue
        chosen.append(index)
        values.append(entry[1:])
    if not chosen:
        return items
    index = np.asarray(chosen, dtype=np.int64)
    valence, arousal = (np.asarray(v, dtype=np.float32) for v in zip(*values))
    out = replace(items, valence=items.valence.copy(), arousal=items.arousal.copy(),
                  label_source=items.label_source.copy(), embedding=items.embedding.copy(),
                  labeller=table.source_name())
    out.valence[index], out.arousal[index] = valence, arousal
    out.label_source[index] = LABELLER_CODE
    out.embedding[index] = embed(valence.astype(np.float64), arousal.astype(np.float64)).astype(np.float32)
    return out
