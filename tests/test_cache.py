"""The feature cache: shards, manifest and the training reader, on features of real (small) MIDI pieces."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pretty_midi
import pytest

from common.errors import KellyError
from preprocess.cache import layout, reader
from preprocess.cache.manifest import DoneEntry, Manifest, file_hash
from preprocess.cache.rows import ItemTable, Rows
from preprocess.cache.shards import InvalidResult, ItemResult, validate_result, write_shard
from preprocess.datasets.base import Item
from preprocess.extract import extract_item
from preprocess.features import spec
from preprocess.cache.stats import input_stats, write_input_stats
from preprocess.cache.writer import clean_cache

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


def commit(cache_dir: Path, name: str, results: list[ItemResult], *, before_commit=None) -> None:
    """Write and commit a shard, as the writer does; before_commit(path) may alter the file first."""
    nbytes = write_shard(cache_dir, name, results, spec.FEATURE_VERSION)
    if before_commit is not None:
        before_commit(cache_dir / name)
        nbytes = (cache_dir / name).stat().st_size
    entries = [DoneEntry(source=r.source, item_id=r.item_id, content_hash=r.content_hash, label_digest="",
                         split=r.split, label_source=r.label_source, valence=r.valence, arousal=r.arousal,
                         source_path=r.source_path, shard_item=i, rows=r.rows()) for i, r in enumerate(results)]
    with Manifest.open(cache_dir, create=True) as manifest:
        manifest.commit_shard(name, results[0].source, entries, nbytes)


def rows_by_key(arrays: Rows) -> dict:
    return {(arrays.item_ids[i], int(w)): (x, y)
            for i, w, x, y in zip(arrays.item, arrays.window, arrays.inputs, arrays.targets)}


def network_view(result: ItemResult, network: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of an item's rows as extraction computed them, the way the old layout stored
    them: the embedding repeated on every row, the chord history as 64 values, targets as computed."""
    from preprocess.features.harmony import history_vectors

    s = result.samples[network]
    n = len(s["window"])
    parts = [np.broadcast_to(result.embedding[: layout.item_width(network)], (n, layout.item_width(network)))]
    if network == "harmony":
        parts.append(history_vectors(s["inputs"]))
    return np.concatenate(parts, axis=1), layout.decode_targets(network, s["targets"])


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
            inputs, targets = network_view(r, network)
            for x, y, w in zip(inputs, targets, r.samples[network]["window"]):
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
        assert h5.attrs["format"] == layout.SHARD_FORMAT
        assert h5["melody/targets"].chunks is None and h5["melody/targets"].compression is None
        assert [s.decode() for s in h5["items/item_id"][()]] == ["pop", "minor"]
        assert h5["items/content_hash"][0].decode() == file_hash(pieces[0].path)
        # compact: the embedding once per item, no melody inputs per row, small exact types
        np.testing.assert_array_equal(h5["items/embedding"][0], results[0].embedding)
        assert "inputs" not in h5["melody"] and h5["melody/targets"].dtype == np.uint8
        assert h5["harmony/inputs"].dtype == np.uint8 and h5["harmony/inputs"].shape[1] == spec.HARMONY_HISTORY
        assert h5["harmony/targets"].dtype == np.uint8
        assert h5["melody/item"].dtype == np.uint8 and h5["melody/window"].dtype == np.uint8


def test_melody_targets_are_stored_within_the_documented_error():
    fractions = np.concatenate([np.linspace(0, 1, 10_001), [0.5, np.nextafter(0.5, 0), 1 / 255, 0.0, 1.0]])
    fractions = fractions.astype(np.float32)[None, :]
    stored = layout.encode_targets("melody", fractions)
    back = layout.decode_targets("melody", stored)
    assert stored.dtype == np.uint8 and back.dtype == np.float32
    error = np.abs(back.astype(np.float64) - fractions)
    assert error.max() <= spec.MELODY_TARGET_MAX_ERROR and error.max() > 0.9 * 0.5 / 255   # the bound is tight
    np.testing.assert_array_equal(back >= 0.5, fractions >= 0.5)          # the "active" side is kept
    assert back[0, 0] == 0.0 and back[0, 10_000] == 1.0


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
    assert len(calls) <= 4             # the item table's embeddings, then item/window/targets, each read once
    assert all(isinstance(k, slice) or k == () for k in calls)

    calls.clear()
    blocks = list(reader.iter_network_blocks(tmp_path / "cache", "melody", block_rows=16))
    assert [len(b) for b in blocks][:-1] == [16] * (len(blocks) - 1)
    assert len(calls) <= 1 + 3 * len(blocks)
    assert all(b.items is blocks[0].items for b in blocks)            # one item table for every block
    streamed = np.concatenate([b.inputs for b in blocks])
    np.testing.assert_array_equal(streamed, whole.inputs)
    np.testing.assert_array_equal(np.concatenate([b.item for b in blocks]), whole.item)
    np.testing.assert_array_equal(np.concatenate([b.targets for b in blocks]), whole.targets)


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
    np.testing.assert_array_equal(arrays.stored_targets, second.samples["melody"]["targets"])
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
    assert input_stats(cache, "harmony") is None
    write_input_stats(cache)

    arrays = reader.load_network(cache, "harmony")
    train = arrays.inputs[arrays.split == 0].astype(np.float64)
    mean, std = input_stats(cache, "harmony")
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
    assert input_stats(cache, "harmony") is None        # stale statistics are not served


