"""What RTNeural's JSON parser needs in a file, and what it gets wrong without a word.

Everything `json_parser::parseJson` reads is checked as it reads it: an unknown or miscapitalised
layer type (skipped), a kernel or bias smaller than the shape (zero-filled, or read past its end),
an activation name other than tanh/relu/sigmoid/softmax/elu/"" (the parser builds a null layer and
crashes while loading; docs/rtneural.md), NaN/Infinity (as literals they do not parse; as values
they are not float32 numbers). Each fault is added to a `Report` naming the layer.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from export.report import Report
from export.rtneural import ACTIVATIONS

#: layer types RTNeural's parser knows; the plugin's networks use dense, lstm and activation
RTNEURAL_LAYER_TYPES = ("dense", "time-distributed-dense", "conv1d", "conv2d", "gru", "lstm",
                        "prelu", "batchnorm", "batchnorm2d", "activation")
PLUGIN_LAYER_TYPES = ("dense", "lstm", "activation")
WEIGHT_NAMES = {"dense": ("kernel", "bias"), "lstm": ("kernel W", "recurrent kernel U", "bias")}

NUMBER_TYPES = frozenset((int, float))     # what json gives for numbers; bool and str are faults


def _is_number(value) -> bool:
    return type(value) in NUMBER_TYPES


def layer_size(shape) -> int | None:
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
        report.add(index, f"unknown activation {name!r} ({advice}): RTNeural's parser builds a null layer and "
                          "crashes (segfault) while loading the file", kind)


def check_structure(document, report: Report) -> list[tuple[str, int, int]]:
    """Check what RTNeural's parser reads; returns the readable layers as (type, in, out)."""
    if not isinstance(document, dict):
        report.add(None, f"top level is a {type(document).__name__}, not an object with in_shape and layers")
        return []
    if "in_shape" not in document:
        report.add(None, "in_shape is missing: RTNeural's parser throws (json.at(\"in_shape\"))")
        n_prev = None
    else:
        n_prev = layer_size(document["in_shape"])
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
        size = layer_size(layer["shape"])
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

