"""Prove that an exported JSON is what the plugin can load and that it computes what PyTorch computes.

Three levels, each reported per file, layer and fault:

- structure (always): everything RTNeural's `json_parser::parseJson` needs, and everything it gets
  wrong without a word: an unknown or miscapitalised layer type (skipped), a kernel or bias
  smaller than the shape (zero-filled, or read past its end), an activation name other than
  tanh/relu/sigmoid/softmax/elu/"" (a null layer: the plugin crashes), NaN/Infinity (as literals
  they do not parse; as values they are not float32 numbers).
- spec (`check_specs`): layer types, sizes, activations and parameter count equal the plugin's
  contract (`PLUGIN_NETWORKS`, from the plugin's source; docs/rtneural.md).
- features (whenever the file has a metadata block): it was made with this code's feature version
  and pitch reference (spec.FEATURE_VERSION, spec.PITCH_REFERENCE); a file from older features
  would be read by the plugin with the wrong meaning (absolute pitches taken as key-relative).
- numbers (`checkpoint`): `export.reference` (RTNeural's forward pass in NumPy) against the
  checkpoint's PyTorch model on the same inputs, as independent single steps and as a stateful
  50-step sequence; max |difference| must stay under `TOLERANCE`. A fault is traced to the first
  layer that differs, with the variant that would have matched (a transposed kernel, gate blocks
  in another order, another activation, the input standardisation left unfolded). With an
  RTNeural checkout (`rtneural_dir`) the same inputs also go through the real library.

Parameter counts follow PyTorch (two LSTM bias vectors, as in the plugin's table in
docs/rtneural.md): an exported LSTM holds one summed bias [4H], so the count read from a file adds
4H per LSTM layer.
"""
from __future__ import annotations

import contextlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.reference import DenseLayer, LSTMLayer, ReferenceModel
from export.rtneural import ACTIVATIONS
from common.errors import KellyError
from train.outputs import find_checkpoint  # noqa: F401  (checkpoint names are defined once, there)

#: max |RTNeural - PyTorch| accepted on any output value (float32 arithmetic)
TOLERANCE = 1e-5
SEQUENCE_STEPS = 50
SINGLE_STEPS = 16

#: the plugin's contract: network -> ((type, in, out, activation), ...), PyTorch parameter count
PLUGIN_NETWORKS: dict[str, tuple[tuple[tuple[str, int, int, str], ...], int]] = {
    "EmotionRecognizer": (
        (("dense", 128, 512, "tanh"), ("dense", 512, 256, "tanh"), ("lstm", 256, 128, ""), ("dense", 128, 64, "tanh")),
        403_264,
    ),
    "MelodyTransformer": (
        (("dense", 64, 256, "relu"), ("lstm", 256, 256, ""), ("dense", 256, 256, "relu"), ("dense", 256, 128, "sigmoid")),
        641_664,
    ),
    "HarmonyPredictor": (
        (("dense", 128, 256, "tanh"), ("dense", 256, 128, "tanh"), ("dense", 128, 64, "softmax")),
        74_176,
    ),
    "DynamicsEngine": (
        (("dense", 32, 128, "relu"), ("dense", 128, 64, "relu"), ("dense", 64, 16, "sigmoid")),
        13_520,
    ),
    "GroovePredictor": (
        (("dense", 64, 128, "tanh"), ("dense", 128, 64, "tanh"), ("dense", 64, 32, "tanh")),
        18_656,
    ),
}

#: layer types RTNeural's parser knows; the plugin's networks use dense, lstm and activation
RTNEURAL_LAYER_TYPES = ("dense", "time-distributed-dense", "conv1d", "conv2d", "gru", "lstm",
                        "prelu", "batchnorm", "batchnorm2d", "activation")
PLUGIN_LAYER_TYPES = ("dense", "lstm", "activation")
WEIGHT_NAMES = {"dense": ("kernel", "bias"), "lstm": ("kernel W", "recurrent kernel U", "bias")}
GATES = ("i", "f", "c", "o")


