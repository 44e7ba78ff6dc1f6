"""Verify: every way an RTNeural JSON goes wrong is caught, naming the file, the layer and the fault."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from export import cli as export_cli
from export.rtneural import model_to_rtneural, write_json
from export.verify import PLUGIN_NETWORKS, TOLERANCE, pytorch_parameter_count, verify_file
from preprocess.features import spec
from train.checkpoints import FORMAT, save_checkpoint
from train.models import NETWORKS
from train.outputs import checkpoint_name


def trained_like_model(key: str, seed: int):
    """Seeded random weights; standardisation with per-feature means and spreads like real inputs."""
    torch.manual_seed(seed)
    model = NETWORKS[key]()
    generator = torch.Generator().manual_seed(seed + 100)
    n = model.input_size
    model.set_input_normalisation(0.5 * torch.randn(n, generator=generator), 0.2 + torch.rand(n, generator=generator))
    return model.eval()


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Checkpoints and verified exports of three networks (two dense-only sizes, one LSTM)."""
    root = tmp_path_factory.mktemp("verify")
    models = {}
    for seed, key in enumerate(("dynamics", "melody", "groove")):
        model = trained_like_model(key, seed)
        save_checkpoint(root / "checkpoints" / checkpoint_name(key, "best"), {
            "format": FORMAT, "network": key, "network_name": model.name, "model_state": model.state_dict(),
            "optimizer_state": {}, "epoch": 3, "history": [], "feature_version": spec.FEATURE_VERSION,
            "cache_identity": "cache-test", "config": {}, "best_val_loss": 0.3, "metrics": {},
        })
        models[key] = model
    results = export_cli.export_networks(root / "checkpoints", root / "models", list(models))
    assert all(report.ok for _, report in results), "\n".join(r.format() for _, r in results)
    files = {model.name: path for (path, _), model in zip(results, models.values())}
    return root, models, files


def mutated(good_path: Path, folder: Path, change) -> Path:
    """A copy of a good export with `change(document)` applied (NaN written as a literal)."""
    document = json.loads(good_path.read_text())
    change(document)
    path = folder / good_path.name
    path.write_text(json.dumps(document, separators=(",", ":")))
    return path


def faults(report) -> str:
    return "\n".join(f.describe(report.path) for f in report.findings)


def check_rejected(report, *, layer: int | None, words: tuple[str, ...]):
    assert not report.ok
    text = faults(report)
    assert str(report.path) in text
    if layer is not None:
        assert f"layer {layer}" in text, text
    for word in words:
        assert word in text, text
    return text


def test_good_exports_pass_every_check(good):
    root, models, files = good
    for name, path in files.items():
        report = verify_file(path, check_specs=True, checkpoint=root / "checkpoints")
        assert report.ok, report.format()
        assert max(report.differences.values()) < TOLERANCE
        assert report.network == name


def test_parameter_counts_follow_pytorch_with_two_lstm_biases():
    layers, params = PLUGIN_NETWORKS["MelodyTransformer"]
    assert pytorch_parameter_count([(k, i, o) for k, i, o, _ in layers]) == params == 641_664
    layers, params = PLUGIN_NETWORKS["EmotionRecognizer"]
    assert pytorch_parameter_count([(k, i, o) for k, i, o, _ in layers]) == params == 403_264


# --- layout faults the numbers catch -------------------------------------------------------------

def test_transposed_square_kernel_is_caught_numerically(good, tmp_path):
    root, models, files = good

    def transpose(document):
        kernel = document["layers"][2]["weights"][0]                 # melody's 256 x 256 dense
        document["layers"][2]["weights"][0] = [list(row) for row in zip(*kernel)]

    report = verify_file(mutated(files["MelodyTransformer"], tmp_path, transpose), check_specs=True, checkpoint=models["melody"])
    check_rejected(report, layer=2, words=("(dense)", "differs from PyTorch", "kernel is transposed"))
    assert all("differ" in f.fault for f in report.findings)         # structure and spec pass: only numbers tell


