"""The rows of one network's training data, as the cache stores them: the type the reader returns
and the trainer works on.

A `Rows` holds per row only what is the row's own (its item, its window, its stored inputs and
targets, in the cache's compact types, see `layout`), and refers to an `ItemTable` for what is the
same on every row of an item (split, labels, the emotion embedding). `inputs` and `targets` give
the arrays the network sees, rebuilt on demand:

    rows.inputs      float32 [N, Din]   the item's embedding (gathered) | the row's own inputs
    rows.targets     float32 [N, Dout]  (harmony: int64 [N], a chord class)

numpy only (no h5py, no torch).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from preprocess.cache import layout
from preprocess.features import spec


@dataclass
class ItemTable:
    """Per-item values, indexed by `Rows.item` (a global item index).

    item_ids, sources: list[str] [I]; split uint8 [I] (0 train, 1 validation, 2 test); valence,
    arousal float32 [I] (the item's labels, NaN when unknown); label_source uint8 [I] (0 annotated,
    1 proxy, 2 a labeller's, spec.LABEL_SOURCES); embedding float32 [I, 64], the item's emotion
    embedding; labeller: the name of code 2 ("labeller:<id>", preprocess.cache.labels) where used.
    """

    item_ids: list[str]
    sources: list[str]
    split: np.ndarray
    valence: np.ndarray
    arousal: np.ndarray
    label_source: np.ndarray
    embedding: np.ndarray
    labeller: str = ""

    def __len__(self) -> int:
        return len(self.split)

    def label_source_name(self, code: int) -> str:
        """The label source of a code: "annotated", "proxy", or "labeller:<id>"."""
        name = spec.LABEL_SOURCES[int(code)]
        return self.labeller or name if name == spec.LABEL_LABELLER else name

    def label_source_counts(self, items=None) -> dict[str, int]:
        """Items per label source name (of `items`, global indices; default every item)."""
        codes = self.label_source if items is None else self.label_source[np.asarray(list(items), dtype=np.int64)]
        values, counts = np.unique(codes, return_counts=True)
        return {self.label_source_name(v): int(n) for v, n in zip(values, counts)}

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in ("split", "valence", "arousal", "label_source", "embedding"))

    def with_split(self, split: np.ndarray) -> "ItemTable":
        """The same items with another split column (uint8 [I])."""
        return replace(self, split=np.asarray(split, dtype=np.uint8))

    def identity(self, item: int) -> str:
        """"source:item id" (the index as text for an index the table does not hold)."""
        if not 0 <= item < len(self.item_ids):
            return str(item)
        source = self.sources[item] if item < len(self.sources) else ""
        return f"{source}:{self.item_ids[item]}"

    @classmethod
    def of(cls, embedding: np.ndarray, *, split=None, valence=None, arousal=None, label_source=None,
           item_ids: list[str] | None = None, sources: list[str] | None = None) -> "ItemTable":
        """A table of len(embedding) items; what is not given is train / NaN / annotated / "0", "1", ..."""
        n = len(embedding)
        return cls(
            item_ids=list(item_ids) if item_ids is not None else [str(i) for i in range(n)],
            sources=list(sources) if sources is not None else [""] * n,
            split=np.zeros(n, np.uint8) if split is None else np.asarray(split, dtype=np.uint8),
            valence=np.full(n, np.nan, np.float32) if valence is None else np.asarray(valence, dtype=np.float32),
            arousal=np.full(n, np.nan, np.float32) if arousal is None else np.asarray(arousal, dtype=np.float32),
            label_source=np.zeros(n, np.uint8) if label_source is None else np.asarray(label_source, dtype=np.uint8),
            embedding=np.asarray(embedding, dtype=np.float32).reshape(n, spec.EMBEDDING_SIZE),
        )


_ROW_ARRAYS = ("item", "window", "row_inputs", "stored_targets")


@dataclass
class Rows:
    """Rows of one network, one per window (or chord step), as the cache stores them.

    network: the network's key. item int64 [N], an index into `items`; window int32 [N], the row's
    window within its item; row_inputs [N, row_width] (emotion: float32 log-mel; harmony: uint8
    previous chords; the others store none: float32 [N, 0]); stored_targets: the targets in their
    stored type (`layout.target_dtype`); items: the ItemTable the rows refer to (shared, not copied,
    by `take` and `concat`).
    """

    network: str
    item: np.ndarray
    window: np.ndarray
    row_inputs: np.ndarray
    stored_targets: np.ndarray
    items: ItemTable = field(repr=False)

    def __len__(self) -> int:
        return int(self.window.shape[0])

    # --- what the network sees ---------------------------------------------------------------------
    @property
    def inputs(self) -> np.ndarray:
        """float32 [N, Din]: the item's embedding gathered per row, then the row's own inputs."""
        width = layout.item_width(self.network)
        embedding = self.items.embedding[self.item, :width] if width else None
        return layout.decode_inputs(self.network, embedding, self.row_inputs)

    @property
    def targets(self) -> np.ndarray:
        """float32 [N, Dout] (melody within spec.MELODY_TARGET_MAX_ERROR of what was computed);
        harmony: int64 [N] chord classes."""
        return layout.decode_targets(self.network, self.stored_targets)

    def input_moments(self) -> tuple[int, np.ndarray, np.ndarray]:
        """(n, mean, m2) of `inputs` column by column (float64 [Din] each; m2 = sum of squared
        deviations), without decoding every row: each distinct item embedding, and each distinct
        stored history (harmony), counts once with its number of rows."""
        n = len(self)
        parts: list[tuple[np.ndarray, np.ndarray]] = []       # (distinct values [G, k], rows of each [G])
        width = layout.item_width(self.network)
        if width:
            items, counts = np.unique(self.item, return_counts=True)
            parts.append((self.items.embedding[items, :width], counts))
        if layout.row_width(self.network):
            if self.network == "harmony":
                own = np.ascontiguousarray(self.row_inputs)
                codes = own.view(np.dtype((np.void, own.shape[1] * own.itemsize))).ravel()
                distinct, counts = np.unique(codes, return_counts=True)
                values = distinct.view(own.dtype).reshape(-1, own.shape[1])
                parts.append((layout.decode_row_inputs(self.network, values), counts))
            else:
                parts.append((layout.decode_row_inputs(self.network, self.row_inputs), np.ones(n, np.int64)))
        means, m2s = [], []
        for values, counts in parts:
            values, weights = values.astype(np.float64), counts.astype(np.float64)[:, None]
            mean = (weights * values).sum(0) / max(n, 1)
            means.append(mean)
            m2s.append((weights * (values - mean) ** 2).sum(0))
        return n, np.concatenate(means), np.concatenate(m2s)

    # --- per-item values, per row ------------------------------------------------------------------
    @property
    def split(self) -> np.ndarray:
        """uint8 [N]: 0 train, 1 validation, 2 test."""
        return self.items.split[self.item]

    @property
    def valence(self) -> np.ndarray:
        return self.items.valence[self.item]

    @property
    def arousal(self) -> np.ndarray:
        return self.items.arousal[self.item]

    @property
    def label_source(self) -> np.ndarray:
        return self.items.label_source[self.item]

    @property
    def item_ids(self) -> list[str]:
        return self.items.item_ids

    @property
    def sources(self) -> list[str]:
        return self.items.sources

    def item_identity(self, item: int) -> str:
        """"source:item id" of a global item index."""
        return self.items.identity(item)

    # --- selecting and joining ---------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes of the per-row arrays (the item table is shared and not counted)."""
        return sum(getattr(self, name).nbytes for name in _ROW_ARRAYS)

    def take(self, index) -> "Rows":
        """The rows at `index` (a boolean mask, integer positions or a slice); the item table is shared."""
        return replace(self, **{name: getattr(self, name)[index] for name in _ROW_ARRAYS})

    def split_rows(self, split: str | int) -> "Rows":
        """Rows of one split ("train", "validation", "test", or its code 0, 1, 2)."""
        code = split if isinstance(split, (int, np.integer)) else spec.SPLITS.index(split)
        return self.take(self.split == code)

    def with_items(self, items: ItemTable) -> "Rows":
        """The same rows referring to another item table (e.g. one with another split column)."""
        return replace(self, items=items)

    @staticmethod
    def concat(parts: list["Rows"]) -> "Rows":
        """Rows of several blocks of one network that refer to the same item table, in order."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        if any(p.network != first.network or p.items is not first.items for p in parts):
            raise ValueError("Rows.concat: the parts belong to different networks or item tables")
        return replace(first, **{name: np.concatenate([getattr(p, name) for p in parts]) for name in _ROW_ARRAYS})