@dataclass
class Finding:
    """One fault: where (layer index, None for the whole file) and what."""

    layer: int | None
    fault: str
    layer_kind: str = ""

    def describe(self, path: str | Path) -> str:
        where = "" if self.layer is None else f"layer {self.layer}{f' ({self.layer_kind})' if self.layer_kind else ''}: "
        return f"{path}: {where}{self.fault}"


@dataclass
class Report:
    """What `verify_file` found in one file."""

    path: Path
    network: str | None = None
    findings: list[Finding] = field(default_factory=list)
    #: check name -> max |difference|, e.g. "pytorch single step", "rtneural 50-step sequence"
    differences: dict[str, float] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, layer: int | None, fault: str, layer_kind: str = "") -> None:
        self.findings.append(Finding(layer, fault, layer_kind))

    def format(self) -> str:
        status = "OK" if self.ok else f"FAILED ({len(self.findings)} fault{'s' if len(self.findings) != 1 else ''})"
        lines = [f"{self.path}: {self.network or 'unknown network'}: {status}; checked {', '.join(self.checks) or 'nothing'}"]
        for name, value in self.differences.items():
            lines.append(f"  max |difference| {name}: {value:.3g} (limit {TOLERANCE:g})")
        lines += [f"  {finding.describe(self.path)}" for finding in self.findings]
        return "\n".join(lines)


# --- structure -----------------------------------------------------------------------------------

NUMBER_TYPES = frozenset((int, float))     # what json gives for numbers; bool and str are faults


def _is_number(value) -> bool:
    return type(value) in NUMBER_TYPES


def _size(shape) -> int | None:
    """The size RTNeural reads from a shape list (its last entry), or None when unreadable."""
    if not isinstance(shape, list) or not shape or len(shape) == 4:
        return None
    last = shape[-1]
    return last if type(last) is int and last > 0 else None


def _check_values(values: list, report: Report, index: int, kind: str, what: str) -> np.ndarray | None:
    """Numbers only (a [rows][cols] or [n] list), finite in float32; returns them as float64."""
    rows = values if values and isinstance(values[0], list) else [values]
    for r, row in enumerate(rows):
        if not NUMBER_TYPES.issuperset(map(type, row)):
            c = next(c for c, v in enumerate(row) if not _is_number(v))
            where = f"[{r}][{c}]" if rows is values else f"[{c}]"
            report.add(index, f"{what} value at {where} is {row[c]!r}, not a number", kind)
            return None
    array = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        bad = ~np.isfinite(array.astype(np.float32))
    if bad.any():
        first = "".join(f"[{int(i)}]" for i in np.argwhere(bad)[0])
        report.add(index, f"{what} holds {int(bad.sum())} NaN/infinite float32 value(s), first at {first}", kind)
        return None
    return array


def _check_matrix(value, rows: int, cols: int, report: Report, index: int, kind: str, what: str, layout: str):
    """A [rows][cols] list of numbers, as RTNeural's loader indexes it."""
    if not isinstance(value, list) or (value and not isinstance(value[0], list)):
        report.add(index, f"{what} is not a list of rows ({layout})", kind)
        return None
    if len(value) != rows:
        consequence = "RTNeural zero-fills the missing rows" if len(value) < rows else "RTNeural's loader throws out_of_range"
        hint = ""
        if len(value) == cols and value and isinstance(value[0], list) and len(value[0]) == rows:
            hint = f"; it is [{cols}][{rows}]: transposed?"
        report.add(index, f"{what} has {len(value)} rows, expected {rows} ({layout}): {consequence}{hint}", kind)
        return None
    for r, row in enumerate(value):
        if not isinstance(row, list) or len(row) != cols:
            got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            consequence = "RTNeural zero-fills it" if isinstance(row, list) and len(row) < cols else "RTNeural cannot load it"
            report.add(index, f"{what} row {r} has {got}, expected {cols} ({layout}): {consequence}", kind)
            return None
    return _check_values(value, report, index, kind, what)


