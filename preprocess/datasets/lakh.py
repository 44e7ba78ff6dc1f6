"""Lakh MIDI Dataset: multitrack songs, one item per distinct file content.

Layouts (most specific first):
  lmd_full     lmd_full/{first hex char}/{md5}.mid          (176,581 files)
  lmd_matched  lmd_matched/{R}/{R}/{R}/{MSD_ID}/{md5}.mid   (one file may sit under several MSD ids)
  clean_midi   clean_midi/{Artist}/{Title}.mid              (artist and title in metadata)
  midi-folder  any folder of .mid/.midi files (the older guides' `lakh_midi/`)

Every file is identified by the md5 of its content: taken from the file name when the name is an
md5 (as in lmd_full and lmd_matched, so no file is opened), otherwise computed from the bytes. A
content seen twice is one item; the extra copies are counted ("duplicates") and, in lmd_matched,
every MSD id it sits under is kept in metadata["msd_ids"]. The split is assign_split on the md5.
An optional emotion_labels.json ({file name or relative path: {"valence": v, "arousal": a}}) makes
the files it names "annotated"; the others are "proxy".

Every other entry under the root is recorded as unused with why (`ReadResult.unused`): the copies of
a content already read, files that are not MIDI, what `tree.Survey` names (dangling links, link
loops such as lmd_full/a/loop -> .., FIFOs), and the folders of the layouts not read in this run.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from common.errors import KellyError
from preprocess.datasets.base import (
    LABEL_ANNOTATED,
    LABEL_PROXY,
    MIDI_EXTENSIONS,
    Item,
    ReadResult,
    Tally,
    assign_split,
    has_files,
    match_labels,
    no_layout_found,
    read_label_json,
    unknown_layout,
)
from preprocess.datasets.tree import HIDDEN, Survey

NAME = "lakh"
LAYOUTS = ("lmd_full", "lmd_matched", "clean_midi", "midi-folder")
FOLDER_NAMES = ("lakh_midi", "lakh", "lmd")
LAYOUT_DESCRIPTIONS = {
    "lmd_full": "lmd_full/{hex}/{md5}.mid",
    "lmd_matched": "lmd_matched/{R}/{R}/{R}/{MSD_ID}/{md5}.mid",
    "clean_midi": "clean_midi/{Artist}/{Title}.mid",
    "midi-folder": "any .mid/.midi files",
}
LABEL_FILE = "emotion_labels.json"

MD5_NAME = re.compile(r"^[0-9a-f]{32}$")
MSD_ID = re.compile(r"^TR[A-Z0-9]{16}$")
_VERSION_SUFFIX = re.compile(r"^(?P<title>.+)\.(?P<version>\d+)$")
#: layouts any folder of MIDI/JSON would match: taken from an unnamed folder only when it holds a SIGNATURE_FILE
GENERIC_LAYOUTS = ("midi-folder",)
SIGNATURE_FILES = {"midi-folder": (LABEL_FILE,)}


def layout_dir(root: Path, layout: str) -> Path | None:
    """The folder holding `layout`'s files: root/<layout>, or root itself when it is that folder."""
    root = Path(root)
    if layout == "midi-folder":
        return root if root.is_dir() else None
    if layout not in LAYOUTS:
        raise unknown_layout("Lakh", layout, LAYOUTS)
    if (root / layout).is_dir():
        return root / layout
    if root.name == layout and root.is_dir():
        return root
    return None


def layout_present(root: Path, layout: str) -> bool:
    """True when `layout`'s folder is under (or is) `root` and holds at least one MIDI file."""
    directory = layout_dir(root, layout)
    return directory is not None and has_files(directory, MIDI_EXTENSIONS)


def detect(root: Path) -> str | None:
    """The most specific Lakh layout under `root` (lmd_full over lmd_matched over clean_midi), or None."""
    return next((layout for layout in LAYOUTS if layout_present(root, layout)), None)


