"""The five networks have the plugin's exact shapes, activations and parameter counts."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from preprocess.features import spec
from train.models import NETWORKS, build, count_parameters

LAYERS = {  # (kind, in, out), activation: the plugin's table (docs/rtneural.md)
    "emotion": ([("dense", 128, 512), ("dense", 512, 256), ("lstm", 256, 128), ("dense", 128, 64)],
                ["tanh", "tanh", None, "tanh"]),
    "melody": ([("dense", 64, 256), ("lstm", 256, 256), ("dense", 256, 256), ("dense", 256, 128)],
               ["relu", None, "relu", "sigmoid"]),
    "harmony": ([("dense", 128, 256), ("dense", 256, 128), ("dense", 128, 64)], ["tanh", "tanh", "softmax"]),
    "dynamics": ([("dense", 32, 128), ("dense", 128, 64), ("dense", 64, 16)], ["relu", "relu", "sigmoid"]),
    "groove": ([("dense", 64, 128), ("dense", 128, 64), ("dense", 64, 32)], ["tanh", "tanh", "tanh"]),
}
PARAMETERS = {"emotion": 403_264, "melody": 641_664, "harmony": 74_176, "dynamics": 13_520, "groove": 18_656}


def test_parameter_counts_and_total():
    counts = {key: count_parameters(build(key)) for key in NETWORKS}
    assert counts == PARAMETERS
    assert sum(counts.values()) == 1_151_280
    assert all(NETWORKS[k].expected_parameters == PARAMETERS[k] for k in NETWORKS)


@pytest.mark.parametrize("key", list(NETWORKS))
def test_layer_shapes_and_activations(key):
    model = build(key)
    layers, activations = LAYERS[key]
    assert model.activations == activations
    assert len(model.layers) == len(layers)
    for layer, (kind, n_in, n_out) in zip(model.layers, layers):
        if kind == "dense":
            assert isinstance(layer, nn.Linear)
            assert tuple(layer.weight.shape) == (n_out, n_in) and tuple(layer.bias.shape) == (n_out,)
        else:
            assert isinstance(layer, nn.LSTM) and layer.num_layers == 1 and layer.batch_first
            assert tuple(layer.weight_ih_l0.shape) == (4 * n_out, n_in)
            assert tuple(layer.weight_hh_l0.shape) == (4 * n_out, n_out)
    n_in, n_out, _ = spec.NETWORKS[key]
    assert (model.input_size, model.output_size) == (n_in, n_out)
    assert model.is_recurrent == (key in ("emotion", "melody"))


def test_every_list_of_the_networks_is_the_one_in_spec():
    from export.cli import NETWORK_KEYS
    from train.config import NETWORK_NAMES
    from train.data import RECURRENT

    assert list(NETWORKS) == list(NETWORK_KEYS) == list(NETWORK_NAMES) == list(spec.NETWORKS)
    for key, network in spec.NETWORKS.items():
        model = build(key)
        assert (model.key, model.name, NETWORK_NAMES[key]) == (key, network.class_name, network.class_name)
        assert model.is_recurrent == network.recurrent == (key in RECURRENT)
        assert set(network.sources) <= set(spec.SOURCES)


@pytest.mark.parametrize("key", list(NETWORKS))
def test_forward_shapes_ranges_and_logits(key):
    torch.manual_seed(0)
    model = build(key).eval()
    n_in, n_out, _ = spec.NETWORKS[key]
    x = torch.randn(3, 5, n_in) if model.is_recurrent else torch.randn(7, n_in)
    with torch.no_grad():
        y, logits = model(x), model.forward_logits(x)
    assert y.shape == (*x.shape[:-1], n_out)
    last = model.activations[-1]
    if last == "sigmoid":
        torch.testing.assert_close(torch.sigmoid(logits), y)
        assert 0 <= y.min() and y.max() <= 1
    elif last == "softmax":
        torch.testing.assert_close(torch.softmax(logits, -1), y)
        torch.testing.assert_close(y.sum(-1), torch.ones(y.shape[:-1]))
    else:
        torch.testing.assert_close(torch.tanh(logits), y)


@pytest.mark.parametrize("key", ["emotion", "melody"])
def test_single_steps_with_carried_state_equal_the_sequence(key):
    torch.manual_seed(1)
    model = build(key).eval()
    x = torch.randn(2, 6, model.input_size)
    with torch.no_grad():
        whole = model(x)
        state, steps = None, []
        for t in range(x.shape[1]):
            y, state = model(x[:, t], state, return_state=True)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), whole, rtol=1e-5, atol=1e-6)


def test_input_normalisation_is_applied_and_checked():
    model = build("dynamics").eval()
    x = torch.rand(4, 32) * 10 + 3
    mean, std = x.mean(0), x.std(0)
    model.set_input_normalisation(mean, std)
    reference = build("dynamics").eval()
    reference.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("input_")}, strict=False)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference((x - mean) / std))
    with pytest.raises(ValueError, match="32 values"):
        model.set_input_normalisation(torch.zeros(31), torch.ones(31))
