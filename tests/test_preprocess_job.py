"""The preprocess job on the sample datasets: skip, invalidate, retry, survive crashes and kill -9."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile

from common.errors import KellyError
from preprocess.cache import reader
from preprocess.cache.manifest import Manifest
from preprocess.cache.stats import input_stats
from preprocess.cli import format_summary
from preprocess.datasets import load_source
from preprocess.extract import dynamic_label_windows
from preprocess.features import spec
from preprocess.features.embedding import embed
from preprocess.job import run_preprocess

REPO = Path(__file__).resolve().parents[1]
MIDI_SOURCES = ("lakh", "maestro", "groove", "harmony", "emopia")
OPTIONS = dict(progress=False, file_timeout=60)


# --- data ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    """The small sample datasets, every source in its distributed layout, with files broken on purpose."""
    from preprocess.sample_data import make_sample_data

    root = tmp_path_factory.mktemp("datasets") / "sample"
    return root, make_sample_data(root, small=True)


@pytest.fixture(scope="module")
def midi_datasets(sample_data, tmp_path_factory):
    """The sample MIDI and chord datasets (lakh, maestro, groove, harmony, emopia) and their unusable files."""
    root, made = sample_data
    midi = tmp_path_factory.mktemp("datasets") / "midi"
    shutil.copytree(root, midi, ignore=shutil.ignore_patterns("DEAM_*"))
    unusable = {p for p in made["broken"] + made["no_notes"] if not p.startswith("DEAM_")}
    return midi, unusable


@pytest.fixture(scope="module")
def reference(midi_datasets, tmp_path_factory):
    """An uninterrupted build of the MIDI datasets with two workers."""
    datasets, _ = midi_datasets
    cache = tmp_path_factory.mktemp("reference") / "cache"
    summary = run_preprocess("all", datasets_dir=datasets, cache_dir=cache, workers=2, **OPTIONS)
    return cache, summary


def copy_of(tmp_path, datasets: Path, cache: Path | None = None) -> tuple[Path, Path]:
    new_datasets = tmp_path / "datasets"
    shutil.copytree(datasets, new_datasets)
    new_cache = tmp_path / "cache"
    if cache is not None:
        shutil.copytree(cache, new_cache)
    return new_datasets, new_cache


def cache_content(cache: Path) -> dict:
    """{(network, source, item_id, window): (inputs, targets)} of every served row."""
    out = {}
    for network in spec.NETWORKS:
        try:
            arrays = reader.load_network(cache, network)
        except KellyError as exc:
            if f"no {network} samples" not in str(exc):
                raise
            continue
        for i, w, x, y in zip(arrays.item, arrays.window, arrays.inputs, arrays.targets):
            key = (network, arrays.sources[i], arrays.item_ids[i], int(w))
            assert key not in out, f"row served twice: {key}"
            out[key] = (x, y)
    return out


def assert_same_content(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key][0], b[key][0], err_msg=str(key))
        np.testing.assert_array_equal(a[key][1], b[key][1], err_msg=str(key))


def write_piece(path: Path, *, transpose: int = 0, bars: int = 8, drums_only: bool = False, start: float = 0.0) -> Path:
    """Four bars of I-vi-IV-V in C with an eighth-note melody (or a rock beat when drums_only)."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0, is_drum=drums_only)
    chords = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)]
    for b in range(bars):
        t0 = start + 2.0 * b
        if drums_only:
            for k in range(8):
                inst.notes.append(pretty_midi.Note(90, 42, t0 + k * 0.25, t0 + k * 0.25 + 0.1))
            for k, pitch in enumerate((36, 38, 36, 38)):
                inst.notes.append(pretty_midi.Note(100, pitch, t0 + k * 0.5, t0 + k * 0.5 + 0.1))
            continue
        triad = chords[b % 4]
        for p in triad:
            inst.notes.append(pretty_midi.Note(64, p + transpose, t0, t0 + 1.9))
        for k in range(8):
            p = triad[k % 3] + 12 + transpose
            inst.notes.append(pretty_midi.Note(80, p, t0 + k * 0.25, t0 + k * 0.25 + 0.2))
    pm.instruments.append(inst)
    pm.write(str(path))
    return path


def harmonic_tone(seconds: float, sr: int = 22050, gain: float = 0.3) -> np.ndarray:
    """An A-minor chord of three voices with five harmonics each, with a slow tremolo."""
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t)
    for f0 in (220.0, 261.63, 329.63):
        for h in range(1, 6):
            y += np.sin(2 * np.pi * f0 * h * t) / h
    y *= 1 + 0.3 * np.sin(2 * np.pi * 3 * t)
    return (gain * y / np.abs(y).max()).astype(np.float32)


def failures_by_file(cache: Path) -> dict[str, tuple[str, str, str]]:
    with Manifest.open(cache) as manifest:
        return {Path(r.source_path).name: (r.reason, r.stage, r.error) for r in manifest.failures()}


# --- tests -----------------------------------------------------------------------------------------

def test_build_records_planted_faults_and_a_rerun_skips_everything(midi_datasets, reference, tmp_path):
    datasets, unusable = midi_datasets
    cache, summary = reference
    assert set(summary["sources"]) == set(MIDI_SOURCES) and summary["not_found"] == ["deam"]
    failed_files = {e["file"] for bucket in summary["failures"].values() for e in bucket["examples"]}
    n_failed = sum(s["failed"] for s in summary["sources"].values())
    assert n_failed == len(unusable) and set(summary["failures"]) == {"error"}
    assert {str(datasets / p) for p in unusable} >= failed_files
    for name in ("melody", "harmony", "dynamics", "groove"):
        assert summary["samples"][name]["train"] > 0 and summary["samples"][name]["validation"] > 0
    assert summary["stats"]["recomputed"] and "melody" in summary["stats"]["networks"]

    # a rerun over unchanged files computes nothing and reads no shard
    new_datasets, new_cache = copy_of(tmp_path, datasets, cache)
    again = run_preprocess("all", datasets_dir=datasets, cache_dir=new_cache, workers=2, **OPTIONS)
    for name, s in again["sources"].items():
        first = summary["sources"][name]
        assert s["computed"] == 0 and s["already_done"] == first["done"] and s["failed_before"] == first["failed"]
    assert again["samples"] == summary["samples"] and not again["stats"]["recomputed"]


