"""What every dataset reader returns, and the seeded split shared by datasets without an official one.

Each reader module (deam, maestro, groove, lakh, harmony) has the same interface, as mirdata's do:

    NAME: str                    the source name ("deam", ...)
    LAYOUTS: tuple[str, ...]     the layouts it understands, most specific first
    FOLDER_NAMES: tuple[str, ...] folder names under a datasets root where it looks
    detect(root) -> str | None   the layout found directly under `root`, or None
    load(root, layout=None, *, seed=0, validation_split=0.2, test_split=0.0) -> ReadResult
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "validation", "test")

#: where an item's valence/arousal came from
LABEL_ANNOTATED = "annotated"   # from the dataset's own annotation files
LABEL_PROXY = "proxy"           # to be derived from documented musical attributes (preprocess.features.proxy_labels)


@dataclass
class Item:
    """One unit of a dataset: a file (or one progression of a chord JSON) with its labels and split.

    valence/arousal are in [-1, 1] when `label_source` is "annotated", and None when it is "proxy"
    (the preprocess job derives them from the music and records that it did).
    """

    source: str                      # "deam" | "maestro" | "groove" | "lakh" | "harmony"
    item_id: str                     # stable identity within the source (relative path, song id, md5, "file.json#3")
    path: Path                       # the file to read (for harmony: the JSON file)
    split: str                       # "train" | "validation" | "test"
    label_source: str                # LABEL_ANNOTATED | LABEL_PROXY
    valence: float | None = None
    arousal: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReadResult:
    """A reader's answer: the items, the layout it read, and what it counted on the way."""

    source: str
    layout: str
    root: Path
    items: list[Item]
    # counted, reported, never fatal: e.g. {"labels_without_file": 3, "files_without_labels": 2, "duplicates": 1}
    counts: dict[str, int] = field(default_factory=dict)
    # short human-readable notes about what was skipped and why (first few examples)
    notes: list[str] = field(default_factory=list)

    def split_counts(self) -> dict[str, int]:
        out = {s: 0 for s in SPLITS}
        for item in self.items:
            out[item.split] = out.get(item.split, 0) + 1
        return out


def assign_split(identity: str, *, seed: int = 0, validation_split: float = 0.2, test_split: float = 0.0) -> str:
    """Deterministic split from a seed and the identity of the source file.

    The identity is hashed with the seed to a number u in [0, 1): u < test_split is "test",
    u < test_split + validation_split is "validation", the rest "train". An item's side depends on
    nothing but its own identity, so adding files moves none of the others, and every window of a
    file goes where its file goes.
    """
    if not 0.0 <= validation_split < 1.0 or not 0.0 <= test_split < 1.0 or validation_split + test_split >= 1.0:
        raise ValueError(f"validation_split={validation_split} and test_split={test_split} must be >= 0 and sum to < 1")
    digest = hashlib.sha1(f"{seed}:{identity}".encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < test_split:
        return "test"
    if u < test_split + validation_split:
        return "validation"
    return "train"
