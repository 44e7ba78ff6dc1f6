"""Dataset readers, one module per source, and where each source sits under a datasets folder.

    from preprocess.datasets import load_source, describe
    result = load_source("datasets", "maestro")          # layout detected
    result = load_source("datasets", "lakh", "lmd_matched")   # layout forced
    print(describe(result))

A source is looked for in its folder names (the shipped ones such as maestro-v3.0.0/, lmd_full/'s
parent, and the older guides' deam/, lakh_midi/, maestro/, groove/, harmony/) and in the datasets
folder itself. The most specific layout present wins (e.g. lmd_full over lmd_matched over
clean_midi, a metadata file over a bare MIDI folder). A bare-folder layout ("maestro-bare",
"groove-bare", "midi-folder", "chord-json") is only taken from the datasets folder itself when that
folder carries the source's name or label file, or when the layout is forced: otherwise any folder
of MIDI would look like every MIDI source at once.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from common.errors import KellyError
from preprocess.datasets.base import (
    LABEL_ANNOTATED,
    LABEL_PROXY,
    SPLITS,
    Item,
    ReadResult,
    assign_split,
    missing_lines,
    unused_lines,
)
from preprocess.features.spec import SOURCES

#: source name -> its reader, the module preprocess.datasets.<name>, in spec.SOURCES' order
READERS = {name: importlib.import_module(f"preprocess.datasets.{name}") for name in SOURCES}
#: layout name -> source name ("lmd_matched" -> "lakh")
LAYOUT_SOURCES = {layout: name for name, module in READERS.items() for layout in module.LAYOUTS}

__all__ = ["READERS", "LAYOUT_SOURCES", "find_source", "load_source", "available_sources", "describe",
           "Item", "ReadResult", "assign_split", "missing_lines", "unused_lines", "SPLITS",
           "LABEL_ANNOTATED", "LABEL_PROXY"]


def _reader(name: str):
    if name not in READERS:
        raise KellyError(f"unknown dataset source {name!r}; known: {', '.join(READERS)}")
    return READERS[name]


def _candidates(datasets_dir: Path, module) -> list[Path]:
    roots = [datasets_dir / folder for folder in module.FOLDER_NAMES]
    return [*dict.fromkeys(roots), datasets_dir]


def _accepts(datasets_dir: Path, root: Path, module, layout: str, forced: bool) -> bool:
    """Whether `root` may hold `layout` (the datasets folder itself takes a bare layout only when named for the source)."""
    if root != datasets_dir or layout not in getattr(module, "GENERIC_LAYOUTS", ()) or forced:
        return True
    if root.name.lower() in {f.rsplit("/", 1)[-1].lower() for f in module.FOLDER_NAMES}:
        return True
    return any((root / f).is_file() for f in getattr(module, "SIGNATURE_FILES", {}).get(layout, ()))


def locate(datasets_dir: Path | str, name: str, layout: str | None = None) -> tuple[Path, str]:
    """(root, layout) of source `name` under `datasets_dir`; `layout` forces one of the source's layouts.

    Raises KellyError listing every folder and layout it looked for when none is found.
    """
    datasets_dir = Path(datasets_dir)
    module = _reader(name)
    if layout is not None and layout not in module.LAYOUTS:
        owner = LAYOUT_SOURCES.get(layout)
        hint = f" ({layout!r} is a {owner} layout)" if owner else ""
        raise KellyError(f"{name} has no layout {layout!r}{hint}; its layouts: {', '.join(module.LAYOUTS)}")
    if not datasets_dir.is_dir():
        raise KellyError(f"{datasets_dir}: datasets folder not found")
    layouts = (layout,) if layout else module.LAYOUTS
    candidates = _candidates(datasets_dir, module)
    for wanted in layouts:
        for root in candidates:
            if root.is_dir() and _accepts(datasets_dir, root, module, wanted, layout is not None) \
                    and module.layout_present(root, wanted):
                return root, wanted
    folders = ", ".join(f"{f}/" for f in module.FOLDER_NAMES)
    looked = "; ".join(f"{lay}: {module.LAYOUT_DESCRIPTIONS[lay]}" for lay in layouts)
    raise KellyError(f"no {name} dataset found under {datasets_dir}: looked in {folders} and {datasets_dir} "
                     f"itself for {looked}")


def find_source(datasets_dir: Path | str, name: str, layout: str | None = None) -> Path:
    """The root folder of source `name` under `datasets_dir` (see `locate`)."""
    return locate(datasets_dir, name, layout)[0]


def load_source(datasets_dir: Path | str, name: str, layout: str | None = None, *, seed: int = 0,
                validation_split: float = 0.2, test_split: float = 0.0) -> ReadResult:
    """Find source `name` under `datasets_dir` and read it (the split arguments apply where it has no official split)."""
    root, found = locate(datasets_dir, name, layout)
    return READERS[name].load(root, found, seed=seed, validation_split=validation_split, test_split=test_split)


def available_sources(datasets_dir: Path | str) -> list[str]:
    """The sources found under `datasets_dir`, in READERS order."""
    found = []
    for name in READERS:
        try:
            locate(datasets_dir, name)
        except KellyError:
            continue
        found.append(name)
    return found


def describe(result: ReadResult) -> str:
    """One paragraph for the command line: items per split, annotated/proxy labels, what was skipped."""
    splits = result.split_counts()
    annotated = sum(item.label_source == LABEL_ANNOTATED for item in result.items)
    text = (f"{result.source} ({result.layout} at {result.root}): {len(result.items):,} items "
            f"(train {splits.get('train', 0):,}, validation {splits.get('validation', 0):,}, "
            f"test {splits.get('test', 0):,}); {annotated:,} with annotated labels, "
            f"{len(result.items) - annotated:,} to get proxy labels.")
    for line in missing_lines(result.missing_summary()):
        text += f" {line}."
    for line in unused_lines(result.unused_summary()):
        text += f" {line[0].upper()}{line[1:]}."
    if result.counts:
        text += " Counted: " + ", ".join(f"{n:,} {kind.replace('_', ' ')}" for kind, n in sorted(result.counts.items())) + "."
    if result.notes:
        shown = result.notes[:3]
        more = len(result.notes) - len(shown)
        text += " For example: " + "; ".join(shown) + (f" (and {more} more noted)." if more else ".")
    return text