def test_invalid_results_are_refused(pieces):
    good = extract_item(pieces[0])
    bad = extract_item(pieces[0])
    bad.samples["melody"]["targets"] = bad.samples["melody"]["targets"][:, :64]
    with pytest.raises(InvalidResult, match=r"melody: targets shape"):
        validate_result(bad)
    unencoded = extract_item(pieces[0])
    unencoded.samples["melody"]["targets"] = layout.decode_targets("melody", unencoded.samples["melody"]["targets"])
    with pytest.raises(InvalidResult, match=r"melody: targets must be stored as uint8"):
        validate_result(unencoded)
    nan = extract_item(pieces[0])
    nan.embedding[0] = np.nan
    with pytest.raises(InvalidResult, match="embedding has shape .* or non-finite values"):
        validate_result(nan)
    missing = extract_item(pieces[0])
    missing.embedding = None
    with pytest.raises(InvalidResult, match="melody: the item has no embedding"):
        validate_result(missing)
    repeated = extract_item(pieces[0])
    repeated.samples["melody"]["inputs"] = np.zeros((repeated.rows()["melody"], 64), np.float32)
    with pytest.raises(InvalidResult, match="melody: rows carry no inputs of their own"):
        validate_result(repeated)
    chords = extract_item(pieces[0])
    chords.samples["harmony"]["inputs"][0, 0] = 64
    with pytest.raises(InvalidResult, match="harmony: previous chords must be classes"):
        validate_result(chords)
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


def write_first_layout(cache: Path) -> None:
    """Turn a cache into what the first layout's code wrote: every row with its network's whole float32
    input and target, int32 item and window columns, no item embeddings, and no layout in the manifest."""
    for path in sorted(cache.glob("*/shard-*.h5")):
        with h5py.File(path, "r+") as h5:
            h5.attrs["format"] = "kelly-shard-1"
            embedding = h5["items/embedding"][()]
            del h5["items/embedding"]
            for network in spec.NETWORKS:
                if network not in h5:
                    continue
                group = h5[network]
                row_inputs = group["inputs"][()] if "inputs" in group else None
                n = group["window"].shape[0]
                rows = Rows(network, group["item"][()].astype(np.int64), group["window"][()].astype(np.int32),
                            layout.empty_row_inputs(network, n) if row_inputs is None else row_inputs,
                            group["targets"][()], ItemTable.of(embedding))
                inputs, targets = rows.inputs, rows.targets
                for name in list(group):
                    del group[name]
                group["inputs"], group["targets"] = inputs, targets
                group["item"], group["window"] = rows.item.astype(np.int32), rows.window
    with Manifest.open(cache, create=True) as manifest:
        manifest.set_meta("cache_format", None)


def test_a_cache_in_the_first_layout_is_refused_then_rebuilt(tmp_path, pieces, capsys):
    from preprocess.cli import format_summary
    from preprocess.job import run_preprocess

    datasets = tmp_path / "datasets"
    (datasets / "lakh_midi").mkdir(parents=True)
    for item in pieces:
        item.path.rename(datasets / "lakh_midi" / item.path.name)
    cache = tmp_path / "cache"
    run_preprocess(["lakh"], datasets_dir=datasets, cache_dir=cache, workers=1, progress=False)
    before = {n: reader.load_network(cache, n) for n in ("melody", "harmony")}
    write_first_layout(cache)

    with pytest.raises(KellyError, match=r"cache: the cache was written with the cache layout kelly-shard-1, this "
                                         r"code reads kelly-shard-2; run `kelly preprocess all` to rebuild it"):
        reader.load_network(cache, "melody")
    capsys.readouterr()
    summary = run_preprocess(["lakh"], datasets_dir=datasets, cache_dir=cache, workers=1, progress=False)
    assert "the cache was written in the layout kelly-shard-1, this code writes kelly-shard-2: rebuilding it" \
        in capsys.readouterr().err
    assert summary["rebuilt_from"] == "kelly-shard-1" and "rebuilt in kelly-shard-2" in format_summary(summary)
    assert summary["sources"]["lakh"]["computed"] == 3 and summary["sources"]["lakh"]["already_done"] == 0
    for path in cache.glob("*/shard-*.h5"):                                         # the old shards are gone
        with h5py.File(path, "r") as h5:
            assert h5.attrs["format"] == layout.SHARD_FORMAT
    for network, rows in before.items():
        again = reader.load_network(cache, network)
        np.testing.assert_array_equal(again.inputs, rows.inputs)
        np.testing.assert_array_equal(again.targets, rows.targets)
    again = run_preprocess(["lakh"], datasets_dir=datasets, cache_dir=cache, workers=1, progress=False)
    assert again["rebuilt_from"] is None and again["sources"]["lakh"]["computed"] == 0