def content_md5(relative: str, absolute: str) -> str:
    """The file's content md5: its name when the name is one (Lakh names files so), else hashed from the bytes."""
    stem = relative.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if MD5_NAME.match(stem):
        return stem
    digest = hashlib.md5()
    with open(absolute, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _path_metadata(relative: str, layout: str) -> dict:
    parts = relative.split("/")
    if layout == "lmd_matched":
        return {"msd_ids": [parts[-2]] if len(parts) >= 2 and MSD_ID.match(parts[-2]) else []}
    if layout == "clean_midi":
        stem = parts[-1].rsplit(".", 1)[0]
        match = _VERSION_SUFFIX.match(stem)
        title, version = (match["title"], int(match["version"])) if match else (stem, 0)
        return {"artist": parts[0] if len(parts) >= 2 else None, "title": title, "version": version}
    return {}


def load(root: Path, layout: str | None = None, *, seed: int = 0, validation_split: float = 0.2,
         test_split: float = 0.0) -> ReadResult:
    """Read Lakh MIDI under `root` (layout detected when None): one proxy- or annotated item per content md5."""
    root = Path(root)
    layout = layout or detect(root)
    if layout is None:
        raise no_layout_found("Lakh MIDI", root, LAYOUT_DESCRIPTIONS)
    directory = layout_dir(root, layout)
    if directory is None:
        raise KellyError(f"{root}: no {layout} folder; expected {LAYOUT_DESCRIPTIONS[layout]}")

    tally = Tally()
    survey = Survey.of(directory, MIDI_EXTENSIONS)
    entries: dict[str, tuple[str, str, dict]] = {}      # md5 -> (relative path, absolute path, metadata)
    identities: dict[str, str] = {}                     # relative path -> md5, every copy
    for relative, absolute in survey.with_extension(MIDI_EXTENSIONS):
        md5 = content_md5(relative, absolute)
        identities[relative] = md5
        metadata = _path_metadata(relative, layout)
        if md5 in entries:
            tally.add("duplicates", f"{relative} has the content of {entries[md5][0]}")
            tally.add_unused(DUPLICATE, _under(root, directory, relative))
            kept = entries[md5][2]
            for msd_id in metadata.get("msd_ids", ()):
                if msd_id not in kept["msd_ids"]:
                    kept["msd_ids"].append(msd_id)
            continue
        entries[md5] = (relative, absolute, {"md5": md5, "relative_path": relative, **metadata})

    labels_by_md5: dict[str, tuple[float, float]] = {}
    label_files = [p for p in dict.fromkeys((root / LABEL_FILE, directory / LABEL_FILE)) if p.is_file()]
    for label_file in label_files:
        matched = match_labels(read_label_json(label_file, tally), list(identities), label_file, tally,
                               prefixes=(f"{directory.name}/",), identities=identities)
        for relative, label in matched.items():
            md5 = identities[relative]
            if md5 in labels_by_md5:
                tally.add("duplicate_labels", f"{label_file.name}: {relative}")
            else:
                labels_by_md5[md5] = label

    items = []
    for md5, (relative, absolute, metadata) in entries.items():
        label = labels_by_md5.get(md5)
        items.append(Item(
            source=NAME, item_id=md5, path=Path(absolute),
            split=assign_split(md5, seed=seed, validation_split=validation_split, test_split=test_split),
            label_source=LABEL_ANNOTATED if label else LABEL_PROXY,
            valence=label[0] if label else None, arousal=label[1] if label else None, metadata=metadata,
        ))
    tally.leftovers(survey, set(identities) | {LABEL_FILE}, lambda relative: "not a MIDI file",
                    prefix=_under(root, directory, ""))
    if directory != root:
        _other_entries(root, directory, tally)
    return tally.result(NAME, layout, root, items)


DUPLICATE = "a copy of a file already read (the same content)"


def _under(root: Path, directory: Path, relative: str) -> str:
    """`relative` (under the layout's folder) as a path under the source's root."""
    return relative if directory == root else f"{directory.relative_to(root).as_posix()}/{relative}"


def _other_entries(root: Path, directory: Path, tally: Tally) -> None:
    """Name what lies beside the layout's folder, one entry each (a run reads one layout): the other
    layouts' folders, and, when the root is a Lakh folder (lakh_midi/, ...), everything else in it
    (a datasets folder holding lmd_full/ directly holds the other sources too: those are theirs)."""
    import os

    own_folder = root.name in FOLDER_NAMES
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name in (directory.name, LABEL_FILE):
            continue
        if entry.name in LAYOUTS and entry.is_dir():
            tally.add_unused(f"another Lakh layout's folder, not read in this layout (--layout {entry.name} "
                             "reads it)", entry.name + "/")
        elif own_folder:
            tally.add_unused(HIDDEN if entry.name.startswith(".") else
                             f"beside the {directory.name}/ folder, not read in this layout", entry.name)