def test_transposed_rectangular_kernel_is_a_shape_fault(good, tmp_path):
    root, models, files = good

    def transpose(document):
        kernel = document["layers"][1]["weights"][0]                 # dynamics' 128 x 64 dense
        document["layers"][1]["weights"][0] = [list(row) for row in zip(*kernel)]

    report = verify_file(mutated(files["DynamicsEngine"], tmp_path, transpose))
    check_rejected(report, layer=1, words=("kernel has 64 rows, expected 128", "transposed?"))


def test_lstm_gates_in_the_wrong_order_are_caught(good, tmp_path):
    root, models, files = good

    def swap_input_and_forget(document):
        W, U, b = document["layers"][1]["weights"]
        H = 256
        for row in W + U:
            row[:H], row[H:2 * H] = row[H:2 * H], row[:H]
        b[:H], b[H:2 * H] = b[H:2 * H], b[:H]

    path = mutated(files["MelodyTransformer"], tmp_path, swap_input_and_forget)
    report = verify_file(path, check_specs=True, checkpoint=root / "checkpoints")
    check_rejected(report, layer=1, words=("(lstm)", "gate blocks are in the order (f, i, c, o)"))
    assert all("differ" in f.fault for f in report.findings)


def test_unfolded_standardisation_is_diagnosed(good, tmp_path):
    root, models, files = good
    plain = trained_like_model("dynamics", 0)
    plain.set_input_normalisation(torch.zeros(32), torch.ones(32))  # the same weights, nothing folded
    path = write_json(model_to_rtneural(plain), tmp_path / "dynamicsengine.json")
    report = verify_file(path, checkpoint=models["dynamics"])
    check_rejected(report, layer=0, words=("standardisation", "not folded"))


def test_wrong_activation_fails_spec_and_numbers(good, tmp_path):
    root, models, files = good
    path = mutated(files["DynamicsEngine"], tmp_path, lambda d: d["layers"][2].update(activation="relu"))
    report = verify_file(path, check_specs=True, checkpoint=models["dynamics"])
    text = check_rejected(report, layer=2, words=("activation 'relu'; DynamicsEngine has 'sigmoid' here",))
    assert "activation should be 'sigmoid'" in text


# --- faults RTNeural's parser misses or crashes on -----------------------------------------------

def test_dropped_bias(good, tmp_path):
    root, models, files = good
    path = mutated(files["DynamicsEngine"], tmp_path, lambda d: d["layers"][0]["weights"].pop())
    check_rejected(verify_file(path), layer=0, words=("(dense)", "bias is missing", "zero"))


def test_dropped_lstm_bias(good, tmp_path):
    root, models, files = good
    path = mutated(files["MelodyTransformer"], tmp_path, lambda d: d["layers"][1]["weights"].pop())
    check_rejected(verify_file(path), layer=1, words=("(lstm)", "bias", "missing"))


@pytest.mark.parametrize("name, advice", [("linear", 'activation "" or none'), ("Tanh", "lower-case: 'tanh'"),
                                          ("gelu", "known: tanh")])
def test_unknown_activation_names(good, tmp_path, name, advice):
    root, models, files = good
    path = mutated(files["GroovePredictor"], tmp_path, lambda d: d["layers"][1].update(activation=name))
    check_rejected(verify_file(path), layer=1, words=(f"unknown activation {name!r}", advice, "crashes"))