def test_a_shard_of_another_layout_is_never_read(tmp_path, pieces):
    cache = tmp_path / "cache"
    def first_layout(path):
        with h5py.File(path, "r+") as h5:
            h5.attrs["format"] = "kelly-shard-1"

    commit(cache, "lakh/shard-0001.h5", [extract_item(pieces[0])], before_commit=first_layout)
    with pytest.raises(KellyError, match=r"shard-0001.h5: the cache was written with the shard layout kelly-shard-1"):
        reader.load_network(cache, "melody")


def test_harmony_history_is_stored_as_previous_chords_and_rebuilt_exactly():
    from preprocess.features.harmony import chord_history, harmony_samples, history_vectors, previous_chords

    rng = np.random.default_rng(3)
    for length in (0, 1, 2, 4, 5, 30):
        classes = rng.integers(0, 6 if length % 2 else 64, length)       # few classes: repeats within the history
        previous = previous_chords(classes)
        assert previous.dtype == np.uint8 and previous.shape == (max(length - 1, 0), spec.HARMONY_HISTORY)
        expected = np.array([chord_history(classes[max(0, i - spec.HARMONY_HISTORY):i])
                             for i in range(1, length)]).reshape(-1, 64)
        np.testing.assert_array_equal(history_vectors(previous), expected)
        contexts, _ = harmony_samples(classes, np.zeros(64, np.float32))
        np.testing.assert_array_equal(contexts[:, 64:], expected)
        # with the opening chord as a sample: one more row first, with nothing before it
        opening = previous_chords(classes, opening=True)
        assert opening.shape == (length, spec.HARMONY_HISTORY)
        contexts, _ = harmony_samples(classes, np.zeros(64, np.float32), opening=True)
        np.testing.assert_array_equal(history_vectors(opening), contexts[:, 64:])
        if length:
            assert np.all(opening[0] == 255) and np.array_equal(opening[1:], previous)
    assert previous_chords([7, 8, 9]).tolist() == [[7, 255, 255, 255], [8, 7, 255, 255]]


def test_input_moments_count_each_distinct_value_once_and_equal_the_rows(tmp_path, pieces):
    commit(tmp_path / "cache", "lakh/shard-0001.h5", [extract_item(item) for item in pieces])
    for network in ("melody", "harmony"):
        rows = reader.load_network(tmp_path / "cache", network)
        n, mean, m2 = rows.input_moments()
        x = rows.inputs.astype(np.float64)
        assert n == len(x) and mean.shape == m2.shape == (spec.NETWORKS[network][0],)
        np.testing.assert_allclose(mean, x.mean(0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(m2, ((x - x.mean(0)) ** 2).sum(0), rtol=1e-10, atol=1e-9)


def test_a_manifest_from_before_shard_digests_is_read_and_gets_them(tmp_path, pieces):
    """A cache written before the shards table had digest and mtime columns: read as it is, and the
    job's first run adds the columns and records each shard's digest once its size checks out."""
    import sqlite3

    from preprocess.cache.writer import check_shards

    cache = tmp_path / "cache"
    commit(cache, "lakh/shard-0001.h5", [extract_item(p) for p in pieces[:2]])
    expected = rows_by_key(reader.load_network(cache, "melody"))
    with sqlite3.connect(cache / "manifest.sqlite") as db:
        if sqlite3.sqlite_version_info < (3, 35):
            pytest.skip("DROP COLUMN needs SQLite 3.35")
        db.execute("ALTER TABLE shards DROP COLUMN digest")
        db.execute("ALTER TABLE shards DROP COLUMN mtime_ns")
    with Manifest.open(cache) as manifest:
        assert manifest.shards()["lakh/shard-0001.h5"].digest is None
    assert rows_by_key(reader.load_network(cache, "melody")).keys() == expected.keys()

    with Manifest.open(cache, create=True) as manifest:
        report = check_shards(cache, manifest, ["lakh"])
        record = manifest.shards()["lakh/shard-0001.h5"]
    assert report.dropped == [] and report.digests == 1
    assert record.digest == file_hash(cache / "lakh/shard-0001.h5")
    assert record.mtime_ns == (cache / "lakh/shard-0001.h5").stat().st_mtime_ns
    with Manifest.open(cache, create=True) as manifest:
        assert check_shards(cache, manifest, ["lakh"]).digests == 0       # recorded: the cheap check suffices
