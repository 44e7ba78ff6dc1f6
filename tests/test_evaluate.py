"""Evaluation: step-by-step LSTM inference, the metrics, the report beside its baseline, `kelly evaluate`."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from preprocess.features import spec
from test_train import toy_arrays, write_toy_cache
from train import metrics
from train.config import TrainOptions
from train.evaluate import evaluate, evaluate_network, format_table, predict_stepwise
from train.models import build


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("key", ["emotion", "melody"])
def test_stepwise_lstm_equals_the_full_sequence_forward_per_item(key):
    torch.manual_seed(0)
    model = build(key).eval()
    arrays = toy_arrays(key, n_items=5, per_item=12)
    keep = ~((arrays.item == 2) & (arrays.window >= 7)) & ~((arrays.item == 4) & (arrays.window < 9))
    rows = arrays.take(keep)                                     # items of 12, 7 and 3 windows
    shuffled = rows.take(np.random.default_rng(1).permutation(len(rows)))
    stepped = predict_stepwise(model, shuffled.inputs, shuffled.item, shuffled.window)
    with torch.no_grad():
        for item in range(5):
            mine = shuffled.item == item
            order = np.argsort(shuffled.window[mine])
            whole = model(torch.from_numpy(shuffled.inputs[mine][order])[None])[0].numpy()
            np.testing.assert_allclose(stepped[mine][order], whole, rtol=1e-5, atol=1e-6)
    # the state is reset per item: an item alone gives the same outputs as among others
    alone = shuffled.take(shuffled.item == 3)
    np.testing.assert_allclose(predict_stepwise(model, alone.inputs, alone.item, alone.window),
                               stepped[shuffled.item == 3], rtol=1e-5, atol=1e-6)


def test_metric_functions_on_hand_computed_cases():
    target = np.zeros((2, 128), np.float32)
    target[0, [60, 64, 67]] = [1.0, 0.8, 0.6]
    target[1, [48, 55]] = [0.9, 0.3]                         # 55 is below 0.5: not active
    prob = np.full((2, 128), 0.01, np.float32)
    prob[0, [60, 64, 30]] = [0.9, 0.7, 0.6]                  # top 3: 60, 64 (active), 30 (not)
    prob[1, [48, 55]] = [0.2, 0.8]
    m = metrics.multilabel(prob, target)
    assert m["top3_accuracy"] == pytest.approx((2 / 3 + 1 / 1) / 2)
    assert (m["precision"], m["recall"]) == (pytest.approx(2 / 4), pytest.approx(2 / 4))
    assert m["f1"] == pytest.approx(0.5)
    expected_bce = -np.mean(target * np.log(prob) + (1 - target) * np.log(1 - prob))
    assert m["bce"] == pytest.approx(expected_bce, rel=1e-5)

    prob = np.array([[0.7, 0.2, 0.1, 0, 0, 0, 0], [0.1, 0.2, 0.05, 0.05, 0.1, 0.1, 0.4]])
    c = metrics.classification(prob, np.array([0, 2]))
    assert c["top1_accuracy"] == 0.5 and c["top5_accuracy"] == 0.5
    assert c["cross_entropy"] == pytest.approx(-(np.log(0.7) + np.log(0.05)) / 2)

    y = np.array([0.1, 0.5, 0.9])
    assert metrics.r2(y, y) == 1.0 and metrics.r2(np.full(3, y.mean()), y) == pytest.approx(0.0)
    x = np.stack([y, 2 * y, -y], 1)
    assert metrics.mean_correlation(x, np.stack([y, y, y], 1)) == pytest.approx(1 / 3)
    assert metrics.mean_correlation(np.ones((3, 3)), x) is None
    assert metrics.cosine_similarity(x, 3 * x) == pytest.approx(1.0)
    r = metrics.regression(np.zeros((2, 2)), np.array([[1.0, 0.0], [3.0, 0.0]]), ("a", "b"))
    assert r["mse_per_output"] == {"a": 5.0, "b": 0.0} and r["mae"] == 1.0


def test_evaluate_network_uses_the_test_split_and_the_training_baseline(tmp_path):
    from test_train import fast_config, toy_data
    from train.loop import train_network

    data = toy_data("groove", test_every=6)
    result = train_network("groove", data, fast_config(epochs=4, batch_size=8), output=tmp_path, progress=False)
    report = evaluate_network(result.model, data)
    assert report["split"] == "test" and report["rows"] == 4 * 24 and report["items"] == 4
    test_rows = data.rows(2)
    train_mean = data.rows(0).targets.mean(0)
    assert report["baseline"]["mse"] == pytest.approx(float(np.mean((test_rows.targets - train_mean) ** 2)), rel=1e-5)
    assert set(report["metrics"]["mae_per_output"]) == set(spec.GROOVE_NAMES)
    assert report["beats_baseline"] and report["metrics"]["mse"] < report["baseline"]["mse"]


def test_kelly_evaluate_writes_the_report_for_every_trained_network(tmp_path, capsys):
    from train.cli import add_parsers, run_training

    cache = write_toy_cache(tmp_path / "cache", keys=("emotion", "melody", "harmony", "dynamics", "groove"),
                            n_items=16, per_item=16)
    summary = run_training(TrainOptions(cache_dir=cache, output=tmp_path, progress=False, write_plots=False,
                                        overrides={"epochs": 3, "batch_size": 8, "device": "cpu",
                                                   "sequence_length": 8}))
    assert not summary["failed"]
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers())
    out = tmp_path / "eval" / "report.json"
    args = parser.parse_args(["evaluate", "--checkpoint-dir", str(tmp_path / "checkpoints"), "--cache-dir", str(cache),
                              "--output", str(out)])
    assert args.func(args) == 0
    report = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert set(report["networks"]) == set(spec.NETWORKS) and report["missing"] == []
    emotion = report["networks"]["emotion"]
    assert emotion["stepwise"] and emotion["split"] == "validation"
    assert set(emotion["metrics"]) >= {"mse", "mae", "cosine", "correlation", "valence_mae", "valence_r2",
                                       "arousal_mae", "arousal_r2"}
    assert set(report["networks"]["melody"]["metrics"]) == {"bce", "top3_accuracy", "precision", "recall", "f1"}
    assert set(report["networks"]["harmony"]["metrics"]) == {"cross_entropy", "top1_accuracy", "top5_accuracy"}
    assert set(report["networks"]["dynamics"]["metrics"]["mse_per_output"]) == set(spec.DYNAMICS_NAMES)
    for key, result in report["networks"].items():
        mine, base = result["metrics"][result["primary"]], result["baseline"][result["primary"]]
        assert base > 0 and result["beats_baseline"] == (mine < base)
        assert result["network_name"] in printed
    for key in ("harmony", "dynamics", "groove"):     # quick learners; every network: the sample-data test
        assert report["networks"][key]["beats_baseline"], key
    assert "DynamicsEngine" in format_table(report)


def test_evaluate_without_checkpoints_is_an_error(tmp_path):
    from common.errors import KellyError

    cache = write_toy_cache(tmp_path / "cache", keys=("dynamics",))
    with pytest.raises(KellyError, match="no best checkpoints"):
        evaluate(tmp_path / "nothing", cache)