def _check_vector(value, size: int, report: Report, index: int, kind: str, what: str):
    if not isinstance(value, list) or any(isinstance(v, list) for v in value):
        report.add(index, f"{what} is not a flat list of numbers", kind)
        return None
    if len(value) != size:
        consequence = "RTNeural reads past its end" if len(value) < size else "the extra values are ignored"
        report.add(index, f"{what} has {len(value)} values, expected {size}: {consequence}", kind)
        return None
    return _check_values(value, report, index, kind, what)


def _check_activation(layer: dict, index: int, kind: str, report: Report) -> None:
    if "activation" not in layer:
        return
    name = layer["activation"]
    if not isinstance(name, str):
        report.add(index, f"activation is {name!r}, not a string: RTNeural's parser throws", kind)
        return
    if kind == "lstm":
        if name:
            report.add(index, f"activation {name!r} on an lstm layer: RTNeural ignores it (write \"\")", kind)
        return
    if name and name not in ACTIVATIONS:
        if name.lower() in ACTIVATIONS:
            advice = f"names are lower-case: {name.lower()!r}"
        elif name.lower() in ("linear", "none", "identity"):
            advice = 'a linear layer has activation "" or none'
        else:
            advice = f"known: {', '.join(ACTIVATIONS)}, or \"\" for none"
        report.add(index, f"unknown activation {name!r} ({advice}): RTNeural adds a null layer and the plugin crashes", kind)


def check_structure(document, report: Report) -> list[tuple[str, int, int]]:
    """Check what RTNeural's parser reads; returns the readable layers as (type, in, out)."""
    if not isinstance(document, dict):
        report.add(None, f"top level is a {type(document).__name__}, not an object with in_shape and layers")
        return []
    if "in_shape" not in document:
        report.add(None, "in_shape is missing: RTNeural's parser throws (json.at(\"in_shape\"))")
        n_prev = None
    else:
        n_prev = _size(document["in_shape"])
        if n_prev is None:
            report.add(None, f"in_shape {document['in_shape']!r} is not [null, n] with a positive integer n (e.g. [null, 128])")
    layers = document.get("layers")
    if not isinstance(layers, list) or not layers:
        report.add(None, "layers is missing or empty" if layers in (None, []) else "layers is not a list")
        return []

    readable = []
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict):
            report.add(index, f"is a {type(layer).__name__}, not an object")
            n_prev = None
            continue
        kind = layer.get("type")
        if not isinstance(kind, str):
            report.add(index, "type is missing: RTNeural's parser throws" if kind is None else f"type {kind!r} is not a string")
            n_prev = None
            continue
        if kind not in PLUGIN_LAYER_TYPES:
            if kind.lower() in RTNEURAL_LAYER_TYPES and kind not in RTNEURAL_LAYER_TYPES:
                fault = f"layer type {kind!r} is not RTNeural's {kind.lower()!r} (types are lower-case): its parser silently skips the layer"
            elif kind in RTNEURAL_LAYER_TYPES:
                fault = f"layer type {kind!r} is not one the plugin's networks use ({', '.join(PLUGIN_LAYER_TYPES)})"
            else:
                fault = f"unknown layer type {kind!r}: RTNeural's parser silently skips the layer"
            report.add(index, fault, kind)
            n_prev = None
            continue
        for required in ("shape", "weights"):
            if required not in layer:
                report.add(index, f"{required!r} is missing: RTNeural's parser throws", kind)
        if "shape" not in layer or "weights" not in layer:
            n_prev = None
            continue
        size = _size(layer["shape"])
        if size is None:
            report.add(index, f"shape {layer['shape']!r} is not [null, n] with a positive integer n (e.g. [null, 64])", kind)
            n_prev = None
            continue
        _check_activation(layer, index, kind, report)
        weights = layer["weights"]
        if not isinstance(weights, list):
            report.add(index, "weights is not a list", kind)
        elif n_prev is not None:
            _check_weights(kind, weights, n_prev, size, index, report)
        readable.append((kind, n_prev, size))
        n_prev = size
    return readable


