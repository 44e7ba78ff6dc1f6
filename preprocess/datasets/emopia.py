"""EMOPIA: pop-piano clips (MIDI) with the Russell quadrant four annotators heard in each.

Layouts (most specific first):
  emopia-release  the Zenodo release as distributed (EMOPIA_1.0, 2.x): ``midis/{Q}_{song}_{n}.mid``,
                  ``label.csv`` (``ID,4Q,annotator``: the clip, its quadrant 1-4, the annotator),
                  ``metadata_by_song.csv`` (``songID,num_Q1..num_Q4,DominantQ``) and, where the
                  split script was run, ``split/train_clip.csv``, ``val_clip.csv``, ``test_clip.csv``
                  (``clip_name``, e.g. ``Q1_xxx_0.mid``) or the song-level ``train_SL.csv``, ...
                  (``songID``).
  emopia-split    ``midis/`` + ``split/train.csv``, ``split/val.csv`` and optionally
                  ``split/test.csv`` (``fname,label``, fname without ``.mid``), as published with
                  the paper's classification code.
  emopia-bare     any folder of clips named ``Q{1-4}_{song}_{n}.mid`` (``midis/`` or the folder
                  itself): the quadrant from the file name.

A clip's name is ``Q{quadrant}_{YouTube id}_{clip index}`` (YouTube ids hold ``_`` and ``-``: the
quadrant is the first field, the clip index the last). The quadrant is the human label, and it
gives the signs of (valence, arousal), label_source "annotated":

    Q1 (+1, +1) happy   Q2 (-1, +1) tense   Q3 (-1, -1) sad   Q4 (+1, -1) calm

The quadrant comes from ``label.csv`` when it lists the clip, else from the split file's label,
else from the file name; where two of them disagree the clip is skipped and counted
("quadrant_conflicts"). The official split (the split files) is kept; a clip no split file lists
goes where the other clips of its song were listed, and when none of its song was, to
`assign_split` of its song id (all clips of a song on one side). Files whose names are not clip
names and that no label file names are counted ("unlabelled_files") and skipped; split or label
rows naming clips that are absent are reported as missing.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from common.errors import KellyError
from preprocess.datasets.base import (
    LABEL_ANNOTATED,
    MIDI_EXTENSIONS,
    Item,
    ReadResult,
    Tally,
    assign_split,
    iter_files,
    no_layout_found,
    read_csv_table,
    require_columns,
    unknown_layout,
)
from preprocess.features import spec

NAME = "emopia"
LAYOUTS = ("emopia-release", "emopia-split", "emopia-bare")
FOLDER_NAMES = ("emopia", "EMOPIA_1.0", "EMOPIA_2.2", "EMOPIA_2.1", "EMOPIA_2.0", "EMOPIA")
LAYOUT_DESCRIPTIONS = {
    "emopia-release": "label.csv (ID,4Q,annotator) with the clips in midis/ (the Zenodo release)",
    "emopia-split": "midis/ with split/train.csv and split/val.csv (fname,label)",
    "emopia-bare": "clips named Q{1-4}_{song}_{n}.mid in midis/ or in the folder itself",
}
MIDI_FOLDER = "midis"
LABEL_FILE = "label.csv"
SONG_FILE = "metadata_by_song.csv"
SPLIT_FOLDER = "split"
#: split -> the file names its clip list may have under split/, clip level first, then song level
SPLIT_FILES = {
    "train": (("train_clip.csv", "train.csv"), ("train_SL.csv",)),
    "validation": (("val_clip.csv", "val.csv", "valid.csv", "validation.csv"), ("val_SL.csv",)),
    "test": (("test_clip.csv", "test.csv"), ("test_SL.csv",)),
}
CLIP_COLUMNS = ("clip_name", "fname", "ID", "name", "filename")
LABEL_COLUMNS = ("label", "4Q", "DominantQ")
SONG_COLUMNS = ("songID", "song_id", "song")
#: a layout any folder of MIDI would match: taken from an unnamed folder only when forced
GENERIC_LAYOUTS = ("emopia-bare",)

#: quadrant -> (valence, arousal): the signs of Russell's quadrants
QUADRANT_LABELS = {1: (1.0, 1.0), 2: (-1.0, 1.0), 3: (-1.0, -1.0), 4: (1.0, -1.0)}
CLIP_NAME = re.compile(spec.EMOPIA_CLIP_NAME)


def parse_clip_name(name: str) -> dict | None:
    """{"quadrant": 1..4, "song": YouTube id, "clip": n} from "Q1_0vLPYiPN7qY_0" (with or without
    .mid), or None when `name` is not a clip name."""
    stem = clip_stem(name)
    match = CLIP_NAME.match(stem)
    if not match:
        return None
    return {"quadrant": int(match["quadrant"]), "song": match["song"], "clip": int(match["clip"])}


def clip_stem(name: str) -> str:
    """A clip's name without folder and MIDI extension: "midis/Q1_x_0.mid" -> "Q1_x_0"."""
    name = str(name).strip().replace("\\", "/").rsplit("/", 1)[-1]
    for extension in MIDI_EXTENSIONS:
        if name.lower().endswith(extension):
            return name[: -len(extension)]
    return name