def test_truncated_weights(good, tmp_path):
    root, models, files = good
    path = mutated(files["DynamicsEngine"], tmp_path, lambda d: d["layers"][2]["weights"][0].pop())
    check_rejected(verify_file(path), layer=2, words=("kernel has 63 rows, expected 64", "zero-fills"))

    def short_row(document):
        document["layers"][1]["weights"][0][5] = document["layers"][1]["weights"][0][5][:60]

    check_rejected(verify_file(mutated(files["DynamicsEngine"], tmp_path, short_row)), layer=1,
                   words=("kernel row 5 has 60 values, expected 64",))

    def short_bias(document):
        document["layers"][1]["weights"][1] = document["layers"][1]["weights"][1][:-3]

    check_rejected(verify_file(mutated(files["DynamicsEngine"], tmp_path, short_bias)), layer=1,
                   words=("bias has 61 values, expected 64", "reads past its end"))

    def short_recurrent(document):
        document["layers"][1]["weights"][1] = document["layers"][1]["weights"][1][:200]

    check_rejected(verify_file(mutated(files["MelodyTransformer"], tmp_path, short_recurrent)), layer=1,
                   words=("recurrent kernel U has 200 rows, expected 256",))


def test_nan_as_literal_and_as_value(good, tmp_path):
    root, models, files = good

    def nan_literal(document):
        document["layers"][1]["weights"][0][3][4] = float("nan")
        document["layers"][2]["weights"][1][0] = float("inf")

    path = mutated(files["DynamicsEngine"], tmp_path, nan_literal)
    assert "NaN" in path.read_text() and "Infinity" in path.read_text()
    text = check_rejected(verify_file(path), layer=1, words=("1 x NaN, 1 x Infinity", "rejects the file",
                                                             "kernel holds 1 NaN/infinite float32 value(s), first at [3][4]"))
    assert "layer 2 (dense): bias holds 1 NaN/infinite" in text

    path = mutated(files["DynamicsEngine"], tmp_path, lambda d: d["layers"][0]["weights"][1].__setitem__(9, "NaN"))
    check_rejected(verify_file(path), layer=0, words=("bias value at [9] is 'NaN', not a number",))

    path = mutated(files["DynamicsEngine"], tmp_path, lambda d: d["layers"][0]["weights"][0][2].__setitem__(1, 1e39))
    check_rejected(verify_file(path), layer=0, words=("kernel holds 1 NaN/infinite float32 value(s), first at [2][1]",))


def test_missing_in_shape(good, tmp_path):
    root, models, files = good
    path = mutated(files["GroovePredictor"], tmp_path, lambda d: d.pop("in_shape"))
    text = check_rejected(verify_file(path), layer=None, words=("in_shape is missing",))
    assert str(path) in text


def test_miscapitalised_and_unknown_layer_types(good, tmp_path):
    root, models, files = good
    path = mutated(files["GroovePredictor"], tmp_path, lambda d: d["layers"][0].update(type="Dense"))
    check_rejected(verify_file(path), layer=0, words=("'Dense' is not RTNeural's 'dense'", "silently skips"))
    path = mutated(files["MelodyTransformer"], tmp_path, lambda d: d["layers"][1].update(type="LSTM"))
    check_rejected(verify_file(path), layer=1, words=("'LSTM' is not RTNeural's 'lstm'",))
    path = mutated(files["GroovePredictor"], tmp_path, lambda d: d["layers"][2].update(type="linear"))
    check_rejected(verify_file(path), layer=2, words=("unknown layer type 'linear'",))


def test_missing_shape_or_weights(good, tmp_path):
    root, models, files = good
    path = mutated(files["GroovePredictor"], tmp_path, lambda d: d["layers"][1].pop("shape"))
    check_rejected(verify_file(path), layer=1, words=("'shape' is missing",))
    path = mutated(files["GroovePredictor"], tmp_path, lambda d: d["layers"][2].pop("weights"))
    check_rejected(verify_file(path), layer=2, words=("'weights' is missing",))


def test_a_file_that_is_not_json(good, tmp_path):
    root, models, files = good
    truncated = tmp_path / "groovepredictor.json"
    truncated.write_text(files["GroovePredictor"].read_text()[:5000])
    check_rejected(verify_file(truncated), layer=None, words=("not JSON:", "line 1"))
    binary = tmp_path / "dynamicsengine.json"
    binary.write_bytes(bytes(range(256)))
    check_rejected(verify_file(binary), layer=None, words=("not UTF-8",))


