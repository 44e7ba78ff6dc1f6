"""The sample datasets: real layouts, deterministic bytes, decodable music whose labels agree with it,
and broken files that really are broken."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import symusic

from common.errors import KellyError
from preprocess.features.spec import GROOVE_PITCH_TO_CLASS
from preprocess.sample_data import MARKER, deam, groove, harmony, lakh, maestro, make_sample_data
from preprocess.sample_data import music
from preprocess.sample_data.emotion import arousal_of


# Krumhansl-Kessler key profiles, C first
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    return root, make_sample_data(root, seed=0, small=True)


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    root = tmp_path_factory.mktemp("legacy")
    return root, make_sample_data(root, seed=0, legacy=True, small=True)


@pytest.fixture(scope="module")
def midi_sets(tmp_path_factory):
    """The full-size MIDI datasets (cheap to write): maestro, groove, lakh."""
    root = tmp_path_factory.mktemp("midi")
    maestro.write_maestro(root, 0)
    groove.write_groove(root, 0)
    lakh.write_lakh(root, 0)
    return root


def estimated_mode(score: symusic.Score) -> str:
    """Major or minor by correlating the duration-weighted pitch-class histogram with key profiles."""
    hist = np.zeros(12)
    for track in score.tracks:
        if not track.is_drum:
            for n in track.notes:
                hist[n.pitch % 12] += n.duration
    best = max((np.corrcoef(hist, np.roll(profile, k))[0, 1], mode)
               for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)) for k in range(12))
    return best[1]


def rank_correlation(x, y) -> float:
    return float(np.corrcoef(pd.Series(x).rank(), pd.Series(y).rank())[0, 1])


# --- layouts -------------------------------------------------------------------------------------

def test_distributed_layout(sample):
    root, summary = sample
    assert summary["layout"] == "distributed"
    assert summary["counts"] == {"deam": 5, "maestro": 5, "groove": 43, "lakh": 9, "harmony": 60,
                                 "emopia": 28}
    for rel in (deam.STATIC_1_2000, deam.STATIC_2000_2058, deam.DYNAMIC_AROUSAL, deam.DYNAMIC_VALENCE,
                "maestro-v3.0.0/maestro-v3.0.0.csv", "maestro-v3.0.0/maestro-v3.0.0.json", "groove/info.csv",
                "harmony/chord_progressions.json"):
        assert (root / rel).is_file(), rel
    audio = sorted(int(p.stem) for p in (root / deam.AUDIO_DIR).glob("*.mp3"))
    assert audio == [1, 2, 3, 4, 5, 2001]

    table = pd.read_csv(root / "maestro-v3.0.0/maestro-v3.0.0.csv")
    assert list(table.columns) == maestro.COLUMNS
    assert set(table["split"]) == {"train", "validation", "test"}
    assert all((root / "maestro-v3.0.0" / f).is_file() for f in table["midi_filename"])
    assert all(re.fullmatch(r"20\d\d/MIDI-Unprocessed_.*\.midi", f) for f in table["midi_filename"])
    columns = pd.read_json(root / "maestro-v3.0.0/maestro-v3.0.0.json")
    assert list(columns.columns) == maestro.COLUMNS and len(columns) == len(table)

    info = pd.read_csv(root / "groove/info.csv")
    assert (root / "groove/info.csv").read_text().splitlines()[0] == ",".join(groove.COLUMNS)
    assert set(info["split"]) == {"train", "validation", "test"}
    assert all((root / "groove" / f).is_file() for f in info["midi_filename"])
    for row in info.itertuples():
        style = row.style.replace("/", "-")
        assert row.midi_filename == f"{row.id}_{style}_{row.bpm}_{row.beat_type}_{row.time_signature}.mid"
        assert row.id.startswith(row.session + "/") and row.session.startswith(row.drummer + "/")
    assert {"4-4", "3-4", "6-8"} <= set(info["time_signature"])
    assert {"beat", "fill"} == set(info["beat_type"])
    assert info["style"].str.fullmatch(r"\w+/groove\d+").sum() == 4            # evaluation sessions

    for path in (root / "lmd_full").rglob("*.mid"):
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        assert path.stem == digest and path.parent.name == digest[0]
    matched = sorted((root / "lmd_matched").rglob("*.mid"))
    by_hash: dict[str, list[str]] = {}
    for path in matched:
        msd = path.parent.name
        assert re.fullmatch(r"TR[A-Z]{5}128F[0-9A-F]{7}", msd)
        assert path.parent.parent.parts[-3:] == (msd[2], msd[3], msd[4])
        assert (root / "lmd_full" / path.stem[0] / path.name).read_bytes() == path.read_bytes()
        by_hash.setdefault(path.stem, []).append(msd)
    assert sorted(len(ids) for ids in by_hash.values()) == [1, 1, 1, 2]      # one file under two MSD ids
    clean = sorted((root / "clean_midi").rglob("*.mid"))
    assert len(clean) == 3 and any(p.name.endswith(".1.mid") for p in clean)
    full_hashes = {p.stem for p in (root / "lmd_full").rglob("*.mid")}
    assert all(hashlib.md5(p.read_bytes()).hexdigest() in full_hashes for p in clean)


def test_deam_csv_format(sample):
    root, _ = sample
    first = (root / deam.STATIC_1_2000).read_bytes()
    assert first.startswith(b"song_id, valence_mean, valence_std, arousal_mean, arousal_std\r\n")
    assert first.endswith(b"\r\n")
    second = (root / deam.STATIC_2000_2058).read_bytes().decode()
    assert second.split("\r\n")[0].split(", ")[3] == "valence_ max_mean"
    static = pd.read_csv(root / deam.STATIC_1_2000)
    assert static.columns[1] == " valence_mean"                                # spaced, as distributed
    static.columns = static.columns.str.strip()
    assert static["song_id"].tolist() == [1, 2, 3, 4, 5]
    songs = pd.read_csv(root / deam.STATIC_2000_2058, skipinitialspace=True)
    assert len(songs.columns) == 13 and songs["song_id"].tolist() == [2001]
    for table in (static, songs):
        values = table.drop(columns="song_id").to_numpy()
        assert values.min() >= 0 and values.max() <= 9
        assert table["valence_mean"].between(1, 9).all() and table["arousal_mean"].between(1, 9).all()
    assert (songs["valence_ max_mean"] >= songs["valence_min_mean"]).all()              # the real typo, kept

    for rel in (deam.DYNAMIC_AROUSAL, deam.DYNAMIC_VALENCE):
        text = (root / rel).read_text()
        assert text.startswith("song_id,sample_15000ms,sample_15500ms,sample_16000ms,")
        dynamic = pd.read_csv(root / rel).set_index("song_id")
        assert sorted(dynamic.index) == [1, 2, 3, 4, 5, 2001]
        values = dynamic.to_numpy()
        assert np.nanmin(values) >= -1 and np.nanmax(values) <= 1
        lengths = dynamic.notna().sum(axis=1)
        assert lengths.min() < dynamic.shape[1] == lengths.max()                 # shorter clips NaN-padded
        assert all(dynamic.loc[i].iloc[: lengths[i]].notna().all() for i in dynamic.index)  # padding only at the end
        shortest = lengths.idxmin()
        line = next(x for x in text.splitlines() if x.startswith(f"{shortest},"))
        assert line.endswith(",,") and "nan" not in text.lower()                 # empty cells, not "nan"


def test_headers_match_the_real_files(sample, real_corpus):
    root, _ = sample
    real_deam = real_corpus / "metadata" / "DEAM"
    for ours, name in ((deam.STATIC_1_2000, "static_annotations_averaged_songs_1_2000.csv"),
                       (deam.STATIC_2000_2058, "static_annotations_averaged_songs_2000_2058.csv")):
        assert (root / ours).read_bytes().split(b"\r\n")[0] == (real_deam / name).read_bytes().split(b"\r\n")[0]
    real_maestro = (real_corpus / "metadata/maestro-v3.0.0/maestro-v3.0.0.csv").read_text().splitlines()[0]
    assert (root / "maestro-v3.0.0/maestro-v3.0.0.csv").read_text().splitlines()[0] == real_maestro
    real_info = pd.read_csv(real_corpus / "drum_midi/groove/info.csv")
    ours = pd.read_csv(root / "groove/info.csv")
    assert list(ours.columns) == list(real_info.columns)
    plain = ours.loc[~ours["session"].str.endswith("eval_session"), "style"]
    assert set(plain) <= set(real_info["style"])                              # style names GMD uses


# --- content -------------------------------------------------------------------------------------

def test_audio_decodes_as_music(sample):
    root, summary = sample
    for path in sorted((root / deam.AUDIO_DIR).glob("*.mp3")):
        rel = path.relative_to(root).as_posix()
        if rel in summary["broken"]:
            continue
        audio, sr = sf.read(path, dtype="float32")
        assert sr == 44100 and audio.ndim == 2 and audio.shape[1] == 2
        assert 20.0 <= len(audio) / sr <= 31.0
        mono = audio.mean(axis=1)
        assert 10 * np.log10(np.mean(mono ** 2)) > -40.0                           # not silent
        assert np.abs(audio).max() <= 1.0
        for start in (2.0, 10.0, 18.0):                                            # tonal, not noise
            seg = mono[int(start * sr): int(start * sr) + 4096]
            power = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2 + 1e-12
            assert np.exp(np.mean(np.log(power))) / np.mean(power) < 0.02          # spectral flatness


def test_midi_parses(sample):
    root, summary = sample
    import pretty_midi

    skip = set(summary["broken"])
    files = [p for p in sorted(root.rglob("*.mid*")) if p.relative_to(root).as_posix() not in skip]
    assert len(files) > 60
    for path in files:
        score = symusic.Score(path)
        empty = path.relative_to(root).as_posix() in summary["no_notes"]
        assert (score.note_num() == 0) == empty, path
    for tree in ("lmd_full", "maestro-v3.0.0", "groove", "lmd_matched", "clean_midi"):   # pretty_midi is slow: one each
        path = next(p for p in files if p.relative_to(root).parts[0] == tree and p.relative_to(root).as_posix()
                    not in summary["no_notes"])
        pm = pretty_midi.PrettyMIDI(str(path))
        assert pm.get_end_time() > 1.0 and sum(len(i.notes) for i in pm.instruments) > 10


def test_broken_files_fail(sample):
    root, summary = sample
    import pretty_midi

    faults = summary["faults"]
    assert len(summary["broken"]) == 5 and set(faults) == set(summary["broken"])
    kinds = " ".join(faults.values())
    for word in ("truncated", "zero-byte", "HTML error page saved as .mid", ".mp3"):
        assert word in kinds
    for rel in summary["broken"]:
        path = root / rel
        assert path.is_file()
        if path.suffix == ".mp3":
            with pytest.raises(sf.LibsndfileError):
                sf.read(path)
            continue
        with pytest.raises(RuntimeError):
            symusic.Score(path)
        with pytest.raises(Exception):
            pretty_midi.PrettyMIDI(str(path))
    roots = {rel.split("/")[0] for rel in summary["broken"]}
    assert roots == {"DEAM_audio", "groove", "lmd_full", "maestro-v3.0.0"}
    # a reader meets them: listed where the datasets list their files
    info = pd.read_csv(root / "groove/info.csv")
    table = pd.read_csv(root / "maestro-v3.0.0/maestro-v3.0.0.csv")
    listed = {"groove/" + f for f in info["midi_filename"]} | {"maestro-v3.0.0/" + f for f in table["midi_filename"]}
    assert sum(rel in listed for rel in summary["broken"]) == 2
    broken_id = int(next(Path(r).stem for r in summary["broken"] if r.endswith(".mp3")))
    assert broken_id in pd.read_csv(root / deam.DYNAMIC_AROUSAL)["song_id"].tolist()
    assert broken_id in pd.read_csv(root / deam.STATIC_1_2000)["song_id"].tolist()
    (empty,) = summary["no_notes"]
    assert symusic.Score(root / empty).note_num() == 0


def _pitch_class_energy(mono: np.ndarray, sr: int) -> np.ndarray:
    power = np.abs(np.fft.rfft(mono * np.hanning(len(mono)))) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1.0 / sr)
    band = (freqs > 60) & (freqs < 2000)
    pcs = np.round(12 * np.log2(freqs[band] / 440.0) + 69).astype(int) % 12
    return np.bincount(pcs, weights=power[band], minlength=12)


def _check_section_change(plan: deam.ClipPlan, mono: np.ndarray, sr: int, dynamic_row: np.ndarray) -> int:
    """Loudness and annotated arousal move the way the second section moves them; returns checks made."""
    first, second = (s.character for s in plan.sections)
    boundary, settled = plan.sections[1].start, plan.sections[1].start + plan.ramp
    checks = 0
    loudness_change = second.loudness - first.loudness
    if abs(loudness_change) > 0.15 and settled + 2.0 <= plan.duration:
        def level(t0: float, t1: float) -> float:
            return 10 * np.log10(np.mean(mono[int(t0 * sr): int(t1 * sr)] ** 2))
        measured = level(settled, min(plan.duration, settled + 4.0)) - level(max(0.0, boundary - 4.0), boundary)
        assert np.sign(measured) == np.sign(loudness_change) and abs(measured) > 1.5, plan.song_id
        checks += 1
    arousal_change = arousal_of(second) - arousal_of(first)
    times = deam.dynamic_times(plan.duration)
    values = dynamic_row[: len(times)]
    early, late = values[times < boundary], values[times >= settled + 1.0]
    if abs(arousal_change) > 0.2 and len(early) >= 2 and len(late) >= 2:
        assert np.sign(late.mean() - early.mean()) == np.sign(arousal_change), plan.song_id
        checks += 1
    return checks


def test_deam_labels_agree_with_the_audio(sample):
    root, _ = sample
    plans = deam.deam_plans(0, 4, 1)
    static = pd.concat([pd.read_csv(root / deam.STATIC_1_2000, skipinitialspace=True),
                        pd.read_csv(root / deam.STATIC_2000_2058, skipinitialspace=True)]).set_index("song_id")
    dynamic = pd.read_csv(root / deam.DYNAMIC_AROUSAL).set_index("song_id")
    levels, arousal, valence, majors = [], [], [], []
    checked = 0
    for plan in plans:
        audio, sr = sf.read(root / deam.AUDIO_DIR / f"{plan.song_id}.mp3", dtype="float32")
        mono = audio.mean(axis=1)
        first = plan.sections[0]
        end = plan.sections[1].start if len(plan.sections) > 1 else plan.duration
        energy = _pitch_class_energy(mono[: int(end * sr)], sr)
        major_third, minor_third = energy[(first.key.tonic + 4) % 12], energy[(first.key.tonic + 3) % 12]
        assert (major_third > minor_third) == (first.key.mode == "major"), plan.song_id    # the audio is in its mode
        levels.append(10 * np.log10(np.mean(mono ** 2)))
        arousal.append(static.loc[plan.song_id, "arousal_mean"])
        valence.append(static.loc[plan.song_id, "valence_mean"])
        majors.append(np.mean([s.character.mode == "major" for s in plan.sections]))
        if len(plan.sections) == 2:                      # a change inside the clip shows in audio and labels
            checked += _check_section_change(plan, mono, sr, dynamic.loc[plan.song_id].to_numpy())
    assert checked >= 2
    assert rank_correlation(levels, arousal) > 0.8
    majors, valence = np.array(majors), np.array(valence)
    assert valence[majors > 0.5].mean() > valence[majors < 0.5].mean() + 2.0


def test_maestro_performances_carry_consistent_cues(midi_sets):
    table = pd.read_csv(midi_sets / "maestro-v3.0.0/maestro-v3.0.0.csv")
    tempos, velocities, densities, modes_ok = [], [], [], []
    for row in table.itertuples():
        try:
            score = symusic.Score(midi_sets / "maestro-v3.0.0" / row.midi_filename)
        except RuntimeError:
            continue                                                          # the truncated one
        (track,) = score.tracks
        notes = track.notes
        velocity = np.array([n.velocity for n in notes])
        assert 60.0 <= row.duration <= 95.0
        assert velocity.std() > 5 and len({c.number for c in track.controls}) == 1 and track.controls[0].number == 64
        onsets = np.array([n.time for n in notes]) / score.tpq
        assert np.mean(np.abs(onsets * 4 - np.round(onsets * 4)) > 0.02) > 0.5    # played, not quantised
        tempos.append(score.tempos[0].qpm)
        velocities.append(velocity.mean())
        densities.append(len(notes) / row.duration)
        modes_ok.append(estimated_mode(score) == row.canonical_title.split(",")[0].split()[-1])
    assert len(tempos) == 16 and len(set(tempos)) > 10
    assert rank_correlation(tempos, velocities) > 0.6
    assert rank_correlation(tempos, densities) > 0.6
    assert np.mean(modes_ok) >= 0.75


def test_groove_performances(midi_sets):
    info = pd.read_csv(midi_sets / "groove/info.csv")
    offbeat_position: dict[str, list[float]] = {}
    for row in info.itertuples():
        try:
            score = symusic.Score(midi_sets / "groove" / row.midi_filename)
        except RuntimeError:
            continue                                                          # the HTML page
        (track,) = score.tracks
        assert track.is_drum and score.tempos[0].qpm == pytest.approx(row.bpm, abs=0.01)
        ts = score.time_signatures[0]
        assert f"{ts.numerator}-{ts.denominator}" == row.time_signature
        assert {n.pitch for n in track.notes} <= set(GROOVE_PITCH_TO_CLASS)
        beats = np.array([n.time for n in track.notes]) / score.tpq
        grid = np.abs(beats * 4 - np.round(beats * 4)) / 4 * 60 / row.bpm      # seconds off the 16th grid
        assert grid.std() > 0.003                                            # humanised
        if row.beat_type == "beat" and row.style in ("jazz/swing", "rock"):
            ride_or_hat = [b % 1.0 for b, n in zip(beats, track.notes) if n.pitch in (42, 51) and 0.3 < b % 1.0 < 0.85]
            offbeat_position.setdefault(row.style, []).extend(ride_or_hat)
    assert np.median(offbeat_position["jazz/swing"]) > 0.6                       # swung eighths
    assert abs(np.median(offbeat_position["rock"]) - 0.5) < 0.05                 # straight eighths
    fills, beats_ = info[info.beat_type == "fill"], info[info.beat_type == "beat"]
    assert fills["duration"].max() < beats_["duration"].min()


def test_lakh_songs(midi_sets):
    files = [p for p in (midi_sets / "lmd_full").rglob("*.mid") if p.stat().st_size > 0]
    songs = 0
    tempos = set()
    for path in files:
        try:
            score = symusic.Score(path)
        except RuntimeError:
            continue
        if score.note_num() == 0:
            continue
        songs += 1
        drums = [t for t in score.tracks if t.is_drum]
        pitched = [t for t in score.tracks if not t.is_drum]
        assert len(drums) == 1 and len(pitched) == 3 and all(t.notes for t in score.tracks)
        key = score.key_signatures[0]
        assert estimated_mode(score) == ("minor" if key.tonality else "major"), path.name
        seconds = score.to("second").end()
        assert 40.0 < seconds < 75.0
        tempos.add(round(score.tempos[0].qpm))
    assert songs == 31 and len(tempos) > 15


def test_chord_progressions(sample):
    root, _ = sample
    progressions = json.loads((root / "harmony/chord_progressions.json").read_text())
    assert len(progressions) == 60
    full = harmony.chord_progressions(0)
    assert len(full) == 150
    symbol = re.compile(r"^([A-G][b#]?)(|m|7|maj7|m7|6|m6|dim|dim7|m7b5|\+|sus4|sus2)(/[A-G][b#]?)?$")
    qualities, roots, minor_share, valence, arousal, lengths = set(), set(), [], [], [], []
    for p in full:
        assert set(p) == {"chords", "emotion"} and 4 <= len(p["chords"]) <= 16
        assert -1 <= p["emotion"]["valence"] <= 1 and -1 <= p["emotion"]["arousal"] <= 1
        parsed = [symbol.match(c) for c in p["chords"]]
        assert all(parsed), p["chords"]
        roots |= {m.group(1) for m in parsed}
        qualities |= {m.group(2) + ("/" if m.group(3) else "") for m in parsed}
        minor_share.append(np.mean([m.group(2) in ("m", "m7", "m6", "dim", "dim7", "m7b5") for m in parsed]))
        valence.append(p["emotion"]["valence"])
        arousal.append(p["emotion"]["arousal"])
        lengths.append(len(p["chords"]))
    pitch_classes = {music.SHARP_NAMES.index(r) if r in music.SHARP_NAMES else music.FLAT_NAMES.index(r) for r in roots}
    assert len(pitch_classes) == 12
    assert {"", "m", "m7", "maj7", "7", "sus4", "dim", "+", "m7b5", "/"} <= qualities
    assert rank_correlation(minor_share, valence) < -0.6
    assert rank_correlation(lengths, arousal) > 0.4
    assert max(valence) > 0.5 and min(valence) < -0.5 and max(arousal) > 0.5 and min(arousal) < -0.5


def test_legacy_layout(legacy):
    root, summary = legacy
    assert summary["layout"] == "legacy"
    labels = pd.read_csv(root / "deam/annotations/annotations.csv")
    assert list(labels.columns) == ["filename", "valence", "arousal"]
    assert labels[["valence", "arousal"]].abs().max().max() <= 1
    for name in labels["filename"]:
        audio, sr = sf.read(root / "deam/audio" / name)
        assert audio.shape[1] == 2 and len(audio) / sr > 15 and np.abs(audio).max() > 0.05
    lakh_files = sorted(p.name for p in (root / "lakh_midi").glob("*.mid"))
    emotion = json.loads((root / "lakh_midi/emotion_labels.json").read_text())
    assert set(emotion) < set(lakh_files) and len(emotion) >= len(lakh_files) // 2
    for name, value in emotion.items():
        assert set(value) == {"valence", "arousal"}
        mode = estimated_mode(symusic.Score(root / "lakh_midi" / name))
        assert (value["valence"] > 0) == (mode == "major"), name
    assert len(list((root / "maestro").glob("*.midi"))) == 4
    drum = json.loads((root / "groove/drum_labels.json").read_text())
    assert set(drum) == {p.name for p in (root / "groove").glob("*.mid")}
    assert len(json.loads((root / "harmony/chord_progressions.json").read_text())) == 30
    assert len(summary["broken"]) == 2
    for rel in summary["broken"]:
        with pytest.raises(RuntimeError):
            symusic.Score(root / rel)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file's bytes by relative path, less the summary (which records the run's time)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != MARKER}


def test_same_seed_same_bytes(tmp_path):
    trees = []
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        root = tmp_path / run
        if seed == 0:                                   # audio only twice: MP3 encoding is the slow part
            deam.write_deam(root, seed, n_clips=1, n_full_songs=0, workers=1)
        maestro.write_maestro(root, seed, n_pieces=2)
        groove.write_groove(root, seed)
        lakh.write_lakh(root, seed, n_songs=3, n_matched=2, n_clean=1)
        harmony.write_chord_progressions(root / "harmony/chord_progressions.json", seed, 20)
        trees.append(_tree(root))
    assert trees[0] == trees[1]
    assert any(k.endswith(".mp3") for k in trees[0])
    changed = [k for k in trees[0].keys() | trees[2].keys() if trees[0].get(k) != trees[2].get(k)]
    assert len(changed) > 20                                                  # the seed matters


def test_legacy_is_deterministic(legacy, tmp_path):
    root, _ = legacy
    make_sample_data(tmp_path / "again", seed=0, legacy=True, small=True)
    assert _tree(root) == _tree(tmp_path / "again")


def test_reuses_its_own_folder_and_refuses_others(sample, tmp_path):
    root, summary = sample
    again = make_sample_data(root, seed=0, small=True)                        # same settings: nothing rewritten
    assert again["reused"] and again["counts"] == summary["counts"] and again["broken"] == summary["broken"]
    with pytest.raises(KellyError, match="seed 0"):
        make_sample_data(root, seed=1, small=True)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(KellyError, match="not empty"):
        make_sample_data(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(KellyError, match="not a folder"):
        make_sample_data(tmp_path / "file")


# --- keys ----------------------------------------------------------------------------------------

KEY_NAMES = {name: pc for pc, name in enumerate(music.SHARP_NAMES)} | {name: pc for pc, name in enumerate(music.FLAT_NAMES)}


def _parses(path) -> bool:
    try:
        symusic.Score(path)
    except RuntimeError:
        return False                                     # the truncated file
    return True


def _even(keys: list[tuple[int, str]]) -> None:
    """Within each mode, every tonic is used equally often to within one piece."""
    for mode in ("major", "minor"):
        counts = np.bincount([t for t, m in keys if m == mode], minlength=12)
        assert counts.max() - counts.min() <= 1, (mode, counts.tolist())
        assert counts.sum() >= 6


def test_midi_pieces_are_written_in_all_24_keys_evenly(midi_sets):
    """As real collections are: the key says nothing about the emotion, the mode does."""
    table = pd.read_csv(midi_sets / "maestro-v3.0.0/maestro-v3.0.0.csv")
    readable = [_parses(midi_sets / "maestro-v3.0.0" / f) for f in table.midi_filename]
    titles = table[readable].canonical_title.str.extract(r" in ([A-G])(-flat|-sharp)? (major|minor)")
    keys = [(KEY_NAMES[letter + {"-flat": "b", "-sharp": "#"}.get(accidental, "")], mode)
            for letter, accidental, mode in titles.fillna("").itertuples(index=False)]
    assert len(keys) == 16
    _even(keys)
    songs = lakh.song_plans(0, 30)
    _even([(p.key.tonic, p.key.mode) for p in songs])
    big = lakh.song_plans(0, 100)
    assert {(p.key.tonic, p.key.mode) for p in big} == {(t, m) for t in range(12) for m in ("major", "minor")}
    _even([(p.key.tonic, p.key.mode) for p in big])
    for p in big:                                         # the mode still follows valence
        assert (p.key.mode == "major") == (p.valence > 0) or abs(p.valence) < 0.25


def test_chord_progressions_cover_the_24_keys_evenly():
    from preprocess.features.chords import chord_class
    from preprocess.features.harmony import progression_key

    progressions = harmony.chord_progressions(0, 144)
    keys = [progression_key([chord_class(c) for c in p["chords"]]) for p in progressions]
    counts = np.bincount([12 * minor + tonic for tonic, minor in keys], minlength=24)
    assert (counts > 0).all() and counts.max() <= 3 * counts.min(), counts.tolist()
