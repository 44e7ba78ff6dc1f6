"""A trained network -> the JSON that RTNeural's `json_parser::parseJson` loads.

The mapping, written once (it is RTNeural's own `torch_helpers.h`, in Python):

    nn.Linear  ->  {"type": "dense", "activation": name or "", "shape": [null, out],
                    "weights": [weight.T  ([in][out]), bias ([out])]}
    nn.LSTM    ->  {"type": "lstm", "activation": "", "shape": [null, hidden],
                    "weights": [weight_ih_l0.T ([in][4H]), weight_hh_l0.T ([H][4H]),
                                bias_ih_l0 + bias_hh_l0 ([4H])]}

PyTorch's LSTM gate order (i, f, g, o) is RTNeural's (i, f, c, o), so the gate blocks are copied
as they are. The network's input standardisation, (x - mean) / std, is folded into its first
layer's input weights (W' = W / std per input column, b' = b - W' @ mean), so the plugin feeds
raw features. Every value is a float32; a NaN or infinity is an `ExportError`.

Text: each weight is written as the shortest decimal that reads back as the same float32 through
a double, the way RTNeural's JSON parser (nlohmann::json) reads it: `0.10601927`, not the
17-digit double `0.1060192659497261`. The files are about 40% smaller and bit-identical in
float32; everything outside the layers' weights (the metadata) is ordinary JSON.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.errors import KellyError

#: the activation names RTNeural's `createActivation` knows; "" (or no key) means none.
#: Any other string makes the run-time parser add a null layer: it crashes (segfault) while loading.
ACTIVATIONS = ("tanh", "relu", "sigmoid", "softmax", "elu")

#: layer types the exporter writes (RTNeural's parser silently skips a type it does not know)
DENSE, LSTM = "dense", "lstm"


class ExportError(KellyError):
    """A network that cannot be written as valid RTNeural JSON (non-finite or unknown content)."""


def file_name(network_name: str) -> str:
    """The plugin's file name for a network: "EmotionRecognizer" -> "emotionrecognizer.json"."""
    return f"{network_name.lower()}.json"


def _float32(values: np.ndarray, network: str, layer: int, what: str) -> list:
    """`values` as nested Python lists of float32 values; refuses NaN and infinity."""
    values = np.asarray(values, dtype=np.float64)
    as32 = values.astype(np.float32)
    bad = ~np.isfinite(as32)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ExportError(
            f"{network}: layer {layer} {what} has {int(bad.sum())} non-finite value(s) in float32 "
            f"(first at index {list(first)}: {values[first]!r}); RTNeural's parser cannot read them"
        )
    return as32.tolist()


def _fold_standardisation(w_in: np.ndarray, bias: np.ndarray, mean: np.ndarray, std: np.ndarray):
    """Fold (x - mean) / std into y = W x + b.

    w_in: [out, in] (PyTorch layout), bias: [out], mean, std: [in].
    Returns (W', b') with W' = W / std (per input column) and b' = b - W' @ mean, in float64.
    """
    w_folded = w_in / std[None, :]
    return w_folded, bias - w_folded @ mean


def dense_layer(weight: np.ndarray, bias: np.ndarray, activation: str | None, *, network: str, index: int) -> dict:
    """An RTNeural dense layer from a PyTorch `Linear`'s weight [out, in] and bias [out]."""
    if activation is not None and activation not in ACTIVATIONS:
        raise ExportError(f"{network}: layer {index} activation {activation!r} is not one of RTNeural's {ACTIVATIONS}")
    return {
        "type": DENSE,
        "activation": activation or "",
        "shape": [None, int(weight.shape[0])],
        "weights": [
            _float32(weight.T, network, index, "kernel"),
            _float32(bias, network, index, "bias"),
        ],
    }


def lstm_layer(weight_ih: np.ndarray, weight_hh: np.ndarray, bias: np.ndarray, *, network: str, index: int) -> dict:
    """An RTNeural LSTM layer from PyTorch's weight_ih_l0 [4H, in], weight_hh_l0 [4H, H] and
    the summed bias bias_ih_l0 + bias_hh_l0 [4H]; gate blocks stay in PyTorch's order."""
    hidden = weight_hh.shape[1]
    return {
        "type": LSTM,
        "activation": "",
        "shape": [None, int(hidden)],
        "weights": [
            _float32(weight_ih.T, network, index, "kernel (W)"),
            _float32(weight_hh.T, network, index, "recurrent kernel (U)"),
            _float32(bias, network, index, "bias"),
        ],
    }


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()