def _check_weights(kind: str, weights: list, n_in: int, size: int, index: int, report: Report) -> None:
    if kind == "activation":
        if size != n_in:
            report.add(index, f"shape says {size} values but the layer before gives {n_in}", kind)
        return
    names = WEIGHT_NAMES[kind]
    if len(weights) != len(names):
        missing = names[len(weights):]
        if kind == "dense" and len(weights) == 1:
            fault = "bias is missing: RTNeural leaves it at zero"
        elif len(weights) < len(names):
            fault = f"weights has {len(weights)} arrays, expected {len(names)} ({', '.join(names)}): {', '.join(missing)} missing"
        else:
            fault = f"weights has {len(weights)} arrays, expected {len(names)} ({', '.join(names)})"
        report.add(index, fault, kind)
        return
    if kind == "dense":
        _check_matrix(weights[0], n_in, size, report, index, kind, "kernel", f"[in {n_in}][out {size}] = Linear.weight.T")
        _check_vector(weights[1], size, report, index, kind, "bias")
    else:
        _check_matrix(weights[0], n_in, 4 * size, report, index, kind, "kernel W", f"[in {n_in}][4H {4 * size}] = weight_ih_l0.T")
        _check_matrix(weights[1], size, 4 * size, report, index, kind, "recurrent kernel U", f"[H {size}][4H {4 * size}] = weight_hh_l0.T")
        _check_vector(weights[2], 4 * size, report, index, kind, "bias (bias_ih + bias_hh)")


def read_document(path: Path, report: Report):
    """Parse the file strictly as RTNeural's JSON parser would; None when it cannot."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        report.add(None, f"cannot read: {exc.strerror or exc}")
        return None
    except UnicodeDecodeError as exc:
        report.add(None, f"not UTF-8 text ({exc.reason} at byte {exc.start}): not a JSON file")
        return None
    literals: list[str] = []

    def reject_constant(name: str) -> float:
        literals.append(name)
        return float(name.replace("Infinity", "inf"))

    try:
        document = json.loads(text, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        report.add(None, f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")
        return None
    if literals:
        counts = {name: literals.count(name) for name in dict.fromkeys(literals)}
        listed = ", ".join(f"{n} x {name}" for name, n in counts.items())
        report.add(None, f"holds the literals {listed}, which are not JSON: RTNeural's parser rejects the file")
    return document


# --- spec ----------------------------------------------------------------------------------------

def identify_network(path: Path, document) -> str | None:
    """The plugin's network name for a file: from its metadata, else from its file name."""
    metadata = document.get("metadata") if isinstance(document, dict) else None
    if isinstance(metadata, dict) and metadata.get("network") in PLUGIN_NETWORKS:
        return metadata["network"]
    by_file = {name.lower(): name for name in PLUGIN_NETWORKS}
    return by_file.get(path.stem.lower())


def check_features(document, network: str | None, report: Report) -> None:
    """The metadata's feature version and pitch reference against this code's; a file without a
    metadata block is not checked (RTNeural files may come from elsewhere)."""
    from preprocess.features import spec

    metadata = document.get("metadata") if isinstance(document, dict) else None
    if not isinstance(metadata, dict):
        return
    redo = "retrain on a rebuilt cache (kelly preprocess all, kelly train) and export again"
    features = metadata.get("features") if isinstance(metadata.get("features"), dict) else {}
    version = features.get("version")
    if version != spec.FEATURE_VERSION:
        report.add(None, f"made with feature version {version!r}, this code computes {spec.FEATURE_VERSION!r}: {redo}")
        return
    from train.config import NETWORK_NAMES

    key = {name: key for key, name in NETWORK_NAMES.items()}.get(network or "")
    expected = spec.PITCH_REFERENCE.get(key, "none") if key else None
    found = metadata.get("pitch_reference")
    if expected is not None and found != expected:
        report.add(None, f"pitch reference {found!r} in the metadata, but {network} is trained with {expected!r} "
                         f"pitches: {redo}")


def pytorch_parameter_count(layers: list[tuple[str, int, int]]) -> int:
    """PyTorch's count for (type, in, out) layers: dense in*out + out; LSTM 4H*in + 4H*H + 2*4H."""
    total = 0
    for kind, n_in, n_out in layers:
        if kind == "dense":
            total += n_in * n_out + n_out
        elif kind == "lstm":
            total += 4 * n_out * n_in + 4 * n_out * n_out + 2 * 4 * n_out
    return total


