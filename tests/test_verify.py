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


def briefly_trained(key: str, seed: int, steps: int = 30):
    """A network trained for a few Adam steps towards a smooth function of its inputs: weights
    spread as training spreads them, not as initialised."""
    from export.numbers import one_torch_thread, sample_inputs

    model = trained_like_model(key, seed)
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.from_numpy(sample_inputs(model, 8, seed, sequences=4 if model.is_recurrent else 16, correlation=0.9))
    if not model.is_recurrent:
        inputs = inputs.reshape(-1, model.input_size)
    projection = torch.randn(model.input_size, model.output_size, generator=generator) / model.input_size ** 0.5
    target = torch.sigmoid((inputs - model.input_mean) / model.input_std @ projection)
    if model.activations[-1] == "tanh":
        target = 2 * target - 1
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    with one_torch_thread():
        for _ in range(steps):
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(model(inputs), target)
            loss.backward()
            optimiser.step()
    return model.eval()


@pytest.mark.parametrize("key, layers, spread", [("groove", (0, 1, 2), 3), ("melody", (1,), 1)])
def test_one_weight_times_1_01_is_rejected_wherever_it_moves_an_output_by_more_than_1e_6(key, layers, spread, tmp_path):
    """On a trained network, single weights multiplied by 1.01 (in every weight array of `layers`
    the largest magnitude; with spread 3 also the median and the smallest): verify at 1e-6 rejects
    every mutant whose outputs move by more than 1e-6 on the inputs it checks, measured
    independently here. Every dense layer on GroovePredictor; the LSTM's W, U and b, checked over
    stateful sequences, on MelodyTransformer."""
    from export.numbers import plugin_runs, reference_outputs
    from export.reference import ReferenceModel

    model = briefly_trained(key, 7)
    path = write_json(model_to_rtneural(model), tmp_path / f"{model.name.lower()}.json")
    document = json.loads(path.read_text())
    runs = plugin_runs(model, 0)
    original = ReferenceModel.from_document(document)
    baseline = {name: reference_outputs(original, inputs, stateful) for name, (inputs, stateful) in runs.items()}
    moved = rejected = 0
    for index, layer in enumerate(document["layers"]):
        if index not in layers:
            continue
        for which, weights in enumerate(layer["weights"]):
            values = np.asarray(weights, dtype=np.float64)
            flat = np.abs(values).ravel()
            order = np.argsort(flat)
            for position in dict.fromkeys((order[-1], order[len(order) // 2], order[0])[:spread]):
                spot = np.unravel_index(position, values.shape)
                array = [list(row) for row in weights] if values.ndim == 2 else list(weights)
                row = array[spot[0]] if values.ndim == 2 else array
                row[spot[-1]] = float(np.float32(row[spot[-1]] * 1.01))
                mutant_layer = dict(layer, weights=[array if w == which else original_w
                                                    for w, original_w in enumerate(layer["weights"])])
                mutant = dict(document, layers=[mutant_layer if i == index else other
                                                for i, other in enumerate(document["layers"])])
                change = max(float(np.abs(reference_outputs(ReferenceModel.from_document(mutant), inputs, stateful)
                                          - baseline[name]).max()) for name, (inputs, stateful) in runs.items())
                path.write_text(json.dumps(mutant))
                report = verify_file(path, checkpoint=model)
                if change > 1e-6:
                    moved += 1
                    assert not report.ok, (index, which, spot, change)
                    rejected += 1
    arrays = sum(len(document["layers"][index]["weights"]) for index in layers)
    assert moved >= arrays, moved                          # the largest weight of every array at least moves
    assert rejected == moved


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
    out, err = capsys.readouterr()
    assert "3 of 3 file(s) passed" in out and err == ""
    bad = mutated(files["GroovePredictor"], tmp_path, lambda d: d["layers"][1].update(activation="linear"))
    args = _parser().parse_args(["verify", str(files["DynamicsEngine"]), str(bad)])
    assert args.func(args) == 1
    out, err = capsys.readouterr()
    # results on stdout, each fault one line on stderr
    assert f"{bad}: GroovePredictor: FAILED (1 fault)" in out and "1 of 2 file(s) passed; 1 FAILED" in out
    assert "unknown activation" not in out
    assert err.splitlines() == [f"{bad}: layer 1 (dense): unknown activation 'linear' (a linear layer has activation "
                                '"" or none): RTNeural\'s parser builds a null layer and crashes (segfault) while '
                                "loading the file"]


def test_verify_usage_errors_exit_2_with_one_line(good, tmp_path, capsys):
    from kelly.cli import main

    root, models, files = good
    for argv, line in (
            (["verify", str(tmp_path / "none.json")], f"{tmp_path / 'none.json'}: no such file"),
            (["verify", str(files["DynamicsEngine"]), "--checkpoint-dir", str(tmp_path / "no")],
             f"{tmp_path / 'no'}: checkpoint folder not found (--checkpoint-dir)"),
            (["verify", str(files["DynamicsEngine"]), "--rtneural-dir", str(tmp_path)],
             f"{tmp_path}: not an RTNeural checkout (no RTNeural/RTNeural.h in it) (--rtneural-dir)")):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert (out, err) == ("", f"kelly verify: error: {line}\n")
    with pytest.raises(SystemExit) as exit_:
        main(["verify", str(files["DynamicsEngine"]), "--tolerance", "2"])
    assert exit_.value.code == 2
    assert "--tolerance: 2 is not between 0 and 1" in capsys.readouterr().err


def test_the_tolerance_flag_loosens_the_limit(good, tmp_path):
    root, models, files = good

    def nudge(document):
        document["layers"][2]["weights"][1][0] += 2e-5               # the output bias: moves that sigmoid output by ~5e-6

    path = mutated(files["DynamicsEngine"], tmp_path, nudge)
    strict = verify_file(path, checkpoint=models["dynamics"])
    assert not strict.ok and "limit 1e-06" in faults(strict)
    assert verify_file(path, checkpoint=models["dynamics"], tolerance=1e-4).ok


# --- the real RTNeural ---------------------------------------------------------------------------

RTNEURAL_DIR = os.environ.get("KELLY_RTNEURAL_DIR")
needs_rtneural = pytest.mark.skipif(not RTNEURAL_DIR, reason="set KELLY_RTNEURAL_DIR to an RTNeural checkout")


def fake_checkout(root: Path, *, api: bool) -> Path:
    """A folder shaped like an RTNeural checkout; with `api`, its headers name every API the
    generated headers use (nothing in them compiles: for the checks made before compiling)."""
    from export.harness import REQUIRED_API

    (root / "RTNeural").mkdir(parents=True)
    (root / "RTNeural" / "RTNeural.h").write_text("#pragma once\n")
    (root / "RTNeural" / "model_loader.h").write_text("#pragma once\n")
    if api:
        for _, name, pattern in REQUIRED_API:
            path = root / "RTNeural" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            text = pattern.replace("\\b", "").replace("\\(", "(")
            path.write_text((path.read_text() if path.exists() else "") + text + "\n")
    return root


def test_an_rtneural_too_old_for_the_headers_is_one_line_naming_what_it_lacks(good, tmp_path, capsys):
    """Like a checkout from before RTNeural's compile-time API (2021-04): exit 2 before any work."""
    from kelly.cli import main

    root, models, files = good
    old = fake_checkout(tmp_path / "RTNeural-2021", api=False)
    assert main(["verify", str(files["GroovePredictor"]), "--rtneural-dir", str(old)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"kelly verify: error: {old}: this RTNeural is too old for kelly's headers: it lacks the "
                   "compile-time API (RTNeural::ModelT) (RTNeural/ModelT.h); ModelT::parseJson(const nlohmann::json&) "
                   "(RTNeural/ModelT.h); DenseT (RTNeural/dense/dense.h); LSTMLayerT (RTNeural/lstm/lstm.h); "
                   "TanhActivationT, ReLuActivationT, SigmoidActivationT, SoftmaxActivationT "
                   "(RTNeural/activation/activation.h); json_parser::parseJson(const nlohmann::json&) "
                   "(RTNeural/model_loader.h); they need RTNeural's ModelT on every backend (2021-05-23, commit "
                   "9949b37, or later; tested with 1fb1f07) (--rtneural-dir)\n")


def test_without_a_compiler_one_line_says_so_and_everything_else_is_checked(good, tmp_path, capsys, monkeypatch):
    from kelly.cli import main

    root, models, files = good
    checkout = fake_checkout(tmp_path / "RTNeural", api=True)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    code = main(["verify", *map(str, files.values()), "--check-specs", "--checkpoint-dir", str(root / "checkpoints"),
                 "--rtneural-dir", str(checkout)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ("kelly verify: RTNeural checks left out: no C++ compiler found (looked for $CXX, g++, clang++, "
                   "c++): install one to check against RTNeural; every other check runs\n")
    assert "3 of 3 file(s) passed" in out and out.count("checked structure, features, spec, numbers") == 3


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


def test_the_first_compiler_error_line_is_the_one_shown():
    from export.harness import first_error_line

    output = ("In file included from x.cpp:1:\n/m/groovepredictor.h:12:5: error: expected ';' before '}' token\n"
              "/m/groovepredictor.h:40:1: error: something after\ncompilation terminated.\n")
    assert first_error_line(output) == "/m/groovepredictor.h:12:5: error: expected ';' before '}' token"
    assert first_error_line("ld: cannot find -lfoo\n") == "ld: cannot find -lfoo"


@needs_rtneural
def test_rtneural_compile_time_and_run_time_match_pytorch_on_every_backend(good, capsys):
    """The headers compile with -std=c++17 -Wall -Werror on every backend the checkout provides;
    ModelT and the run-time parser agree with PyTorch within 1e-6 on 200 single steps and, for
    the LSTM network, 10 stateful sequences of 200 steps."""
    from kelly.cli import main

    root, models, files = good
    code = main(["verify", *map(str, files.values()), "--check-specs", "--checkpoint-dir", str(root / "checkpoints"),
                 "--rtneural-dir", RTNEURAL_DIR])
    out, err = capsys.readouterr()
    print(out)
    assert code == 0 and err == "", err
    backends = out.splitlines()[0].split("backends: ")[1].split(", ")
    assert "stl" in backends and "eigen" in backends
    for backend in backends:
        for api in ("ModelT", "run-time parser"):
            for name in files:
                runs = ["200 single steps"] + (["10 x 200-step sequences"] if name == "MelodyTransformer" else [])
                for run in runs:
                    line = next(line for line in out.splitlines() if f"RTNeural {api} ({backend}) vs pytorch, {run}" in line
                                and line.startswith("  ") and out.index(line) > out.index(f"{name}: OK"))
                    assert float(line.split(": ")[1].split(" ")[0]) < 1e-6, line
    assert out.count("timed: ") >= len(files) * len(backends)


@needs_rtneural
def test_rtneural_shows_what_the_verifier_guards_against(good, tmp_path):
    """What the verifier rejects, the real library loads without a word and computes otherwise, or
    crashes on while loading; the header's load() refuses it with the reason."""
    from export.compiled import CompiledModels
    from export.harness import HarnessError, RTNeuralHarness, Toolchain

    root, models, files = good
    inputs = np.random.default_rng(0).standard_normal((4, 1, 64)).astype(np.float32)

    def transpose(document):
        kernel = document["layers"][2]["weights"][0]
        document["layers"][2]["weights"][0] = [list(row) for row in zip(*kernel)]

    toolchain = Toolchain(RTNEURAL_DIR)
    try:
        harness = RTNeuralHarness(toolchain=toolchain)
        good_out = harness.outputs(files["MelodyTransformer"], inputs)
        assert np.abs(harness.outputs(mutated(files["MelodyTransformer"], tmp_path, transpose), inputs) - good_out).max() > 1e-3

        # "Dense": the 128 -> 64 layer is skipped and the model still loads with 32 outputs
        good_out = harness.outputs(files["GroovePredictor"], inputs)
        skipped = mutated(files["GroovePredictor"], tmp_path, lambda d: d["layers"][1].update(type="Dense"))
        bad_out = harness.outputs(skipped, inputs)
        assert bad_out.shape == good_out.shape == (4, 1, 32)
        assert np.abs(bad_out - good_out).max() > 1e-3

        # an unknown activation: the run-time parser crashes while it loads the file
        crashing = mutated(files["GroovePredictor"], tmp_path, lambda d: d["layers"][1].update(activation="Tanh"))
        with pytest.raises(HarnessError, match="killed by SIGSEGV"):
            harness.outputs(crashing, inputs)

        # the header's load() refuses a file that does not fit its Model, naming the layer
        (tmp_path / "groovepredictor.h").write_text(files["GroovePredictor"].with_suffix(".h").read_text())
        compiled = CompiledModels(toolchain, "stl", {crashing: tmp_path / "groovepredictor.h"})
        with pytest.raises(HarnessError, match=r"load\(\) refuses .*layer 1 \(dense 128->64\): its activation is "
                                               r'"Tanh", the model\'s "tanh"'):
            compiled.run(crashing, inputs)
    finally:
        toolchain.close()


@needs_rtneural
def test_a_header_that_does_not_compile_is_one_line_with_the_compilers_first_error(good, tmp_path, capsys):
    from kelly.cli import main

    root, models, files = good
    for path in files.values():
        (tmp_path / path.name).write_bytes(path.read_bytes())
        (tmp_path / path.with_suffix(".h").name).write_bytes(path.with_suffix(".h").read_bytes())
    broken = tmp_path / "groovepredictor.h"
    broken.write_text(broken.read_text().replace("inline constexpr int outputSize = 32;", "inline constexpr int outputSize = ;"))
    code = main(["verify", *(str(tmp_path / path.name) for path in files.values()), "--rtneural-dir", RTNEURAL_DIR,
                 "--rtneural-backend", "stl"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines() == [
        f"{tmp_path / 'groovepredictor.json'}: groovepredictor.h (with -std=c++17 -Wall -Werror) does not compile "
        f"against {err.split('against ')[1].split(', stl')[0]}, stl backend: {broken}:"
        + err.split(f"{broken}:")[1].splitlines()[0]]
    assert "error: expected primary-expression before" in err
    assert "2 of 3 file(s) passed; 1 FAILED" in out


@needs_rtneural
def test_the_plugin_example_in_the_docs_compiles_with_the_headers(good, tmp_path):
    """docs/rtneural.md's C++ example, with the exported headers, -std=c++17 -Wall -Werror."""
    from export.harness import Toolchain

    root, models, files = good
    text = (Path(__file__).resolve().parents[1] / "docs" / "rtneural.md").read_text()
    example = text.split("```cpp\n", 1)[1].split("```", 1)[0]
    export_cli.export_networks(root / "checkpoints", tmp_path, ["melody"])
    write_checkpoint_like(root / "checkpoints", "emotion", tmp_path)
    source = tmp_path / "example.cpp"
    source.write_text(example + "\nint main() { Networks n; std::string e; n.load(\".\", e); n.startPiece(); return 0; }\n")
    toolchain = Toolchain(RTNEURAL_DIR)
    try:
        toolchain.compile(source, tmp_path / "example", "stl", warnings_as_errors=True, what="the example")
    finally:
        toolchain.close()


def write_checkpoint_like(checkpoints: Path, key: str, output: Path) -> None:
    """A checkpoint of `key` beside the others, exported into `output`."""
    model = trained_like_model(key, 9)
    save_checkpoint(checkpoints / checkpoint_name(key, "best"), {
        "format": FORMAT, "network": key, "network_name": model.name, "model_state": model.state_dict(),
        "optimizer_state": {}, "epoch": 1, "history": [], "feature_version": spec.FEATURE_VERSION,
        "cache_identity": "cache-test", "config": {}, "best_val_loss": 0.3, "metrics": {}})
    export_cli.export_networks(checkpoints, output, [key])