def test_wrong_network_for_its_file_name(good, tmp_path):
    root, models, files = good
    path = tmp_path / "groovepredictor.json"
    path.write_text(files["DynamicsEngine"].read_text())
    check_rejected(verify_file(path, check_specs=True), layer=None,
                   words=("file name says GroovePredictor but metadata.network says DynamicsEngine",))


def test_a_missing_checkpoint_is_reported(good, tmp_path):
    root, models, files = good
    report = verify_file(files["GroovePredictor"], checkpoint=tmp_path)
    check_rejected(report, layer=None, words=("groovepredictor_best.pt: checkpoint not found",))


def _parser():
    parser = argparse.ArgumentParser(prog="kelly")
    export_cli.add_parsers(parser.add_subparsers(dest="command"))
    return parser


def test_cli_verify_exit_codes(good, tmp_path, capsys):
    root, models, files = good
    args = _parser().parse_args(["verify", *map(str, files.values()), "--check-specs",
                                 "--checkpoint-dir", str(root / "checkpoints")])
    assert args.func(args) == 0
    assert "3 of 3 file(s) passed" in capsys.readouterr().out
    bad = mutated(files["GroovePredictor"], tmp_path, lambda d: d["layers"][1].update(activation="linear"))
    args = _parser().parse_args(["verify", str(files["DynamicsEngine"]), str(bad)])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert f"{bad}: layer 1 (dense): unknown activation 'linear'" in out
    assert "1 of 2 file(s) passed; 1 FAILED" in out


# --- the real RTNeural ---------------------------------------------------------------------------

RTNEURAL_DIR = os.environ.get("KELLY_RTNEURAL_DIR")


@pytest.mark.skipif(not RTNEURAL_DIR, reason="set KELLY_RTNEURAL_DIR to an RTNeural checkout")
def test_rtneural_matches_pytorch_and_shows_the_silent_faults(good, tmp_path):
    from export.harness import RTNeuralHarness

    root, models, files = good
    with RTNeuralHarness(RTNEURAL_DIR) as harness:
        for name, path in files.items():
            report = verify_file(path, checkpoint=root / "checkpoints", harness=harness)
            assert report.ok, report.format()
            assert {k for k in report.differences if k.startswith("rtneural vs pytorch")}
            assert max(report.differences.values()) < TOLERANCE
            print(report.format())

        # what the verifier rejects, RTNeural loads without a word and computes something else
        inputs = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)

        def transpose(document):
            kernel = document["layers"][2]["weights"][0]
            document["layers"][2]["weights"][0] = [list(row) for row in zip(*kernel)]

        good_out = harness.run(files["MelodyTransformer"], inputs, stateful=False)
        bad_out = harness.run(mutated(files["MelodyTransformer"], tmp_path, transpose), inputs, stateful=False)
        assert np.abs(bad_out - good_out).max() > 1e-3

        # "Dense": the 128 -> 64 layer is skipped; the next layer reads 128 values through a
        # zero-filled 128 x 32 kernel, and the model still loads with 32 outputs
        good_out = harness.run(files["GroovePredictor"], inputs, stateful=False)
        skipped = mutated(files["GroovePredictor"], tmp_path, lambda d: d["layers"][1].update(type="Dense"))
        bad_out = harness.run(skipped, inputs, stateful=False)
        assert bad_out.shape == good_out.shape == (4, 32)
        assert np.abs(bad_out - good_out).max() > 1e-3


def test_harness_names_a_folder_that_is_not_a_checkout(tmp_path):
    from export.harness import HarnessError, RTNeuralHarness

    with pytest.raises(HarnessError, match=r"not an RTNeural checkout \(no RTNeural/RTNeural.h in it\)"):
        RTNeuralHarness(tmp_path)


def test_harness_says_when_no_compiler_is_found(tmp_path, monkeypatch):
    from export.harness import HarnessError, find_compiler

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HarnessError, match="no C\\+\\+ compiler found"):
        find_compiler()
