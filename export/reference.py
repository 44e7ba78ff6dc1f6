"""RTNeural's forward pass in NumPy, for checking an exported JSON without a C++ build.

It reads a document the way `json_parser::parseJson` does (kernel [in][out], LSTM W [in][4H],
U [H][4H], one bias [4H], gate blocks i, f, c, o) and computes in float32 the way RTNeural's
STL backend does: one time step per `forward()` call, LSTM state kept until `reset()`, softmax
as exp(x) / sum(exp(x)) with no max subtracted (so it overflows where the plugin would).

Shapes: `forward(x)` takes [n_in] and returns [n_out]; `run(xs)` takes [T, n_in] and returns
[T, n_out], one step per row, stateful across rows.

The document must already have passed `export.verify`'s structure check; a layer this module
cannot read raises `ReferenceModelError`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from export.rtneural import ACTIVATIONS


class ReferenceModelError(ValueError):
    """The document holds something RTNeural would not run (unknown type or activation)."""


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), float32, as RTNeural's DefaultMathsProvider."""
    with np.errstate(over="ignore"):
        return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    """exp(x) / sum(exp(x)) without subtracting the max, as RTNeural's SoftmaxActivation."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)
        return (e * (np.float32(1) / e.sum(dtype=np.float32))).astype(np.float32)


def elu(x: np.ndarray) -> np.ndarray:
    """x for x > 0, exp(x) - 1 otherwise (alpha = 1, RTNeural's default)."""
    with np.errstate(over="ignore"):
        return np.where(x > 0, x, np.exp(x) - np.float32(1)).astype(np.float32)


def activate(x: np.ndarray, name: str) -> np.ndarray:
    """Apply one of RTNeural's activation layers by name ("" = none)."""
    if name == "":
        return x
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.maximum(x, np.float32(0))
    if name == "sigmoid":
        return sigmoid(x)
    if name == "softmax":
        return softmax(x)
    if name == "elu":
        return elu(x)
    raise ReferenceModelError(f"unknown activation {name!r}: RTNeural's parser crashes on it (a null layer)")


class DenseLayer:
    """y = act(x @ kernel + bias); kernel [in][out], bias [out]."""

    kind = "dense"

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, activation: str = ""):
        self.kernel = np.asarray(kernel, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.activation = activation
        self.in_size, self.out_size = self.kernel.shape

    def reset(self) -> None:
        pass

    def forward(self, x: np.ndarray) -> np.ndarray:
        return activate(x @ self.kernel + self.bias, self.activation)


class LSTMLayer:
    """One LSTM step with state: W [in][4H], U [H][4H], b [4H], gate blocks (i, f, c, o).

        i = sigmoid(x W_i + h U_i + b_i)    f = sigmoid(x W_f + h U_f + b_f)
        c~ = tanh(x W_c + h U_c + b_c)      o = sigmoid(x W_o + h U_o + b_o)
        c = f * c + i * c~                  h = o * tanh(c)
    """

    kind = "lstm"
    activation = ""

    def __init__(self, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray):
        self.kernel = np.asarray(kernel, dtype=np.float32)
        self.recurrent = np.asarray(recurrent, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.in_size = self.kernel.shape[0]
        self.out_size = self.recurrent.shape[0]
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros(self.out_size, dtype=np.float32)
        self.c = np.zeros(self.out_size, dtype=np.float32)

    def forward(self, x: np.ndarray) -> np.ndarray:
        H = self.out_size
        z = x @ self.kernel + self.h @ self.recurrent + self.bias
        i = sigmoid(z[:H])
        f = sigmoid(z[H:2 * H])
        c_candidate = np.tanh(z[2 * H:3 * H])
        o = sigmoid(z[3 * H:])
        self.c = (f * self.c + i * c_candidate).astype(np.float32)
        self.h = (o * np.tanh(self.c)).astype(np.float32)
        return self.h


class ActivationLayer:
    """RTNeural's stand-alone "activation" layer."""

    kind = "activation"

    def __init__(self, activation: str, size: int):
        self.activation = activation
        self.in_size = self.out_size = size

    def reset(self) -> None:
        pass

    def forward(self, x: np.ndarray) -> np.ndarray:
        return activate(x, self.activation)


class ReferenceModel:
    """A sequential RTNeural model read from a JSON document (dict, text or path)."""

    def __init__(self, layers: list, in_size: int):
        self.layers = layers
        self.in_size = in_size
        self.out_size = layers[-1].out_size if layers else in_size

    @classmethod
    def from_document(cls, document: dict) -> "ReferenceModel":
        in_size = int(document["in_shape"][-1])
        layers: list = []
        for index, spec in enumerate(document["layers"]):
            kind, weights = spec["type"], spec["weights"]
            activation = spec.get("activation", "") or ""
            if kind == "dense":
                if activation not in ("",) + ACTIVATIONS:
                    raise ReferenceModelError(f"layer {index}: unknown activation {activation!r}")
                layers.append(DenseLayer(weights[0], weights[1], activation))
            elif kind == "lstm":
                layers.append(LSTMLayer(weights[0], weights[1], weights[2]))
            elif kind == "activation":
                if activation not in ("",) + ACTIVATIONS:
                    raise ReferenceModelError(f"layer {index}: unknown activation {activation!r}")
                layers.append(ActivationLayer(activation, int(spec["shape"][-1])))
            else:
                raise ReferenceModelError(f"layer {index}: layer type {kind!r} is not handled here")
        return cls(layers, in_size)

    @classmethod
    def load(cls, path: str | Path) -> "ReferenceModel":
        return cls.from_document(json.loads(Path(path).read_text(encoding="utf-8")))

    def reset(self) -> None:
        for layer in self.layers:
            layer.reset()

    def forward(self, x: np.ndarray) -> np.ndarray:
        """One time step: x [n_in] -> [n_out] (float32)."""
        x = np.asarray(x, dtype=np.float32)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def run(self, xs: np.ndarray, *, reset: bool = True) -> np.ndarray:
        """Consecutive steps: xs [T, n_in] -> [T, n_out]; resets first unless reset=False."""
        if reset:
            self.reset()
        return np.stack([self.forward(x) for x in np.asarray(xs, dtype=np.float32)])

    def run_steps(self, xs: np.ndarray) -> np.ndarray:
        """Independent single steps: reset before each row of xs [N, n_in] -> [N, n_out]."""
        out = []
        for x in np.asarray(xs, dtype=np.float32):
            self.reset()
            out.append(self.forward(x))
        return np.stack(out)