def check_spec(path: Path, document, network: str | None, readable: list, report: Report) -> None:
    """Compare layer types, sizes, activations and parameter count with the plugin's contract."""
    by_file = {name.lower(): name for name in PLUGIN_NETWORKS}.get(path.stem.lower())
    if network is None:
        report.add(None, f"cannot tell which network this is (metadata.network or a file name like "
                         f"{', '.join(n.lower() + '.json' for n in PLUGIN_NETWORKS)})")
        return
    if by_file is not None and by_file != network:
        report.add(None, f"the file name says {by_file} but metadata.network says {network}: the plugin loads by file name")
    expected, expected_params = PLUGIN_NETWORKS[network]
    layers = document.get("layers") if isinstance(document, dict) else None
    in_size = _size(document.get("in_shape")) if isinstance(document, dict) else None
    if in_size is not None and in_size != expected[0][1]:
        report.add(None, f"in_shape gives {in_size} inputs; {network} takes {expected[0][1]}")
    if not isinstance(layers, list):
        return
    if len(layers) != len(expected):
        report.add(None, f"{len(layers)} layers; {network} has {len(expected)}: "
                         + ", ".join(f"{k} {i}->{o}" for k, i, o, _ in expected))
    for index, (layer, (kind, n_in, n_out, activation)) in enumerate(zip(layers, expected)):
        if not isinstance(layer, dict):
            continue
        got_kind = layer.get("type")
        if got_kind != kind:
            report.add(index, f"is {got_kind!r}; {network} has {kind} {n_in}->{n_out} here", str(got_kind))
            continue
        size = _size(layer.get("shape"))
        if size != n_out:
            report.add(index, f"outputs {size} values; {network} has {kind} {n_in}->{n_out} here", kind)
        if kind == "dense":
            got_activation = layer.get("activation", "") or ""
            if got_activation != activation:
                report.add(index, f"activation {got_activation!r}; {network} has {activation!r} here", kind)
    params = pytorch_parameter_count([l for l in readable if l[1] is not None])
    if params != expected_params and len(readable) == len(layers):
        report.add(None, f"{params:,} parameters (PyTorch count, two LSTM biases); {network} has {expected_params:,}")


# --- numbers -------------------------------------------------------------------------------------

def sample_inputs(model, rows: int, seed: int) -> np.ndarray:
    """Raw inputs [rows, n_in] float32 spread like the training data: mean + std * N(0, 1)."""
    rng = np.random.default_rng(seed)
    mean = model.input_mean.detach().cpu().numpy().astype(np.float64)
    std = model.input_std.detach().cpu().numpy().astype(np.float64)
    return (mean + std * rng.standard_normal((rows, mean.size))).astype(np.float32)


