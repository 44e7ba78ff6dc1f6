"""Export: checkpoints -> RTNeural JSON with folded standardisation and metadata, equal to PyTorch."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest
import torch

from export import cli as export_cli
from export.metadata import build_metadata, midi_note_name
from export.plugin import EXPORTED, io_contract
from export.reference import ReferenceModel
from export.rtneural import ExportError, file_name, model_to_rtneural
from export.verify import PLUGIN_NETWORKS, TOLERANCE, pytorch_outputs, sample_inputs
from common.errors import KellyError
from preprocess.features import spec
from train.checkpoints import FORMAT, save_checkpoint
from train.models import NETWORKS, count_parameters
from train.outputs import checkpoint_name

# raw-input statistics like the real features: log-mel dB around -40, embeddings in [-1, 1]
INPUT_STATISTICS = {
    "emotion": (-40.0, 12.0),
    "melody": (0.0, 0.6),
    "harmony": (0.1, 0.5),
    "dynamics": (0.0, 0.6),
    "groove": (0.0, 0.6),
}


def trained_like_model(key: str, seed: int):
    """A network with seeded random weights and a per-feature, non-trivial standardisation."""
    torch.manual_seed(seed)
    model = NETWORKS[key]()
    centre, spread = INPUT_STATISTICS[key]
    generator = torch.Generator().manual_seed(seed + 100)
    n = model.input_size
    mean = centre + spread * torch.randn(n, generator=generator)
    std = spread * (0.3 + torch.rand(n, generator=generator))
    model.set_input_normalisation(mean, std)
    return model.eval()


def write_checkpoint(directory, key: str, seed: int):
    model = trained_like_model(key, seed)
    checkpoint = {
        "format": FORMAT,
        "network": key,
        "network_name": model.name,
        "model_state": model.state_dict(),
        "optimizer_state": {},
        "epoch": 7,
        "history": [{"epoch": 7, "train_loss": 0.5, "val_loss": 0.4}],
        "feature_version": spec.FEATURE_VERSION,
        "cache_identity": f"cache-{key}-0123abcd",
        "config": {"epochs": 20, "batch_size": 64, "learning_rate": 1e-3},
        "best_val_loss": 0.4,
        "metrics": {"val_loss": 0.4, "val_mae": 0.11},
    }
    save_checkpoint(directory / checkpoint_name(key, "best"), checkpoint)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """All five networks: checkpoints written, exported and verified once for this module."""
    root = tmp_path_factory.mktemp("export")
    models = {key: write_checkpoint(root, key, seed) for seed, key in enumerate(EXPORTED)}
    results = export_cli.export_networks(root, root / "models", list(EXPORTED))
    documents = {path.name: json.loads(path.read_text()) for path, _ in results}
    return models, {path.name: (path, report) for path, report in results}, documents


def document_key(path) -> str:
    return json.loads(path.read_text())["metadata"]["key"]


def test_export_writes_the_plugins_five_files_and_each_verifies(exported):
    models, results, documents = exported
    assert sorted(results) == sorted(file_name(m.name) for m in models.values())
    assert sorted(results) == ["dynamicsengine.json", "emotionrecognizer.json", "groovepredictor.json",
                               "harmonypredictor.json", "melodytransformer.json"]
    for name, (path, report) in results.items():
        assert report.ok, report.format()
        assert report.checks == ["structure", "features", "spec", "numbers"]
        runs = {"reference vs pytorch, 200 single steps"}
        if models[document_key(path)].is_recurrent:
            runs.add("reference vs pytorch, 10 x 200-step sequences")
        assert set(report.differences) == runs
        assert all(d < TOLERANCE for d in report.differences.values()), report.format()
        assert TOLERANCE == 1e-6


def test_layers_follow_rtneurals_layout_with_standardisation_folded_in(exported):
    models, results, documents = exported
    model = models["emotion"]
    document = documents["emotionrecognizer.json"]
    assert document["in_shape"] == [None, 128]
    assert [(l["type"], l["shape"], l["activation"]) for l in document["layers"]] == [
        ("dense", [None, 512], "tanh"), ("dense", [None, 256], "tanh"), ("lstm", [None, 128], ""), ("dense", [None, 64], "tanh"),
    ]
    state = {name: tensor.detach().double().numpy() for name, tensor in model.state_dict().items()}
    mean, std = state["input_mean"], state["input_std"]
    kernel, bias = (np.array(w) for w in document["layers"][0]["weights"])
    folded = state["layers.0.weight"] / std
    np.testing.assert_allclose(kernel, folded.T, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(bias, state["layers.0.bias"] - folded @ mean, rtol=1e-6, atol=1e-5)
    as32 = lambda values: np.asarray(values, dtype=np.float32)    # noqa: E731  (RTNeural reads float32)
    np.testing.assert_array_equal(as32(document["layers"][1]["weights"][0]), as32(state["layers.1.weight"].T))
    w, u, b = (np.array(x) for x in document["layers"][2]["weights"])
    np.testing.assert_array_equal(as32(w), as32(state["layers.2.weight_ih_l0"].T))
    np.testing.assert_array_equal(as32(u), as32(state["layers.2.weight_hh_l0"].T))
    np.testing.assert_allclose(b, state["layers.2.bias_ih_l0"] + state["layers.2.bias_hh_l0"], atol=1e-7)


def test_every_weight_is_the_shortest_text_of_its_float32_and_reads_back_bit_exactly(exported):
    """Read as RTNeural's parser reads it (a double, then a float32), every weight of every
    network is the float32 PyTorch's weights give; each is written with the fewest digits that do
    so, and the files are at most 0.6 x the size of 17-digit doubles."""
    models, results, documents = exported
    for name, (path, _) in results.items():
        text = path.read_text()
        assert "NaN" not in text and "Infinity" not in text
        expected = model_to_rtneural(models[documents[name]["metadata"]["key"]])
        for got, want in zip(documents[name]["layers"], expected["layers"]):
            for got_array, want_array in zip(got["weights"], want["weights"]):
                read = np.asarray(got_array, dtype=np.float64).astype(np.float32)
                want32 = np.asarray(want_array, dtype=np.float32)
                assert read.shape == want32.shape
                assert np.array_equal(read.view(np.uint32), want32.view(np.uint32)), name
        numbers = re.findall(r"-?\d[\d.e+-]*", text[text.index('"layers"'):])
        sample = np.asarray(numbers[::97][:2000])
        shortest = np.asarray(sample, dtype=np.float32).astype(str)
        assert all(len(a) <= len(b) for a, b in zip(sample, shortest)), name
        doubles = json.dumps(expected, separators=(",", ":"))
        weights = text[text.index('"in_shape"'):]
        assert len(weights) <= 0.6 * len(doubles), (name, len(weights), len(doubles))


def test_float32_text_is_shortest_and_exact_on_awkward_values():
    from export.rtneural import document_text, float32_text

    values = np.array([0.1, 1e-45, -0.0, 3.4028235e38, 1.17549435e-38, 16777217.0, 0.3333333, 1e-5],
                      dtype=np.float32)
    text = float32_text(values)
    assert list(text[:3]) == ["0.1", "1e-45", "-0.0"]
    back = text.astype(np.float64).astype(np.float32)
    assert np.array_equal(back.view(np.uint32), values.view(np.uint32))
    document = {"metadata": {"note": "@kelly-weights-0@", "x": 0.1234567891234}, "in_shape": [None, 2],
                "layers": [{"type": "dense", "shape": [None, 1], "weights": [[[0.1], [0.2]], [0.3]]}]}
    written = json.loads(document_text(document))
    assert written["metadata"] == document["metadata"]            # the metadata keeps its doubles
    assert written["layers"][0]["weights"] == [[[0.1], [0.2]], [0.3]]


@pytest.mark.parametrize("key", EXPORTED)
def test_reference_forward_pass_matches_pytorch(exported, key):
    models, results, documents = exported
    model = models[key]
    reference = ReferenceModel.from_document(documents[file_name(model.name)])
    steps = sample_inputs(model, 8, seed=11)
    assert np.abs(reference.run_steps(steps) - pytorch_outputs(model, steps, stateful=False)).max() < TOLERANCE
    sequence = sample_inputs(model, 50, seed=12)
    expected = pytorch_outputs(model, sequence, stateful=True)
    assert np.abs(reference.run(sequence) - expected).max() < TOLERANCE
    if model.is_recurrent:
        # state carries over between calls; reset() starts afresh
        assert np.abs(reference.run(sequence, reset=False) - expected).max() > 1e-3
        assert np.abs(reference.run(sequence) - expected).max() < TOLERANCE


def test_metadata_describes_inputs_outputs_features_and_provenance(exported):
    from preprocess.features.chords import VOCABULARY
    from preprocess.features.embedding import EMBEDDING

    models, results, documents = exported
    meta = {name: document["metadata"] for name, document in documents.items()}
    for name, block in meta.items():
        model = models[block["key"]]
        n_in, n_out, _ = spec.NETWORKS[block["key"]]
        assert block["network"] == model.name and file_name(model.name) == name
        assert block["inputs"]["size"] == n_in == len(block["inputs"]["names"])
        assert block["outputs"]["size"] == n_out == len(block["outputs"]["names"])
        assert block["parameters"]["pytorch"] == count_parameters(model) == PLUGIN_NETWORKS[model.name][1]
        assert block["features"]["version"] == spec.FEATURE_VERSION
        assert block["features"]["audio"]["sample_rate"] == spec.AUDIO["sample_rate"]
        assert block["features"]["audio"]["hop_length"] == spec.AUDIO["hop_length"]
        assert block["emotion_embedding"]["valence_coefficient"] == pytest.approx(EMBEDDING["valence_coefficient"])
        assert block["wiring"]["recurrent"] == model.is_recurrent
        assert block["provenance"]["cache_identity"] == f"cache-{block['key']}-0123abcd"
        assert block["provenance"]["metrics"] == {"val_loss": 0.4, "val_mae": 0.11}
        assert block["provenance"]["epoch"] == 7
    assert meta["dynamicsengine.json"]["outputs"]["names"] == list(spec.DYNAMICS_NAMES)
    assert meta["groovepredictor.json"]["outputs"]["names"] == list(spec.GROOVE_NAMES)
    assert meta["harmonypredictor.json"]["outputs"]["names"] == list(VOCABULARY)
    assert meta["harmonypredictor.json"]["chord_vocabulary"] == list(VOCABULARY)
    assert meta["melodytransformer.json"]["outputs"]["names"][60] == "C4"
    # LSTM networks: one summed bias per LSTM in the file, two in PyTorch
    assert meta["emotionrecognizer.json"]["parameters"]["exported"] == 403_264 - 4 * 128
    assert meta["melodytransformer.json"]["parameters"]["exported"] == 641_664 - 4 * 256
    assert "reset()" in meta["melodytransformer.json"]["wiring"]["stepping"]
    # every export declares its pitch reference; the key-relative ones carry the rule to invert it
    assert {name: block["pitch_reference"] for name, block in meta.items()} == {
        "emotionrecognizer.json": "none", "melodytransformer.json": "tonic", "harmonypredictor.json": "tonic",
        "dynamicsengine.json": "none", "groovepredictor.json": "none"}
    for name in ("melodytransformer.json", "harmonypredictor.json"):
        assert "tonic if tonic <= 6 else tonic - 12" in meta[name]["pitch_reference_rule"]
        assert meta[name]["features"]["pitch_reference"] == spec.PITCH_REFERENCE


def test_verify_refuses_an_export_of_older_features_naming_what_to_redo(exported, tmp_path):
    from export.verify import verify_file

    _, _, documents = exported
    for change, words in (({"features": {"version": "kelly-features-1"}}, "feature version 'kelly-features-1'"),
                          ({"pitch_reference": "absolute"}, "pitch reference 'absolute'")):
        document = json.loads(json.dumps(documents["melodytransformer.json"]))
        document["metadata"].update(change)
        path = tmp_path / "melodytransformer.json"
        path.write_text(json.dumps(document))
        report = verify_file(path, check_specs=True)
        assert not report.ok and words in report.format()
        assert "kelly preprocess all, kelly train) and export again" in report.format()


def test_plugin_contract_matches_the_training_networks():
    assert EXPORTED == ("emotion", "melody", "harmony", "dynamics", "groove")
    for key in EXPORTED:
        model = NETWORKS[key]()
        layers, params = PLUGIN_NETWORKS[model.name]
        document = model_to_rtneural(model)
        assert [(l["type"], l["shape"][-1], l["activation"]) for l in document["layers"]] == [(k, o, a) for k, _, o, a in layers]
        assert count_parameters(model) == params == model.expected_parameters
    assert sum(p for _, p in PLUGIN_NETWORKS.values()) == 1_151_280


def test_non_finite_weights_are_refused_naming_the_layer():
    model = trained_like_model("groove", 3)
    with torch.no_grad():
        model.layers[1].weight[5, 7] = float("nan")
    with pytest.raises(ExportError, match=r"GroovePredictor: layer 1 kernel has 1 non-finite"):
        model_to_rtneural(model)
    model = trained_like_model("groove", 3)
    with torch.no_grad():
        model.input_std[0] = 0.0
    with pytest.raises(ExportError, match="input_std"):
        model_to_rtneural(model)


def _parser():
    parser = argparse.ArgumentParser(prog="kelly")
    export_cli.add_parsers(parser.add_subparsers(dest="command"))
    return parser


def test_cli_export_writes_and_verifies(tmp_path, capsys):
    write_checkpoint(tmp_path, "dynamics", 5)
    args = _parser().parse_args(["export", "--checkpoint-dir", str(tmp_path), "--output", str(tmp_path / "out"),
                                 "--models", "dynamics"])
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    assert "dynamicsengine.json: DynamicsEngine: OK" in out and err == ""
    assert "exported 1 network(s) with their C++ headers" in out
    assert (tmp_path / "out" / "dynamicsengine.json").is_file()
    assert (tmp_path / "out" / "dynamicsengine.h").is_file()


# --- the C++ header and the I/O contract ---------------------------------------------------------

EXPECTED_MODEL_TYPES = {
    "emotionrecognizer.h": ("ModelT<float, 128, 64,", "DenseT<float, 128, 512>", "TanhActivationT<float, 512>",
                            "DenseT<float, 512, 256>", "TanhActivationT<float, 256>", "LSTMLayerT<float, 256, 128>",
                            "DenseT<float, 128, 64>", "TanhActivationT<float, 64>>;"),
    "melodytransformer.h": ("ModelT<float, 64, 128,", "DenseT<float, 64, 256>", "ReLuActivationT<float, 256>",
                            "LSTMLayerT<float, 256, 256>", "DenseT<float, 256, 256>", "ReLuActivationT<float, 256>",
                            "DenseT<float, 256, 128>", "SigmoidActivationT<float, 128>>;"),
    "harmonypredictor.h": ("ModelT<float, 128, 64,", "DenseT<float, 128, 256>", "TanhActivationT<float, 256>",
                           "DenseT<float, 256, 128>", "TanhActivationT<float, 128>", "DenseT<float, 128, 64>",
                           "SoftmaxActivationT<float, 64>>;"),
    "dynamicsengine.h": ("ModelT<float, 32, 16,", "DenseT<float, 32, 128>", "ReLuActivationT<float, 128>",
                         "DenseT<float, 128, 64>", "ReLuActivationT<float, 64>", "DenseT<float, 64, 16>",
                         "SigmoidActivationT<float, 16>>;"),
    "groovepredictor.h": ("ModelT<float, 64, 32,", "DenseT<float, 64, 128>", "TanhActivationT<float, 128>",
                          "DenseT<float, 128, 64>", "TanhActivationT<float, 64>", "DenseT<float, 64, 32>",
                          "TanhActivationT<float, 32>>;"),
}


def test_each_export_has_a_header_with_its_exact_compile_time_type_and_contract(exported):
    models, results, documents = exported
    folder = next(iter(results.values()))[0].parent
    assert sorted(p.name for p in folder.glob("*.h")) == sorted(EXPECTED_MODEL_TYPES)
    for name, parts in EXPECTED_MODEL_TYPES.items():
        text = (folder / name).read_text()
        alias = text[text.index("using Model = "):]
        alias = alias[:alias.index(";") + 1]
        assert [part.strip().removeprefix("RTNEURAL_NAMESPACE::").rstrip(",") for part in
                alias.removeprefix("using Model = RTNEURAL_NAMESPACE::").split("\n")] == [
                    part.rstrip(",") for part in parts], alias
        metadata = documents[name.replace(".h", ".json")]["metadata"]
        contract = metadata["contract"]
        assert f'featureVersion = "{spec.FEATURE_VERSION}"' in text
        assert f'pitchReference = "{metadata["pitch_reference"]}"' in text
        assert f"inputSize = {contract['input_size']};" in text and f"outputSize = {contract['output_size']};" in text
        assert f"stateCarries = {'true' if contract['state_carries'] else 'false'};" in text
        assert "inline bool load(Model& model, std::istream& json, std::string* error = nullptr)" in text
        assert "namespace kelly" in text and f"with {name.replace('.h', '.json')}" in text
    harmony = (folder / "harmonypredictor.h").read_text()
    assert "emotionEmbeddingOffset = 0;" in harmony and "emotionEmbeddingSize = 64;" in harmony
    assert "chordHistoryOffset = 64;" in harmony and "chordHistorySize = 64;" in harmony
    comments = " ".join(line.removeprefix("//").strip() for line in harmony.splitlines() if line.startswith("//"))
    assert "softmax: values in [0, 1] that sum to 1" in comments
    assert "[64, 128) chord_history: the last 4 chords" in comments
    emotion = (folder / "emotionrecognizer.h").read_text()
    comments = " ".join(line.removeprefix("//").strip() for line in emotion.splitlines() if line.startswith("//"))
    assert "stepSeconds = 0.5;" in emotion and "call reset() once at the start of each new piece" in comments
    assert "audioFeaturesOffset = 0;" in emotion and "audioFeaturesSize = 128;" in emotion


def test_the_io_contract_covers_every_input_and_says_how_the_plugin_steps_each_network():
    for key in EXPORTED:
        contract = io_contract(key)
        offset = 0
        for part in contract["inputs"]:
            assert part["offset"] == offset
            offset += part["size"]
        assert offset == contract["input_size"] == spec.NETWORKS[key].inputs
        assert contract["output_size"] == spec.NETWORKS[key].outputs
        assert contract["state_carries"] == spec.NETWORKS[key].recurrent
    assert io_contract("melody")["step_seconds"] == spec.MIDI["melody_window_seconds"]
    assert io_contract("dynamics")["inputs"][0]["size"] == spec.DYNAMICS_INPUTS
    assert (io_contract("groove")["outputs"]["min"], io_contract("groove")["outputs"]["max"]) == (-1.0, 1.0)
    assert "key-relative" in io_contract("melody")["outputs"]["meaning"]


def test_a_checkpoint_saved_under_another_networks_name_is_refused(tmp_path, capsys):
    """An EmotionRecognizer checkpoint saved as groovepredictor_best.pt: one line, nothing written."""
    write_checkpoint(tmp_path, "emotion", 2)
    (tmp_path / checkpoint_name("emotion")).rename(tmp_path / checkpoint_name("groove"))
    code, out, err = kelly_export(capsys, "--checkpoint-dir", tmp_path, "--output", tmp_path / "models",
                                  "--models", "groove")
    assert code == 2 and out == ""
    assert err == (f"kelly export: error: {tmp_path / checkpoint_name('groove')}: the checkpoint is of "
                   "EmotionRecognizer (network 'emotion'), but its name and --models say GroovePredictor ('groove'): "
                   "a checkpoint saved under another network's name; train that network or rename the file\n")
    assert not (tmp_path / "models" / "emotionrecognizer.json").exists()
    assert not (tmp_path / "models" / "groovepredictor.json").exists()


def test_an_empty_or_missing_checkpoint_folder_is_refused_before_pytorch_loads(tmp_path):
    """The whole command, in a fresh interpreter: the one line comes before torch is imported."""
    empty = tmp_path / "empty"
    empty.mkdir()
    regular = tmp_path / "FILE"
    regular.write_text("x")
    program = ("import sys; from kelly.cli import main; code = main(sys.argv[1:]); "
               "print('torch' in sys.modules, code)")
    for folder, line in ((empty, f"{empty}/emotionrecognizer_best.pt: checkpoint not found (nor "
                                 f"{empty}/checkpoints/emotionrecognizer_best.pt)"),
                         (tmp_path / "nothing", f"{tmp_path / 'nothing'}: checkpoint folder not found (--checkpoint-dir)"),
                         (regular, f"{regular}: is a file, not a folder (--checkpoint-dir)")):
        result = subprocess.run([sys.executable, "-c", program, "export", "--checkpoint-dir", str(folder),
                                 "--output", str(tmp_path / "models")],
                                capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        assert result.stdout == "False 2\n", result.stderr
        assert result.stderr == f"kelly export: error: {line}\n"


def test_cli_export_names_a_missing_checkpoint(tmp_path):
    args = _parser().parse_args(["export", "--checkpoint-dir", str(tmp_path), "--models", "groove"])
    with pytest.raises(KellyError, match=r"groovepredictor_best\.pt: checkpoint not found"):
        args.func(args)


def kelly_export(capsys, *argv) -> tuple[int, str, str]:
    """`kelly export ARGV` in this process: (exit code, stdout, stderr)."""
    from kelly.cli import main

    code = main(["export", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_export_folder_that_is_a_file_is_one_line_before_any_work(tmp_path, capsys):
    regular = tmp_path / "FILE"
    regular.write_text("not a folder")
    empty = tmp_path / "no checkpoints here"
    empty.mkdir()                     # the output is checked first: no word of the missing checkpoint
    for output, fault in ((regular, f"{regular}: is a file, not a folder (--output)"),
                          (regular / "sub", f"{regular}/sub: cannot be created: {regular} is a file, not a folder "
                                            "(--output)")):
        code, out, err = kelly_export(capsys, "--checkpoint-dir", empty, "--output", output, "--models", "dynamics")
        assert (code, out, err) == (2, "", f"kelly export: error: {fault}\n")


def test_a_read_only_export_folder_is_one_line_before_any_work(tmp_path, read_only, capsys):
    locked = read_only()
    fault = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    empty = tmp_path / "no checkpoints here"
    empty.mkdir()
    for output, expected in ((locked, f"{locked}: cannot write into this folder: {fault} (--output)"),
                             (locked / "models", f"{locked}/models: cannot be created: {locked}: {fault} (--output)")):
        code, out, err = kelly_export(capsys, "--checkpoint-dir", empty, "--output", output, "--models", "dynamics")
        assert (code, out, err) == (2, "", f"kelly export: error: {expected}\n")


def test_export_removes_the_temporaries_a_killed_export_left(tmp_path, killed_write):
    write_checkpoint(tmp_path, "dynamics", 5)
    models = tmp_path / "models"
    killed = killed_write(models / "groovepredictor.json")      # a network not exported this time
    killed_header = killed_write(models / "harmonypredictor.h")
    earlier = models / "melodytransformer.json.tmp"              # as earlier versions named theirs
    earlier.write_text("{")
    users = [models / "notes.tmp", models / ".notes.txt.tmp"]    # not kelly-ml's: left alone
    for path in users:
        path.write_text("mine")
    (path, verdict), = export_cli.export_networks(tmp_path, models, ["dynamics"])
    assert verdict.ok and not killed.exists() and not killed_header.exists() and not earlier.exists()
    assert sorted(models.iterdir()) == sorted([path, path.with_suffix(".h"), *users])


def test_midi_note_names():
    assert [midi_note_name(p) for p in (0, 21, 60, 69, 127)] == ["C-1", "A0", "C4", "A4", "G9"]


def test_metadata_is_plain_json_without_nan():
    model = trained_like_model("dynamics", 1)
    block = build_metadata(model, {"metrics": {"val_loss": float("nan"), "r2": np.float32(0.5)}, "epoch": np.int64(3)})
    assert block["provenance"]["metrics"] == {"val_loss": None, "r2": 0.5}
    assert block["provenance"]["epoch"] == 3
    json.dumps(block, allow_nan=False)


def test_standardisation_folds_into_a_leading_lstm():
    from torch import nn

    from train.models import KellyNetwork

    torch.manual_seed(4)
    model = KellyNetwork([nn.LSTM(8, 6, batch_first=True), nn.Linear(6, 5)], [None, "sigmoid"]).eval()
    model.set_input_normalisation(torch.linspace(-3, 3, 8), torch.linspace(0.5, 4, 8))
    reference = ReferenceModel.from_document(model_to_rtneural(model))
    sequence = sample_inputs(model, 50, seed=2)
    assert np.abs(reference.run(sequence) - pytorch_outputs(model, sequence, stateful=True)).max() < TOLERANCE


def test_a_checkpoint_of_absolute_pitch_features_is_not_exported(tmp_path):
    """A MelodyTransformer trained before key-relative targets (kelly-features-1) would export
    absolute pitches under a "tonic" label: export refuses it and says what to redo."""
    write_checkpoint(tmp_path, "melody", 1)
    path = tmp_path / checkpoint_name("melody")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["feature_version"] = "kelly-features-1"
    save_checkpoint(path, checkpoint)
    with pytest.raises(KellyError, match=r"trained on features 'kelly-features-1', but this code computes "
                                         rf"'{spec.FEATURE_VERSION}'; retrain on a cache of the current version"):
        export_cli.export_networks(tmp_path, tmp_path / "models", ["melody"])
    assert not (tmp_path / "models" / "melodytransformer.json").exists()