def parse_quadrant(value) -> int | None:
    """1..4 from "Q3", "3", 3 or 3.0; None for anything else (an empty cell included)."""
    if value is None:
        return None
    text = str(value).strip().upper()
    if text.startswith("Q"):
        text = text[1:]
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() and 1 <= number <= 4 else None


def quadrant_labels(quadrant: int) -> tuple[float, float]:
    """(valence, arousal) of a quadrant 1..4: the signs, +-1."""
    return QUADRANT_LABELS[quadrant]


def clip_folder(root: Path) -> Path:
    """Where the clips are: root/midis when it exists, else root."""
    root = Path(root)
    return root / MIDI_FOLDER if (root / MIDI_FOLDER).is_dir() else root


def split_files(root: Path) -> dict[str, tuple[Path, str]]:
    """{split: (file, "clip" or "song")} of the split files present under root/split/."""
    folder = Path(root) / SPLIT_FOLDER
    found = {}
    for split, (clip_names, song_names) in SPLIT_FILES.items():
        for level, names in (("clip", clip_names), ("song", song_names)):
            path = next((folder / n for n in names if (folder / n).is_file()), None)
            if path is not None and split not in found:
                found[split] = (path, level)
    return found


def layout_present(root: Path, layout: str) -> bool:
    """True when the files that define `layout` are directly under `root`."""
    root = Path(root)
    if layout == "emopia-release":
        return (root / LABEL_FILE).is_file() and (root / MIDI_FOLDER).is_dir()
    if layout == "emopia-split":
        return (root / MIDI_FOLDER).is_dir() and bool(split_files(root))
    if layout == "emopia-bare":
        folder = clip_folder(root)
        return folder.is_dir() and any(parse_clip_name(r) for r, _ in iter_files(folder, MIDI_EXTENSIONS))
    raise unknown_layout("EMOPIA", layout, LAYOUTS)


def detect(root: Path) -> str | None:
    """The most specific EMOPIA layout under `root`, or None."""
    return next((layout for layout in LAYOUTS if layout_present(root, layout)), None)


def load(root: Path, layout: str | None = None, *, seed: int = 0, validation_split: float = 0.2,
         test_split: float = 0.0) -> ReadResult:
    """Read EMOPIA under `root` (layout detected when None) into annotated items, one per clip.

    item_id is the clip's name ("Q1_0vLPYiPN7qY_0"); metadata holds its "song" (the YouTube id,
    the unit a held-out split must keep whole), "clip", "quadrant" and, from label.csv, "annotator".
    """
    root = Path(root)
    layout = layout or detect(root)
    if layout not in LAYOUTS:
        if layout is None:
            raise no_layout_found("EMOPIA", root, LAYOUT_DESCRIPTIONS)
        raise unknown_layout("EMOPIA", layout, LAYOUTS)
    tally = Tally()
    folder = clip_folder(root)
    files = {clip_stem(relative): Path(absolute) for relative, absolute in iter_files(folder, MIDI_EXTENSIONS)}
    release_labels = _release_labels(root, tally) if layout == "emopia-release" else {}
    listed, listed_labels = _official_split(root, files, tally) if layout != "emopia-bare" else ({}, {})

    songs: dict[str, str] = {}
    quadrants: dict[str, int] = {}
    for name in files:
        parsed = parse_clip_name(name)
        if release_labels.get(name, (None,))[0] == 0:
            continue                                    # listed with two quadrants in label.csv: counted there
        votes = {kind: q for kind, q in (("label.csv", release_labels.get(name, (None,))[0]),
                                         ("split file", listed_labels.get(name)),
                                         ("file name", parsed["quadrant"] if parsed else None)) if q is not None}
        if not votes:
            tally.add("unlabelled_files", f"{name}: not a clip name (Q{{1-4}}_{{song}}_{{n}}) and no label file names it")
            continue
        if len(set(votes.values())) > 1:
            tally.add("quadrant_conflicts", f"{name}: " + ", ".join(f"{k} Q{q}" for k, q in votes.items()))
            continue
        quadrants[name] = next(iter(votes.values()))
        songs[name] = parsed["song"] if parsed else name

    song_splits: dict[str, Counter] = {}
    for name, split in listed.items():
        if name in quadrants:
            song_splits.setdefault(songs[name], Counter())[split] += 1
    items = []
    for name, quadrant in quadrants.items():
        song = songs[name]
        if name in listed:
            split = listed[name]
        elif song in song_splits:
            split = song_splits[song].most_common(1)[0][0]
            if listed:
                tally.add("clips_not_in_split_files", f"{name}: with its song, in {split}")
        else:
            split = assign_split(song, seed=seed, validation_split=validation_split, test_split=test_split)
            if listed:
                tally.add("clips_not_in_split_files", f"{name}: seeded split of its song, {split}")
        valence, arousal = quadrant_labels(quadrant)
        parsed = parse_clip_name(name)
        metadata = {"song": song, "clip": parsed["clip"] if parsed else None, "quadrant": f"Q{quadrant}"}
        if name in release_labels and release_labels[name][1] is not None:
            metadata["annotator"] = release_labels[name][1]
        items.append(Item(source=NAME, item_id=name, path=files[name], split=split, label_source=LABEL_ANNOTATED,
                          valence=valence, arousal=arousal, metadata=metadata))
    return ReadResult(NAME, layout, root, items, tally.counts, tally.notes, tally.missing)


