"""Training checkpoints: where they go, what they hold, and loading them back safely.

`<output>/checkpoints/<classname>_latest.pt` is written after every epoch (for --resume) and
`<classname>_best.pt` whenever validation improves (for export and evaluation); the names are
`train.outputs`'. Each is written to a temporary file beside it and moved into place
(`common.files.atomic_write`), so a crash never leaves half a checkpoint, and the next run removes
the temporary a killed one left.

A checkpoint is a dict loadable with `torch.load(weights_only=True)` (no pickled code):
  format "kelly-checkpoint-1", network (cache key), network_name (class name), model_state,
  optimizer_state, scheduler_state, epoch, history (list of per-epoch dicts), rng_state (torch,
  numpy, python random, and the shuffle generator), early_stopping, feature_version,
  cache_identity, config (train.config.NetworkConfig as a dict), best_val_loss, metrics.

Feature version: a checkpoint trained on other features than the current FEATURE_VERSION computes
nonsense from today's features. `load_network` raises by default (evaluation, export, resume);
`version_mismatch="warn"` loads it anyway with a warning (inspecting an old run).
"""
from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.files import atomic_write
from common.errors import KellyError
from preprocess.features.spec import FEATURE_VERSION
from train.outputs import checkpoint_path, find_checkpoint  # noqa: F401  (the names, defined once there)

FORMAT = "kelly-checkpoint-1"
REQUIRED = ("format", "network", "network_name", "model_state", "epoch", "feature_version", "config")


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Write atomically: a temporary file in the same folder, then os.replace (KellyError when
    the folder cannot be written)."""
    path = Path(path)
    with atomic_write(path, "wb") as f:
        torch.save(checkpoint, f)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU; KellyError when missing, unreadable or not a kelly checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise KellyError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for damaged files
        raise KellyError(f"{path}: not a readable checkpoint, the file is damaged or of another kind "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise KellyError(f"{path}: not a kelly checkpoint (format {found!r}, expected {FORMAT!r})")
    missing = [k for k in REQUIRED if k not in checkpoint]
    if missing:
        raise KellyError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return checkpoint


def check_feature_version(checkpoint: dict, path: str | Path, expected: str = FEATURE_VERSION,
                          version_mismatch: str = "error") -> None:
    found = checkpoint.get("feature_version")
    if found == expected:
        return
    message = f"{path}: trained on features {found!r}, but this code computes {expected!r}"
    if version_mismatch == "warn":
        warnings.warn(message, stacklevel=3)
    else:
        raise KellyError(message + "; retrain on a cache of the current version")


def load_network(path: str | Path, *, feature_version: str | None = FEATURE_VERSION,
                 version_mismatch: str = "error"):
    """(KellyNetwork with the checkpoint's weights in eval mode, checkpoint dict).

    KellyError for a damaged file, an unknown network, a state that does not fit the network's
    layers (naming the layer) or, unless `version_mismatch="warn"`, another feature version
    (`feature_version=None` skips that check).
    """
    from train.models import NETWORKS

    checkpoint = load_checkpoint(path)
    key = checkpoint["network"]
    if key not in NETWORKS:
        raise KellyError(f"{path}: unknown network {key!r}; known: {', '.join(NETWORKS)}")
    model = NETWORKS[key]()
    if checkpoint["network_name"] != model.name:
        raise KellyError(f"{path}: network {key!r} is {model.name}, "
                         f"but the checkpoint says {checkpoint['network_name']!r}")
    if feature_version is not None:
        check_feature_version(checkpoint, path, feature_version, version_mismatch)
    load_weights(model, checkpoint["model_state"], path)
    model.eval()
    return model, checkpoint


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path = "checkpoint") -> None:
    """model.load_state_dict(state) with a KellyError naming the first layer that does not fit."""
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise KellyError(f"{path}: {model.name} layer {name} {tuple(tensor.shape)} is missing from the checkpoint "
                             f"(a checkpoint of another architecture)")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise KellyError(f"{path}: {model.name} layer {name} has shape {tuple(state[name].shape)} in the "
                             f"checkpoint but {tuple(tensor.shape)} in the network (another architecture)")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise KellyError(f"{path}: the checkpoint has layer {extra[0]}, which {model.name} does not "
                         f"(another architecture)")
    model.load_state_dict(state)


def rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    """Every random state a training run draws from, in weights_only-loadable types."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "python": random.getstate(),
        "shuffle": shuffle.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], shuffle: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    shuffle.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def cpu_state(module_state: dict) -> dict:
    """A state dict's tensors copied to the CPU (checkpoints load on any device)."""
    return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else v for k, v in module_state.items()}