def test_an_unchanged_source_is_not_read_again_and_a_changed_one_is(midi_datasets, reference, tmp_path):
    datasets, _ = midi_datasets
    new_datasets, new_cache = copy_of(tmp_path, datasets, reference[0])
    first = run_preprocess("all", datasets_dir=new_datasets, cache_dir=new_cache, workers=2, **OPTIONS)
    assert not any(s.get("unchanged") for s in first["sources"].values())      # another root: read again

    again = run_preprocess("all", datasets_dir=new_datasets, cache_dir=new_cache, workers=2, **OPTIONS)
    assert all(s.get("unchanged") for s in again["sources"].values())
    for name, s in again["sources"].items():
        assert s["items"] == first["sources"][name]["items"] and s["computed"] == 0
        assert s["already_done"] == first["sources"][name]["already_done"] + first["sources"][name]["done"]
    assert again["samples"] == first["samples"]
    assert "unchanged since the last complete run" in format_summary(again)

    # a label file rewritten: its source is read again (lakh too, whose root is the datasets folder
    # itself here); the sources in folders of their own are not
    info = new_datasets / "groove" / "info.csv"
    info.write_text(info.read_text())
    changed = run_preprocess("all", datasets_dir=new_datasets, cache_dir=new_cache, workers=2, **OPTIONS)
    assert not changed["sources"]["groove"].get("unchanged") and not changed["sources"]["lakh"].get("unchanged")
    assert changed["sources"]["harmony"].get("unchanged") and changed["sources"]["maestro"].get("unchanged")
    assert changed["samples"] == first["samples"]

    # --force and --retry-failed always read and plan every source
    forced = run_preprocess("all", datasets_dir=new_datasets, cache_dir=new_cache, workers=2, retry_failed=True,
                            **OPTIONS)
    assert not any(s.get("unchanged") for s in forced["sources"].values())


def test_kill_minus_9_then_rerun_gives_the_uninterrupted_content(midi_datasets, reference, tmp_path):
    datasets, _ = midi_datasets
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "kelly", "preprocess", "all", "--datasets-dir", str(datasets),
               "--cache-dir", str(cache), "--workers", "1", "--shard-items", "1", "--quiet"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            shards = list(cache.glob("*/shard-*.h5"))
            if len(shards) >= 8:
                break
            time.sleep(0.005)
        assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read()[-2000:]}"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    partial = cache_content(cache)                     # what a reader sees right after the kill
    full = cache_content(reference[0])
    assert 0 < len(partial) < len(full)
    for key, (x, y) in partial.items():
        np.testing.assert_array_equal(x, full[key][0])
        np.testing.assert_array_equal(y, full[key][1])

    summary = run_preprocess("all", datasets_dir=datasets, cache_dir=cache, workers=1, **OPTIONS)
    assert sum(s["already_done"] for s in summary["sources"].values()) > 0
    assert not list(cache.rglob("*.tmp"))
    with Manifest.open(cache) as manifest:
        assert sorted(manifest.shards()) == sorted(str(p.relative_to(cache)) for p in cache.glob("*/shard-*.h5"))
    assert_same_content(cache_content(cache), full)
    assert summary["samples"] == reference[1]["samples"]


