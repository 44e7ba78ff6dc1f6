"""The five networks the plugin runs, exactly as its RTNeural models are shaped.

Each network is a list of layers (`nn.Linear` or a single-layer `nn.LSTM`) with one activation
name per layer, written out here so that nothing downstream has to guess them. The activation
names are RTNeural's own ("tanh", "relu", "sigmoid", "softmax"); None means linear.

Every network also carries `input_mean` / `input_std` buffers: training standardises its inputs
with them, and the exporter folds them into the first dense layer so the plugin feeds raw values.

Shapes: dense networks take [batch, features]; the two LSTM networks take [batch, time, features]
(or [batch, features] as one step) and return the same leading dimensions.
"""
from __future__ import annotations

import torch
from torch import nn

from preprocess.features import spec


class KellyNetwork(nn.Module):
    """A stack of Linear / LSTM layers with named activations and input standardisation."""

    key: str = ""                    # the cache's name for the network's data ("emotion", ...)
    name: str = ""                   # the plugin's name ("EmotionRecognizer", ...): the class's own
    expected_parameters: int = 0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.name = cls.__name__
        cls.key = spec.key_of_class(cls.name)

    def __init__(self, layers: list[nn.Module], activations: list[str | None]):
        super().__init__()
        assert len(layers) == len(activations)
        self.layers = nn.ModuleList(layers)
        self.activations = list(activations)
        first = layers[0]
        n_in = first.in_features if isinstance(first, nn.Linear) else first.input_size
        self.register_buffer("input_mean", torch.zeros(n_in))
        self.register_buffer("input_std", torch.ones(n_in))

    @property
    def input_size(self) -> int:
        return self.input_mean.numel()

    @property
    def output_size(self) -> int:
        last = self.layers[-1]
        return last.out_features if isinstance(last, nn.Linear) else last.hidden_size

    @property
    def is_recurrent(self) -> bool:
        return any(isinstance(layer, nn.LSTM) for layer in self.layers)

    def forward(self, x: torch.Tensor, state: dict | None = None, return_state: bool = False,
                logits: bool = False):
        """Run the network. For a recurrent network, `state` maps LSTM layer index -> (h, c), each
        [1, batch, hidden]. With `logits` the last layer's activation is left out (for numerically
        stable losses: BCE-with-logits for sigmoid outputs, cross-entropy for softmax outputs)."""
        x = (x - self.input_mean) / self.input_std
        single_step = self.is_recurrent and x.dim() == 2
        if single_step:
            x = x.unsqueeze(1)
        new_state = {}
        last = len(self.layers) - 1
        for i, (layer, act) in enumerate(zip(self.layers, self.activations)):
            if isinstance(layer, nn.LSTM):
                x, new_state[i] = layer(x, None if state is None else state.get(i))
            else:
                x = layer(x)
            if i < last or not logits:
                x = apply_activation(x, act)
        if single_step:
            x = x.squeeze(1)
        return (x, new_state) if return_state else x

    def forward_logits(self, x: torch.Tensor, state: dict | None = None, return_state: bool = False):
        """`forward` without the last layer's activation."""
        return self.forward(x, state, return_state, logits=True)

    def init_output_prior(self, target_mean, weight_scale: float = 0.1) -> None:
        """Start from the trivial baseline: the last layer's bias is set so that the network's output
        is the training mean target (for softmax, the class prior), and its weights are scaled down
        so the inputs move the output only a little at first. Training then improves on the baseline
        instead of spending its first epochs finding it.
        """
        last = self.layers[-1]
        mean = torch.as_tensor(target_mean, dtype=last.bias.dtype).reshape(-1)
        act = self.activations[-1]
        if act == "sigmoid":
            mean = mean.clamp(1e-4, 1 - 1e-4)
            bias = torch.log(mean) - torch.log1p(-mean)
        elif act == "softmax":
            bias = torch.log(mean.clamp(min=1e-6))
            bias = bias - bias.mean()
        elif act == "tanh":
            bias = torch.atanh(mean.clamp(-0.999, 0.999))
        elif act in (None, "relu"):
            bias = mean
        else:
            raise ValueError(f"{self.name}: no prior initialisation for a {act} output")
        with torch.no_grad():
            last.bias.copy_(bias)
            last.weight.mul_(weight_scale)

    def set_input_normalisation(self, mean, std) -> None:
        mean = torch.as_tensor(mean, dtype=self.input_mean.dtype)
        std = torch.as_tensor(std, dtype=self.input_std.dtype)
        if mean.shape != self.input_mean.shape or std.shape != self.input_std.shape:
            raise ValueError(f"{self.name}: normalisation must have {self.input_size} values")
        self.input_mean.copy_(mean)
        self.input_std.copy_(torch.clamp(std, min=1e-6))


def apply_activation(x: torch.Tensor, name: str | None) -> torch.Tensor:
    if name is None:
        return x
    if name == "tanh":
        return torch.tanh(x)
    if name == "relu":
        return torch.relu(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "softmax":
        return torch.softmax(x, dim=-1)
    if name == "elu":
        return nn.functional.elu(x)
    raise ValueError(f"unknown activation {name!r}")


class EmotionRecognizer(KellyNetwork):
    expected_parameters = 403_264

    def __init__(self):
        super().__init__(
            [nn.Linear(128, 512), nn.Linear(512, 256), nn.LSTM(256, 128, batch_first=True), nn.Linear(128, 64)],
            ["tanh", "tanh", None, "tanh"],
        )


class MelodyTransformer(KellyNetwork):
    expected_parameters = 641_664

    def __init__(self):
        super().__init__(
            [nn.Linear(64, 256), nn.LSTM(256, 256, batch_first=True), nn.Linear(256, 256), nn.Linear(256, 128)],
            ["relu", None, "relu", "sigmoid"],
        )


class HarmonyPredictor(KellyNetwork):
    expected_parameters = 74_176

    def __init__(self):
        super().__init__(
            [nn.Linear(128, 256), nn.Linear(256, 128), nn.Linear(128, 64)],
            ["tanh", "tanh", "softmax"],
        )


class DynamicsEngine(KellyNetwork):
    expected_parameters = 13_520

    def __init__(self):
        super().__init__(
            [nn.Linear(32, 128), nn.Linear(128, 64), nn.Linear(64, 16)],
            ["relu", "relu", "sigmoid"],
        )


class GroovePredictor(KellyNetwork):
    expected_parameters = 18_656

    def __init__(self):
        super().__init__(
            [nn.Linear(64, 128), nn.Linear(128, 64), nn.Linear(64, 32)],
            ["tanh", "tanh", "tanh"],
        )


_BY_CLASS_NAME = {cls.__name__: cls for cls in KellyNetwork.__subclasses__()}
#: cache key -> network class, in spec.NETWORKS' order (the plugin's)
NETWORKS: dict[str, type[KellyNetwork]] = {key: _BY_CLASS_NAME[network.class_name]
                                           for key, network in spec.NETWORKS.items()}


def build(key: str) -> KellyNetwork:
    """A new network of `key`: one of the plugin's five, or the labeller (train.labeller_network)."""
    if key == spec.LABELLER_KEY:
        from train.labeller_network import MODEL_SETTINGS, LabellerNetwork

        return LabellerNetwork(**MODEL_SETTINGS)
    try:
        return NETWORKS[key]()
    except KeyError:
        raise ValueError(f"unknown network {key!r}; known: {', '.join(NETWORKS)}") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

