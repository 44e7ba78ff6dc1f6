"""The numbers: an exported file computes what its PyTorch checkpoint computes.

`export.reference` (RTNeural's forward pass in NumPy), and with a harness the real library, run
the same inputs as the checkpoint's model: `SINGLE_STEPS` independent single steps and
`SEQUENCES` stateful sequences of `SEQUENCE_STEPS` steps each (one `forward()` per step, `reset()`
between sequences, as the plugin runs the LSTM networks). The inputs are what the plugin feeds:
drawn around the cache's input statistics (the checkpoint's input_mean/input_std), consecutive
steps correlated as consecutive windows of music are, and held inside each slice's range
(`export.plugin.input_slices`: the emotion embedding in [-1, 1], the chord history in [0, 1]).
The outputs they are held to are PyTorch's on a float64 copy of the checkpoint (the network's
exact outputs; PyTorch's own float32 outputs are reported beside them): two float32
implementations each 6e-7 from exact can be 1e-6 apart, as RTNeural's ModelT and PyTorch are on a
trained HarmonyPredictor. max |difference| must stay under the tolerance (1e-6 by default). A fault is traced to the
first layer that differs, with the variant that would have matched (a transposed kernel, gate
blocks in another order, another activation, the input standardisation left unfolded).
"""
from __future__ import annotations

import contextlib
import itertools
from pathlib import Path

import numpy as np

from export.reference import DenseLayer, LSTMLayer, ReferenceModel
from export.report import TOLERANCE, Report
from export.rtneural import ACTIVATIONS

SINGLE_STEPS = 200
SEQUENCES = 10
SEQUENCE_STEPS = 200
#: correlation of consecutive steps in a sequence (an AR(1) walk around the input statistics)
STEP_CORRELATION = 0.9
GATES = ("i", "f", "c", "o")


def sample_inputs(model, rows: int, seed: int, *, sequences: int | None = None,
                  correlation: float = 0.0) -> np.ndarray:
    """Raw inputs as the plugin feeds them, float32: [rows, n_in], or [sequences, rows, n_in]
    when `sequences` is given (each a walk with `correlation` between consecutive steps).

    Each value is mean + std * z with the model's input statistics (those of the cache it was
    trained on) and z ~ N(0, 1) per value (an AR(1) walk along a sequence), then clipped to its
    slice's range where the plugin's contract gives one (`export.plugin.input_slices`)."""
    from export.plugin import EXPORTED, input_slices

    rng = np.random.default_rng(seed)
    mean = model.input_mean.detach().cpu().numpy().astype(np.float64)
    std = model.input_std.detach().cpu().numpy().astype(np.float64)
    count = 1 if sequences is None else sequences
    z = rng.standard_normal((count, rows, mean.size))
    for t in range(1, rows):
        z[:, t] = correlation * z[:, t - 1] + np.sqrt(1.0 - correlation ** 2) * z[:, t]
    values = mean + std * z
    key = getattr(model, "key", None)
    if key in EXPORTED and model.input_size == mean.size:
        for part in input_slices(key):
            low = -np.inf if part["min"] is None else part["min"]
            high = np.inf if part["max"] is None else part["max"]
            window = slice(part["offset"], part["offset"] + part["size"])
            values[..., window] = np.clip(values[..., window], low, high)
    values = values.astype(np.float32)
    return values[0] if sequences is None else values


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


def pytorch_outputs(model, inputs: np.ndarray, *, stateful: bool, double: bool = False) -> np.ndarray:
    """The model's forward (with its own input standardisation): on [N, n_in], a stateful N-step
    sequence or N independent single steps from a zero state, giving [N, n_out]; on
    [S, T, n_in] (stateful), S sequences of T steps each from a zero state, giving [S, T, n_out].

    double: run a float64 copy of the model on the same (float32) inputs: the checkpoint's exact
    outputs, against which every float32 implementation (PyTorch's own, the reference, RTNeural's
    two APIs) is measured, so that none carries another's rounding."""
    import copy

    import torch

    model.eval()
    if double:
        model = copy.deepcopy(model).double()
    with torch.no_grad(), one_torch_thread():
        x = torch.from_numpy(np.asarray(inputs, dtype=np.float32))
        if double:
            x = x.double()
        if stateful and model.is_recurrent:
            return model(x.unsqueeze(0))[0].numpy() if x.dim() == 2 else model(x).numpy()
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


def _diagnose(layer, layer_input: np.ndarray, expected: np.ndarray, standardised: np.ndarray | None,
              tolerance: float = TOLERANCE) -> str:
    for description, candidate in _variants(layer):
        if _max_difference(_run_layer(candidate, layer_input), expected) < tolerance:
            return description
    if standardised is not None and _max_difference(_run_layer(layer, standardised), expected) < tolerance:
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
        if difference >= report.tolerance:
            cause = _diagnose(layer, layer_input, expected[index + 1], expected[0] if index == 0 else None,
                              report.tolerance)
            report.add(index, f"differs from PyTorch by {difference:.3g} given PyTorch's input to it: {cause}", layer.kind)
            return
    report.add(None, "every layer matches PyTorch alone but the whole network does not (accumulated error)")


