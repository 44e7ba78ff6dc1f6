"""A labeller checkpoint, loaded back and named.

    model, checkpoint = load_labeller(path)     # KellyError for anything but a labeller of this code's frames
    labeller_id(path)                           # "3f9a0c1b2d4e": the <id> of the label source "labeller:<id>"
"""
from __future__ import annotations

from pathlib import Path

from common.errors import KellyError
from preprocess.features import spec
from train.labeller_network import KEY, LabellerNetwork


def load_labeller(path: str | Path) -> tuple[LabellerNetwork, dict]:
    """(the labeller in eval mode, its checkpoint dict) from a checkpoint file: the network, or with
    the valence trees the training wrote into the checkpoint, `train.labeller_trees.TreeValence`.

    KellyError, one line naming the file, for a file that is not a kelly checkpoint, a checkpoint
    of another network, or a labeller trained on frames of another version than this code computes.
    """
    from train.checkpoints import load_checkpoint, load_weights

    path = Path(path)
    checkpoint = load_checkpoint(path)
    if checkpoint["network"] != KEY:
        raise KellyError(f"{path}: a checkpoint of {checkpoint['network_name']}, not of the "
                         f"{LabellerNetwork.name}")
    found = checkpoint.get("labeller_version")
    if found != spec.LABELLER_VERSION:
        raise KellyError(f"{path}: a labeller trained on frames {found!r}, but this code computes "
                         f"{spec.LABELLER_VERSION!r}; train it again (kelly preprocess emopia, kelly train "
                         f"--models labeller)")
    config = checkpoint.get("model_config")
    if not isinstance(config, dict) or "inputs" not in config:
        raise KellyError(f"{path}: the labeller checkpoint lacks its model settings (model_config)")
    if config["inputs"] != spec.LABELLER_INPUTS:
        raise KellyError(f"{path}: a labeller of {config['inputs']} inputs per frame, this code makes "
                         f"{spec.LABELLER_INPUTS}")
    try:
        model = LabellerNetwork(**config)
    except TypeError as exc:
        raise KellyError(f"{path}: the labeller's model settings {config} are not this code's ({exc})") from None
    load_weights(model, checkpoint["model_state"], path)
    model.eval()
    if checkpoint.get("valence_trees") is not None:
        from train.labeller_trees import TreeValence, trees_from_bytes

        try:
            trees = trees_from_bytes(checkpoint["valence_trees"])
        except Exception as exc:                              # a pickle of another scikit-learn, or damaged
            raise KellyError(f"{path}: its valence trees cannot be read ({type(exc).__name__}: {exc}); "
                             "train the labeller again") from None
        return TreeValence(model, trees).eval(), checkpoint
    return model, checkpoint


def labeller_id(checkpoint_path: str | Path) -> str:
    """A short digest of a labeller checkpoint file (12 hex characters of its BLAKE2b): the <id>
    of the label source "labeller:<id>" of the labels it gave."""
    import hashlib

    digest = hashlib.blake2b(digest_size=6)
    with open(checkpoint_path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