def _release_labels(root: Path, tally: Tally) -> dict[str, tuple[int, str | None]]:
    """label.csv: {clip name: (quadrant, annotator)}, quadrant 0 for a clip listed with two
    quadrants (counted, "quadrant_conflicts"); rows with a quadrant that is not 1-4 are counted
    ("bad_labels") and left out, clips it lists that are absent reported as missing."""
    path = root / LABEL_FILE
    table = read_csv_table(path)
    clip_column = _first_present(table, path, CLIP_COLUMNS, "clip")
    label_column = _first_present(table, path, ("4Q", *LABEL_COLUMNS), "quadrant")
    files = {clip_stem(r) for r, _ in iter_files(clip_folder(root), MIDI_EXTENSIONS)}
    labels: dict[str, tuple[int, str | None]] = {}
    for i, row in enumerate(table.to_dict("records")):
        raw_name = row.get(clip_column)
        if not isinstance(raw_name, str) or not raw_name.strip():
            tally.add("bad_labels", f"{LABEL_FILE}: line {i + 2}: empty {clip_column}")
            continue
        name = clip_stem(raw_name)
        quadrant = parse_quadrant(row.get(label_column))
        if quadrant is None:
            tally.add("bad_labels", f"{LABEL_FILE}: line {i + 2} ({name}): {label_column} {row.get(label_column)!r} "
                                    "is not a quadrant 1-4")
            continue
        if name in labels:
            if labels[name][0] != quadrant:
                tally.add("quadrant_conflicts", f"{LABEL_FILE}: {name} listed as Q{labels[name][0]} and Q{quadrant}")
                labels[name] = (0, None)
            continue
        if name not in files:
            tally.add_missing("missing_midi", LABEL_FILE, name)
            continue
        annotator = row.get("annotator")
        labels[name] = (quadrant, str(annotator).strip() if isinstance(annotator, str) else None)
    return labels


def _official_split(root: Path, files: dict[str, Path], tally: Tally) -> tuple[dict[str, str], dict[str, int]]:
    """({clip name: split}, {clip name: quadrant from the split file's label column}) from the split
    files; a clip listed in two splits keeps the first (train, validation, test) and is counted."""
    listed: dict[str, str] = {}
    labels: dict[str, int] = {}
    songs: dict[str, list[str]] = {}
    for name in files:
        parsed = parse_clip_name(name)
        songs.setdefault(parsed["song"] if parsed else name, []).append(name)
    for split, (path, level) in split_files(root).items():
        table = read_csv_table(path)
        if level == "song":
            column = _first_present(table, path, SONG_COLUMNS, "song")
            for song in table[column].dropna():
                for name in songs.get(str(song).strip(), []):
                    _list(listed, name, split, path, tally)
            continue
        column = _first_present(table, path, CLIP_COLUMNS, "clip")
        label_column = next((c for c in LABEL_COLUMNS if c in table.columns), None)
        for i, row in enumerate(table.to_dict("records")):
            raw = row.get(column)
            if not isinstance(raw, str) or not raw.strip():
                tally.add("bad_split_rows", f"{path.name}: line {i + 2}: empty {column}")
                continue
            name = clip_stem(raw)
            if name not in files:
                tally.add_missing("missing_midi", f"{SPLIT_FOLDER}/{path.name}", name)
                continue
            if label_column is not None and row.get(label_column) is not None:
                quadrant = parse_quadrant(row.get(label_column))
                if quadrant is None:
                    tally.add("bad_labels", f"{path.name}: line {i + 2} ({name}): {label_column} "
                                            f"{row.get(label_column)!r} is not a quadrant 1-4")
                elif labels.setdefault(name, quadrant) != quadrant:
                    tally.add("quadrant_conflicts", f"{path.name}: {name} labelled Q{quadrant} and Q{labels[name]}")
            _list(listed, name, split, path, tally)
    return listed, labels


def _list(listed: dict[str, str], name: str, split: str, path: Path, tally: Tally) -> None:
    if name in listed:
        if listed[name] != split:
            tally.add("clips_in_two_splits", f"{name}: in {listed[name]} and {path.name}; kept {listed[name]}")
        return
    listed[name] = split


def _first_present(table, path: Path, columns: tuple[str, ...], what: str) -> str:
    column = next((c for c in columns if c in table.columns), None)
    if column is None:
        require_columns(table, path, *((c,) for c in columns))
        raise KellyError(f"{path}: no {what} column")       # not reached: require_columns raised
    return column
