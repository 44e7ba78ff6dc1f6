"""The cache's labels table applied to an item table: proxy items whose file is the one labelled take
the labeller's labels and embedding; human labels and changed files do not (which sources the table
holds is `kelly label --cache-dir`'s choice: Lakh and MAESTRO)."""
from __future__ import annotations

import numpy as np
import pytest

from common.errors import KellyError
from preprocess.cache.labels import LabelTable, apply_labels, read_labels, write_labels
from preprocess.cache.rows import ItemTable
from preprocess.features.embedding import embed


def table_of_four() -> ItemTable:
    valence, arousal = np.array([0.5, 0.1, -0.2, 0.3]), np.array([0.5, 0.2, 0.4, -0.3])
    return ItemTable.of(embed(valence, arousal), valence=valence, arousal=arousal,
                        label_source=[0, 1, 1, 1], item_ids=["a", "b", "c", "d"],
                        sources=["lakh", "lakh", "maestro", "groove"])


def test_only_proxy_items_of_the_labelled_file_take_the_labels(tmp_path):
    labels = LabelTable("labeller:0123456789ab", "kelly-labeller-2", "best.pt")
    for item_id, source in (("a", "lakh"), ("b", "lakh"), ("c", "maestro"), ("d", "groove")):
        labels.add(source, item_id, f"hash-{item_id}", -0.6, 0.7)
    write_labels(tmp_path, labels)
    items = table_of_four()
    out = apply_labels(items, ["hash-a", "hash-b", "changed", "hash-d"], read_labels(tmp_path))
    assert [out.label_source_name(c) for c in out.label_source] == ["annotated", "labeller:0123456789ab",
                                                                     "proxy", "labeller:0123456789ab"]
    assert (out.valence[0], out.arousal[0]) == (0.5, 0.5)                 # the human label stays
    assert np.allclose((out.valence[1], out.arousal[1]), (-0.6, 0.7))
    assert np.allclose(out.embedding[1], embed(-0.6, 0.7), atol=1e-6)
    assert (out.valence[2], out.arousal[2]) == (items.valence[2], items.arousal[2])   # its file changed since
    assert items.label_source.tolist() == [0, 1, 1, 1]                    # the table given is not modified
    assert out.label_source_counts() == {"annotated": 1, "labeller:0123456789ab": 2, "proxy": 1}


def test_a_damaged_labels_table_is_one_clear_error(tmp_path):
    (tmp_path / "labels.json").write_text("{not json")
    with pytest.raises(KellyError, match="labels.json: unreadable labels table"):
        read_labels(tmp_path)
    with pytest.raises(ValueError, match="valence 2.0"):
        LabelTable("labeller:x", "v", "p").add("lakh", "a", "h", 2.0, 0.0)
    assert read_labels(tmp_path / "none") is None
