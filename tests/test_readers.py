"""Dataset readers: every layout, label scaling, splits, duplicates and the errors users see."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from common.errors import KellyError
from preprocess.datasets import (
    READERS,
    assign_split,
    available_sources,
    deam,
    describe,
    find_source,
    groove,
    harmony,
    lakh,
    load_source,
    maestro,
)


# header lines exactly as DEAM ships them (spaces after the commas; the second file's extra columns)
DEAM_HEADER_1_2000 = "song_id, valence_mean, valence_std, arousal_mean, arousal_std"
DEAM_HEADER_2000_2058 = ("song_id, valence_mean, valence_std, valence_ max_mean, valence_max_std, valence_min_mean, "
                         "valence_min_std, arousal_mean, arousal_std, arousal_max_mean, arousal_max_std, "
                         "arousal_min_mean, arousal_min_std")
MAESTRO_HEADER = "canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration"
GROOVE_HEADER = "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split"


# --- realistic files --------------------------------------------------------------------------------

def write_piano_midi(path: Path, tonic: int = 60, tempo: float = 100.0) -> Path:
    """Four bars of I-vi-IV-V in the key of `tonic` with a stepwise melody and shaped velocities."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    piano = pretty_midi.Instrument(program=0, name="Piano")
    beat = 60.0 / tempo
    progression = [(0, 4, 7), (9, 12, 16), (5, 9, 12), (7, 11, 14)]
    melody = [4, 5, 7, 9, 12, 11, 9, 7, 5, 4, 2, 0, 2, 4, 2, 0]
    for bar, chord in enumerate(progression):
        start = bar * 4 * beat
        for offset in chord:
            piano.notes.append(pretty_midi.Note(velocity=52 + 3 * bar, pitch=tonic - 12 + offset,
                                                start=start, end=start + 4 * beat - 0.05))
        for step in range(4):
            pitch = tonic + melody[bar * 4 + step]
            t = start + step * beat
            piano.notes.append(pretty_midi.Note(velocity=70 + 6 * step - 2 * bar, pitch=pitch, start=t, end=t + 0.9 * beat))
    pm.instruments.append(piano)
    pm.write(str(path))
    return path


def write_drum_midi(path: Path, bpm: int = 120, fill: bool = False) -> Path:
    """Two bars of a rock beat (kick 36, snare 38, closed hat 42), or a tom fill, with human velocities."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    kit = pretty_midi.Instrument(program=0, is_drum=True, name="Drums")
    eighth = 30.0 / bpm
    for i in range(16):
        t = i * eighth + (0.004 if i % 2 else 0.0)
        if fill and i >= 8:
            kit.notes.append(pretty_midi.Note(velocity=90 + (i % 4) * 8, pitch=(50, 47, 45, 43)[i % 4], start=t, end=t + 0.1))
            continue
        kit.notes.append(pretty_midi.Note(velocity=64 + 20 * (i % 2 == 0), pitch=42, start=t, end=t + 0.05))
        if i % 4 == 0:
            kit.notes.append(pretty_midi.Note(velocity=110, pitch=36, start=t, end=t + 0.1))
        if i % 4 == 2:
            kit.notes.append(pretty_midi.Note(velocity=100 + (i % 8 == 6) * 12, pitch=38, start=t, end=t + 0.1))
    pm.instruments.append(kit)
    pm.write(str(path))
    return path


def write_tone(path: Path, frequency: float = 220.0, seconds: float = 0.5, sr: int = 22050) -> Path:
    """A decaying harmonic tone (fundamental and four overtones), mono, in the format of the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    tone = sum(np.sin(2 * np.pi * frequency * k * t) / k for k in range(1, 6)) * np.exp(-3 * t)
    sf.write(str(path), (0.3 * tone / np.max(np.abs(tone))).astype(np.float32), sr)
    return path


def md5_named_copy(source: Path, folder: Path) -> Path:
    """Move `source` into `folder` under the md5 of its bytes, as Lakh names its files."""
    digest = hashlib.md5(source.read_bytes()).hexdigest()
    target = folder / f"{digest}.mid"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(target))
    return target


def by_id(result):
    return {item.item_id: item for item in result.items}


# --- DEAM, distributed layout ---------------------------------------------------------------------

def make_deam_distributed(root: Path, rows_1_2000: list[str] | None = None) -> Path:
    audio = root / "DEAM_audio" / "MEMD_audio"
    for i, song_id in enumerate((2, 3, 4, 5, 7, 2001)):
        write_tone(audio / f"{song_id}.mp3", frequency=196.0 * 2 ** (i / 12))
    level = root / deam.STATIC_DIR
    level.mkdir(parents=True)
    rows = rows_1_2000 or ["2,5,0.94,5,0.63", "3,1,1.75,9,1.62", "4,,1.2,4.5,1.0", "6,6.2,1.1,3.3,0.9",
                           "7,7.2,0.8,2.6,0.7"]
    (level / "static_annotations_averaged_songs_1_2000.csv").write_text("\n".join([DEAM_HEADER_1_2000, *rows]) + "\n")
    (level / "static_annotations_averaged_songs_2000_2058.csv").write_text(
        DEAM_HEADER_2000_2058 + "\n2001,3.2,0.98,5.0,1.41,2.2,0.98,6.6,0.8,8.6,0.49,3.4,1.02\n")
    dynamic = root / deam.DYNAMIC_DIR
    dynamic.mkdir(parents=True)
    header = "song_id," + ",".join(f"sample_{15000 + 500 * k}ms" for k in range(6))
    (dynamic / "arousal.csv").write_text(f"{header}\n2,-0.1,-0.05,0,0.05,0.1,0.12\n3,0.2,0.25,0.3,,,\n")
    (dynamic / "valence.csv").write_text(f"{header}\n2,0.3,0.31,0.32,0.33,0.34,0.35\n3,-0.4,-0.41,-0.42,,,\n")
    return root