def plugin_runs(model, seed: int) -> dict[str, tuple[np.ndarray, bool]]:
    """The inputs every check runs, by name: (inputs, stateful). `SINGLE_STEPS` independent steps
    [N, n_in]; for a recurrent network also `SEQUENCES` stateful sequences [S, T, n_in]."""
    runs = {f"{SINGLE_STEPS} single steps": (sample_inputs(model, SINGLE_STEPS, seed), False)}
    if model.is_recurrent:
        runs[f"{SEQUENCES} x {SEQUENCE_STEPS}-step sequences"] = (
            sample_inputs(model, SEQUENCE_STEPS, seed + 1, sequences=SEQUENCES, correlation=STEP_CORRELATION), True)
    return runs


def reference_outputs(reference: ReferenceModel, inputs: np.ndarray, stateful: bool) -> np.ndarray:
    """The reference forward pass on a run's inputs: [N, n_in] single steps or [S, T, n_in] sequences."""
    if not stateful:
        return reference.run_steps(inputs)
    return np.stack([reference.run(sequence) for sequence in inputs])


def as_sequences(inputs: np.ndarray, stateful: bool) -> np.ndarray:
    """A run's inputs as [S, T, n_in]: single steps are N sequences of one step."""
    return inputs if stateful else inputs[:, None, :]


def _runner_outputs(runner, path, inputs: np.ndarray, report: Report) -> dict | None:
    """runner.run(path, inputs), or None with the reason added as a fault when it cannot run the
    file (a header that does not compile, a load that fails, a crash)."""
    from export.harness import HarnessError

    try:
        return runner.run(path, inputs)
    except HarnessError as exc:
        report.add(None, str(exc))
        return None


def compare_numbers(document: dict, model, report: Report, *, seed: int = 0, runners=(), path: Path | None = None) -> None:
    """The reference forward pass, and each runner's, against PyTorch. A runner is the real
    RTNeural: `runner.run(path, inputs [S, T, n_in])` -> {API name: outputs [S, T, n_out]}, the
    state reset before each sequence; `runner.notes(path)` -> lines for the report (timings)."""
    reference = ReferenceModel.from_document(document)
    if reference.in_size != model.input_size or reference.out_size != model.output_size:
        report.add(None, f"the file maps {reference.in_size} -> {reference.out_size} values; the checkpoint's "
                         f"{model.name} maps {model.input_size} -> {model.output_size}")
        return
    runs = plugin_runs(model, seed)
    expected = {name: pytorch_outputs(model, inputs, stateful=stateful, double=True)
                for name, (inputs, stateful) in runs.items()}
    located = False
    for name, (inputs, stateful) in runs.items():
        float32 = pytorch_outputs(model, inputs, stateful=stateful)
        report.notes.append(f"PyTorch float32 is within {_max_difference(float32, expected[name]):.3g} of float64 ({name})")
        difference = _max_difference(reference_outputs(reference, inputs, stateful), expected[name])
        report.differences[f"reference vs pytorch, {name}"] = difference
        if difference >= report.tolerance:
            report.add(None, f"the reference forward pass differs from PyTorch by {difference:.3g} ({name}; "
                             f"limit {report.tolerance:g})")
            if not located:
                first = inputs[0] if stateful else inputs
                locate_difference(reference, model, first, report)
                located = True
    for runner in runners:
        for name, (inputs, stateful) in runs.items():
            outputs = _runner_outputs(runner, path, as_sequences(inputs, stateful), report)
            if outputs is None:
                break
            for api, got in outputs.items():
                difference = _max_difference(got, as_sequences(expected[name], stateful))
                report.differences[f"{api} vs pytorch, {name}"] = difference
                if difference >= report.tolerance:
                    report.add(None, f"{api} differs from PyTorch by {difference:.3g} ({name}; "
                                     f"limit {report.tolerance:g})")
        report.notes += runner.notes(path)


def compare_with_reference(document: dict, runners, path: Path, report: Report, *, seed: int = 0) -> None:
    """Without a checkpoint: each runner (the real RTNeural) against the NumPy reference, on
    standard-normal inputs: single steps, and stateful sequences for a recurrent network."""
    reference = ReferenceModel.from_document(document)
    rng = np.random.default_rng(seed)
    recurrent = any(layer.kind == "lstm" for layer in reference.layers)
    runs = {f"{SINGLE_STEPS} single steps": (rng.standard_normal((SINGLE_STEPS, reference.in_size)), False)}
    if recurrent:
        runs[f"{SEQUENCES} x {SEQUENCE_STEPS}-step sequences"] = (
            rng.standard_normal((SEQUENCES, SEQUENCE_STEPS, reference.in_size)), True)
    for runner in runners:
        for name, (inputs, stateful) in runs.items():
            inputs = inputs.astype(np.float32)
            expected = as_sequences(reference_outputs(reference, inputs, stateful), stateful)
            outputs = _runner_outputs(runner, path, as_sequences(inputs, stateful), report)
            if outputs is None:
                break
            for api, got in outputs.items():
                difference = _max_difference(got, expected)
                report.differences[f"{api} vs reference, {name}"] = difference
                if difference >= report.tolerance:
                    report.add(None, f"{api} differs from the NumPy reference by {difference:.3g} ({name})")
        report.notes += runner.notes(path)
