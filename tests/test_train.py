"""Training: data from the cache, the loop, exact resume, early stopping, history, failures, config."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import KellyError
from preprocess.cache import layout
from preprocess.cache.rows import ItemTable, Rows
from preprocess.features import spec
from preprocess.features.embedding import embed
from train import checkpoints, data
from train.config import NetworkConfig, TrainOptions, load_config_file, network_key, resolve
from train.data import TRAIN, VALIDATION, from_rows, sequence_index, validation_items
from train.history import history_paths, plot_paths, read_history_csv, read_history_json
from train.loop import TrainingDiverged, train_network

pytestmark = pytest.mark.usefixtures("one_thread")


# --- toy music data: a valence/arousal curve per item drives every network's inputs and targets ----

BANDS = np.arange(spec.AUDIO_FEATURES)
MAJOR_CYCLE, MINOR_CYCLE = (0, 7, 9, 5), (9, 5, 0, 7)          # I V vi IV / vi IV I V as chord classes


def emotion_curves(n_items: int, per_item: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """valence, arousal [items, windows] in [-1, 1]: a level per item plus a slow swing."""
    t = np.arange(per_item)
    level = rng.uniform(-0.8, 0.8, (2, n_items, 1))
    swing = 0.15 * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 2 * np.pi, (2, n_items, 1)))
    return np.clip(level[0] + swing[0], -1, 1), np.clip(level[1] + swing[1], -1, 1)


def toy_arrays(key: str, n_items: int = 24, per_item: int = 24, seed: int = 0, validation_every: int = 4,
               test_every: int = 0) -> Rows:
    """Learnable Rows for `key`: item i is validation when (i + 1) % validation_every == 0.

    As in the cache, the networks fed the emotion embedding get their item's (the same on every
    row); DEAM-like emotion rows have their own audio-like inputs and targets per window."""
    rng = np.random.default_rng(seed)
    v, a = emotion_curves(n_items, per_item, rng)
    item_v, item_a = v[:, :1], a[:, :1]                                   # the item's labels [items, 1]
    item_embedding = embed(item_v[:, 0], item_a[:, 0])                    # [items, 64]
    row_inputs = None
    if key == "emotion":      # log-mel-like dB: louder and brighter with arousal, a mid bump with valence
        row_inputs = (-60 + 30 * np.exp(-BANDS / 40) + 15 * a[..., None] * BANDS / 128
                      + 8 * v[..., None] * np.exp(-(((BANDS - 50) / 15) ** 2)) + rng.normal(0, 1, (*v.shape, 128)))
        y = embed(v, a)                                                   # [items, windows, 64]
    elif key == "melody":     # a triad whose quality follows valence and register follows arousal
        root = np.broadcast_to(np.where(item_a > 0, 67, 55), v.shape)      # G4 or G3
        y = np.zeros((*v.shape, 128))
        for offset in (0, 7):
            np.put_along_axis(y, (root + offset)[..., None], 0.9, -1)
        third = np.broadcast_to(np.where(item_v > 0, 4, 3), v.shape)
        np.put_along_axis(y, (root + third)[..., None], 0.7, -1)
    elif key == "harmony":    # the next chord of the item's cycle, from the previous chords and the emotion
        cycle = np.where((item_v > 0)[..., None], MAJOR_CYCLE, MINOR_CYCLE)[:, 0]       # [items, 4]
        chords = cycle[:, np.arange(per_item) % 4]
        previous = np.full((*v.shape, spec.HARMONY_HISTORY), spec.NO_PREVIOUS_CHORD, dtype=np.uint8)
        for lag in range(1, spec.HARMONY_HISTORY + 1):
            previous[:, lag:, lag - 1] = chords[:, :-lag]
        row_inputs = previous
        y = chords
    elif key == "dynamics":   # louder, denser, more accented with arousal; legato with valence
        j = np.arange(16)
        y = np.broadcast_to(0.5 + 0.4 * np.sin(0.7 * j + 1.3 * item_a[..., None] + 0.6 * item_v[..., None] * (j % 3 - 1)),
                            (*v.shape, 16))
    else:                     # groove: busier and louder with arousal, swung with valence
        j = np.arange(32)
        y = np.broadcast_to(np.tanh(np.cos(0.9 * j) * item_a[..., None] + np.sin(0.5 * j) * item_v[..., None]
                                    + 0.2 * np.cos(j)), (*v.shape, 32))
    item = np.repeat(np.arange(n_items), per_item)
    split = np.zeros(n_items, dtype=np.uint8)
    split[(np.arange(n_items) + 1) % validation_every == 0] = 1
    if test_every:
        split[np.arange(n_items) % test_every == 0] = 2
    n = n_items * per_item
    items = ItemTable.of(item_embedding, split=split, valence=item_v[:, 0], arousal=item_a[:, 0],
                         item_ids=[f"piece-{i:03d}" for i in range(n_items)],
                         sources=[spec.NETWORKS[key][2][0]] * n_items)
    targets = y.reshape(n) if key == "harmony" else y.reshape(n, -1).astype(np.float32)
    row_inputs = (layout.empty_row_inputs(key, n) if row_inputs is None
                  else row_inputs.reshape(n, -1).astype(layout.row_dtype(key)))
    return Rows(key, item.astype(np.int64), np.tile(np.arange(per_item), n_items).astype(np.int32), row_inputs,
                layout.encode_targets(key, targets), items)


def toy_data(key: str, *, sequence_length: int = 8, block_rows: int | None = None, **toy) -> data.NetworkData:
    return from_rows(toy_arrays(key, **toy), key, sequence_length=sequence_length,
                     block_rows=block_rows, source="toy")


def fast_config(**changes) -> NetworkConfig:
    return replace(NetworkConfig(epochs=4, batch_size=16, learning_rate=3e-3, device="cpu",
                                 early_stopping_patience=0, sequence_length=8), **changes)


def weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


# --- data -----------------------------------------------------------------------------------------

def test_sequence_index_follows_items_and_window_gaps():
    item = np.array([5, 5, 5, 5, 5, 7, 7, 7, 5, 5])
    window = np.array([0, 1, 2, 3, 4, 0, 1, 3, 6, 7])           # 5: 0-4 then a gap to 6-7; 7: gap at 2
    rows = np.random.default_rng(0).permutation(len(item))      # any row order
    index = sequence_index(item[rows], window[rows], 3)
    sequences = [[(item[rows][r], window[rows][r]) for r in seq if r >= 0] for seq in index]
    assert sequences == [
        [(5, 0), (5, 1), (5, 2)], [(5, 3), (5, 4)],              # a run of 5 cut into 3 + a kept tail of 2
        [(5, 6), (5, 7)],                                        # after the gap
        [(7, 0), (7, 1)], [(7, 3)],                              # another item; a gap breaks it
    ]
    assert (index[:, 0] >= 0).all() and index.shape == (5, 3)


def test_seeded_validation_split_moves_whole_items():
    rows = toy_arrays("groove", n_items=30, validation_every=10**9)     # a cache without validation rows
    rows.items.split[:] = TRAIN
    first = from_rows(rows, "groove", validation_split=0.25, seed=3)
    again = from_rows(rows, "groove", validation_split=0.25, seed=3)
    other = from_rows(rows, "groove", validation_split=0.25, seed=4)
    assert first.resplit_by_item
    val_items = set(first.rows(VALIDATION).item.tolist())
    assert val_items == set(again.rows(VALIDATION).item.tolist()) != set(other.rows(VALIDATION).item.tolist())
    assert not val_items & set(first.rows(TRAIN).item.tolist())           # no item on both sides
    assert 2 <= len(val_items) <= 14
    identities = {i: rows.item_identity(i) for i in range(30)}
    assert val_items == validation_items(identities, 0.25, 3)
    # a cache WITH validation rows keeps its own split, whatever validation_split says
    kept = from_rows(toy_arrays("groove"), "groove", validation_split=0.5)
    assert not kept.resplit_by_item and kept.counts["validation_windows"] == 6 * 24


def test_streamed_blocks_serve_the_same_samples_as_memory():
    rows = toy_arrays("melody", n_items=10, per_item=21)
    whole = from_rows(rows, "melody", sequence_length=8)
    streamed = from_rows(rows, "melody", sequence_length=8, block_rows=50, memory_budget_mb=0.01)
    assert whole.in_memory and not streamed.in_memory
    # 8 training items of 21 windows: 8 + 8 + 5 each
    assert whole.counts == streamed.counts and whole.counts["train"] == 8 * 3
    np.testing.assert_array_equal(whole.input_mean, streamed.input_mean)

    def sequences(d):
        out = set()
        for x, y, mask in d.batches(TRAIN, "cpu", 4, torch.Generator().manual_seed(0)):
            for seq, m in zip(x, mask):
                out.add(seq[m.bool()].numpy().tobytes())
        return out
    assert sequences(whole) == sequences(streamed)
    assert len(list(streamed.blocks(TRAIN, "cpu"))) > 1 and len(list(whole.blocks(TRAIN, "cpu"))) == 1


@pytest.mark.parametrize("key", list(spec.NETWORKS))
def test_batches_rebuilt_on_the_device_are_the_rows_the_cache_reader_gives(key):
    rows = toy_arrays(key, n_items=6, per_item=11)
    rows = rows.take(np.random.default_rng(0).permutation(len(rows))[: len(rows) - 7])   # any order, gaps
    length = 4 if key in data.RECURRENT else None
    samples = data.Samples.from_rows(rows, length, "cpu")
    assert samples.embedding.shape[0] <= 6 + 1 and samples.targets.dtype == torch.from_numpy(rows.stored_targets).dtype
    x, y, mask = samples.batch(torch.arange(len(samples)))
    if length is None:
        np.testing.assert_array_equal(x.numpy(), rows.inputs)
        np.testing.assert_array_equal(y.numpy(), rows.targets)
    else:
        index = sequence_index(rows.item, rows.window, length)
        real = index >= 0
        np.testing.assert_array_equal(x.numpy()[real], rows.inputs[index[real]])
        np.testing.assert_array_equal(y.numpy()[real], rows.targets[index[real]])
        np.testing.assert_array_equal(mask.numpy(), real.astype(np.float32))
        assert not x.numpy()[~real].any()                                   # padding: zeros
    assert x.dtype == torch.float32 and y.dtype == (torch.int64 if key == "harmony" else torch.float32)


def test_prefetch_keeps_order_raises_in_the_caller_and_stops_with_it():
    assert list(data.prefetch(iter(range(5)))) == [0, 1, 2, 3, 4]

    def failing():
        yield 1
        raise ValueError("block 2 is broken")
    got = []
    with pytest.raises(ValueError, match="block 2 is broken"):
        for value in data.prefetch(failing()):
            got.append(value)
    assert got == [1]

    closed = []

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)
    stream = data.prefetch(endless())
    assert next(stream) == 0
    stream.close()                     # the caller stops: the thread stops and closes the source
    assert closed == [True]


def test_too_few_samples_is_an_error_naming_the_network_and_counts():
    arrays = toy_arrays("dynamics", n_items=1, per_item=5, validation_every=10**9)
    with pytest.raises(KellyError, match=r"DynamicsEngine \(dynamics\): 5 training and 0 validation samples"):
        from_rows(arrays, "dynamics", validation_split=0.2)


def test_bad_rows_are_rejected():
    arrays = toy_arrays("groove", n_items=4, per_item=4)
    arrays.stored_targets[3, 5] = np.nan
    with pytest.raises(KellyError, match="1 rows with NaN or infinite targets"):
        from_rows(arrays, "groove")
    arrays = toy_arrays("groove", n_items=4, per_item=4)
    arrays.items.embedding[2, 7] = np.inf                               # an item's embedding: its 4 rows
    with pytest.raises(KellyError, match="4 rows with NaN or infinite inputs"):
        from_rows(arrays, "groove")
    arrays = toy_arrays("harmony", n_items=4, per_item=4)
    arrays.stored_targets[0] = 64
    with pytest.raises(KellyError, match="chord classes outside"):
        from_rows(arrays, "harmony")


# --- the loop -------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", list(spec.NETWORKS))
def test_each_loss_goes_down_and_beats_the_baseline(key, tmp_path):
    from train.loop import validate
    from train.models import build

    d = toy_data(key)
    untrained = build(key)
    untrained.set_input_normalisation(d.input_mean, d.input_std)
    initial_loss, _ = validate(key, untrained, d, "cpu")
    result = train_network(key, d, fast_config(epochs=6, batch_size=8), output=tmp_path,
                           progress=False, write_history=False)
    assert result.best_val_loss < 0.7 * initial_loss, (initial_loss, result.history)
    assert result.best_val_loss < result.baseline["loss"], (result.best_val_loss, result.baseline)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.parametrize("key", list(spec.NETWORKS))
def test_the_baseline_summed_batch_by_batch_equals_the_whole_validation_split_at_once(key, monkeypatch):
    import train.loop
    from train.metrics import MetricSum, add_constant, constant_loss

    d = toy_data(key, validation_every=2)
    batches = list(d.batches(VALIDATION, "cpu", 10**9))
    assert len(batches) == 1
    _, y, mask = batches[0]
    prediction = torch.as_tensor(d.target_mean)
    whole = MetricSum(key)
    add_constant(whole, prediction, y, mask)
    monkeypatch.setattr(train.loop, "VALIDATION_ROWS", 5)        # many small batches
    assert len(list(d.batches(VALIDATION, "cpu", max(1, 5 // (d.sequence_length or 1))))) > 3
    small = train.loop.baseline(key, d, "cpu")
    assert small["loss"] == pytest.approx(constant_loss(key, prediction, y, mask).item(), rel=1e-5)
    assert small["metric"] == pytest.approx(whole.value(), rel=1e-5)


@pytest.mark.parametrize("key, schedule", [("emotion", "cosine"), ("harmony", "plateau")])
def test_an_interrupted_run_resumed_ends_bit_for_bit_like_an_uninterrupted_one(key, schedule, tmp_path):
    config = fast_config(epochs=4, lr_schedule=schedule, early_stopping_patience=3)
    straight = train_network(key, toy_data(key), config, output=tmp_path / "a", progress=False)

    def interrupt(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_network(key, toy_data(key), config, output=tmp_path / "b", progress=False, on_epoch_end=interrupt)
    assert checkpoints.load_checkpoint(checkpoints.checkpoint_path(tmp_path / "b", key, "latest"))["epoch"] == 2
    resumed = train_network(key, toy_data(key), config, output=tmp_path / "b", progress=False, resume=True)
    assert resumed.epochs_run == 2
    assert weights_equal(straight.model.state_dict(), resumed.model.state_dict())
    for kind in ("latest", "best"):
        a = checkpoints.load_checkpoint(checkpoints.checkpoint_path(tmp_path / "a", key, kind))
        b = checkpoints.load_checkpoint(checkpoints.checkpoint_path(tmp_path / "b", key, kind))
        assert weights_equal(a["model_state"], b["model_state"]) and a["epoch"] == b["epoch"]
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]   # noqa: E731
    assert drop(straight.history) == drop(resumed.history)


def test_two_epochs_then_resume_to_four_equals_four(tmp_path):
    key = "melody"
    four = train_network(key, toy_data(key), fast_config(epochs=4), output=tmp_path / "a", progress=False)
    train_network(key, toy_data(key), fast_config(epochs=2), output=tmp_path / "b", progress=False)
    resumed = train_network(key, toy_data(key), fast_config(epochs=4), output=tmp_path / "b", progress=False,
                            resume=True)
    assert weights_equal(four.model.state_dict(), resumed.model.state_dict())


def test_resume_without_a_checkpoint_or_from_another_cache_is_an_error(tmp_path):
    with pytest.raises(KellyError, match="dynamicsengine_latest.pt: checkpoint not found"):
        train_network("dynamics", toy_data("dynamics"), fast_config(), output=tmp_path, resume=True, progress=False)
    train_network("dynamics", toy_data("dynamics"), fast_config(epochs=1), output=tmp_path, progress=False,
                  cache_identity="cache-A")
    with pytest.raises(KellyError, match="trained on another cache"):
        train_network("dynamics", toy_data("dynamics"), fast_config(), output=tmp_path, resume=True,
                      progress=False, cache_identity="cache-B")


def test_early_stopping_restores_the_best_weights(tmp_path):
    # 6 items of noise-free targets, but a tiny training set and a high learning rate: validation turns
    key = "groove"
    d = toy_data(key, n_items=6, per_item=6, validation_every=2)
    config = fast_config(epochs=30, learning_rate=0.03, batch_size=4, early_stopping_patience=3)
    result = train_network(key, d, config, output=tmp_path, progress=False)
    last = result.history[-1]["epoch"]
    assert result.stopped_early and result.best_epoch == last - 3 and last < 30
    best = checkpoints.load_checkpoint(tmp_path / "checkpoints/groovepredictor_best.pt")
    latest = checkpoints.load_checkpoint(tmp_path / "checkpoints/groovepredictor_latest.pt")
    assert best["epoch"] == result.best_epoch and latest["epoch"] == last
    assert weights_equal(result.model.state_dict(), best["model_state"])
    assert not weights_equal(result.model.state_dict(), latest["model_state"])
    assert best["best_val_loss"] == min(r["val_loss"] for r in result.history)


def test_history_files_and_plots_hold_the_epochs(tmp_path):
    from train.history import plot_history

    result = train_network("dynamics", toy_data("dynamics"), fast_config(epochs=3), output=tmp_path, progress=False)
    json_path, csv_path = history_paths(tmp_path, "dynamics")
    from_json, from_csv = read_history_json(json_path), read_history_csv(csv_path)
    from_checkpoint = checkpoints.load_checkpoint(tmp_path / "checkpoints/dynamicsengine_latest.pt")["history"]
    assert from_json == from_csv == from_checkpoint == result.history
    assert [r["epoch"] for r in from_json] == [1, 2, 3]
    assert all(r["lr"] == 3e-3 and r["seconds"] > 0 and 0 < r["val_metric"] < 1 for r in from_json)
    document = json.loads(json_path.read_text())
    assert document["metric"] == "mae" and document["baseline"]["loss"] == pytest.approx(result.baseline["loss"])
    for path in plot_history(tmp_path, "dynamics", result.history, network_name="DynamicsEngine", loss="mse",
                             metric="mae", baseline=result.baseline):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert plot_paths(tmp_path, "dynamics")[0].exists()


def test_a_nan_loss_stops_the_network_and_keeps_the_last_good_checkpoint(tmp_path):
    d = toy_data("dynamics")

    def poison(row):              # a non-finite value reaches training after epoch 2
        if row["epoch"] == 2:
            next(d.blocks(TRAIN, torch.device("cpu"))).embedding[0, 0] = float("inf")
    with pytest.raises(TrainingDiverged, match=r"DynamicsEngine: the training loss became nan in epoch 3.*epoch 2"):
        train_network("dynamics", d, fast_config(epochs=5), output=tmp_path, progress=False, on_epoch_end=poison)
    _, checkpoint = checkpoints.load_network(tmp_path / "checkpoints/dynamicsengine_latest.pt")
    assert checkpoint["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["model_state"].values())
    assert [r["epoch"] for r in read_history_json(history_paths(tmp_path, "dynamics")[0])] == [1, 2]


# --- checkpoints ----------------------------------------------------------------------------------

def test_checkpoint_errors_name_the_file_and_the_fault(tmp_path):
    train_network("dynamics", toy_data("dynamics"), fast_config(epochs=1), output=tmp_path, progress=False)
    good = tmp_path / "checkpoints/dynamicsengine_best.pt"
    model, checkpoint = checkpoints.load_network(good)
    assert model.name == "DynamicsEngine" and checkpoint["format"] == "kelly-checkpoint-1"
    assert set(checkpoint) >= {"optimizer_state", "scheduler_state", "rng_state", "early_stopping",
                               "cache_identity", "config", "best_val_loss", "metrics", "history"}

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(KellyError, match=r"corrupt.pt: not a readable checkpoint"):
        checkpoints.load_checkpoint(corrupt)

    other = dict(checkpoint, network="groove", network_name="GroovePredictor")
    torch.save(other, tmp_path / "other.pt")
    with pytest.raises(KellyError, match=r"other.pt: GroovePredictor layer input_mean has shape \(32,\)"):
        checkpoints.load_network(tmp_path / "other.pt")

    old = dict(checkpoint, feature_version="kelly-features-0")
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(KellyError, match="old.pt: trained on features 'kelly-features-0'"):
        checkpoints.load_network(tmp_path / "old.pt")
    with pytest.warns(UserWarning, match="kelly-features-0"):
        checkpoints.load_network(tmp_path / "old.pt", version_mismatch="warn")

    torch.save({"state_dict": checkpoint["model_state"]}, tmp_path / "plain.pt")
    with pytest.raises(KellyError, match="plain.pt: not a kelly checkpoint"):
        checkpoints.load_checkpoint(tmp_path / "plain.pt")


# --- config ---------------------------------------------------------------------------------------

def test_config_file_precedence_and_network_names(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "training": {"epochs": 30, "batch_size": 32, "learning_rate": 0.001, "validation_split": 0.1},
        "models": {"EmotionRecognizer": {"learning_rate": 0.0005, "epochs": 40}, "groove_predictor": {"batch_size": 8}},
        "datasets": {"deam": "datasets/deam", "lakh": "datasets/lakh_midi"},
    }))
    config = load_config_file(path)
    emotion = resolve("emotion", config, {"epochs": 5})
    assert (emotion.epochs, emotion.learning_rate, emotion.batch_size, emotion.validation_split) == (5, 0.0005, 32, 0.1)
    assert resolve("groove", config, {}).batch_size == 8
    assert resolve("emotion", None, {}) == NetworkConfig()
    assert [network_key(n) for n in ("melody", "MelodyTransformer", "melody_transformer")] == ["melody"] * 3


@pytest.mark.parametrize("content, message", [
    ({"training": {"epochs": "ten"}}, r"training: key 'epochs' must be int, got str"),
    ({"training": {"epochz": 3}}, r"training: unknown key 'epochz'"),
    ({"models": {"BassPredictor": {}}}, r"models: unknown network 'BassPredictor'"),
    ({"models": {"emotion": {"learning_rate": True}}}, r"models.emotion: key 'learning_rate' must be float"),
    ({"datasets": {"deam": 5}}, r"datasets: key 'deam' must be a path"),
    ({"training": {"lr_schedule": "step"}}, r"lr_schedule must be one of"),
    ({"trainning": {}}, r"unknown key 'trainning'"),
    ("[1, 2", r"not valid JSON"),
])
def test_config_errors_name_the_file_and_key(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(KellyError, match=rf"bad.json: .*{message}"):
        load_config_file(path)


# --- the command ----------------------------------------------------------------------------------

def write_toy_cache(cache_dir: Path, keys=("dynamics", "groove"), **toy) -> Path:
    """A real cache (shards + manifest, as the preprocess job writes them) holding the toy rows."""
    from preprocess.cache.manifest import DoneEntry, Manifest
    from preprocess.cache.shards import ItemResult, shard_name, write_shard

    by_source: dict[str, list[ItemResult]] = {}
    for key in keys:
        arrays = toy_arrays(key, **toy)
        source = spec.NETWORKS[key][2][0]
        results = {r.item_id: r for r in by_source.get(source, [])}
        for i, item_id in enumerate(arrays.item_ids):
            rows = arrays.item == i
            split = ("train", "validation", "test")[int(arrays.items.split[i])]
            result = results.setdefault(item_id, ItemResult(
                source=source, item_id=item_id, split=split, content_hash=f"{i:032x}", label_source="annotated",
                valence=float(arrays.items.valence[i]), arousal=float(arrays.items.arousal[i]),
                source_path=f"{source}/{item_id}.mid", embedding=arrays.items.embedding[i], samples={}))
            result.samples[key] = {"targets": arrays.stored_targets[rows], "window": arrays.window[rows]}
            if layout.row_width(key):
                result.samples[key]["inputs"] = arrays.row_inputs[rows]
        by_source[source] = list(results.values())
    with Manifest.open(cache_dir, create=True) as manifest:
        for source, results in by_source.items():
            name = shard_name(source, 0)
            size = write_shard(cache_dir, name, results, spec.FEATURE_VERSION)
            manifest.commit_shard(name, source, [
                DoneEntry(r.source, r.item_id, r.content_hash, "", r.split, r.label_source, r.valence, r.arousal,
                          r.source_path, i, r.rows()) for i, r in enumerate(results)], size)
    return cache_dir


def test_run_training_trains_each_network_and_reports_failures(tmp_path, capsys):
    from train.cli import format_summary, run_training

    cache = write_toy_cache(tmp_path / "cache", keys=("dynamics", "groove"))
    summary = run_training(TrainOptions(cache_dir=cache, output=tmp_path / "run",
                                        models=["DynamicsEngine", "groove", "harmony"], progress=False,
                                        overrides={"epochs": 3, "batch_size": 8, "device": "cpu"}))
    assert summary["failed"] == ["harmony"]
    assert "no harmony samples in the cache" in summary["networks"]["harmony"]["error"]
    for key in ("dynamics", "groove"):
        entry = summary["networks"][key]
        assert entry["epochs"] == 3 and entry["val_loss"] < entry["baseline_loss"]
        assert (checkpoints.checkpoint_path(tmp_path / "run", key, "best")).is_file()
        assert all(p.is_file() for p in (*history_paths(tmp_path / "run", key), *plot_paths(tmp_path / "run", key)))
    # the first batch is timed from run_training's own start, and the process started before that
    assert 0 < summary["first_batch_seconds"] <= summary["first_batch_after_process_start_seconds"]
    table = format_summary(summary)
    assert "DynamicsEngine" in table and "FAILED" in table


def test_kelly_train_command_line(tmp_path, capsys):
    import argparse

    from train.cli import add_parsers

    cache = write_toy_cache(tmp_path / "cache", keys=("dynamics",))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"training": {"epochs": 5, "batch_size": 32}}))
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers())
    argv = ["train", "--cache-dir", str(cache), "-o", str(tmp_path), "--models", "dynamics", "-e", "2",
            "-lr", "0.002", "--config", str(config), "--no-plots", "--no-progress", "-d", "cpu"]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    checkpoint = checkpoints.load_checkpoint(tmp_path / "checkpoints/dynamicsengine_latest.pt")
    assert (checkpoint["epoch"], checkpoint["config"]["epochs"], checkpoint["config"]["batch_size"],
            checkpoint["config"]["learning_rate"]) == (2, 2, 32, 0.002)
    assert not plot_paths(tmp_path, "dynamics")[0].exists()
    args = parser.parse_args(argv[:7] + ["--resume", "DynamicsEngine", "-e", "3", "--no-progress", "-d", "cpu",
                                         "--memory-budget-mb", "0.01"])      # and stream the rows block by block
    capsys.readouterr()
    assert args.func(args) == 0
    assert "(streamed)" in capsys.readouterr().out
    assert checkpoints.load_checkpoint(tmp_path / "checkpoints/dynamicsengine_latest.pt")["epoch"] == 3
    args = parser.parse_args(["train", "--cache-dir", str(tmp_path / "nowhere"), "-o", str(tmp_path)])
    with pytest.raises(KellyError, match="nowhere: no feature cache here"):
        args.func(args)


def test_training_and_evaluation_import_no_audio_midi_or_preprocess_code(tmp_path):
    """`kelly train` starts fast: train/ reads the cache and nothing of the preprocessing side."""
    import subprocess
    import sys

    cache = write_toy_cache(tmp_path / "cache", keys=("emotion",), n_items=6, per_item=8)
    script = f"""