def test_deam_distributed_labels_rescaled_and_counted(tmp_path):
    root = make_deam_distributed(tmp_path / "deam")
    assert deam.detect(root) == "deam-distributed"
    result = deam.load(root)
    items = by_id(result)
    assert sorted(items) == ["2", "2001", "3", "7"]
    assert (items["2"].valence, items["2"].arousal) == (0.0, 0.0)          # 5 -> 0
    assert (items["3"].valence, items["3"].arousal) == (-1.0, 1.0)         # 1 -> -1, 9 -> 1
    assert items["7"].valence == pytest.approx(0.55) and items["7"].arousal == pytest.approx(-0.6)
    # the second file's arousal_mean is its 8th column: chosen by name, not position
    assert items["2001"].valence == pytest.approx((3.2 - 5) / 4) and items["2001"].arousal == pytest.approx((6.6 - 5) / 4)
    assert all(item.label_source == "annotated" and item.path.suffix == ".mp3" for item in result.items)
    assert result.counts == {"nan_labels": 1, "files_without_labels": 1, "labels_without_file": 1}
    assert any("song_id 6" in note for note in result.notes)
    # the annotation file lists song 6, whose audio is not there: kept by listing, as the expected path
    assert result.missing == {"static_annotations_averaged_songs_1_2000.csv": ["DEAM_audio/MEMD_audio/6.mp3"]}
    for item in result.items:
        assert item.split == assign_split(item.item_id)


def test_deam_dynamic_annotations(tmp_path):
    result = deam.load(make_deam_distributed(tmp_path / "deam"))
    items = by_id(result)
    meta = items["3"].metadata
    assert meta["dynamic_start_seconds"] == 15.0 and meta["dynamic_rate_hz"] == 2.0
    assert meta["dynamic_arousal"].dtype == np.float32
    np.testing.assert_allclose(meta["dynamic_arousal"], [0.2, 0.25, 0.3], rtol=1e-6)   # NaN padding trimmed
    np.testing.assert_allclose(items["2"].metadata["dynamic_valence"], [0.3, 0.31, 0.32, 0.33, 0.34, 0.35], rtol=1e-6)
    assert "dynamic_valence" not in items["7"].metadata


def test_deam_value_outside_scale_names_file_and_song(tmp_path):
    root = make_deam_distributed(tmp_path / "deam", ["2,5,0.9,5,0.6", "3,9.5,1.7,3,1.6"])
    with pytest.raises(KellyError, match=r"static_annotations_averaged_songs_1_2000\.csv: song_id 3: valence_mean = 9\.5"):
        deam.load(root)


def test_deam_dynamic_value_outside_range_names_file_and_song(tmp_path):
    root = make_deam_distributed(tmp_path / "deam")
    path = root / deam.DYNAMIC_DIR / "arousal.csv"
    path.write_text(path.read_text().replace("0.25", "2.5"))
    with pytest.raises(KellyError, match=r"arousal\.csv: song_id 3: sample_15500ms = 2\.5"):
        deam.load(root)


def test_deam_missing_column_names_found_and_expected(tmp_path):
    root = make_deam_distributed(tmp_path / "deam")
    path = root / deam.STATIC_DIR / "static_annotations_averaged_songs_1_2000.csv"
    path.write_text("song_id, valence_mean, valence_std, arousal_std\n2,5,0.9,0.6\n")
    with pytest.raises(KellyError) as error:
        deam.load(root)
    message = str(error.value)
    assert path.name in message and "missing column(s) arousal_mean" in message
    assert "found columns: song_id, valence_mean, valence_std, arousal_std" in message


# --- DEAM, simple layout ----------------------------------------------------------------------------

def make_deam_simple(root: Path, csv_text: str, label_path: str = "annotations/annotations.csv") -> Path:
    for i, name in enumerate(("calm.wav", "storm.wav", "waltz.flac", "unlabelled.ogg")):
        write_tone(root / "audio" / name, frequency=261.6 * 2 ** (i / 12))
    (root / label_path).parent.mkdir(parents=True, exist_ok=True)
    (root / label_path).write_text(csv_text)
    return root


def test_deam_simple_layout(tmp_path):
    csv_text = "filename,valence,arousal\ncalm.wav,0.5,-0.25\nstorm,-0.75,0.9\nwaltz.flac,,0.1\ngone.wav,0.1,0.1\n"
    root = make_deam_simple(tmp_path / "deam", csv_text)
    assert deam.detect(root) == "deam-simple"
    result = deam.load(root)
    items = by_id(result)
    assert sorted(items) == ["calm.wav", "storm.wav"]
    assert (items["calm.wav"].valence, items["calm.wav"].arousal) == (0.5, -0.25)
    assert (items["storm.wav"].valence, items["storm.wav"].arousal) == (-0.75, 0.9)    # matched by stem
    assert result.counts == {"nan_labels": 1, "labels_without_file": 1, "files_without_labels": 1}
    assert result.missing == {"annotations.csv": ["gone.wav"]}


def test_deam_simple_labels_csv_with_mean_columns(tmp_path):
    csv_text = "filename,valence_mean,arousal_mean\naudio/calm.wav,0.2,0.3\nunlabelled.ogg,-1,1\n"
    result = deam.load(make_deam_simple(tmp_path / "deam", csv_text, label_path="labels.csv"))
    assert {i.item_id: (i.valence, i.arousal) for i in result.items} == {"calm.wav": (0.2, 0.3),
                                                                        "unlabelled.ogg": (-1.0, 1.0)}


def test_deam_simple_out_of_range_names_file_and_row(tmp_path):
    root = make_deam_simple(tmp_path / "deam", "filename,valence,arousal\ncalm.wav,0.5,0.2\nstorm.wav,0.4,1.5\n")
    with pytest.raises(KellyError, match=r"annotations\.csv: line 3 \(storm\.wav\): arousal = 1\.5 is outside \[-1, 1\]"):
        deam.load(root)


def test_deam_simple_missing_column(tmp_path):
    root = make_deam_simple(tmp_path / "deam", "file,valence,arousal\ncalm.wav,0.5,0.2\n")
    with pytest.raises(KellyError, match=r"missing column\(s\) filename; found columns: file, valence, arousal; "
                                         r"expected: filename, valence, arousal or filename, valence_mean, arousal_mean"):
        deam.load(root)


# --- MAESTRO ------------------------------------------------------------------------------------------

MAESTRO_ROWS = [
    ("Alban Berg", "Sonata Op. 1", "train", 2018, "2018/MIDI-Unprocessed_Chamber3_MID--AUDIO_10_R3_2018_wav--1.midi", 698.66),
    ("Frédéric Chopin", "Nocturne in E-flat Major, Op. 9, No. 2", "validation", 2008,
     "2008/MIDI-Unprocessed_03_R2_2008_01-03_ORIG_MID--AUDIO_03_R2_2008_wav--2.midi", 264.1),
    ("Johann Sebastian Bach", "Prelude and Fugue in C Major, WTC I", "test", 2017,
     "2017/MIDI-Unprocessed_066_PIANO066_MID--AUDIO-split_07-07-17_Piano-e_3-02_wav--3.midi", 291.2),
    ("Franz Schubert", "Impromptu Op. 90 No. 3", "train", 2004, "2004/MIDI-Unprocessed_XP_04_R1_2004_01-02_ORIG_MID--AUDIO_04_R1_2004_02_Track02_wav.midi", 364.9),
    ("Claude Debussy", "Clair de Lune", "train", 2009, "2009/MIDI-Unprocessed_07_R1_2009_04-05_ORIG_MID--AUDIO_07_R1_2009_07_R1_2009_04_WAV.midi", 310.0),
]