@contextlib.contextmanager
def one_torch_thread():
    """Run PyTorch on one thread: these are tiny matrices, and threads only contend."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def pytorch_outputs(model, inputs: np.ndarray, *, stateful: bool) -> np.ndarray:
    """The model's forward (with its own input standardisation) on [N, n_in]: a stateful
    N-step sequence, or N independent single steps from a zero state. Returns [N, n_out]."""
    import torch

    model.eval()
    with torch.no_grad(), one_torch_thread():
        x = torch.from_numpy(np.asarray(inputs, dtype=np.float32))
        if stateful and model.is_recurrent:
            return model(x.unsqueeze(0))[0].numpy()
        return model(x).numpy()


def pytorch_layer_outputs(model, inputs: np.ndarray) -> list[np.ndarray]:
    """Per layer (after its activation), the outputs [N, n] of a stateful N-step sequence;
    element 0 is the standardised input the first layer sees."""
    import torch
    from torch import nn

    from train.models import apply_activation

    model.eval()
    with torch.no_grad(), one_torch_thread():
        x = (torch.from_numpy(np.asarray(inputs, dtype=np.float32)) - model.input_mean) / model.input_std
        outputs = [x.numpy()]
        for layer, activation in zip(model.layers, model.activations):
            x = layer(x.unsqueeze(0))[0][0] if isinstance(layer, nn.LSTM) else layer(x)
            x = apply_activation(x, activation)
            outputs.append(x.numpy())
    return outputs


def _max_difference(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    with np.errstate(invalid="ignore"):
        difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float("inf") if not np.isfinite(difference).all() else float(difference.max(initial=0.0))


def _run_layer(layer, inputs: np.ndarray) -> np.ndarray:
    layer.reset()
    return np.stack([layer.forward(x) for x in inputs.astype(np.float32)])


def _variants(layer):
    """(description, layer) alternatives that explain a layer's difference when one matches."""
    if isinstance(layer, DenseLayer):
        if layer.kernel.shape[0] == layer.kernel.shape[1]:
            yield ("the kernel is transposed: it must be [in][out] = Linear.weight.T",
                   DenseLayer(layer.kernel.T, layer.bias, layer.activation))
        for activation in ("",) + ACTIVATIONS:
            if activation != layer.activation:
                yield (f"the activation should be {activation or 'none'!r}, not {layer.activation or 'none'!r}",
                       DenseLayer(layer.kernel, layer.bias, activation))
    elif isinstance(layer, LSTMLayer):
        H = layer.out_size

        def reorder(array, order):
            return np.concatenate([array[..., g * H:(g + 1) * H] for g in order], axis=-1)

        for order in itertools.permutations(range(4)):
            if order == (0, 1, 2, 3):
                continue
            names = ", ".join(GATES[g] for g in np.argsort(order))
            yield (f"the gate blocks are in the order ({names}); RTNeural reads (i, f, c, o), PyTorch's (i, f, g, o)",
                   LSTMLayer(reorder(layer.kernel, order), reorder(layer.recurrent, order), reorder(layer.bias, order)))


def _diagnose(layer, layer_input: np.ndarray, expected: np.ndarray, standardised: np.ndarray | None) -> str:
    for description, candidate in _variants(layer):
        if _max_difference(_run_layer(candidate, layer_input), expected) < TOLERANCE:
            return description
    if standardised is not None and _max_difference(_run_layer(layer, standardised), expected) < TOLERANCE:
        return "the input standardisation (input_mean/input_std) is not folded into this layer"
    if not np.isfinite(_run_layer(layer, layer_input)).all():
        return "it produces NaN/infinity (RTNeural's softmax does not subtract the max: logits above ~88 overflow)"
    return "no simple layout error explains it"


def locate_difference(reference: ReferenceModel, model, inputs: np.ndarray, report: Report) -> None:
    """Feed each reference layer PyTorch's input for that layer and report the first that differs."""
    expected = pytorch_layer_outputs(model, inputs)
    if len(reference.layers) != len(model.layers):
        report.add(None, f"{len(reference.layers)} layers in the file, {len(model.layers)} in the checkpoint's model")
        return
    for index, layer in enumerate(reference.layers):
        layer_input = inputs if index == 0 else expected[index]
        if layer.in_size != layer_input.shape[1] or layer.out_size != expected[index + 1].shape[1]:
            report.add(index, f"is {layer.in_size}->{layer.out_size}; the checkpoint's layer is "
                              f"{layer_input.shape[1]}->{expected[index + 1].shape[1]}", layer.kind)
            return
        difference = _max_difference(_run_layer(layer, layer_input), expected[index + 1])
        if difference >= TOLERANCE:
            cause = _diagnose(layer, layer_input, expected[index + 1], expected[0] if index == 0 else None)
            report.add(index, f"differs from PyTorch by {difference:.3g} given PyTorch's input to it: {cause}", layer.kind)
            return
    report.add(None, "every layer matches PyTorch alone but the whole network does not (accumulated error)")


