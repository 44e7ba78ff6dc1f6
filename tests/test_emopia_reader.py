"""The EMOPIA reader: the shared split-file copy, the Zenodo release's layout, a bare folder of clips,
and every bad name or label a recorded skip."""
from __future__ import annotations

from pathlib import Path

import pytest

from preprocess.datasets import emopia, load_source
from preprocess.datasets.emopia import parse_clip_name, parse_quadrant, quadrant_labels
from tests.conftest import REAL_CORPUS, needs_real_corpus

MIDI = bytes.fromhex("4d546864000000060000000101e04d54726b0000000b00903c40603c400000ff2f00")   # one note


def clips(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.mid").write_bytes(MIDI)


def test_clip_names_and_quadrants():
    assert parse_clip_name("Q2_L3_TadjSQQ0_0.mid") == {"quadrant": 2, "song": "L3_TadjSQQ0", "clip": 0}
    assert parse_clip_name("midis/Q4_iXiSFSGws-c_12") == {"quadrant": 4, "song": "iXiSFSGws-c", "clip": 12}
    assert parse_clip_name("Q5_abc_1.mid") is None and parse_clip_name("song.mid") is None
    assert [parse_quadrant(v) for v in ("Q3", "3", 3, 3.0, "q1", "Q0", "x", None, 2.5)] == [3, 3, 3, 3, 1, None, None,
                                                                                          None, None]
    assert [quadrant_labels(q) for q in (1, 2, 3, 4)] == [(1, 1), (-1, 1), (-1, -1), (1, -1)]


@needs_real_corpus
def test_the_shared_copy_keeps_the_official_split():
    result = load_source(REAL_CORPUS, "emopia")
    assert result.layout == "emopia-split" and result.counts == {}
    assert len(result.items) == 965 and result.split_counts() == {"train": 767, "validation": 198, "test": 0}
    for item in result.items:
        q = int(item.item_id[1])
        assert (item.valence, item.arousal) == quadrant_labels(q) and item.label_source == "annotated"
        assert item.metadata["song"] == parse_clip_name(item.item_id)["song"]
    songs = {}
    for item in result.items:
        songs.setdefault(item.metadata["song"], set()).add(item.split)
    assert all(len(sides) == 1 for sides in songs.values())        # the official split keeps songs whole


def test_the_zenodo_release_layout(tmp_path):
    root = tmp_path / "EMOPIA_1.0"
    clips(root / "midis", ["Q1_aaaaaaaaaaa_0", "Q1_aaaaaaaaaaa_1", "Q2_bb_b-bbbbbb_0", "Q3_ccccccccccc_0",
                           "Q4_ddddddddddd_0", "Q4_ddddddddddd_1", "Q3_eeeeeeeeeee_0", "Q1_fffffffffff_0",
                           "notaclip"])
    (root / "label.csv").write_text(
        "ID,4Q,annotator\nQ1_aaaaaaaaaaa_0,1,a1\nQ1_aaaaaaaaaaa_1,1,a1\nQ2_bb_b-bbbbbb_0,2,a2\n"
        "Q3_ccccccccccc_0,3,a3\nQ4_ddddddddddd_0,4,a4\nQ4_ddddddddddd_1,4,a4\nQ3_eeeeeeeeeee_0,4,a1\n"
        "Q1_fffffffffff_0,x,a2\nQ2_gone_______0,2,a3\n")
    (root / "metadata_by_song.csv").write_text("songID,num_Q1,num_Q2,num_Q3,num_Q4,DominantQ\naaaaaaaaaaa,2,0,0,0,1\n")
    (root / "split").mkdir()
    (root / "split" / "train_clip.csv").write_text(",clip_name\n0,Q1_aaaaaaaaaaa_0.mid\n1,Q2_bb_b-bbbbbb_0.mid\n")
    (root / "split" / "val_clip.csv").write_text(",clip_name\n0,Q3_ccccccccccc_0.mid\n")
    (root / "split" / "test_clip.csv").write_text(",clip_name\n0,Q4_ddddddddddd_0.mid\n1,Q9_missing_0.mid\n")

    result = load_source(tmp_path, "emopia")
    assert result.layout == "emopia-release" and result.root == root
    by_id = {item.item_id: item for item in result.items}
    # the official split kept; a clip not listed goes with its song; the song-less one by hash
    assert by_id["Q1_aaaaaaaaaaa_0"].split == by_id["Q1_aaaaaaaaaaa_1"].split == "train"
    assert by_id["Q3_ccccccccccc_0"].split == "validation"
    assert by_id["Q4_ddddddddddd_0"].split == by_id["Q4_ddddddddddd_1"].split == "test"
    assert by_id["Q1_fffffffffff_0"].split in ("train", "validation", "test")
    assert (by_id["Q2_bb_b-bbbbbb_0"].valence, by_id["Q2_bb_b-bbbbbb_0"].arousal) == (-1.0, 1.0)
    assert by_id["Q2_bb_b-bbbbbb_0"].metadata == {"song": "bb_b-bbbbbb", "clip": 0, "quadrant": "Q2", "annotator": "a2"}
    # recorded skips: label.csv against the file name, a name that is no clip's; reported: what is absent
    assert "Q3_eeeeeeeeeee_0" not in by_id and "notaclip" not in by_id
    assert result.counts["quadrant_conflicts"] == 1 and result.counts["unlabelled_files"] == 1
    assert result.counts["bad_labels"] == 1                  # "x" is no quadrant: the file name's is used
    assert by_id["Q1_fffffffffff_0"].valence == 1.0
    assert result.missing == {"label.csv": ["Q2_gone_______0"], "split/test_clip.csv": ["Q9_missing_0"]}
    assert len(result.items) == 7


def test_a_bare_folder_of_clips_takes_the_quadrant_from_the_name(tmp_path):
    root = tmp_path / "emopia"
    clips(root / "midis", ["Q1_aaaaaaaaaaa_0", "Q1_aaaaaaaaaaa_1", "Q3_ccccccccccc_0", "readme"])
    result = emopia.load(root)
    assert result.layout == "emopia-bare" and len(result.items) == 3
    by_id = {item.item_id: item for item in result.items}
    assert by_id["Q1_aaaaaaaaaaa_0"].split == by_id["Q1_aaaaaaaaaaa_1"].split        # a song stays whole
    assert (by_id["Q3_ccccccccccc_0"].valence, by_id["Q3_ccccccccccc_0"].arousal) == (-1.0, -1.0)
    assert result.counts == {"unlabelled_files": 1}


def test_a_split_file_that_disagrees_with_the_file_name_skips_the_clip(tmp_path):
    root = tmp_path / "emopia"
    clips(root / "midis", ["Q1_aaaaaaaaaaa_0", "Q2_bbbbbbbbbbb_0"])
    (root / "split").mkdir()
    (root / "split" / "train.csv").write_text("fname,label\nQ1_aaaaaaaaaaa_0,Q1\nQ2_bbbbbbbbbbb_0,Q3\n")
    (root / "split" / "val.csv").write_text("fname,label\nQ1_aaaaaaaaaaa_0,Q1\n")
    result = emopia.load(root)
    assert [item.item_id for item in result.items] == ["Q1_aaaaaaaaaaa_0"]
    assert result.items[0].split == "train"                                   # the first listing kept
    assert result.counts == {"quadrant_conflicts": 1, "clips_in_two_splits": 1}


def test_a_split_file_without_its_column_is_one_clear_error(tmp_path):
    from common.errors import KellyError

    root = tmp_path / "emopia"
    clips(root / "midis", ["Q1_aaaaaaaaaaa_0"])
    (root / "split").mkdir()
    (root / "split" / "train.csv").write_text("file,quadrant\nQ1_aaaaaaaaaaa_0,Q1\n")
    with pytest.raises(KellyError, match="train.csv: missing column"):
        emopia.load(root)