def session_members(session: int) -> list[str]:
    """The live processes of a session (a process started with start_new_session=True, and every
    descendant that did not leave it: worker processes, resource trackers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:                   # gone meanwhile
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(f"{entry.name}: {command[:150]}")
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="the process scan reads /proc (Linux)")
@pytest.mark.parametrize("stop, workers, to_group", [(signal.SIGTERM, 2, False), (signal.SIGINT, 1, True)],
                         ids=["SIGTERM to the command (a scheduler, timeout)", "SIGINT to its group (Ctrl-C)"])
def test_a_stop_signal_ends_every_process_keeps_the_cache_and_a_rerun_completes_it(stop, workers, to_group,
                                                                                  midi_datasets, reference, tmp_path):
    datasets, _ = midi_datasets
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "kelly", "preprocess", "all", "--datasets-dir", str(datasets),
               "--cache-dir", str(cache), "--workers", str(workers), "--shard-items", "1", "--quiet"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None and len(list(cache.glob("*/shard-*.h5"))) < 6:
            time.sleep(0.005)
        assert process.poll() is None, f"the run ended before it could be stopped: {process.stderr.read()[-2000:]}"
        running = session_members(process.pid)
        assert len(running) >= 1 + workers          # the command and its workers at least
        (os.killpg if to_group else os.kill)(process.pid, stop)
        out, err = process.communicate(timeout=60)   # the pipes close once no process holds them
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    left = session_members(process.pid)
    deadline = time.monotonic() + 10
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = session_members(process.pid)
    assert not left, f"still running after the stop: {left} (running before it: {running})"
    assert process.returncode == 128 + stop and out == ""
    lines = [line for line in err.splitlines() if not line.startswith("Note: ")]     # mpg123's own notes
    assert len(lines) == 1 and lines[0].startswith(f"kelly preprocess: stopped by {signal.Signals(stop).name}: kept "), err
    assert "the same command again computes the rest" in lines[0]
    assert not list(cache.rglob("*.tmp")) and not list(cache.glob("*-journal"))

    partial = cache_content(cache)
    full = cache_content(reference[0])
    assert 0 < len(partial) < len(full)
    for key, (x, y) in partial.items():
        np.testing.assert_array_equal(x, full[key][0])
        np.testing.assert_array_equal(y, full[key][1])
    with Manifest.open(cache) as manifest:
        assert sorted(manifest.shards()) == sorted(str(p.relative_to(cache)) for p in cache.glob("*/shard-*.h5"))
        assert not [f for f in manifest.failures() if f.reason != "error"]      # no worker's end taken for a crash
    if stop != signal.SIGTERM:
        return                          # resuming is the same after either signal: once is enough
    summary = run_preprocess("all", datasets_dir=datasets, cache_dir=cache, workers=1, **OPTIONS)
    assert sum(s["already_done"] for s in summary["sources"].values()) > 0
    assert_same_content(cache_content(cache), full)
    assert summary["samples"] == reference[1]["samples"]


def test_changed_file_is_recomputed_and_a_touched_one_is_not(midi_datasets, reference, tmp_path):
    datasets, cache = copy_of(tmp_path, midi_datasets[0], reference[0])
    files = sorted((datasets / "lmd_full").rglob("*.mid"))
    usable = [f for f in files if f.stat().st_size > 1000]
    changed, touched = usable[0], usable[1]
    write_piece(changed, transpose=5)                           # new content under the same name
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))   # same content, new mtime

    before = cache_content(cache)
    summary = run_preprocess(["lakh"], datasets_dir=datasets, cache_dir=cache, workers=1, **OPTIONS)
    lakh = summary["sources"]["lakh"]
    assert lakh["computed"] == 1 and lakh["done"] == 1
    after = cache_content(cache)
    changed_id = changed.stem
    old_rows = {k for k in before if k[2] == changed_id}
    new_rows = {k for k in after if k[2] == changed_id}
    assert new_rows and any(not np.array_equal(before[k][1], after[k][1]) for k in old_rows & new_rows)
    others = {k: v for k, v in before.items() if k[2] != changed_id}
    assert_same_content(others, {k: v for k, v in after.items() if k[2] != changed_id})


def test_a_new_feature_version_recomputes_everything(midi_datasets, reference, tmp_path, monkeypatch):
    datasets, cache = copy_of(tmp_path, midi_datasets[0], reference[0])
    old_shards = set(p.name for p in cache.glob("lakh/shard-*.h5"))
    melody_rows = len(reader.load_network(cache, "melody", sources=["lakh"]))
    monkeypatch.setattr(spec, "FEATURE_VERSION", "kelly-features-test-2")
    with pytest.raises(KellyError, match="feature version"):
        reader.load_network(cache, "melody")
    summary = run_preprocess(["lakh", "harmony"], datasets_dir=datasets, cache_dir=cache, workers=1, **OPTIONS)
    first = reference[1]["sources"]
    for name in ("lakh", "harmony"):
        s = summary["sources"][name]
        assert s["already_done"] == 0 and s["computed"] == first[name]["done"] + first[name]["failed"]
    assert not old_shards & set(p.name for p in cache.glob("lakh/shard-*.h5"))   # old shards cleaned up
    assert reader.cache_summary(cache)["feature_version"] == "kelly-features-test-2"
    assert len(reader.load_network(cache, "melody", sources=["lakh"])) == melody_rows


def test_failures_are_kept_until_retried_or_the_file_changes(midi_datasets, reference, tmp_path):
    datasets, cache = copy_of(tmp_path, midi_datasets[0], reference[0])
    n_failed = reference[1]["sources"]["lakh"]["failed"]
    again = run_preprocess(["lakh"], datasets_dir=datasets, cache_dir=cache, workers=1, **OPTIONS)
    assert again["sources"]["lakh"]["computed"] == 0 and again["sources"]["lakh"]["failed_before"] == n_failed
    assert (f"every failure with its reason ({n_failed} from earlier runs not listed above): "
            f"kelly preprocess --failures --cache-dir {cache}") in format_summary(again)

    retried = run_preprocess(["lakh"], datasets_dir=datasets, cache_dir=cache, workers=1, retry_failed=True, **OPTIONS)
    assert retried["sources"]["lakh"]["computed"] == n_failed and retried["sources"]["lakh"]["failed"] == n_failed

    zero = next(p for p in (datasets / "lmd_full").rglob("*.mid") if p.stat().st_size == 0)
    write_piece(zero)                                        # someone re-downloads the broken file
    fixed = run_preprocess(["lakh"], datasets_dir=datasets, cache_dir=cache, workers=1, **OPTIONS)
    assert fixed["sources"]["lakh"]["computed"] == 1 and fixed["sources"]["lakh"]["done"] == 1
    assert zero.name not in failures_by_file(cache)


def test_limit_force_and_a_new_split_seed(midi_datasets, tmp_path):
    datasets = midi_datasets[0]
    cache = tmp_path / "cache"
    n = len(load_source(datasets, "harmony").items)
    first = run_preprocess(["harmony"], datasets_dir=datasets, cache_dir=cache, workers=1, limit=5, **OPTIONS)
    assert first["sources"]["harmony"]["computed"] == 5 and first["sources"]["harmony"]["limited"]
    rest = run_preprocess(["harmony"], datasets_dir=datasets, cache_dir=cache, workers=1, **OPTIONS)
    assert rest["sources"]["harmony"]["already_done"] == 5 and rest["sources"]["harmony"]["computed"] == n - 5
    limited = run_preprocess(["harmony"], datasets_dir=datasets, cache_dir=cache, workers=1, limit=5, **OPTIONS)
    assert limited["sources"]["harmony"]["removed"] == 0 and reader.cache_summary(cache)["items"]["harmony"]["done"] == n

    content = cache_content(cache)
    forced = run_preprocess(["harmony"], datasets_dir=datasets, cache_dir=cache, workers=1, force=True, **OPTIONS)
    assert forced["sources"]["harmony"]["computed"] == n and forced["cleanup"]["unreferenced_shards_removed"] >= 1
    assert_same_content(cache_content(cache), content)

    reseeded = run_preprocess(["harmony"], datasets_dir=datasets, cache_dir=cache, workers=1, seed=7, **OPTIONS)
    moved = reseeded["sources"]["harmony"]
    assert moved["computed"] == 0 and moved["split_changes"] > 0 and reseeded["stats"]["recomputed"]
    items = {i.item_id: i.split for i in load_source(datasets, "harmony", seed=7).items}
    arrays = reader.load_network(cache, "harmony")
    codes = {"train": 0, "validation": 1, "test": 2}
    assert all(codes[items[arrays.item_ids[i]]] == s for i, s in zip(arrays.item, arrays.split))


def test_bad_inputs_end_as_recorded_failures_and_the_run_goes_on(tmp_path, capsys):
    lakh = tmp_path / "datasets" / "lakh_midi"
    lakh.mkdir(parents=True)
    good = write_piece(lakh / "good.mid")
    (lakh / "zero.mid").write_bytes(b"")
    (lakh / "truncated.mid").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (lakh / "not_midi.mid").write_text("<html><body>404 Not Found</body></html>\n")
    silent = pretty_midi.PrettyMIDI(initial_tempo=100)
    silent.instruments.append(pretty_midi.Instrument(program=0))
    silent.write(str(lakh / "no_notes.mid"))
    write_piece(lakh / "drums_only.mid", drums_only=True)
    write_piece(lakh / "far_ticks.mid", bars=1, start=24_000.0)     # a note past tick 1e7 (440 ticks/s)

    deam = tmp_path / "datasets" / "deam"
    (deam / "audio").mkdir(parents=True)
    (deam / "annotations").mkdir()
    soundfile.write(deam / "audio" / "tone.wav", harmonic_tone(3.0), 22050)
    soundfile.write(deam / "audio" / "clipped.wav", np.clip(harmonic_tone(3.0, gain=4.0), -1, 1), 22050)
    soundfile.write(deam / "audio" / "silent.wav", np.zeros(22050 * 2, np.float32), 22050)
    soundfile.write(deam / "audio" / "short.wav", harmonic_tone(0.2), 22050)
    soundfile.write(deam / "audio" / "nan_label.wav", harmonic_tone(2.0), 22050)
    (deam / "audio" / "not_audio.wav").write_text("<html><body>403 Forbidden</body></html>\n")
    (deam / "annotations" / "annotations.csv").write_text(
        "filename,valence,arousal\ntone.wav,0.5,-0.25\nclipped.wav,0.1,0.9\nsilent.wav,0,0\n"
        "short.wav,0.2,0.2\nnan_label.wav,NaN,0.3\nnot_audio.wav,-0.5,0.5\n")

    summary = run_preprocess("all", datasets_dir=tmp_path / "datasets", cache_dir=tmp_path / "cache",
                             workers=1, **OPTIONS)
    cache = tmp_path / "cache"
    failed = failures_by_file(cache)
    assert {k: v[:2] for k, v in failed.items()} == {
        "zero.mid": ("error", "midi"), "truncated.mid": ("error", "midi"), "not_midi.mid": ("error", "midi"),
        "no_notes.mid": ("error", "midi"), "drums_only.mid": ("error", "midi"), "far_ticks.mid": ("error", "midi"),
        "silent.wav": ("error", "audio"), "short.wav": ("error", "audio"), "not_audio.wav": ("error", "audio"),
    }
    assert "0 bytes" in failed["zero.mid"][2] and "no pitched notes" in failed["drums_only.mid"][2]
    assert "10000000" in failed["far_ticks.mid"][2] and "silent" in failed["silent.wav"][2]
    assert "shorter than one" in failed["short.wav"][2]
    assert summary["sources"]["deam"]["reader_counts"].get("nan_labels") == 1     # a documented skip
    assert summary["sources"]["deam"]["done"] == 2 and summary["sources"]["lakh"]["done"] == 1

    # the summary shows five of the nine, says so, and names the command that lists them all
    text = format_summary(summary)
    assert "  error: 9\n" in text and "    ... and 4 more\n" in text
    assert f"(4 more this run not listed above): kelly preprocess --failures --cache-dir {cache}" in text
    from kelly.cli import main

    assert main(["preprocess", "--failures", "--cache-dir", str(cache)]) == 0
    listed = capsys.readouterr().out
    assert f"9 failure(s) recorded in {cache}" in listed
    for name, (reason, _, error) in failed.items():
        assert any(f"/{name}" in line and line.endswith(f": {reason}: {error}") for line in listed.splitlines()), name
    assert main(["preprocess", "deam", "--failures", "--cache-dir", str(cache)]) == 0
    assert "3 failure(s) recorded" in capsys.readouterr().out

    import h5py

    with h5py.File(next(cache.glob("deam/shard-*.h5")), "r") as h5:     # clipping is recorded, not fatal
        names = [n.decode() for n in h5["items/item_id"][()]]
        attributes = [json.loads(a) for a in h5["items/attributes"][()]]
    by_name = dict(zip(names, attributes))
    assert by_name["clipped.wav"]["clipped_fraction"] > 0.1 and by_name["tone.wav"]["clipped_fraction"] == 0

    emotion = reader.load_network(cache, "emotion")
    assert sorted(set(emotion.item_ids)) == ["clipped.wav", "tone.wav"]
    tone = emotion.take(np.array([emotion.item_ids[i] == "tone.wav" for i in emotion.item]))
    assert len(tone) == 6                                     # 3 s of 0.5-s windows
    np.testing.assert_allclose(tone.targets, np.broadcast_to(embed(0.5, -0.25), (6, 64)), atol=1e-6)


def test_a_crash_or_hang_in_extraction_is_one_failure(tmp_path):
    import parallel_tasks

    lakh = tmp_path / "datasets" / "lakh_midi"
    lakh.mkdir(parents=True)
    for i in range(4):
        write_piece(lakh / f"song_{i}.mid", transpose=i)
    write_piece(lakh / "crash_here.mid", transpose=7)       # distinct content: Lakh ids are md5s
    write_piece(lakh / "hang_here.mid", transpose=9)
    summary = run_preprocess(["lakh"], datasets_dir=tmp_path / "datasets", cache_dir=tmp_path / "cache",
                             workers=1, extract=parallel_tasks.extract_or_crash, progress=False, file_timeout=2)
    assert summary["sources"]["lakh"]["done"] == 4
    failed = failures_by_file(tmp_path / "cache")
    assert failed["crash_here.mid"][:2] == ("crash", "crash") and "signal 11" in failed["crash_here.mid"][2]
    assert failed["hang_here.mid"][0] == "timeout" and failed["hang_here.mid"][2] == "timeout after 2 s"
    again = run_preprocess(["lakh"], datasets_dir=tmp_path / "datasets", cache_dir=tmp_path / "cache",
                           workers=1, extract=parallel_tasks.extract_or_crash, progress=False, file_timeout=2)
    assert again["sources"]["lakh"]["computed"] == 0 and again["sources"]["lakh"]["failed_before"] == 2


def test_unknown_chord_fails_only_its_progression_and_dynamic_labels_map_to_windows(tmp_path):
    harmony = tmp_path / "datasets" / "harmony"
    harmony.mkdir(parents=True)
    progressions = [
        {"chords": ["C", "Am", "F", "G7"], "emotion": {"valence": 0.6, "arousal": 0.4}},
        {"chords": ["Dm7", "G7", "Cmaj7", "Xq9"], "emotion": {"valence": 0.3, "arousal": 0.1}},
        {"chords": ["Am", "Em", "F", "C", "G"], "emotion": {"valence": -0.4, "arousal": -0.2}},
    ]
    (harmony / "chord_progressions.json").write_text(json.dumps(progressions))
    summary = run_preprocess(["harmony"], datasets_dir=tmp_path / "datasets", cache_dir=tmp_path / "cache",
                             workers=1, **OPTIONS)
    assert summary["sources"]["harmony"]["done"] == 2
    error = summary["failures"]["error"]["examples"][0]
    assert error["item_id"] == "chord_progressions.json#1" and error["stage"] == "chords"
    assert "'Xq9'" in error["error"]
    arrays = reader.load_network(tmp_path / "cache", "harmony")
    assert len(arrays) == 4 + 5                               # the opening chord and n - 1 transitions per progression

    # DEAM's 2-Hz dynamic labels from 15 s: sample k belongs to window 30 + k
    v, a, labelled = dynamic_label_windows(40, np.array([0.1, 0.2, np.nan, 0.4]), np.array([0.5, 0.6, 0.7, np.nan]))
    assert list(np.flatnonzero(labelled)) == [30, 31]
    assert (v[30], a[30], v[31], a[31]) == (0.1, 0.5, 0.2, 0.6)


def test_a_corrected_label_recomputes_its_item_and_other_metadata_does_not(tmp_path):
    lakh = tmp_path / "datasets" / "lakh_midi"
    lakh.mkdir(parents=True)
    for i, name in enumerate(("a", "b", "c")):
        write_piece(lakh / f"{name}.mid", transpose=i)
    labels = {"a.mid": {"valence": 0.6, "arousal": 0.4}, "b.mid": {"valence": -0.4, "arousal": -0.2},
              "c.mid": {"valence": 0.5, "arousal": 0.6}}
    (lakh / "emotion_labels.json").write_text(json.dumps(labels))
    options = dict(datasets_dir=tmp_path / "datasets", cache_dir=tmp_path / "cache", workers=1, **OPTIONS)
    assert run_preprocess(["lakh"], **options)["sources"]["lakh"]["done"] == 3

    labels["a.mid"]["valence"] = -0.8                       # a corrected annotation
    (lakh / "c.mid").rename(lakh / "c_renamed.mid")         # a new path (metadata extraction does not read)
    labels["c_renamed.mid"] = labels.pop("c.mid")
    (lakh / "emotion_labels.json").write_text(json.dumps(labels))
    again = run_preprocess(["lakh"], **options)["sources"]["lakh"]
    assert again["computed"] == 1 and again["already_done"] == 2 and again["removed"] == 0

    arrays = reader.load_network(tmp_path / "cache", "melody")
    a_id = next(i.item_id for i in load_source(tmp_path / "datasets", "lakh").items if i.path.name == "a.mid")
    rows = np.array([arrays.item_ids[i] == a_id for i in arrays.item])
    np.testing.assert_allclose(arrays.valence[rows], -0.8)
    np.testing.assert_allclose(arrays.inputs[rows], np.broadcast_to(embed(-0.8, 0.4), (rows.sum(), 64)), atol=1e-6)


def test_deam_windows_take_dynamic_labels_where_they_exist(sample_data, tmp_path):
    root, made = sample_data
    summary = run_preprocess(["deam"], datasets_dir=root, cache_dir=tmp_path / "cache", workers=1,
                             validation_split=0.0, **OPTIONS)       # a few clips: all train, for the statistics
    deam = summary["sources"]["deam"]
    assert deam["done"] == made["counts"]["deam"] and deam["failed"] == 1
    assert summary["failures"]["error"]["examples"][0]["stage"] == "audio"
    arrays = reader.load_network(tmp_path / "cache", "emotion")
    items = {item.item_id: item for item in load_source(root, "deam", validation_split=0.0).items}
    checked = 0
    for index, item_id in enumerate(arrays.item_ids):
        item = items[item_id]
        rows = arrays.item == index
        window, targets = arrays.window[rows], arrays.targets[rows]
        dv, da = item.metadata["dynamic_valence"], item.metadata["dynamic_arousal"]
        for k in range(3):
            if np.isfinite(dv[k]) and np.isfinite(da[k]):
                np.testing.assert_allclose(targets[window == 30 + k][0], embed(dv[k], da[k]), atol=1e-6)
                checked += 1
        np.testing.assert_allclose(targets[window == 0][0], embed(item.valence, item.arousal), atol=1e-6)
    assert checked >= 2
    mean, std = input_stats(tmp_path / "cache", "emotion")
    assert mean.shape == (128,) and np.all(std > 0)
    np.testing.assert_allclose(mean, arrays.inputs.astype(np.float64).mean(axis=0), rtol=1e-5, atol=1e-4)


def test_real_files_finish_as_done_or_recorded_failures(tmp_path, real_corpus):
    lakh = tmp_path / "datasets" / "lakh_midi"
    lakh.mkdir(parents=True)
    broken = sorted((real_corpus / "broken_midi").rglob("*.mid"))
    real = sorted((real_corpus / "multitrack_midi").rglob("*.mid"))[:4] + sorted((real_corpus / "piano_midi").rglob("*.mid"))[:1]
    for path in broken + real:
        shutil.copy(path, lakh / f"{path.parent.name}_{path.name}")
    shutil.copytree(real_corpus / "drum_midi" / "groove", tmp_path / "datasets" / "groove")
    summary = run_preprocess("all", datasets_dir=tmp_path / "datasets", cache_dir=tmp_path / "cache",
                             workers=2, **OPTIONS)
    failed = failures_by_file(tmp_path / "cache")
    assert {f"{p.parent.name}_{p.name}" for p in broken} <= set(failed)
    assert not {f"{p.parent.name}_{p.name}" for p in real} & set(failed)
    assert summary["sources"]["lakh"]["done"] == len(real)
    assert summary["sources"]["groove"]["done"] > 0 and summary["samples"]["groove"]["train"] > 0


def test_the_dask_backend_builds_the_same_cache(midi_datasets, reference, tmp_path):
    pytest.importorskip("distributed")
    cache = tmp_path / "cache"
    summary = run_preprocess(["maestro", "harmony"], datasets_dir=midi_datasets[0], cache_dir=cache, workers=2,
                             backend="dask", **OPTIONS)
    assert summary["sources"]["maestro"]["failed"] == reference[1]["sources"]["maestro"]["failed"]
    full = cache_content(reference[0])
    assert_same_content(cache_content(cache), {k: v for k, v in full.items() if k[1] in ("maestro", "harmony")})


def test_all_sources_stream_through_one_pool_and_a_crash_or_hang_stays_with_its_source(tmp_path):
    import parallel_tasks

    datasets = tmp_path / "datasets"
    lakh, maestro = datasets / "lakh_midi", datasets / "maestro"
    lakh.mkdir(parents=True)
    maestro.mkdir()
    for i in range(5):
        write_piece(lakh / f"song_{i}.mid", transpose=i)
        write_piece(maestro / f"piece_{i}.midi", transpose=i + 5)
    write_piece(lakh / "crash_here.mid", transpose=11)
    write_piece(maestro / "hang_here.midi", transpose=12)
    summary = run_preprocess("all", datasets_dir=datasets, cache_dir=tmp_path / "cache", workers=2,
                             extract=parallel_tasks.extract_or_crash, progress=False, file_timeout=2)
    assert {n: (s["done"], s["failed"]) for n, s in summary["sources"].items()} == {"lakh": (5, 1), "maestro": (5, 1)}
    failed = failures_by_file(tmp_path / "cache")
    assert set(failed) == {"crash_here.mid", "hang_here.midi"}
    assert failed["crash_here.mid"][0] == "crash" and failed["hang_here.midi"][0] == "timeout"
    with Manifest.open(tmp_path / "cache") as manifest:
        assert len(manifest.records("lakh")) == 6 and len(manifest.records("maestro")) == 6
    again = run_preprocess("all", datasets_dir=datasets, cache_dir=tmp_path / "cache", workers=2,
                           extract=parallel_tasks.extract_or_crash, progress=False, file_timeout=2)
    assert all(s.get("unchanged") for s in again["sources"].values())     # both completed, fingerprinted


# --- where the cache goes, and a run stopped before any work: one clear line ------------------------

def the_one_error_line(err: str, command: str = "preprocess") -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"kelly {command}: error: "), err
    return lines[0].removeprefix(f"kelly {command}: error: ")


@pytest.fixture
def no_work(monkeypatch):
    """The test fails if the job starts its workers or reads a dataset."""
    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the cache folder was checked")

    monkeypatch.setattr("preprocess.parallel.workers.start_workers", forbidden)
    monkeypatch.setattr("preprocess.datasets.load_source", forbidden)


def test_a_cache_dir_that_is_a_file_is_one_line_before_any_work(midi_datasets, tmp_path, no_work, kelly_cli):
    regular = tmp_path / "FILE"
    regular.write_text("not a folder")
    for cache, fault in ((regular, "is a file, not a folder (--cache-dir)"),
                         (regular / "sub", f"cannot be created: {regular} is a file, not a folder (--cache-dir)")):
        code, out, err = kelly_cli("preprocess", "all", "--datasets-dir", str(midi_datasets[0]),
                                    "--cache-dir", str(cache), "--quiet")
        assert code == 2 and out == "" and the_one_error_line(err) == f"{cache}: {fault}"
    assert regular.read_text() == "not a folder"


@pytest.mark.parametrize("case", ["empty read-only folder", "complete read-only cache", "below a read-only folder"])
def test_a_read_only_cache_dir_is_one_line_before_any_work(case, midi_datasets, reference, read_only, no_work, kelly_cli):
    fault = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    if case == "empty read-only folder":
        cache = read_only()
        expected = f"{cache}: cannot write into this folder: {fault} (--cache-dir)"
    elif case == "complete read-only cache":          # nothing to do, and still nowhere to write
        cache = read_only(reference[0])
        assert (cache / "manifest.sqlite").is_file()
        expected = f"{cache}: cannot write into this folder: {fault} (--cache-dir)"
    else:
        cache = read_only() / "sub"
        expected = f"{cache}: cannot be created: {cache.parent}: {fault} (--cache-dir)"
    code, out, err = kelly_cli("preprocess", "all", "--datasets-dir", str(midi_datasets[0]),
                                "--cache-dir", str(cache), "--quiet")
    assert code == 2 and out == "" and the_one_error_line(err) == expected


def test_the_cache_lock_names_a_folder_it_cannot_write(read_only):
    from preprocess.cache.writer import cache_lock as CacheLock

    cache = read_only()
    with pytest.raises(KellyError, match=r"cannot write the cache here: (Read-only file system|Permission denied)"):
        with CacheLock(cache):
            pass


def test_a_reader_error_before_any_work_is_one_line_without_joblib_noise(midi_datasets, tmp_path):
    """The workers start while the datasets are read; a reader's error stops them without a warning
    from joblib ("tasks have been cancelled") or a traceback from loky's manager thread."""
    cache = tmp_path / "cache"
    done = subprocess.run([sys.executable, "-m", "kelly", "preprocess", "deam", "--datasets-dir",
                           str(midi_datasets[0]), "--cache-dir", str(cache), "--workers", "2", "--quiet"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert the_one_error_line(done.stderr).startswith(f"no deam dataset found under {midi_datasets[0]}")
    assert not cache.exists()


def test_a_bad_number_of_workers_is_named_in_plain_words(capsys):
    from kelly.cli import build_parser

    for value, message in (("abc", "expected a whole number of at least 1, got 'abc'"),
                           ("0", "must be at least 1, got 0")):
        with pytest.raises(SystemExit) as stopped:
            build_parser().parse_args(["preprocess", "all", "--workers", value])
        err = capsys.readouterr().err
        assert stopped.value.code == 2
        assert err.strip().splitlines()[-1] == f"kelly preprocess: error: argument --workers: {message}"
        assert "_positive_int" not in err


@pytest.mark.parametrize("option, value, message", [
    ("--shard-megabytes", "-5", "must be a positive number of megabytes, got -5"),
    ("--shard-megabytes", "0", "must be a positive number of megabytes, got 0"),
    ("--shard-megabytes", "nan", "must be a positive number of megabytes, got nan"),
    ("--shard-megabytes", "big", "expected a positive number of megabytes, got 'big'"),
    ("--shard-items", "0", "must be at least 1, got 0"),
    ("--limit", "-1", "must be >= 0, got -1"),
    ("--file-timeout", "0", "must be a positive number of seconds, got 0"),
    ("--file-timeout", "inf", "must be a positive number of seconds, got inf"),
    ("--validation-split", "1", "must be in [0, 1), got 1.0"),
    ("--test-split", "-0.1", "must be in [0, 1), got -0.1"),
    ("--seed", "x", "invalid int value: 'x'"),
])
def test_numeric_options_out_of_range_are_usage_errors(option, value, message, capsys):
    from kelly.cli import build_parser

    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["preprocess", "all", option, value])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"kelly preprocess: error: argument {option}: {message}"


def test_splits_that_leave_nothing_to_train_on_are_a_usage_error_before_any_work(tmp_path, no_work, kelly_cli):
    code, out, err = kelly_cli("preprocess", "all", "--datasets-dir", tmp_path, "--cache-dir", tmp_path / "cache",
                               "--validation-split", "0.6", "--test-split", "0.4")
    assert code == 2 and out == "" and not (tmp_path / "cache").exists()
    assert "must add up to less than 1" in the_one_error_line(err)
    with pytest.raises(KellyError, match="--shard-megabytes must be a positive number"):
        run_preprocess("all", datasets_dir=tmp_path, cache_dir=tmp_path / "cache", shard_megabytes=-5)


# --- a shard damaged on disk: found, dropped and computed again -------------------------------------

def damage(path: Path, how: str) -> None:
    """Damage a shard file as a disk fault, an interrupted copy or a stray write would."""
    data = path.read_bytes()
    if how == "random bytes inside":
        with open(path, "r+b") as handle:
            handle.seek(len(data) // 2)
            handle.write(np.random.default_rng(0).bytes(64))
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif how == "deleted":
        path.unlink()
    elif how == "overwritten with text":
        path.write_text("this is not a shard\n")
    elif how == "copied without its times":
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    else:
        raise ValueError(how)


@pytest.mark.parametrize("how, problem", [
    ("random bytes inside", "its content changed since it was written"),
    ("truncated", "when written (truncated or overwritten)"),
    ("deleted", "missing"),
    ("overwritten with text", "when written (truncated or overwritten)"),
    ("copied without its times", None),
])
def test_a_damaged_shard_is_dropped_and_recomputed_by_one_plain_rerun(how, problem, midi_datasets, reference, tmp_path,
                                                                      capsys):
    datasets = midi_datasets[0]
    cache = tmp_path / "cache"
    shutil.copytree(reference[0], cache)          # times kept: every source is unchanged for a rerun
    shard = sorted(cache.glob("groove/shard-*.h5"))[0]
    name = str(shard.relative_to(cache))
    with Manifest.open(cache) as manifest:
        items = manifest.shards()[name].items
    damage(shard, how)
    capsys.readouterr()

    summary = run_preprocess("all", datasets_dir=datasets, cache_dir=cache, workers=1, **OPTIONS)
    dropped = summary["shard_check"]["dropped"]
    err = capsys.readouterr().err
    groove = summary["sources"]["groove"]
    if problem is None:         # the digest is verified, the new time recorded: nothing is computed
        assert dropped == [] and groove["computed"] == 0 and summary["shard_check"]["digests"] == 1
    else:
        assert [(d["shard"], d["items"]) for d in dropped] == [(name, items)] and problem in dropped[0]["problem"]
        assert f"{shard}: {dropped[0]['problem']}: dropped from the manifest, its {items} item(s) computed again" in err
        assert not groove.get("unchanged") and groove["computed"] == items and groove["done"] == items
        assert f"{name}: {dropped[0]['problem']} ({items} item(s) computed again)" in format_summary(summary)
    for other in ("lakh", "maestro", "harmony"):
        assert summary["sources"][other].get("unchanged")
    with Manifest.open(cache) as manifest:
        assert sorted(manifest.shards()) == sorted(str(p.relative_to(cache)) for p in cache.glob("*/shard-*.h5"))
    assert_same_content(cache_content(cache), cache_content(reference[0]))
    assert summary["samples"] == reference[1]["samples"]

    again = run_preprocess("all", datasets_dir=datasets, cache_dir=cache, workers=1, **OPTIONS)
    assert all(s.get("unchanged") for s in again["sources"].values()) and again["shard_check"]["digests"] == 0


def test_damage_the_trainer_meets_names_the_shard_and_a_command_that_repairs_it(midi_datasets, reference, tmp_path,
                                                                                kelly_cli):
    """Bytes overwritten inside a shard with its size and time kept (a failing disk): only the digests
    tell, and h5py fails half-way through a read; the reader's error is one KellyError naming the
    shard and the command that repairs it, and that command does."""
    import shlex

    cache = tmp_path / "cache"
    shutil.copytree(reference[0], cache)
    shard = sorted(cache.glob("groove/shard-*.h5"))[0]
    data = bytearray(shard.read_bytes())
    heap = data.index(b"GCOL")                    # the global heap of the shard's strings
    data[heap + 6: heap + 10] = b"\xff\x00\xff\x00"
    st = shard.stat()
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))

    with pytest.raises(KellyError) as raised:
        reader.load_network(cache, "groove")
    message = str(raised.value)
    assert message.startswith(f"{shard}: shard listed in the manifest: cannot be read (OSError: ")
    command = message.rpartition("its items computed again): ")[2]
    assert command == f"kelly preprocess groove --check --datasets-dir {midi_datasets[0]} --cache-dir {cache}"
    unchanged = run_preprocess("all", datasets_dir=midi_datasets[0], cache_dir=cache, workers=1, **OPTIONS)
    assert unchanged["shard_check"]["dropped"] == []          # size and time as written: a plain run cannot tell

    code, out, err = kelly_cli(*shlex.split(command)[1:], "--quiet")
    assert code == 0 and "shards checked: " in out and "(content digests compared); damaged and recomputed: 1" in out
    assert f"{shard}: its content changed since it was written" in err
    assert_same_content(cache_content(cache), cache_content(reference[0]))


