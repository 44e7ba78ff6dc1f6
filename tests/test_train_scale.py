"""Training at scale: the LSTM state carried through whole pieces, mixed precision, threads,
several processes, and settings refused before any work."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import KellyError
from train import checkpoints
from train.data import VALIDATION
from train.loop import train_network, validate
from train.samples import lane_plan, piece_starts, sequence_index

from test_train import fast_config, toy_arrays, toy_data, weights_equal, write_toy_cache

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


# --- lanes that walk whole pieces ----------------------------------------------------------------

def test_each_lane_walks_its_pieces_in_order_and_every_sequence_once():
    item = np.repeat([0, 1, 2, 3, 4], [7, 2, 12, 1, 5])
    window = np.concatenate([np.arange(7), [0, 1], np.r_[0:5, 6:13], [0], np.arange(5)])   # item 2 skips window 5
    index = sequence_index(item, window, 3)
    starts = piece_starts(index, item, window)
    runs = np.cumsum(starts) - 1
    assert starts.sum() == 6                                          # five items, one of them in two runs
    positions, reset = lane_plan(starts, 3, torch.Generator().manual_seed(1))
    assert sorted(positions[positions >= 0].tolist()) == list(range(len(index)))
    for lane in range(positions.shape[1]):
        walked = positions[:, lane][positions[:, lane] >= 0]
        for a, b in zip(walked[:-1], walked[1:]):
            assert b == a + 1 or starts[b], "a lane moves on only at the end of a piece"
        assert (reset[:len(walked), lane] == starts[walked]).all()
        assert len(set(runs[walked].tolist())) == starts[walked].sum()  # no piece twice, none cut
    assert positions.shape[0] <= int(np.ceil(len(index) / 3)) + 4    # balanced to within a piece
    again, _ = lane_plan(starts, 3, torch.Generator().manual_seed(1))
    assert (again == positions).all()


@pytest.mark.parametrize("key", ["emotion", "melody"])
def test_validation_with_the_state_carried_equals_stepping_whole_pieces(key):
    """Chunks with the state handed on give what the plugin computes stepping a whole piece."""
    from train.evaluate import network_metrics, predict
    from train.models import build

    data = toy_data(key, sequence_length=5)
    torch.manual_seed(0)
    model = build(key)
    model.set_input_normalisation(data.input_mean, data.input_std)
    carried, _ = validate(key, model, data, "cpu", carry_state=True)
    chunked, _ = validate(key, model, data, "cpu", carry_state=False)
    rows = data.rows(VALIDATION)
    whole = predict(model, rows, "cpu")
    reset = predict(model, rows, "cpu", reset_every=5)
    if key == "emotion":
        expected = network_metrics(key, whole, rows)["mse"]
        expected_chunks = network_metrics(key, reset, rows)["mse"]
    else:
        expected = network_metrics(key, whole, rows)["bce"]
        expected_chunks = network_metrics(key, reset, rows)["bce"]
    assert carried == pytest.approx(expected, rel=2e-4)
    assert chunked == pytest.approx(expected_chunks, rel=2e-4)
    assert abs(carried - chunked) > 1e-6 * abs(carried)          # the state does matter


def test_streamed_blocks_carry_the_state_within_each_block(tmp_path):
    from train.data import from_rows
    from train.models import build

    rows = toy_arrays("melody", n_items=10, per_item=21)
    whole = from_rows(rows, "melody", sequence_length=4)
    streamed = from_rows(rows, "melody", sequence_length=4, block_rows=50, memory_budget_mb=0.01)
    assert len(list(streamed.blocks(VALIDATION, "cpu"))) > 1
    torch.manual_seed(0)
    model = build("melody")
    assert validate("melody", model, streamed, "cpu", carry_state=True)[0] == pytest.approx(
        validate("melody", model, whole, "cpu", carry_state=True)[0], rel=1e-5)
    result = train_network("melody", streamed, fast_config(epochs=2, batch_size=3, sequence_length=4),
                           output=tmp_path, progress=False)
    assert result.history[-1]["val_loss"] < result.baseline["loss"] * 1.5


def test_carried_state_training_resumes_bit_for_bit(tmp_path):
    key, config = "emotion", fast_config(epochs=3, sequence_length=4, carry_state=True)
    straight = train_network(key, toy_data(key), config, output=tmp_path / "a", progress=False)

    def interrupt(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_network(key, toy_data(key), config, output=tmp_path / "b", progress=False, on_epoch_end=interrupt)
    resumed = train_network(key, toy_data(key), config, output=tmp_path / "b", progress=False, resume=True)
    assert weights_equal(straight.model.state_dict(), resumed.model.state_dict())
    off = train_network(key, toy_data(key), replace(config, carry_state=False), output=tmp_path / "c",
                        progress=False)
    assert not weights_equal(straight.model.state_dict(), off.model.state_dict())


# --- precision and threads -----------------------------------------------------------------------

def test_bf16_autocast_trains_on_the_cpu_and_float32_stays_the_default(tmp_path):
    from train.precision import Precision, autocast_dtype

    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(KellyError, match="fp16 needs a CUDA device"):
        Precision("fp16", cpu)
    for key in ("melody", "harmony"):
        config = fast_config(epochs=3, mixed_precision="bf16")
        low = train_network(key, toy_data(key), config, output=tmp_path / key, progress=False)
        full = train_network(key, toy_data(key), replace(config, mixed_precision="off"), output=tmp_path / f"{key}32",
                             progress=False)
        assert all(np.isfinite(r["train_loss"]) for r in low.history)
        assert low.history[-1]["train_loss"] < low.history[0]["train_loss"]
        assert low.best_val_loss < low.baseline["loss"]
        assert not weights_equal(low.model.state_dict(), full.model.state_dict())     # it did run in bf16
        assert low.best_val_loss == pytest.approx(full.best_val_loss, rel=0.1)


def test_same_seed_and_threads_give_the_same_weights_and_threads_are_set(tmp_path):
    config = fast_config(epochs=2, threads=2)
    small = dict(n_items=8, per_item=12)
    a = train_network("melody", toy_data("melody", **small), config, output=tmp_path / "a", progress=False)
    assert torch.get_num_threads() == 2
    b = train_network("melody", toy_data("melody", **small), config, output=tmp_path / "b", progress=False)
    assert weights_equal(a.model.state_dict(), b.model.state_dict())
    import json

    from train.outputs import history_paths

    settings = json.loads(history_paths(tmp_path / "a", "melody")[0].read_text())["settings"]
    assert (settings["threads"], settings["batch_size"], settings["processes"], settings["precision"]) == \
        (2, config.batch_size, 1, "float32")


def test_a_batch_that_does_not_fit_in_memory_is_one_line(tmp_path, monkeypatch):
    import train.loop

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
    monkeypatch.setattr(train.loop, "loss_sum", out_of_memory)
    with pytest.raises(KellyError, match=r"a batch of 16 does not fit in the memory of cpu .* lower --batch-size"):
        train_network("groove", toy_data("groove"), fast_config(), output=tmp_path, progress=False)
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


# --- settings refused before any work -------------------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["-e", "-3"], "argument --epochs/-e: -3 is out of range: it must be >= 1"),
    (["-b", "0"], "argument --batch-size/-b: 0 is out of range"),
    (["-lr", "-1"], "argument --learning-rate/-lr: -1 is out of range: it must be > 0"),
    (["--sequence-length", "0"], "argument --sequence-length: 0 is out of range"),
    (["--threads", "0"], "argument --threads: 0 is out of range"),
    (["--nproc", "0"], "argument --nproc: 0 is out of range"),
    (["-v", "1.5"], "argument --validation-split/-v: 1.5 is out of range: it must be >= 0 and < 1"),
    (["-e", "many"], "argument --epochs/-e: 'many' is not an integer"),
])
def test_bad_training_settings_are_usage_errors_before_the_cache_opens(flags, message, kelly_cli, tmp_path):
    with pytest.raises(SystemExit) as stop:
        kelly_cli("train", "--cache-dir", tmp_path / "no-cache", "-o", tmp_path, *flags)
    assert stop.value.code == 2
    from kelly.cli import main

    with pytest.raises(SystemExit):
        main(["train", *flags])


def test_a_config_file_setting_and_a_missing_gpu_are_refused_before_the_cache_opens(tmp_path, kelly_cli, monkeypatch):
    import preprocess.cache.reader

    def opened(*args, **kwargs):
        raise AssertionError("the cache was opened")
    monkeypatch.setattr(preprocess.cache.reader, "cache_identity", opened)
    config = tmp_path / "config.json"
    config.write_text('{"models": {"groove": {"batch_size": 0}}}')
    code, _, err = kelly_cli("train", "--cache-dir", tmp_path, "-o", tmp_path / "out", "--config", config)
    assert code == 2 and "groove: batch_size must be >= 1" in err and "Traceback" not in err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = kelly_cli("train", "--cache-dir", tmp_path, "-o", tmp_path / "out", "--device", "cuda")
    assert code == 2 and "--device cuda: not available on this machine" in err


def test_evaluate_refuses_an_empty_or_missing_checkpoint_folder_without_loading_torch(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no checkpoints")
    program = ("import sys\nfrom kelly.cli import main\n"
               f"codes = [main(['evaluate', '--checkpoint-dir', f, '--cache-dir', {str(tmp_path)!r}])"
               f" for f in {[str(tmp_path / 'empty'), str(tmp_path / 'nowhere')]!r}]\n"
               "print(codes, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert done.stdout.strip() == "[2, 2] False", done.stderr
    assert "empty: no best checkpoints (expected e.g. emotionrecognizer_best.pt)" in done.stderr
    assert "nowhere: no best checkpoints (no such folder" in done.stderr


# --- several processes ------------------------------------------------------------------------------

def kelly(*argv, timeout: float = 240, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kelly", *map(str, argv)], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, env=dict(os.environ, PYTHONPATH=str(REPO), **env))


def test_two_processes_give_the_weights_of_one_at_the_same_global_batch(tmp_path):
    """gloo on the CPU: 2 ranks, each half of every batch, against 1 process; rank 0 alone writes."""
    cache = write_toy_cache(tmp_path / "cache", keys=("groove", "emotion"), n_items=8, per_item=12)
    common = ["train", "--cache-dir", cache, "--models", "groove", "emotion", "-e", "2", "-b", "8",
              "--sequence-length", "4", "--no-progress", "--no-plots", "-d", "cpu"]
    one = kelly(*common, "-o", tmp_path / "one")
    two = kelly(*common, "-o", tmp_path / "two", "--nproc", "2")
    # torchrun itself (python -m torch.distributed.run is the torchrun command) starting `-m kelly train`
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "kelly", *map(str, common), "-o", str(tmp_path / "torchrun")],
                         capture_output=True, text=True, cwd=REPO, timeout=240,
                         env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"))
    for done in (one, two, run):
        assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes" in two.stdout and two.stdout.count("EmotionRecognizer epoch 2/2") <= 1
    assert "2 processes" in run.stdout and run.stdout.count("EmotionRecognizer epoch 2/2") <= 1
    for name in ("groovepredictor", "emotionrecognizer"):
        a = checkpoints.load_checkpoint(tmp_path / "one" / "checkpoints" / f"{name}_latest.pt")
        for other in ("two", "torchrun"):
            b = checkpoints.load_checkpoint(tmp_path / other / "checkpoints" / f"{name}_latest.pt")
            assert b["processes"] == 2 and a["epoch"] == b["epoch"] == 2, other
            for k, tensor in a["model_state"].items():
                assert torch.allclose(tensor, b["model_state"][k], atol=1e-5, rtol=0), (other, name, k)
            assert b["history"][-1]["train_loss"] == pytest.approx(a["history"][-1]["train_loss"], rel=1e-4)
            assert b["history"][-1]["val_loss"] == pytest.approx(a["history"][-1]["val_loss"], rel=1e-4)


def test_more_processes_than_rows_and_a_rank_killed_mid_epoch_are_one_line_each(tmp_path):
    import signal
    import time

    from train.distributed import World

    few = toy_data("groove", n_items=3, per_item=1, validation_every=3)
    with pytest.raises(KellyError, match="groove: 3 processes but only 2 training samples; use at most 2"):
        train_network("groove", few, fast_config(), output=tmp_path / "few", progress=False, world=World(0, 3))
    assert not (tmp_path / "few").exists()

    cache = write_toy_cache(tmp_path / "big", keys=("groove",), n_items=20, per_item=10)
    latest = tmp_path / "killed" / "checkpoints" / "groovepredictor_latest.pt"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "kelly", "train", "--cache-dir", str(cache), "-o", str(tmp_path / "killed"),
         "--models", "groove", "-e", "500", "-b", "2", "--no-progress", "--no-plots", "-d", "cpu", "--nproc", "2"],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not latest.exists() and launcher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert latest.exists(), "no epoch was finished"
        children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
        rank_1 = [int(pid) for pid in children if b"RANK=1\0" in Path(f"/proc/{pid}/environ").read_bytes()]
        os.kill(rank_1[0], signal.SIGKILL)
        _, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert "rank 1 of 2 ended with signal SIGKILL; the other processes were stopped" in err
    assert "Traceback" not in err, err[-3000:]
    kept = checkpoints.load_checkpoint(latest)                          # what was written is whole
    assert kept["epoch"] >= 1 and kept["processes"] == 2

    # the run resumes from that checkpoint in two processes, and goes on where it was
    resumed = kelly("train", "--cache-dir", cache, "-o", tmp_path / "killed", "--models", "groove",
                    "-e", kept["epoch"] + 2, "--no-progress", "--no-plots", "-d", "cpu", "--nproc", "2",
                    "--resume", "groove")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = checkpoints.load_checkpoint(latest)
    assert after["epoch"] == kept["epoch"] + 2 and after["processes"] == 2
    assert [row["epoch"] for row in after["history"]] == list(range(1, kept["epoch"] + 3))
    assert after["history"][:kept["epoch"]] == kept["history"]


def test_network_defaults_sit_between_the_general_defaults_and_the_config_file(tmp_path):
    from train.config import NETWORK_DEFAULTS, NetworkConfig, load_config_file, resolve

    assert resolve("emotion", None, {}).batch_size == NetworkConfig().batch_size
    harmony = NETWORK_DEFAULTS["harmony"]
    assert (resolve("harmony", None, {}).batch_size, resolve("harmony", None, {}).learning_rate) == \
        (harmony["batch_size"], harmony["learning_rate"])
    config = tmp_path / "config.json"
    config.write_text('{"training": {"batch_size": 32}}')
    assert resolve("harmony", load_config_file(config), {}).batch_size == 32
    assert resolve("harmony", None, {"batch_size": 128}).batch_size == 128
