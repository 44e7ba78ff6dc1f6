"""What `kelly train` writes under its output folder, named once.

    <output>/checkpoints/<classname>_best.pt      best validation loss (evaluate, export)
    <output>/checkpoints/<classname>_latest.pt    after every epoch (--resume)
    <output>/history/<classname>_history.json     per-epoch rows, and .csv
    <output>/plots/<classname>_loss.png           curves, and _metric.png
    <plots>/<classname>_emotion_response.png      `kelly evaluate`: a conditioned network's emotion response
    <plots>/emotionrecognizer_scatter.png         `kelly evaluate`: predicted against annotated valence, arousal

<classname> is the network's class name in lower case ("emotionrecognizer"), the names the older
guides document and the exported JSON files carry (emotionrecognizer.json). Runs made before used
the cache key ("emotion_best.pt"): readers find those too (`find_checkpoint`), and `--resume`
renames them to the current names first (`adopt_earlier_names`).

Nothing here imports torch.
"""
from __future__ import annotations

import os
from pathlib import Path

from common.errors import KellyError
from common.files import check_output_dir, remove_stale_temporaries
from train.config import TRAINED_NAMES

CHECKPOINTS, HISTORY, PLOTS = "checkpoints", "history", "plots"
CHECKPOINT_KINDS = ("best", "latest")


def file_stem(key: str) -> str:
    """The start of every output file name of network `key`: its class name in lower case."""
    return TRAINED_NAMES[key].lower()


def _checkpoint_name(stem: str, kind: str) -> str:
    if kind not in CHECKPOINT_KINDS:
        raise ValueError(f"checkpoint kind must be one of {CHECKPOINT_KINDS}, got {kind!r}")
    return f"{stem}_{kind}.pt"


def _history_files(output: str | Path, stem: str) -> tuple[Path, Path]:
    return Path(output) / HISTORY / f"{stem}_history.json", Path(output) / HISTORY / f"{stem}_history.csv"


def _plot_files(output: str | Path, stem: str) -> tuple[Path, Path]:
    return Path(output) / PLOTS / f"{stem}_loss.png", Path(output) / PLOTS / f"{stem}_metric.png"


def checkpoint_name(key: str, kind: str = "best") -> str:
    """"emotion", "best" -> "emotionrecognizer_best.pt"."""
    return _checkpoint_name(file_stem(key), kind)


def checkpoint_path(output: str | Path, key: str, kind: str = "best") -> Path:
    """`<output>/checkpoints/<classname>_<kind>.pt`, kind "best" or "latest"."""
    return Path(output) / CHECKPOINTS / checkpoint_name(key, kind)


def history_paths(output: str | Path, key: str) -> tuple[Path, Path]:
    """(`<output>/history/<classname>_history.json`, the same `.csv`)."""
    return _history_files(output, file_stem(key))


def plot_paths(output: str | Path, key: str) -> tuple[Path, Path]:
    """(`<output>/plots/<classname>_loss.png`, `..._metric.png`)."""
    return _plot_files(output, file_stem(key))


def response_plot_path(plots_dir: str | Path, key: str) -> Path:
    """`<plots_dir>/<classname>_emotion_response.png`: heatmaps of network `key`'s emotion response."""
    return Path(plots_dir) / f"{file_stem(key)}_emotion_response.png"


def scatter_plot_path(plots_dir: str | Path) -> Path:
    """`<plots_dir>/emotionrecognizer_scatter.png`: the EmotionRecognizer's predicted against
    annotated valence and arousal."""
    return Path(plots_dir) / f"{file_stem('emotion')}_scatter.png"


def output_paths(output: str | Path, key: str, stem: str | None = None) -> list[Path]:
    """Every file a run writes for network `key` (with another `stem`: the same files under that name)."""
    stem = stem or file_stem(key)
    return [Path(output) / CHECKPOINTS / _checkpoint_name(stem, kind) for kind in CHECKPOINT_KINDS] + [
        *_history_files(output, stem), *_plot_files(output, stem)]


def find_checkpoint(checkpoint_dir: str | Path, key: str, kind: str = "best") -> Path:
    """`<dir>/<classname>_<kind>.pt`, or the same under `<dir>/checkpoints/` (a training output
    folder); a run made before under the cache key's name (`emotion_best.pt`) is found too.
    KellyError naming where it looked when there is none."""
    found = existing_checkpoint(checkpoint_dir, key, kind)
    if found is None:
        found = existing_checkpoint(Path(checkpoint_dir) / CHECKPOINTS, key, kind)
    if found is None:
        expected = Path(checkpoint_dir) / checkpoint_name(key, kind)
        inside = Path(checkpoint_dir) / CHECKPOINTS / checkpoint_name(key, kind)
        raise KellyError(f"{expected}: checkpoint not found (nor {inside})")
    return found


def existing_checkpoint(folder: str | Path, key: str, kind: str = "best") -> Path | None:
    """The checkpoint of `key` in `folder` under its name, else under the earlier name; None when neither."""
    for name in (checkpoint_name(key, kind), _checkpoint_name(key, kind)):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def checkpoints_present(folder: str | Path, keys: list[str], kind: str = "best") -> dict[str, Path]:
    """network key -> its `kind` checkpoint in `folder`, for the keys that have one; a KellyError when
    the folder is missing, not a folder, or holds none of them (checked without torch, at once)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KellyError(f"{folder}: no {kind} checkpoints ({'not a folder' if folder.exists() else 'no such folder'}; "
                         "give the checkpoints/ folder that `kelly train` wrote)")
    found = {key: path for key in keys if (path := existing_checkpoint(folder, key, kind)) is not None}
    if not found:
        raise KellyError(f"{folder}: no {kind} checkpoints (expected e.g. {checkpoint_name(keys[0], kind)})")
    return found


def adopt_earlier_names(output: str | Path, key: str) -> list[tuple[Path, Path]]:
    """Rename the files of a run made under the earlier names (`emotion_latest.pt`, ...) to the
    current ones, where the current one does not exist yet; returns the (old, new) pairs renamed."""
    renamed = []
    for old, new in zip(output_paths(output, key, stem=key), output_paths(output, key)):
        if old.is_file() and not new.exists():
            try:
                os.replace(old, new)
            except OSError as exc:
                raise KellyError(f"{old}: cannot rename to {new.name}: {exc.strerror or exc}") from None
            renamed.append((old, new))
    return renamed


def check_outputs(output: str | Path, *, history: bool = True, plots: bool = True) -> None:
    """Before the first epoch: KellyError when the folders a run writes cannot be written."""
    check_output_dir(output, "--output")
    check_output_dir(Path(output) / CHECKPOINTS, "checkpoint folder")
    if history:
        check_output_dir(Path(output) / HISTORY, "history folder")
    if plots:
        check_output_dir(Path(output) / PLOTS, "plot folder")


def remove_stale_outputs(output: str | Path) -> list[Path]:
    """Remove the temporaries that killed runs left in the checkpoint, history and plot folders."""
    removed = []
    for folder in (CHECKPOINTS, HISTORY, PLOTS):
        removed += remove_stale_temporaries(Path(output) / folder)
    return removed
