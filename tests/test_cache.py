"""The feature cache: shards, manifest and the training reader, on features of real (small) MIDI pieces."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pretty_midi
import pytest

from preprocess.cache import reader
from preprocess.cache.manifest import DoneEntry, Manifest, file_hash
from preprocess.cache.shards import InvalidResult, ItemResult, validate_result, write_shard
from preprocess.datasets.base import Item
from preprocess.errors import KellyError
from preprocess.extract import extract_item
from preprocess.features import spec
from preprocess.job import clean_cache, write_input_stats

PROGRESSIONS = {                     # root-position triads, one per bar
    "pop": [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)],        # C Am F G
    "minor": [(57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)],      # Am F C G
    "blues": [(60, 64, 67), (53, 57, 60), (60, 64, 67), (55, 59, 62)],      # C F C G
}


def write_piece(path: Path, chords, *, bars: int = 8, bpm: float = 120.0, seed: int = 0) -> Path:
    """A piano piece: block chords per bar and a melody of chord tones in eighth notes above them."""
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    piano = pretty_midi.Instrument(program=0)
    bar = 4 * 60.0 / bpm
    for b in range(bars):
        triad = chords[b % len(chords)]
        start = b * bar
        for pitch in triad:
            piano.notes.append(pretty_midi.Note(velocity=60, pitch=pitch, start=start, end=start + bar * 0.95))
        for step in range(8):
            pitch = int(rng.choice(triad)) + 12
            t = start + step * bar / 8
            piano.notes.append(pretty_midi.Note(velocity=int(70 + 20 * rng.random()), pitch=pitch,
                                                start=t, end=t + bar / 8 * 0.9))
    pm.instruments.append(piano)
    pm.write(str(path))
    return path


def lakh_item(path: Path, split: str, valence: float, arousal: float) -> Item:
    return Item(source="lakh", item_id=path.stem, path=path, split=split, label_source="annotated",
                valence=valence, arousal=arousal)


@pytest.fixture()
def pieces(tmp_path):
    folder = tmp_path / "midi"
    folder.mkdir()
    specs = [("pop", "train", 0.6, 0.4), ("minor", "train", -0.5, -0.2), ("blues", "validation", 0.2, 0.7)]
    items = []
    for i, (name, split, v, a) in enumerate(specs):
        path = write_piece(folder / f"{name}.mid", PROGRESSIONS[name], bars=6 + 2 * i, seed=i)
        items.append(lakh_item(path, split, v, a))
    return items


def commit(cache_dir: Path, name: str, results: list[ItemResult]) -> None:
    nbytes = write_shard(cache_dir, name, results, spec.FEATURE_VERSION)
    entries = [DoneEntry(source=r.source, item_id=r.item_id, content_hash=r.content_hash, label_digest="",
                         split=r.split, label_source=r.label_source, valence=r.valence, arousal=r.arousal,
                         source_path=r.source_path, shard_item=i, rows=r.rows()) for i, r in enumerate(results)]
    with Manifest.open(cache_dir, create=True) as manifest:
        manifest.commit_shard(name, results[0].source, entries, nbytes)


def rows_by_key(arrays: reader.NetworkArrays) -> dict:
    return {(arrays.item_ids[i], int(w)): (x, y)
            for i, w, x, y in zip(arrays.item, arrays.window, arrays.inputs, arrays.targets)}


def test_shard_round_trip_through_the_reader(tmp_path, pieces):
    results = [extract_item(item) for item in pieces]
    assert all(r.rows()["melody"] > 0 and r.rows()["harmony"] > 0 for r in results)
    commit(tmp_path / "cache", "lakh/shard-0001.h5", results[:2])
    commit(tmp_path / "cache", "lakh/shard-0002.h5", results[2:])

    for network in ("melody", "harmony"):
        arrays = reader.load_network(tmp_path / "cache", network)
        n = sum(r.rows()[network] for r in results)
        assert len(arrays) == n
        assert arrays.inputs.dtype == np.float32 and arrays.inputs.shape == (n, spec.NETWORKS[network][0])
        if network == "harmony":
            assert arrays.targets.dtype == np.int64 and arrays.targets.shape == (n,)
        else:
            assert arrays.targets.dtype == np.float32 and arrays.targets.shape == (n, 128)
        got = rows_by_key(arrays)
        for r in results:
            s = r.samples[network]
            for x, y, w in zip(s["inputs"], s["targets"], s["window"]):
                gx, gy = got[(r.item_id, int(w))]
                np.testing.assert_array_equal(gx, x)
                np.testing.assert_array_equal(gy, y)
        # per-row item data
        for i, r in enumerate(results):
            rows = np.array([arrays.item_ids[k] == r.item_id for k in arrays.item])
            assert set(arrays.split[rows]) == {0 if r.split == "train" else 1}
            np.testing.assert_allclose(arrays.valence[rows], r.valence, rtol=1e-6)
            np.testing.assert_allclose(arrays.arousal[rows], r.arousal, rtol=1e-6)
            assert set(arrays.label_source[rows]) == {0}
        assert arrays.sources == ["lakh"] * 3
        # rows ordered by item, then window
        order = np.lexsort((arrays.window, arrays.item))
        np.testing.assert_array_equal(order, np.arange(len(arrays)))

    with h5py.File(tmp_path / "cache" / "lakh" / "shard-0001.h5", "r") as h5:
        assert h5["melody/inputs"].chunks is None and h5["melody/inputs"].compression is None
        assert [s.decode() for s in h5["items/item_id"][()]] == ["pop", "minor"]
        assert h5["items/content_hash"][0].decode() == file_hash(pieces[0].path)


def test_reader_reads_whole_datasets_or_blocks_never_rows(tmp_path, pieces, monkeypatch):
    results = [extract_item(item) for item in pieces]
    commit(tmp_path / "cache", "lakh/shard-0001.h5", results)
    n = sum(r.rows()["melody"] for r in results)
    assert n > 40

    calls = []
    original = h5py.Dataset.__getitem__

    def counting(self, key):
        calls.append(key)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    whole = reader.load_network(tmp_path / "cache", "melody")
    assert len(whole) == n
    assert len(calls) <= 6             # item ids, then inputs/targets/item/window, each read once
    assert all(isinstance(k, slice) or k == () for k in calls)

    calls.clear()
    blocks = list(reader.iter_network_blocks(tmp_path / "cache", "melody", block_rows=16))
    assert [len(b) for b in blocks][:-1] == [16] * (len(blocks) - 1)
    assert len(calls) <= 1 + 4 * len(blocks)
    streamed = np.concatenate([b.inputs for b in blocks])
    np.testing.assert_array_equal(streamed, whole.inputs)
    np.testing.assert_array_equal(np.concatenate([b.item for b in blocks]), whole.item)


def test_uncommitted_shards_and_tmp_files_are_invisible_and_cleaned(tmp_path, pieces):
    cache = tmp_path / "cache"
    results = [extract_item(item) for item in pieces]
    commit(cache, "lakh/shard-0001.h5", results[:1])
    # a run killed between rename and commit, and one killed while writing
    write_shard(cache, "lakh/shard-0002.h5", results[1:], spec.FEATURE_VERSION)
    (cache / "lakh" / "shard-0003.h5.tmp").write_bytes(b"\x89HDF\r\n half a file")

    arrays = reader.load_network(cache, "melody")
    assert set(arrays.item_ids) == {"pop"} and len(arrays) == results[0].rows()["melody"]

    with Manifest.open(cache, create=True) as manifest:
        done = clean_cache(cache, manifest)
    assert done["orphan_shards_removed"] == 1 and done["tmp_files_removed"] == 1
    assert sorted(p.name for p in (cache / "lakh").iterdir()) == ["shard-0001.h5"]


def test_a_recomputed_item_serves_only_its_new_rows(tmp_path, pieces):
    cache = tmp_path / "cache"
    first = extract_item(pieces[0])
    commit(cache, "lakh/shard-0001.h5", [first])
    write_piece(pieces[0].path, PROGRESSIONS["minor"], bars=4, seed=7)          # the file changes
    second = extract_item(pieces[0])
    assert second.content_hash != first.content_hash
    commit(cache, "lakh/shard-0002.h5", [second])

    arrays = reader.load_network(cache, "melody")
    assert len(arrays) == second.rows()["melody"]
    np.testing.assert_array_equal(arrays.targets, second.samples["melody"]["targets"])
    with Manifest.open(cache, create=True) as manifest:
        done = clean_cache(cache, manifest)
    assert done["unreferenced_shards_removed"] == 1
    assert not (cache / "lakh" / "shard-0001.h5").exists()


def test_missing_empty_or_other_version_cache_is_a_clear_error(tmp_path, pieces, monkeypatch):
    with pytest.raises(KellyError, match="no feature cache"):
        reader.load_network(tmp_path / "nowhere", "melody")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KellyError, match="no feature cache"):
        reader.cache_identity(tmp_path / "empty")
    Manifest.open(tmp_path / "empty", create=True).close()
    with pytest.raises(KellyError, match="empty"):
        reader.load_network(tmp_path / "empty", "melody")

    cache = tmp_path / "cache"
    commit(cache, "lakh/shard-0001.h5", [extract_item(pieces[0])])
    with pytest.raises(KellyError, match="no emotion samples"):
        reader.load_network(cache, "emotion")
    built = spec.FEATURE_VERSION
    monkeypatch.setattr(spec, "FEATURE_VERSION", "kelly-features-999")
    with pytest.raises(KellyError, match=rf"feature version {built}, this code computes kelly-features-999"):
        reader.load_network(cache, "melody")


def test_input_stats_identity_and_summary(tmp_path, pieces):
    cache = tmp_path / "cache"
    results = [extract_item(item) for item in pieces]
    commit(cache, "lakh/shard-0001.h5", results)
    assert reader.input_stats(cache, "harmony") is None
    write_input_stats(cache)

    arrays = reader.load_network(cache, "harmony")
    train = arrays.inputs[arrays.split == 0].astype(np.float64)
    mean, std = reader.input_stats(cache, "harmony")
    assert mean.shape == std.shape == (spec.HARMONY_CONTEXT,)
    np.testing.assert_allclose(mean, train.mean(axis=0), atol=1e-6)
    expected_std = train.std(axis=0)
    np.testing.assert_allclose(std, np.where(expected_std > 1e-8, expected_std, 1.0), atol=1e-6)
    stored = json.loads((cache / "stats.json").read_text())
    assert stored["identity"] == reader.cache_identity(cache) and stored["feature_version"] == spec.FEATURE_VERSION

    summary = reader.cache_summary(cache)
    assert summary["items"] == {"lakh": {"done": 3, "failed": 0}}
    melody = summary["samples"]["melody"]
    assert melody["train"] == results[0].rows()["melody"] + results[1].rows()["melody"]
    assert melody["validation"] == results[2].rows()["melody"]

    before = reader.cache_identity(cache)
    with Manifest.open(cache, create=True) as manifest:       # another seed moves an item
        manifest.update_splits("lakh", {"pop": "validation"})
    assert reader.cache_identity(cache) != before
    assert reader.input_stats(cache, "harmony") is None        # stale statistics are not served


def test_invalid_results_are_refused(pieces):
    good = extract_item(pieces[0])
    bad = extract_item(pieces[0])
    bad.samples["melody"]["targets"] = bad.samples["melody"]["targets"][:, :64]
    with pytest.raises(InvalidResult, match=r"melody: targets shape"):
        validate_result(bad)
    nan = extract_item(pieces[0])
    nan.samples["melody"]["inputs"][0, 0] = np.nan
    with pytest.raises(InvalidResult, match="non-finite inputs"):
        validate_result(nan)
    wrong = extract_item(pieces[0])
    wrong.samples["dynamics"] = good.samples["melody"]
    with pytest.raises(InvalidResult, match="dynamics samples from source 'lakh'"):
        validate_result(wrong)


def test_a_writer_killed_mid_transaction_leaves_a_readable_manifest(tmp_path, pieces):
    import subprocess
    import sys

    cache = tmp_path / "cache"
    commit(cache, "lakh/shard-0001.h5", [extract_item(pieces[0])])
    rows = len(reader.load_network(cache, "melody"))
    # a transaction big enough to spill pages into the database file, then SIGKILL: a hot journal
    killer = (
        "import os, signal, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA cache_size=1')\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "db.executemany('INSERT INTO stat_cache VALUES (?, 1, 1, ?)', [(f'/d/{i}.mid', 'f' * 32) for i in range(5000)])\n"
        "db.execute('DELETE FROM items')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", killer, str(cache / "manifest.sqlite")])
    assert done.returncode == -9 and (cache / "manifest.sqlite-journal").stat().st_size > 0
    assert len(reader.load_network(cache, "melody")) == rows      # the half transaction is rolled back
    with Manifest.open(cache) as manifest:
        assert manifest.stat_cache() == {}


def test_the_reader_needs_neither_audio_nor_midi_libraries(tmp_path, pieces):
    import subprocess
    import sys

    commit(tmp_path / "cache", "lakh/shard-0001.h5", [extract_item(pieces[0])])
    script = (
        "import sys\n"
        "from preprocess.cache import reader\n"
        "arrays = reader.load_network(sys.argv[1], 'melody')\n"
        "heavy = [m for m in ('librosa', 'symusic', 'pretty_midi', 'joblib', 'soundfile', 'pandas', 'torch') if m in sys.modules]\n"
        "print(len(arrays), heavy)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "cache")], capture_output=True, text=True,
                         check=True).stdout.split(maxsplit=1)
    assert int(out[0]) > 0 and out[1].strip() == "[]"