import sys
from train.cli import run_training
from train.config import TrainOptions
from train.evaluate import evaluate
summary = run_training(TrainOptions(cache_dir={str(cache)!r}, output={str(tmp_path)!r}, models=["emotion"],
                                    progress=False, write_plots=False, overrides={{"epochs": 1, "device": "cpu"}}))
assert not summary["failed"], summary
evaluate({str(tmp_path / "checkpoints")!r}, {str(cache)!r})
print(" ".join(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    modules = set(done.stdout.splitlines()[-1].split())
    allowed = {"preprocess", "common.errors", "preprocess.features", "preprocess.features.spec",
               "preprocess.features.embedding", "preprocess.cache", "preprocess.cache.reader",
               "preprocess.cache.manifest",          # the reader's own index of the cache
               "preprocess.cache.records", "preprocess.cache.digests",   # the manifest's rows, content digests
               "preprocess.cache.integrity",         # a shard checked against its record before it is read
               "preprocess.cache.stats",             # the input statistics the reader serves
               "preprocess.cache.labels",            # the labeller's labels the reader applies
               "preprocess.cache.layout", "preprocess.cache.rows"}   # the row type and how it decodes
    assert {m for m in modules if m.startswith("preprocess")} <= allowed
    for heavy in ("librosa", "symusic", "joblib", "pretty_midi", "soundfile", "soxr", "loky", "dask"):
        assert heavy not in modules, heavy


# --- where the outputs go: names, checks before the first epoch, temporaries of killed runs ---------

@pytest.fixture
def no_epoch(monkeypatch):
    """The test fails if training reads the cache or starts an epoch."""
    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the output folders were checked")

    monkeypatch.setattr("train.loop.train_network", forbidden)
    monkeypatch.setattr("train.data.from_cache", forbidden)


def test_an_output_that_is_a_file_is_one_line_before_the_first_epoch(tmp_path, no_epoch, kelly_cli):
    cache = write_toy_cache(tmp_path / "cache", keys=("dynamics",))
    regular = tmp_path / "FILE"
    regular.write_text("not a folder")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("not a folder either")
    for output, fault in ((regular, f"{regular}: is a file, not a folder (--output)"),
                          (regular / "sub", f"{regular}/sub: cannot be created: {regular} is a file, not a folder "
                                            "(--output)"),
                          (tmp_path / "run", f"{tmp_path}/run/checkpoints: is a file, not a folder (checkpoint folder)")):
        code, out, err = kelly_cli("train", "--cache-dir", cache, "-o", output, "--models", "dynamics",
                                    "-e", "1", "--no-progress", "-d", "cpu")
        assert (code, out, err) == (2, "", f"kelly train: error: {fault}\n")


def test_a_read_only_output_is_one_line_before_the_first_epoch(tmp_path, read_only, no_epoch, kelly_cli):
    cache = write_toy_cache(tmp_path / "cache", keys=("dynamics",))
    locked = read_only()
    fault = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    for output, expected in ((locked, f"{locked}: cannot write into this folder: {fault} (--output)"),
                             (locked / "run", f"{locked}/run: cannot be created: {locked}: {fault} (--output)")):
        code, out, err = kelly_cli("train", "--cache-dir", cache, "-o", output, "--models", "dynamics",
                                    "-e", "1", "--no-progress", "-d", "cpu")
        assert (code, out, err) == (2, "", f"kelly train: error: {expected}\n")


def test_train_and_resume_remove_the_temporaries_killed_runs_left(tmp_path, killed_write, kelly_cli):
    cache = write_toy_cache(tmp_path / "cache", keys=("dynamics",))
    run = tmp_path / "run"
    train = ("train", "--cache-dir", cache, "-o", run, "--models", "dynamics", "--no-progress", "-d", "cpu")
    history = killed_write(run / "history" / "dynamicsengine_history.json")
    other = killed_write(run / "plots" / "groovepredictor_loss.png")       # a network not trained this time
    code, out, _ = kelly_cli(*train, "-e", "2")
    assert code == 0 and f"removed 2 temporary file(s) an interrupted run left under {run}" in out
    assert not history.exists() and not other.exists()

    checkpoint = killed_write(run / "checkpoints" / "dynamicsengine_latest.pt")   # killed saving epoch 3
    assert checkpoint.stat().st_size == 65536
    code, out, _ = kelly_cli(*train, "-e", "3", "--resume", "dynamicsengine")
    assert code == 0 and "removed 1 temporary file(s)" in out and not checkpoint.exists()
    assert checkpoints.load_checkpoint(run / "checkpoints" / "dynamicsengine_latest.pt")["epoch"] == 3
    assert not list(run.rglob("*.tmp"))


def test_outputs_carry_the_class_name_and_a_run_under_the_earlier_names_still_resumes(tmp_path, kelly_cli):
    from export.cli import export_networks
    from train.evaluate import evaluate
    from train.outputs import output_paths

    cache = write_toy_cache(tmp_path / "cache", keys=("dynamics",))
    run = tmp_path / "run"
    train = ("train", "--cache-dir", cache, "-o", run, "--models", "dynamics", "--no-progress", "-d", "cpu")
    assert kelly_cli(*train, "-e", "2")[0] == 0
    # the names the older guides document, as the exported file is named (dynamicsengine.json)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()) == [
        "checkpoints/dynamicsengine_best.pt", "checkpoints/dynamicsengine_latest.pt",
        "history/dynamicsengine_history.csv", "history/dynamicsengine_history.json",
        "plots/dynamicsengine_loss.png", "plots/dynamicsengine_metric.png"]

    # what a run started before this version left: the same files under the cache key
    for current, earlier in zip(output_paths(run, "dynamics"), output_paths(run, "dynamics", stem="dynamics")):
        current.rename(earlier)
    assert (run / "checkpoints" / "dynamics_latest.pt").is_file()
    report = evaluate(run / "checkpoints", cache, models=["dynamics"])
    assert report["networks"]["dynamics"]["checkpoint"] == str(run / "checkpoints" / "dynamics_best.pt")
    (path, verdict), = export_networks(run, tmp_path / "models", ["dynamics"])
    assert path.name == "dynamicsengine.json" and verdict.ok

    code, out, _ = kelly_cli(*train, "-e", "3", "--resume", "dynamics")
    assert code == 0 and f"renamed {run / 'checkpoints' / 'dynamics_latest.pt'} to dynamicsengine_latest.pt" in out
    assert checkpoints.load_checkpoint(run / "checkpoints" / "dynamicsengine_latest.pt")["epoch"] == 3
    assert [r["epoch"] for r in read_history_json(run / "history" / "dynamicsengine_history.json")] == [1, 2, 3]
    assert not [p for p in run.rglob("dynamics_*")]
