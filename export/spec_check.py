"""A file against the plugin's contract (`export.plugin.PLUGIN_NETWORKS`) and this code's features.

- spec: layer types, sizes, activations and parameter count equal the plugin's network.
- features (whenever the file has a metadata block): it was made with this code's feature version
  and pitch reference (spec.FEATURE_VERSION, spec.PITCH_REFERENCE); a file from older features
  would be read by the plugin with the wrong meaning (absolute pitches taken as key-relative).

Parameter counts follow PyTorch (two LSTM bias vectors, as in the plugin's table in
docs/rtneural.md): an exported LSTM holds one summed bias [4H], so the count read from a file adds
4H per LSTM layer.
"""
from __future__ import annotations

from pathlib import Path

from export.plugin import PLUGIN_NETWORKS
from export.report import Report
from export.structure import layer_size


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
    in_size = layer_size(document.get("in_shape")) if isinstance(document, dict) else None
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
        size = layer_size(layer.get("shape"))
        if size != n_out:
            report.add(index, f"outputs {size} values; {network} has {kind} {n_in}->{n_out} here", kind)
        if kind == "dense":
            got_activation = layer.get("activation", "") or ""
            if got_activation != activation:
                report.add(index, f"activation {got_activation!r}; {network} has {activation!r} here", kind)
    params = pytorch_parameter_count([l for l in readable if l[1] is not None])
    if params != expected_params and len(readable) == len(layers):
        report.add(None, f"{params:,} parameters (PyTorch count, two LSTM biases); {network} has {expected_params:,}")