def compare_numbers(document: dict, model, report: Report, *, seed: int = 0, harness=None, path: Path | None = None) -> None:
    """The reference forward pass (and RTNeural's, given a harness) against PyTorch."""
    reference = ReferenceModel.from_document(document)
    if reference.in_size != model.input_size or reference.out_size != model.output_size:
        report.add(None, f"the file maps {reference.in_size} -> {reference.out_size} values; the checkpoint's "
                         f"{model.name} maps {model.input_size} -> {model.output_size}")
        return
    steps = sample_inputs(model, SINGLE_STEPS, seed)
    sequence = sample_inputs(model, SEQUENCE_STEPS, seed + 1)
    expected_steps = pytorch_outputs(model, steps, stateful=False)
    expected_sequence = pytorch_outputs(model, sequence, stateful=True)
    runs = {
        "single step": (steps, expected_steps, False),
        f"{SEQUENCE_STEPS}-step sequence": (sequence, expected_sequence, True),
    }
    located = False
    for name, (inputs, expected, stateful) in runs.items():
        got = reference.run(inputs) if stateful else reference.run_steps(inputs)
        difference = _max_difference(got, expected)
        report.differences[f"reference vs pytorch, {name}"] = difference
        if difference >= TOLERANCE:
            report.add(None, f"the reference forward pass differs from PyTorch by {difference:.3g} ({name}; limit {TOLERANCE:g})")
            if not located:
                locate_difference(reference, model, sequence, report)
                located = True
    if harness is not None:
        for name, (inputs, expected, stateful) in runs.items():
            got = harness.run(path, inputs, stateful=stateful)
            difference = _max_difference(got, expected)
            report.differences[f"rtneural vs pytorch, {name}"] = difference
            if difference >= TOLERANCE:
                report.add(None, f"RTNeural ({harness.backend}) differs from PyTorch by {difference:.3g} ({name}; limit {TOLERANCE:g})")


def compare_with_reference(document: dict, harness, path: Path, report: Report, *, seed: int = 0) -> None:
    """Without a checkpoint: RTNeural against the NumPy reference on the same inputs."""
    reference = ReferenceModel.from_document(document)
    rng = np.random.default_rng(seed)
    for name, rows, stateful in (("single step", SINGLE_STEPS, False), (f"{SEQUENCE_STEPS}-step sequence", SEQUENCE_STEPS, True)):
        inputs = rng.standard_normal((rows, reference.in_size)).astype(np.float32)
        expected = reference.run(inputs) if stateful else reference.run_steps(inputs)
        difference = _max_difference(harness.run(path, inputs, stateful=stateful), expected)
        report.differences[f"rtneural vs reference, {name}"] = difference
        if difference >= TOLERANCE:
            report.add(None, f"RTNeural ({harness.backend}) differs from the NumPy reference by {difference:.3g} ({name})")


# --- entry points --------------------------------------------------------------------------------

def load_model(checkpoint, network: str | None, which: str = "best"):
    """A KellyNetwork from a checkpoint file, a checkpoint folder (picked by `network`, the
    plugin's name), or a KellyNetwork as it is."""
    if not isinstance(checkpoint, (str, Path)):
        return checkpoint
    from train.checkpoints import load_network
    from train.models import NETWORKS

    path = Path(checkpoint)
    if path.is_dir():
        keys = {cls.name: key for key, cls in NETWORKS.items()}
        if network not in keys:
            raise KellyError(f"{path}: cannot pick a checkpoint for a file whose network is unknown")
        path = find_checkpoint(path, keys[network], which)
    model, _ = load_network(path)
    return model


def verify_file(path: str | Path, *, check_specs: bool = False, checkpoint=None, harness=None,
                seed: int = 0, which: str = "best") -> Report:
    """Verify one exported JSON.

    check_specs: compare with the plugin's contract (`PLUGIN_NETWORKS`).
    checkpoint: a checkpoint file, a checkpoint folder (`<key>_<which>.pt` picked by the file's
                network) or a `train.models.KellyNetwork`: compare numbers with PyTorch.
    harness: an `export.harness.RTNeuralHarness`: also run the file through the real RTNeural
             (against PyTorch with a checkpoint, else against the NumPy reference).
    """
    path = Path(path)
    report = Report(path)
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
    if checkpoint is None and harness is None:
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
        compare_numbers(document, model, report, seed=seed, harness=harness, path=path)
    else:
        compare_with_reference(document, harness, path, report, seed=seed)
    return report
