"""Prove that an exported JSON is what the plugin can load and that it computes what PyTorch computes.

Three levels, each reported per file, layer and fault:

- structure (always): everything RTNeural's `json_parser::parseJson` needs, and everything it gets
  wrong without a word: an unknown or miscapitalised layer type (skipped), a kernel or bias
  smaller than the shape (zero-filled, or read past its end), an activation name other than
  tanh/relu/sigmoid/softmax/elu/"" (a null layer: RTNeural's parser crashes while loading), NaN/Infinity (as literals
  they do not parse; as values they are not float32 numbers).
- spec (`check_specs`): layer types, sizes, activations and parameter count equal the plugin's
  contract (`PLUGIN_NETWORKS`, from the plugin's source; docs/rtneural.md).
- features (whenever the file has a metadata block): it was made with this code's feature version
  and pitch reference (spec.FEATURE_VERSION, spec.PITCH_REFERENCE); a file from older features
  would be read by the plugin with the wrong meaning (absolute pitches taken as key-relative).
- numbers (`checkpoint`): `export.reference` (RTNeural's forward pass in NumPy) against the
  checkpoint's PyTorch model on the same inputs, as the plugin feeds them: 200 independent single
  steps and, for the LSTM networks, 10 stateful sequences of 200 steps; max |difference| must stay
  under the tolerance (`TOLERANCE`, 1e-6, unless loosened). A fault is traced to the first layer
  that differs, with the variant that would have matched (a transposed kernel, gate blocks in
  another order, another activation, the input standardisation left unfolded). With an RTNeural
  checkout the same inputs also go through the real library: its run-time parser
  (`export.harness`) and the compile-time types of the header `kelly export` writes beside each
  file (`export.compiled`).

The checks live in one module each: `export.structure`, `export.spec_check`, `export.numbers`;
this module runs them in order (`verify_file`) and `export.report` holds what they find.
"""
from __future__ import annotations

from pathlib import Path

from common.errors import KellyError
from export.numbers import (SEQUENCE_STEPS, SEQUENCES, SINGLE_STEPS, compare_numbers,  # noqa: F401
                            compare_with_reference, pytorch_outputs, sample_inputs)
from export.plugin import PLUGIN_NETWORKS  # noqa: F401
from export.report import TOLERANCE, Finding, Report  # noqa: F401
from export.spec_check import check_features, check_spec, identify_network, pytorch_parameter_count  # noqa: F401
from export.structure import check_structure, read_document
from train.outputs import find_checkpoint  # noqa: F401  (checkpoint names are defined once, there)


def load_checked_network(path: str | Path, key: str):
    """(model, checkpoint) from the checkpoint file `path`, which its name (or --models) says holds
    network `key`; KellyError when it holds another network (a file saved under the wrong name)."""
    from train.checkpoints import load_network
    from train.models import NETWORKS

    model, checkpoint = load_network(path)
    if model.key != key:
        raise KellyError(f"{path}: the checkpoint is of {model.name} (network {model.key!r}), but its name and "
                         f"--models say {NETWORKS[key].name} ({key!r}): a checkpoint saved under another "
                         "network's name; train that network or rename the file")
    return model, checkpoint


def load_model(checkpoint, network: str | None, which: str = "best"):
    """A KellyNetwork from a checkpoint file, a checkpoint folder (picked by `network`, the
    plugin's name, and checked to hold it), or a KellyNetwork as it is."""
    if not isinstance(checkpoint, (str, Path)):
        return checkpoint
    from train.checkpoints import load_network
    from train.models import NETWORKS

    path = Path(checkpoint)
    if path.is_dir():
        keys = {cls.name: key for key, cls in NETWORKS.items()}
        if network not in keys:
            raise KellyError(f"{path}: cannot pick a checkpoint for a file whose network is unknown")
        return load_checked_network(find_checkpoint(path, keys[network], which), keys[network])[0]
    model, _ = load_network(path)
    return model


def verify_file(path: str | Path, *, check_specs: bool = False, checkpoint=None, harness=None, runners=(),
                seed: int = 0, which: str = "best", tolerance: float = TOLERANCE) -> Report:
    """Verify one exported JSON.

    check_specs: compare with the plugin's contract (`PLUGIN_NETWORKS`).
    checkpoint: a checkpoint file, a checkpoint folder (`<key>_<which>.pt` picked by the file's
                network) or a `train.models.KellyNetwork`: compare numbers with PyTorch.
    runners: the real RTNeural (`export.harness.RTNeuralHarness` for its run-time parser,
             `export.compiled.CompiledModels` for the header's compile-time types; `harness` is
             one more): run the file through each, against PyTorch with a checkpoint, else
             against the NumPy reference.
    tolerance: max |difference| accepted on any output value.
    """
    runners = [*runners, *([harness] if harness is not None else [])]
    path = Path(path)
    report = Report(path, tolerance=tolerance)
    report.checks.append("structure")
    document = read_document(path, report)
    if document is None:
        return report
    readable = check_structure(document, report)
    structure_ok = report.ok
    report.network = identify_network(path, document)
    if isinstance(document, dict) and isinstance(document.get("metadata"), dict):
        report.checks.append("features")
        check_features(document, report.network, report)
    if check_specs:
        report.checks.append("spec")
        check_spec(path, document, report.network, readable, report)
    if checkpoint is None and not runners:
        return report
    report.checks.append("numbers")
    if not structure_ok:
        report.add(None, "numbers not compared: fix the structure faults above first")
        return report
    if checkpoint is not None:
        try:
            model = load_model(checkpoint, report.network, which)
        except KellyError as exc:
            report.add(None, f"numbers not compared: {exc}")
            return report
        compare_numbers(document, model, report, seed=seed, runners=runners, path=path)
    else:
        compare_with_reference(document, runners, path, report, seed=seed)
    return report