def make_maestro(root: Path, csv: bool = True, json_file: bool = False, missing: int = 1) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(MAESTRO_ROWS[: len(MAESTRO_ROWS) - missing]):
        write_piano_midi(root / row[4], tonic=57 + i)
    if csv:
        lines = [MAESTRO_HEADER]
        for composer, title, split, year, midi, duration in MAESTRO_ROWS:
            title_cell = f'"{title}"' if "," in title else title
            lines.append(f"{composer},{title_cell},{split},{year},{midi},{midi[:-5]}.wav,{duration}")
        (root / "maestro-v3.0.0.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if json_file:
        columns = ("canonical_composer", "canonical_title", "split", "year", "midi_filename", "duration")
        data = {c: {str(i): row[k] for i, row in enumerate(MAESTRO_ROWS)} for k, c in enumerate(columns)}
        data["audio_filename"] = {str(i): row[4][:-5] + ".wav" for i, row in enumerate(MAESTRO_ROWS)}
        (root / "maestro-v3.0.0.json").write_text(json.dumps(data, indent=4), encoding="utf-8")
    return root


@pytest.mark.parametrize("layout", ["maestro-csv", "maestro-json"])
def test_maestro_metadata_official_split(tmp_path, layout):
    root = make_maestro(tmp_path / "maestro-v3.0.0", csv=layout == "maestro-csv", json_file=layout == "maestro-json")
    assert maestro.detect(root) == layout
    result = maestro.load(root, seed=7, validation_split=0.5)
    items = by_id(result)
    assert len(items) == 4 and result.counts == {"missing_midi": 1}
    assert result.missing == {f"maestro-v3.0.0.{layout[8:]}": [MAESTRO_ROWS[4][4]]}
    for composer, title, split, year, midi, duration in MAESTRO_ROWS[:4]:
        item = items[midi]
        assert item.split == split and item.label_source == "proxy" and item.valence is None
        assert item.metadata["composer"] == composer and item.metadata["title"] == title
        assert item.metadata["year"] == year and item.metadata["duration"] == pytest.approx(duration)
        assert item.path == root / midi
    assert result.split_counts() == {"train": 2, "validation": 1, "test": 1}


def test_maestro_csv_preferred_and_json_forced(tmp_path):
    root = make_maestro(tmp_path / "maestro-v3.0.0", csv=True, json_file=True, missing=0)
    assert maestro.detect(root) == "maestro-csv"
    from_csv, from_json = maestro.load(root), maestro.load(root, "maestro-json")
    assert from_json.layout == "maestro-json"
    assert [(i.item_id, i.split, i.metadata) for i in from_csv.items] == \
           [(i.item_id, i.split, i.metadata) for i in from_json.items]


def test_maestro_bad_split_and_missing_column(tmp_path):
    root = make_maestro(tmp_path / "m", missing=0)
    path = root / "maestro-v3.0.0.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(",validation,", ",valid,"), encoding="utf-8")
    with pytest.raises(KellyError, match=r"maestro-v3\.0\.0\.csv: row 1 .*split 'valid' is not one of"):
        maestro.load(root)
    path.write_text("canonical_composer,canonical_title,year,midi_filename\nA,B,2018,x.midi\n")
    with pytest.raises(KellyError, match=r"missing column\(s\) split, duration; found columns: "
                                         r"canonical_composer, canonical_title, year, midi_filename"):
        maestro.load(root)


def test_maestro_malformed_json_names_file(tmp_path):
    root = tmp_path / "maestro-v3.0.0"
    root.mkdir()
    (root / "maestro-v3.0.0.json").write_text('{"canonical_composer": {"0": "Alban Berg",')
    with pytest.raises(KellyError, match=r"maestro-v3\.0\.0\.json: malformed JSON"):
        maestro.load(root)


def test_maestro_bare_seeded_split(tmp_path):
    root = tmp_path / "maestro"
    for i in range(12):
        write_piano_midi(root / f"performance_{i:02d}.midi", tonic=48 + i)
    assert maestro.detect(root) == "maestro-bare"
    result = maestro.load(root, seed=3, validation_split=0.25, test_split=0.25)
    assert len(result.items) == 12
    for item in result.items:
        assert item.split == assign_split(item.item_id, seed=3, validation_split=0.25, test_split=0.25)
    assert {i.split for i in maestro.load(root, validation_split=0.0).items} == {"train"}


def test_seeded_split_stable_when_files_are_added(tmp_path):
    root = tmp_path / "maestro"
    for i in range(20):
        write_piano_midi(root / f"take_{i:02d}.mid", tonic=40 + i)
    before = {i.item_id: i.split for i in maestro.load(root, seed=1).items}
    for i in range(20, 30):
        write_piano_midi(root / f"take_{i:02d}.mid", tonic=40 + i)
    after = {i.item_id: i.split for i in maestro.load(root, seed=1).items}
    assert len(after) == 30
    assert all(after[k] == v for k, v in before.items())
    assert set(before.values()) == {"train", "validation"}


# --- Groove -----------------------------------------------------------------------------------------

GROOVE_ROWS = [
    "drummer1,drummer1/eval_session,drummer1/eval_session/1,funk/groove1,138,beat,4-4,"
    "drummer1/eval_session/1_funk-groove1_138_beat_4-4.mid,drummer1/eval_session/1_funk-groove1_138_beat_4-4.wav,27.872308,test",
    "drummer1,drummer1/session1,drummer1/session1/10,jazz/funk,116,fill,4-4,"
    "drummer1/session1/10_jazz-funk_116_fill_4-4.mid,drummer1/session1/10_jazz-funk_116_fill_4-4.wav,1.872843,train",
    "drummer3,drummer3/session1,drummer3/session1/10,rock,105,beat,4-4,"
    "drummer3/session1/10_rock_105_beat_4-4.mid,,13.7,validation",
    "drummer6,drummer6/session1,drummer6/session1/3,rock,80,beat,6-8,"
    "drummer6/session1/3_rock_80_beat_6-8.mid,drummer6/session1/3_rock_80_beat_6-8.wav,20.2,train",
]


def make_groove(root: Path, info: bool = True) -> Path:
    for row in GROOVE_ROWS[:3]:
        cells = row.split(",")
        write_drum_midi(root / cells[7], bpm=int(cells[4]), fill=cells[5] == "fill")
    if info:
        (root / "info.csv").write_text("\n".join([GROOVE_HEADER, *GROOVE_ROWS]) + "\n")
    return root


def test_groove_info_csv(tmp_path):
    root = make_groove(tmp_path / "groove")
    (root / "drum_labels.json").write_text(json.dumps({
        "drummer1/session1/10_jazz-funk_116_fill_4-4.mid": {"valence": 0.6, "arousal": 0.8},
        "not_there.mid": {"valence": 0.0, "arousal": 0.0},
    }))
    assert groove.detect(root) == "groove-csv"
    result = groove.load(root, seed=5)
    items = by_id(result)
    assert len(items) == 3 and result.counts == {"missing_midi": 1, "labels_without_file": 1}
    assert result.missing == {"info.csv": ["drummer6/session1/3_rock_80_beat_6-8.mid"],
                              "drum_labels.json": ["not_there.mid"]}
    assert "1 listed in info.csv is missing; first: drummer6/session1/3_rock_80_beat_6-8.mid." in describe(result)
    first = items["drummer1/eval_session/1_funk-groove1_138_beat_4-4.mid"]
    assert first.split == "test" and first.label_source == "proxy"
    expected = {"style": "funk", "substyle": "groove1", "bpm": 138, "beat_type": "beat", "time_signature": "4-4",
                "drummer": "drummer1", "session": "drummer1/eval_session", "groove_id": "drummer1/eval_session/1"}
    assert {k: first.metadata[k] for k in expected} == expected
    assert first.metadata["duration"] == pytest.approx(27.872308)
    labelled = items["drummer1/session1/10_jazz-funk_116_fill_4-4.mid"]
    assert (labelled.label_source, labelled.valence, labelled.arousal, labelled.split) == ("annotated", 0.6, 0.8, "train")
    rock = items["drummer3/session1/10_rock_105_beat_4-4.mid"]
    assert rock.split == "validation" and rock.metadata["substyle"] is None and "audio_filename" not in rock.metadata


def test_preprocess_summary_names_the_listed_files_that_are_missing(tmp_path, capsys):
    from kelly.cli import main

    root = make_groove(tmp_path / "datasets" / "groove")
    (root / GROOVE_ROWS[1].split(",")[7]).unlink()          # info.csv lists 4; 2 are present
    args = ["preprocess", "groove", "--datasets-dir", str(tmp_path / "datasets"), "--cache-dir", str(tmp_path / "cache"),
            "--workers", "1", "--quiet"]
    expected = ("2 listed in info.csv are missing; first: drummer1/session1/10_jazz-funk_116_fill_4-4.mid")
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "2 items (groove-csv)" in first and expected in first
    assert main(args) == 0                                  # unchanged: not read again, still reported
    second = capsys.readouterr().out
    assert "not read again" in second and expected in second


def test_groove_bare_parses_gmd_names(tmp_path):
    root = make_groove(tmp_path / "groove", info=False)
    write_drum_midi(root / "my_practice_beat.mid", bpm=92)
    write_drum_midi(root / "drummer5" / "session2" / "7_latin-brazilian-baiao_95_fill_4-4.mid", bpm=95, fill=True)
    (root / "drum_labels.json").write_text(json.dumps({"3_rock_80_beat_6-8.mid": {"valence": 0.1, "arousal": 0.2},
                                                       "10_rock_105_beat_4-4.mid": {"valence": -0.4, "arousal": 0.5}}))
    assert groove.detect(root) == "groove-bare"
    result = groove.load(root)
    items = by_id(result)
    assert len(items) == 5
    baiao = items["drummer5/session2/7_latin-brazilian-baiao_95_fill_4-4.mid"].metadata
    assert baiao == {"take": 7, "style": "latin", "substyle": "brazilian-baiao", "bpm": 95, "beat_type": "fill",
                     "time_signature": "4-4", "drummer": "drummer5", "session": "drummer5/session2"}
    assert items["my_practice_beat.mid"].metadata == {}
    rock = items["drummer3/session1/10_rock_105_beat_4-4.mid"]
    assert (rock.label_source, rock.valence, rock.arousal) == ("annotated", -0.4, 0.5)
    assert result.counts == {"labels_without_file": 1}
    assert all(i.split == assign_split(i.item_id) for i in result.items)


def test_groove_label_out_of_range_names_file_and_key(tmp_path):
    root = make_groove(tmp_path / "groove")
    (root / "drum_labels.json").write_text(json.dumps({"10_rock_105_beat_4-4.mid": {"valence": 1.2, "arousal": 0}}))
    with pytest.raises(KellyError, match=r"drum_labels\.json: key '10_rock_105_beat_4-4\.mid': valence = 1\.2"):
        groove.load(root)


# --- Lakh ---------------------------------------------------------------------------------------------

def make_lmd_full(root: Path, n: int = 4) -> list[str]:
    md5s = []
    for i in range(n):
        tmp = write_piano_midi(root / f"tmp{i}.mid", tonic=50 + i, tempo=90 + 7 * i)
        digest = hashlib.md5(tmp.read_bytes()).hexdigest()
        md5_named_copy(tmp, root / "lmd_full" / digest[0])
        md5s.append(digest)
    return md5s


def test_lmd_full(tmp_path):
    root = tmp_path / "lakh_midi"
    md5s = make_lmd_full(root)
    assert lakh.detect(root) == "lmd_full"
    result = lakh.load(root, seed=2)
    assert sorted(i.item_id for i in result.items) == sorted(md5s)
    for item in result.items:
        assert item.split == assign_split(item.item_id, seed=2) and item.label_source == "proxy"
        assert item.path.name == f"{item.item_id}.mid" and item.metadata["md5"] == item.item_id
    assert result.counts == {}


def test_lakh_trusts_md5_file_names_without_reading(tmp_path):
    folder = tmp_path / "lmd_full" / "a"
    folder.mkdir(parents=True)
    name = "a" + "0123456789abcdef" * 2
    write_piano_midi(folder / f"{name[:31]}.mid")                    # 31 chars: not an md5, so hashed
    write_piano_midi(folder / f"{name[:32]}.mid", tonic=62)          # an md5-shaped name, taken as is
    ids = {i.item_id for i in lakh.load(tmp_path).items}
    assert name[:32] in ids
    assert hashlib.md5((folder / f"{name[:31]}.mid").read_bytes()).hexdigest() in ids


def test_lmd_matched_counts_duplicates_once(tmp_path):
    root = tmp_path / "lakh"
    contents = [write_piano_midi(tmp_path / f"src{i}.mid", tonic=55 + i) for i in range(3)]
    digests = [hashlib.md5(p.read_bytes()).hexdigest() for p in contents]
    placements = [("TRAAAGR128F425B14B", 0), ("TRAAAQN128F9353BA0", 1), ("TRABCDE128F9353BA1", 0),
                  ("TRZZYXW128F42A2B3C", 2), ("TRAAAQN128F9353BA0", 2)]
    for msd_id, k in placements:
        folder = root / "lmd_matched" / msd_id[2] / msd_id[3] / msd_id[4] / msd_id
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(contents[k], folder / f"{digests[k]}.mid")
    assert lakh.detect(root) == "lmd_matched"
    result = lakh.load(root)
    items = by_id(result)
    assert len(items) == 3 and result.counts == {"duplicates": 2}
    assert sorted(items[digests[0]].metadata["msd_ids"]) == ["TRAAAGR128F425B14B", "TRABCDE128F9353BA1"]
    assert sorted(items[digests[2]].metadata["msd_ids"]) == ["TRAAAQN128F9353BA0", "TRZZYXW128F42A2B3C"]
    paths = [i.path for i in result.items]
    assert len(set(paths)) == len(paths)


def test_clean_midi_artist_title_and_content_duplicates(tmp_path):
    root = tmp_path / "lakh_midi"
    write_piano_midi(root / "clean_midi" / "The Beatles" / "Let It Be.mid", tonic=60)
    write_piano_midi(root / "clean_midi" / "The Beatles" / "Let It Be.1.mid", tonic=62)
    write_piano_midi(root / "clean_midi" / "ABBA" / "Dancing Queen.mid", tonic=64)
    (root / "clean_midi" / "Abba").mkdir()                            # the same file under a second spelling
    shutil.copy(root / "clean_midi" / "ABBA" / "Dancing Queen.mid", root / "clean_midi" / "Abba" / "Dancing Queen.mid")
    assert lakh.detect(root) == "clean_midi"
    result = lakh.load(root)
    assert len(result.items) == 3 and result.counts == {"duplicates": 1}
    meta = sorted((i.metadata["artist"], i.metadata["title"], i.metadata["version"]) for i in result.items)
    assert meta == [("ABBA", "Dancing Queen", 0), ("The Beatles", "Let It Be", 0), ("The Beatles", "Let It Be", 1)]
    for item in result.items:
        assert item.item_id == hashlib.md5(item.path.read_bytes()).hexdigest()


def test_lakh_midi_folder_with_emotion_labels(tmp_path):
    root = tmp_path / "lakh_midi"
    for i, name in enumerate(("happy_song.mid", "sad_song.mid", "pop/anthem.midi")):
        write_piano_midi(root / name, tonic=52 + 3 * i)
    (root / "emotion_labels.json").write_text(json.dumps({
        "happy_song.mid": {"valence": 0.8, "arousal": 0.6},
        "pop/anthem.midi": {"valence": 0.4, "arousal": 0.9},
        "deleted.mid": {"valence": -0.2, "arousal": 0.1},
    }))
    assert lakh.detect(root) == "midi-folder"
    result = lakh.load(root)
    labels = {i.metadata["relative_path"]: (i.label_source, i.valence, i.arousal) for i in result.items}
    assert labels == {"happy_song.mid": ("annotated", 0.8, 0.6), "sad_song.mid": ("proxy", None, None),
                      "pop/anthem.midi": ("annotated", 0.4, 0.9)}
    assert result.counts == {"labels_without_file": 1}
    (root / "emotion_labels.json").write_text(json.dumps({"sad_song.mid": {"valence": -1.5, "arousal": 0.1}}))
    with pytest.raises(KellyError, match=r"emotion_labels\.json: key 'sad_song\.mid': valence = -1\.5 is outside"):
        lakh.load(root)


def test_archive_debris_is_not_read(tmp_path):
    root = tmp_path / "lakh_midi"
    write_piano_midi(root / "song.mid")
    (root / "._song.mid").write_bytes(b"\x00\x05\x16\x07" + bytes(60))     # macOS resource fork from a zip
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._song.mid").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    write_piano_midi(root / "UPPER.MID", tonic=64)
    assert sorted(i.metadata["relative_path"] for i in lakh.load(root).items) == ["UPPER.MID", "song.mid"]


def test_lakh_most_specific_layout_wins_and_can_be_forced(tmp_path):
    root = tmp_path / "datasets" / "lakh_midi"
    md5s = make_lmd_full(root, n=2)
    write_piano_midi(root / "clean_midi" / "Queen" / "Bohemian Rhapsody.mid", tonic=58)
    folder = root / "lmd_matched" / "A" / "A" / "A" / "TRAAAGR128F425B14B"
    write_piano_midi(tmp_path / "x.mid", tonic=66)
    md5_named_copy(tmp_path / "x.mid", folder)
    assert lakh.detect(root) == "lmd_full"
    assert load_source(tmp_path / "datasets", "lakh").layout == "lmd_full"
    assert sorted(i.item_id for i in load_source(tmp_path / "datasets", "lakh").items) == sorted(md5s)
    forced = load_source(tmp_path / "datasets", "lakh", "clean_midi")
    assert [i.metadata["artist"] for i in forced.items] == ["Queen"]
    assert load_source(tmp_path / "datasets", "lakh", "lmd_matched").items[0].metadata["msd_ids"] == ["TRAAAGR128F425B14B"]


# --- chord progressions -------------------------------------------------------------------------------

PROGRESSIONS = [
    {"chords": ["C", "Am", "F", "G"], "emotion": {"valence": 0.5, "arousal": 0.7}},
    {"chords": ["Am", "F", "C", "G"], "emotion": {"valence": -0.3, "arousal": 0.2}, "key": "A minor"},
    {"chords": ["Dm7", "G7", "Cmaj7", "A7b9"]},
]


def test_chord_json(tmp_path):
    root = tmp_path / "harmony"
    root.mkdir()
    (root / "chord_progressions.json").write_text(json.dumps(PROGRESSIONS))
    assert harmony.detect(root) == "chord-json"
    result = harmony.load(root)
    items = by_id(result)
    assert sorted(items) == ["chord_progressions.json#0", "chord_progressions.json#1", "chord_progressions.json#2"]
    assert items["chord_progressions.json#1"].metadata == {"chords": ["Am", "F", "C", "G"], "index": 1, "key": "A minor"}
    assert items["chord_progressions.json#2"].metadata["chords"] == ["Dm7", "G7", "Cmaj7", "A7b9"]
    assert items["chord_progressions.json#2"].label_source == "proxy" and items["chord_progressions.json#2"].valence is None
    assert (items["chord_progressions.json#0"].valence, items["chord_progressions.json#0"].arousal) == (0.5, 0.7)
    assert all(i.split == assign_split(i.item_id) and i.path == root / "chord_progressions.json" for i in result.items)


def test_chord_json_any_file_and_errors(tmp_path):
    root = tmp_path / "harmony"
    root.mkdir()
    (root / "minor_keys.json").write_text(json.dumps(PROGRESSIONS[1:]))
    (root / "pop.json").write_text(json.dumps(PROGRESSIONS[:1]))
    assert sorted(i.item_id for i in harmony.load(root).items) == ["minor_keys.json#0", "minor_keys.json#1", "pop.json#0"]
    (root / "pop.json").write_text(json.dumps([PROGRESSIONS[0], {"chords": ["E", "B"], "emotion": {"valence": 0.2, "arousal": 3}}]))
    with pytest.raises(KellyError, match=r"pop\.json: progression 1: arousal = 3\.0 is outside \[-1, 1\]"):
        harmony.load(root)
    (root / "pop.json").write_text('[{"chords": ["C", "G"]')
    with pytest.raises(KellyError, match=r"pop\.json: malformed JSON"):
        harmony.load(root)
    (root / "pop.json").write_text(json.dumps([{"chords": []}]))
    with pytest.raises(KellyError, match=r"pop\.json: progression 0: \"chords\" must be a non-empty list"):
        harmony.load(root)


# --- finding sources under a datasets folder ---------------------------------------------------------

def test_shipped_folder_names(tmp_path):
    datasets = tmp_path / "datasets"
    make_deam_distributed(datasets)                                          # DEAM_audio + DEAM_Annotations directly
    make_maestro(datasets / "maestro-v3.0.0", missing=0)
    make_groove(datasets / "groove")
    folder = datasets / "lmd_matched" / "A" / "A" / "A" / "TRAAAGR128F425B14B"
    write_piano_midi(tmp_path / "m.mid")
    md5_named_copy(tmp_path / "m.mid", folder)
    (datasets / "harmony").mkdir()
    (datasets / "harmony" / "chord_progressions.json").write_text(json.dumps(PROGRESSIONS))
    write_piano_midi(datasets / "EMOPIA_1.0" / "midis" / "Q1_aaaaaaaaaaa_0.mid")
    (datasets / "EMOPIA_1.0" / "label.csv").write_text("ID,4Q,annotator\nQ1_aaaaaaaaaaa_0,1,a\n")
    assert available_sources(datasets) == ["deam", "lakh", "maestro", "groove", "harmony", "emopia"]
    assert find_source(datasets, "deam") == datasets and find_source(datasets, "lakh") == datasets
    assert find_source(datasets, "maestro") == datasets / "maestro-v3.0.0"
    assert find_source(datasets, "emopia") == datasets / "EMOPIA_1.0"
    layouts = {name: load_source(datasets, name).layout for name in READERS}
    assert layouts == {"deam": "deam-distributed", "lakh": "lmd_matched", "maestro": "maestro-csv",
                       "groove": "groove-csv", "harmony": "chord-json", "emopia": "emopia-release"}


def test_older_guides_folder_names(tmp_path):
    datasets = tmp_path / "datasets"
    make_deam_simple(datasets / "deam", "filename,valence,arousal\ncalm.wav,0.5,0.1\n")
    make_deam_distributed(datasets / "deam" / "full")                       # not where DEAM is looked for
    write_piano_midi(datasets / "maestro" / "chopin_op9_2.midi")
    make_groove(datasets / "groove", info=False)
    write_piano_midi(datasets / "lakh_midi" / "song.mid")
    (datasets / "harmony").mkdir()
    (datasets / "harmony" / "chord_progressions.json").write_text(json.dumps(PROGRESSIONS))
    results = {name: load_source(datasets, name, seed=4) for name in available_sources(datasets)}
    assert {n: (r.layout, len(r.items)) for n, r in results.items()} == {
        "deam": ("deam-simple", 1), "lakh": ("midi-folder", 1), "maestro": ("maestro-bare", 1),
        "groove": ("groove-bare", 3), "harmony": ("chord-json", 3)}
    assert find_source(datasets, "maestro") == datasets / "maestro"


def test_datasets_dir_is_the_source_root(tmp_path):
    maestro_root = make_maestro(tmp_path / "maestro-v3.0.0")
    assert find_source(maestro_root, "maestro") == maestro_root
    groove_root = make_groove(tmp_path / "groove", info=False)
    assert load_source(groove_root, "groove").layout == "groove-bare"


def test_bare_midi_folder_is_not_every_source(tmp_path):
    datasets = tmp_path / "downloads"
    write_piano_midi(datasets / "tune.mid")
    assert available_sources(datasets) == []
    assert [i.item_id for i in load_source(datasets, "maestro", "maestro-bare").items] == ["tune.mid"]


def test_missing_source_lists_folders_and_layouts(tmp_path):
    (tmp_path / "datasets").mkdir()
    with pytest.raises(KellyError) as error:
        find_source(tmp_path / "datasets", "lakh")
    message = str(error.value)
    for expected in ("lakh_midi/", "lmd_full: lmd_full/{hex}/{md5}.mid", "lmd_matched: ", "clean_midi: ", "midi-folder: "):
        assert expected in message
    with pytest.raises(KellyError, match=r"deam-distributed: DEAM_audio/MEMD_audio.*deam-simple: audio/"):
        load_source(tmp_path / "datasets", "deam")
    with pytest.raises(KellyError, match=r"maestro has no layout 'lmd_full' \('lmd_full' is a lakh layout\)"):
        find_source(tmp_path / "datasets", "maestro", "lmd_full")
    with pytest.raises(KellyError, match=r"unknown dataset source 'midi'"):
        find_source(tmp_path / "datasets", "midi")


def test_describe(tmp_path):
    result = deam.load(make_deam_distributed(tmp_path / "deam"))
    text = describe(result)
    splits = result.split_counts()
    assert text.startswith(f"deam (deam-distributed at {tmp_path / 'deam'}): 4 items (train {splits['train']}, "
                           f"validation {splits['validation']}, test 0); 4 with annotated labels, 0 to get proxy labels.")
    assert "1 files without labels, 1 labels without file, 1 nan labels" in text


# --- the real files -----------------------------------------------------------------------------------

def test_real_deam_static_csvs(tmp_path, real_corpus):
    files = sorted((real_corpus / "metadata" / "DEAM").glob("static_annotations_averaged_songs_*.csv"))
    table = deam.read_static_annotations(files)
    assert table["file"].value_counts().to_dict() == {files[0].name: 1744, files[1].name: 58}
    assert table["song_id"].is_unique and table["song_id"].max() == 2058
    assert table[["valence", "arousal"]].notna().all().all()
    root = tmp_path / "deam"
    (root / deam.STATIC_DIR).mkdir(parents=True)
    for f in files:
        shutil.copy(f, root / deam.STATIC_DIR / f.name)
    for song_id in (2, 3, 2001):
        write_tone(root / deam.AUDIO_DIR / f"{song_id}.mp3", frequency=220.0 + song_id % 7)
    result = deam.load(root)
    items = by_id(result)
    assert len(items) == 3 and result.counts == {"labels_without_file": 1799}
    assert items["2"].valence == pytest.approx((3.1 - 5) / 4) and items["2"].arousal == pytest.approx((3 - 5) / 4)
    assert items["2001"].valence == pytest.approx((3.2 - 5) / 4) and items["2001"].arousal == pytest.approx((6.6 - 5) / 4)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_real_maestro_metadata(tmp_path, suffix, real_corpus):
    import pandas as pd

    source = real_corpus / "metadata" / "maestro-v3.0.0" / f"maestro-v3.0.0{suffix}"
    table = maestro.read_metadata(source)
    assert len(table) == 1276
    assert table["split"].value_counts().to_dict() == {"train": 962, "test": 177, "validation": 137}
    root = tmp_path / "maestro-v3.0.0"
    root.mkdir()
    shutil.copy(source, root / source.name)
    reference = pd.read_csv(real_corpus / "metadata" / "maestro-v3.0.0" / "maestro-v3.0.0.csv")
    chosen = reference.iloc[[0, 500, 1275]]
    for piano, midi in zip(("Maestro_1.mid", "Maestro_3.mid", "Maestro_10.mid"), chosen["midi_filename"]):
        (root / midi).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(real_corpus / "piano_midi" / "MidiTok" / piano, root / midi)
    result = maestro.load(root)
    assert result.counts == {"missing_midi": 1273}
    assert len(result.missing[source.name]) == 1273 and result.missing[source.name][0] == reference["midi_filename"][1]
    assert {i.item_id: i.split for i in result.items} == dict(zip(chosen["midi_filename"], chosen["split"]))
    assert [i.metadata["composer"] for i in result.items] == list(chosen["canonical_composer"])


def test_real_groove_info_csv(real_corpus):
    import pandas as pd

    root = real_corpus / "drum_midi" / "groove"
    info = pd.read_csv(root / "info.csv")
    assert len(info) == 1150 and info["split"].value_counts().to_dict() == {"train": 897, "test": 129, "validation": 124}
    result = groove.load(root)
    present = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.mid"))
    assert sorted(i.item_id for i in result.items) == present
    assert result.counts == {"missing_midi": 1150 - len(present)}
    assert result.missing["info.csv"] == [f for f in info["midi_filename"] if f not in present]
    official = dict(zip(info["midi_filename"], info["split"]))
    styles = dict(zip(info["midi_filename"], info["style"]))
    for item in result.items:
        assert item.split == official[item.item_id]
        assert "/".join(filter(None, (item.metadata["style"], item.metadata["substyle"]))) == styles[item.item_id]
        parsed = groove.parse_file_name(item.path.name)      # the GMD name agrees with info.csv
        assert (parsed["style"], parsed["bpm"]) == (item.metadata["style"], item.metadata["bpm"])


def test_real_multitrack_folder_as_lakh(real_corpus):
    result = lakh.load(real_corpus / "multitrack_midi", "midi-folder")
    files = sorted(p for p in (real_corpus / "multitrack_midi").rglob("*.mid"))
    assert len(result.items) + result.counts.get("duplicates", 0) == len(files)
    assert all(i.label_source == "proxy" and len(i.item_id) == 32 for i in result.items)


# --- the project's own sample data ------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    """The sample datasets, written once for this module: {legacy: (root, summary)}."""
    from preprocess.sample_data import make_sample_data

    written = {}
    for legacy in (False, True):
        root = tmp_path_factory.mktemp("legacy" if legacy else "distributed") / "datasets"
        written[legacy] = (root, make_sample_data(root, seed=0, legacy=legacy))
    return written


@pytest.mark.parametrize("legacy, layouts", [
    (False, {"deam": "deam-distributed", "lakh": "lmd_full", "maestro": "maestro-csv", "groove": "groove-csv",
             "harmony": "chord-json", "emopia": "emopia-split"}),
    (True, {"deam": "deam-simple", "lakh": "midi-folder", "maestro": "maestro-bare", "groove": "groove-bare",
            "harmony": "chord-json"}),
])
def test_sample_data_every_source(sample_data, legacy, layouts):
    root, summary = sample_data[legacy]
    assert available_sources(root) == [name for name in READERS if name in layouts]     # legacy: no EMOPIA
    results = {name: load_source(root, name) for name in layouts}
    assert {name: r.layout for name, r in results.items()} == layouts
    # readers list files without decoding them: the deliberately broken ones are items too, for the
    # preprocess job to reject; everything else the generator counts as readable is there
    paths = {name: {item.path.resolve() for item in r.items} for name, r in results.items()}
    unreadable = [(root / p).resolve() for p in summary["broken"] + summary["no_notes"]]
    assert all(any(p in source_paths for source_paths in paths.values()) for p in unreadable)
    for name, result in results.items():
        assert len(result.items) == summary["counts"][name] + sum(p in paths[name] for p in unreadable), name
        for item in result.items:
            if item.label_source == "annotated":
                assert -1.0 <= item.valence <= 1.0 and -1.0 <= item.arousal <= 1.0
            else:
                assert item.label_source == "proxy" and item.valence is None and item.arousal is None
    if not legacy:
        import pandas as pd

        table = pd.read_csv(root / "maestro-v3.0.0" / "maestro-v3.0.0.csv")
        official = dict(zip(table["midi_filename"], table["split"]))
        assert all(item.split == official[item.item_id] for item in results["maestro"].items)
        from_json = load_source(root, "maestro", "maestro-json").items
        assert [(i.item_id, i.split) for i in from_json] == [(i.item_id, i.split) for i in results["maestro"].items]
        for layout in ("lmd_matched", "clean_midi"):
            forced = load_source(root, "lakh", layout)
            assert forced.layout == layout and forced.items


# --- every file accounted for ---------------------------------------------------------------------

def all_files(root: Path) -> set[str]:
    """Every entry under `root` that is not a folder (links, FIFOs and files), relative, as os.walk sees them."""
    import os

    out = set()
    for folder, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            out.add(Path(folder, name).relative_to(root).as_posix())
    return out


def accounted(result, metadata: set[str]) -> set[str]:
    """Items, duplicates, metadata read and the files recorded as unused, as relative paths under the root."""
    out = {Path(item.path).relative_to(result.root).as_posix() for item in result.items} | metadata
    return out | {p for paths in result.unused.values() for p in paths}


def test_a_link_loop_in_lakh_is_named_and_not_followed(tmp_path, kelly_cli):
    import os

    root = tmp_path / "datasets" / "lakh_midi"
    md5s = make_lmd_full(root, n=3)
    os.symlink("..", root / "lmd_full" / md5s[0][0] / "loop")          # lmd_full/a/loop -> ..
    os.symlink(root / "nowhere.mid", root / "lmd_full" / md5s[1][0] / "gone.mid")
    os.mkfifo(root / "lmd_full" / md5s[2][0] / "pipe.mid")
    (root / "lmd_full" / "empty.mid").mkdir()
    result = lakh.load(root)
    assert sorted(i.item_id for i in result.items) == sorted(md5s)
    unused = {why: sorted(paths) for why, paths in result.unused.items()}
    assert unused == {
        "a folder already read by another path (a loop of links, or a link to it)": [f"lmd_full/{md5s[0][0]}/loop"],
        "a link that leads nowhere": [f"lmd_full/{md5s[1][0]}/gone.mid"],
        "not a regular file (a FIFO, socket or device)": [f"lmd_full/{md5s[2][0]}/pipe.mid"],
        "a folder, though named like a file (its contents are read as a folder's)": ["lmd_full/empty.mid"],
    }
    code, out, err = kelly_cli("preprocess", "lakh", "--datasets-dir", tmp_path / "datasets",
                               "--cache-dir", tmp_path / "cache", "--workers", "1", "--quiet")
    assert code == 0 and err == "" and "3 items (lmd_full)" in out
    assert f"not used: 1 a link that leads nowhere; first: lmd_full/{md5s[1][0]}/gone.mid" in out
    assert "not used: 1 a folder already read by another path" in out
    code, out, err = kelly_cli("datasets", "list", "--datasets-dir", tmp_path / "datasets")
    assert code == 0 and "3 MIDI files; not used: " in out and "1 a link that leads nowhere" in out


def test_every_file_of_a_maestro_and_a_groove_folder_is_accounted_for(tmp_path):
    import os

    root = make_maestro(tmp_path / "maestro-v3.0.0")
    write_piano_midi(root / "2018" / "not_listed.midi")
    groove_root = make_groove(tmp_path / "groove")
    write_drum_midi(groove_root / "drummer1" / "extra_take.mid")                  # not in info.csv
    (groove_root / "drummer1" / "eval_session" / "1_funk-groove1_138_beat_4-4.wav").write_bytes(b"RIFF")
    (groove_root / "README.txt").write_text("Groove MIDI Dataset\n")
    os.symlink("missing.mid", groove_root / "drummer1" / "dangling.mid")
    (groove_root / ".kelly-download.json").write_text("{}")
    result = groove.load(groove_root)
    assert accounted(result, {"info.csv"}) == all_files(groove_root)
    unused = {why: sorted(paths) for why, paths in result.unused.items()}
    assert unused["MIDI not listed in info.csv"] == ["drummer1/extra_take.mid"]
    assert unused["audio (only the MIDI is read)"] == ["drummer1/eval_session/1_funk-groove1_138_beat_4-4.wav"]
    assert unused["not a MIDI file"] == ["README.txt"]
    assert unused["a link that leads nowhere"] == ["drummer1/dangling.mid"]
    assert "Not used: 1 MIDI not listed in info.csv; first: drummer1/extra_take.mid." in describe(result)
    result = maestro.load(root)
    assert accounted(result, {"maestro-v3.0.0.csv"}) == all_files(root)
    assert result.unused == {"MIDI not listed in maestro-v3.0.0.csv": ["2018/not_listed.midi"]}


def test_a_deam_clip_whose_name_is_not_a_song_id_is_listed_as_unused(tmp_path):
    root = make_deam_distributed(tmp_path / "deam")
    write_tone(root / "DEAM_audio" / "MEMD_audio" / "intro_jingle.mp3")
    (root / "DEAM_Annotations" / "annotations" / "README.txt").write_text("per-rater files are elsewhere\n")
    result = deam.load(root)
    read = {p.relative_to(root).as_posix() for p in [*deam.static_annotation_files(root),
                                                    root / deam.DYNAMIC_DIR / "arousal.csv",
                                                    root / deam.DYNAMIC_DIR / "valence.csv"]}
    assert accounted(result, read) == all_files(root)
    unused = {why: sorted(paths) for why, paths in result.unused.items()}
    assert unused["audio whose name is not a DEAM song id"] == ["DEAM_audio/MEMD_audio/intro_jingle.mp3"]
    assert unused["audio whose label is empty in the static annotations"] == ["DEAM_audio/MEMD_audio/4.mp3"]
    assert unused["audio without a label in the static annotations"] == ["DEAM_audio/MEMD_audio/5.mp3"]
    assert unused["annotations or features this reader does not use"] == ["DEAM_Annotations/annotations/README.txt"]


def test_files_beside_the_chord_progressions_are_listed_as_unused(tmp_path):
    root = tmp_path / "harmony"
    root.mkdir()
    (root / "chord_progressions.json").write_text(json.dumps(PROGRESSIONS))
    (root / "drafts.json").write_text(json.dumps(PROGRESSIONS[:1]))
    (root / "emotion_labels.json").write_text("{}")
    (root / "notes.txt").write_text("ii-V-I in three keys\n")
    result = harmony.load(root)
    assert len(result.items) == len(PROGRESSIONS)
    assert result.unused == {
        "JSON not read: chord_progressions.json is present, and then only it is read": ["drafts.json"],
        "another source's label file": ["emotion_labels.json"],
        "not chord-progression JSON (only *.json at the top of the folder are read)": ["notes.txt"],
    }
    assert accounted(result, set()) == all_files(root)