def model_to_rtneural(model) -> dict:
    """A `train.models.KellyNetwork` -> {"in_shape": [null, n_in], "layers": [...]}.

    The input standardisation buffers are folded into the first layer; the result computes
    `model(x)` on raw inputs x.
    """
    from torch import nn

    mean = _numpy(model.input_mean)
    std = _numpy(model.input_std)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std <= 0).any():
        raise ExportError(f"{model.name}: input_mean/input_std must be finite with std > 0")
    layers = []
    for index, (layer, activation) in enumerate(zip(model.layers, model.activations)):
        if isinstance(layer, nn.Linear):
            weight = _numpy(layer.weight)
            bias = _numpy(layer.bias) if layer.bias is not None else np.zeros(weight.shape[0])
            if index == 0:
                weight, bias = _fold_standardisation(weight, bias, mean, std)
            layers.append(dense_layer(weight, bias, activation, network=model.name, index=index))
        elif isinstance(layer, nn.LSTM):
            if layer.num_layers != 1 or layer.bidirectional or layer.proj_size:
                raise ExportError(f"{model.name}: layer {index} must be a single-layer, one-directional LSTM")
            if activation is not None:
                raise ExportError(f"{model.name}: layer {index} is an LSTM; RTNeural applies no activation after it")
            weight_ih = _numpy(layer.weight_ih_l0)
            weight_hh = _numpy(layer.weight_hh_l0)
            bias = _numpy(layer.bias_ih_l0) + _numpy(layer.bias_hh_l0) if layer.bias else np.zeros(weight_ih.shape[0])
            if index == 0:
                weight_ih, bias = _fold_standardisation(weight_ih, bias, mean, std)
            layers.append(lstm_layer(weight_ih, weight_hh, bias, network=model.name, index=index))
        else:
            raise ExportError(f"{model.name}: layer {index} is a {type(layer).__name__}; RTNeural export handles Linear and LSTM")
    return {"in_shape": [None, int(model.input_size)], "layers": layers}


def float32_text(values) -> np.ndarray:
    """Each value of `values` (any shape) as the shortest decimal text that reads back, through a
    double, as the same float32: an array of str of the same shape. NumPy's float32 formatting is
    the shortest round trip for float32 itself; a value it gives that rounds differently through a
    double (none in practice; checked anyway) is written exactly, as the double equal to it."""
    as32 = np.asarray(values, dtype=np.float32)
    text = as32.astype(str)
    back = text.astype(np.float64).astype(np.float32)
    differ = back.view(np.uint32) != as32.view(np.uint32)
    if differ.any():
        text[differ] = [repr(float(v)) for v in as32[differ]]
    return text


def _array_text(values) -> str:
    """A nested list of numbers as compact JSON with float32 text: "[[1.5,-0.25],[...]]"."""
    array = np.asarray(values, dtype=np.float32)

    def nested(text: np.ndarray) -> str:
        if text.ndim == 1:
            return "[" + ",".join(text.tolist()) + "]"
        return "[" + ",".join(nested(part) for part in text) + "]"

    return str(float32_text(array)) if array.ndim == 0 else nested(float32_text(array))


def _with_last(head: dict, key: str, value_text: str) -> str:
    """json.dumps(head) with `"key": <value_text>` added as its last member."""
    text = json.dumps(head, allow_nan=False, separators=(",", ":"))
    return text[:-1] + ("," if head else "") + json.dumps(key) + ":" + value_text + "}"


def document_text(document: dict) -> str:
    """An RTNeural document as strict, compact JSON (no NaN/Infinity literals), every layer's
    weights in float32 text (`float32_text`), "layers" last and "weights" last in each layer;
    everything else by `json.dumps`."""
    layers = document.get("layers")
    if not isinstance(layers, list):
        return json.dumps(document, allow_nan=False, separators=(",", ":"))
    texts = []
    for layer in layers:
        rest = {k: v for k, v in layer.items() if k != "weights"}
        if "weights" in layer:
            texts.append(_with_last(rest, "weights", "[" + ",".join(_array_text(w) for w in layer["weights"]) + "]"))
        else:
            texts.append(json.dumps(rest, allow_nan=False, separators=(",", ":")))
    return _with_last({k: v for k, v in document.items() if k != "layers"}, "layers", "[" + ",".join(texts) + "]")


def write_json(document: dict, path: str | Path) -> Path:
    """Write an RTNeural document as `document_text` gives it. Atomic (`common.files.write_text`):
    KellyError naming the file when it cannot be written."""
    from common.files import write_text

    return write_text(path, document_text(document))