# --- a full disk under the cache: one line, the manifest consistent, a rerun completes --------------

def assert_consistent(cache: Path) -> None:
    """The manifest lists exactly the shards on disk, each as written, and no temporary is left."""
    from preprocess.cache.integrity import inspect_shard

    assert not list(cache.rglob("*.tmp")) and not list(cache.glob("*-journal"))
    with Manifest.open(cache) as manifest:
        shards = manifest.shards()
        assert sorted(shards) == sorted(str(p.relative_to(cache)) for p in cache.glob("*/shard-*.h5"))
        assert all(inspect_shard(cache, record, verify="always").problem is None for record in shards.values())
        assert manifest.referenced_shards() <= set(shards)


@pytest.mark.parametrize("where", ["the manifest", "a shard"])
def test_a_full_disk_is_one_line_keeps_the_manifest_consistent_and_a_rerun_completes(where, midi_datasets, reference,
                                                                                     tmp_path, monkeypatch, kelly_cli):
    """SQLite's own limit on the manifest's pages gives the real "database or disk is full"; a shard's
    write fails as h5py's does on a full disk (ENOSPC from the file system)."""
    cache = tmp_path / "cache"
    if where == "the manifest":
        original = Manifest.open.__func__

        def open_small(cls, cache_dir, *, create=False):
            manifest = original(cls, cache_dir, create=create)
            if create:
                pages = manifest._db.execute("PRAGMA page_count").fetchone()[0]
                manifest._db.execute(f"PRAGMA max_page_count = {pages + 12}")
            return manifest

        monkeypatch.setattr(Manifest, "open", classmethod(open_small))
        expected = f"{cache / 'manifest.sqlite'}: cannot write the cache's manifest: database or disk is full; "
    else:
        import preprocess.cache.shards as shards

        written, fsync = [], os.fsync

        def fsync_until_full(fd):
            if os.readlink(f"/proc/self/fd/{fd}").endswith(".h5.tmp"):       # a shard's, not another library's
                written.append(fd)
                if len(written) > 5:
                    raise OSError(28, os.strerror(28))
            fsync(fd)

        if not Path("/proc/self/fd").is_dir():
            pytest.skip("the shard's file is told by its /proc/self/fd link (Linux)")
        monkeypatch.setattr(shards.os, "fsync", fsync_until_full)
        expected = "cannot write this shard: No space left on device; what was committed before is kept"
    code, out, err = kelly_cli("preprocess", "all", "--datasets-dir", midi_datasets[0], "--cache-dir", cache,
                               "--workers", "1", "--shard-items", "2", "--quiet")
    assert code == 2 and out == ""
    line = the_one_error_line(err)
    assert expected in line and line.endswith("run `kelly preprocess` again"), line
    assert_consistent(cache)

    monkeypatch.undo()                                   # space freed
    summary = run_preprocess("all", datasets_dir=midi_datasets[0], cache_dir=cache, workers=1, **OPTIONS)
    assert sum(s["already_done"] for s in summary["sources"].values()) > 0
    assert_consistent(cache)
    assert_same_content(cache_content(cache), cache_content(reference[0]))


def test_a_real_full_disk_where_a_small_file_system_can_be_mounted(midi_datasets, reference, tmp_path, kelly_cli):
    """The same on a real tmpfs too small for the cache (root only; skipped where mounts are refused)."""
    disk = tmp_path / "small-disk"
    disk.mkdir()
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        cache = disk / "cache"
        code, out, err = kelly_cli("preprocess", "all", "--datasets-dir", midi_datasets[0], "--cache-dir", cache,
                                   "--workers", "1", "--quiet")
        assert code == 2 and out == ""
        line = the_one_error_line(err)
        assert ("database or disk is full" in line or "No space left on device" in line) and "\n" not in line
        assert_consistent(cache)
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)       # space freed
        code, out, err = kelly_cli("preprocess", "all", "--datasets-dir", midi_datasets[0], "--cache-dir", cache,
                                   "--workers", "1", "--quiet")
        assert code == 0, err
        assert_consistent(cache)
        assert_same_content(cache_content(cache), cache_content(reference[0]))
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
