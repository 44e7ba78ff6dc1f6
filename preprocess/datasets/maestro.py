"""MAESTRO v3: piano performances (MIDI) with composer, title, year and an official split.

Layouts:
  maestro-csv   maestro-v3.0.0.csv with the MIDI files at their `midi_filename` (2018/....midi).
  maestro-json  maestro-v3.0.0.json (v3 is column-oriented: {"split": {"0": "train", ...}, ...};
                a list of row objects, as in v2, is read too).
  maestro-bare  any folder of .mid/.midi files (the older guides' `maestro/`), seeded split.

Labels are "proxy" (MAESTRO has no emotion annotations). With a metadata file the official split is
kept and `seed`/`validation_split`/`test_split` are not used; rows whose MIDI file is absent are
counted ("missing_midi"), and MIDI files the metadata does not list are counted ("files_not_in_metadata").
Every other file under the folder is recorded as unused with why (`ReadResult.unused`): MIDI the
metadata does not list, audio, anything else, and what `tree.Survey` names (dangling links, ...).
"""
from __future__ import annotations

from pathlib import Path

from common.errors import KellyError
from preprocess.datasets.base import (
    AUDIO_EXTENSIONS,
    LABEL_PROXY,
    MIDI_EXTENSIONS,
    SPLITS,
    Item,
    ReadResult,
    Tally,
    assign_split,
    has_files,
    no_layout_found,
    numeric_column,
    read_csv_table,
    read_json,
    require_columns,
    unknown_layout,
)
from preprocess.datasets.tree import Survey

NAME = "maestro"
LAYOUTS = ("maestro-csv", "maestro-json", "maestro-bare")
FOLDER_NAMES = ("maestro-v3.0.0", "maestro/maestro-v3.0.0", "maestro")
LAYOUT_DESCRIPTIONS = {
    "maestro-csv": "maestro-v3.0.0.csv with the MIDI files at its midi_filename paths",
    "maestro-json": "maestro-v3.0.0.json with the MIDI files at its midi_filename paths",
    "maestro-bare": "any .mid/.midi files",
}
COLUMNS = ("canonical_composer", "canonical_title", "split", "year", "midi_filename", "duration")
#: a layout any folder of MIDI would match: never taken from a folder not named for MAESTRO unless forced
GENERIC_LAYOUTS = ("maestro-bare",)


def metadata_file(root: Path, suffix: str) -> Path | None:
    """The MAESTRO metadata file with `suffix` (".csv" or ".json") under `root`: v3's name first, then
    any other release's `maestro-v*{suffix}` (newest name last in order wins), or None."""
    root = Path(root)
    preferred = root / f"maestro-v3.0.0{suffix}"
    if preferred.is_file():
        return preferred
    others = sorted(root.glob(f"maestro-v*{suffix}"))
    return others[-1] if others else None


def layout_present(root: Path, layout: str) -> bool:
    """True when the files that define `layout` are directly under `root`."""
    root = Path(root)
    if layout == "maestro-csv":
        return metadata_file(root, ".csv") is not None
    if layout == "maestro-json":
        return metadata_file(root, ".json") is not None
    if layout == "maestro-bare":
        return root.is_dir() and has_files(root, MIDI_EXTENSIONS)
    raise unknown_layout("MAESTRO", layout, LAYOUTS)


def detect(root: Path) -> str | None:
    """The most specific MAESTRO layout under `root`, or None."""
    return next((layout for layout in LAYOUTS if layout_present(root, layout)), None)


def read_metadata(path: Path):
    """MAESTRO's metadata (csv, or json column- or row-oriented) as a DataFrame with stripped column
    names, in file order. Raises KellyError naming the file when it is malformed or lacks a column."""
    import pandas as pd

    if path.suffix.lower() == ".json":
        data = read_json(path)
        if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
            columns = {str(k).strip(): v for k, v in data.items()}
            index = sorted({str(i) for col in columns.values() for i in col},
                           key=lambda i: (not i.isdigit(), int(i) if i.isdigit() else 0, i))
            table = pd.DataFrame({c: [values.get(i) for i in index] for c, values in columns.items()})
        elif isinstance(data, list) and all(isinstance(row, dict) for row in data):
            table = pd.DataFrame(data)
            table.columns = [str(c).strip() for c in table.columns]
        else:
            raise KellyError(f"{path}: expected MAESTRO metadata ({{column: {{row: value}}}} or a list of rows), "
                             f"found {type(data).__name__}")
        for column in table.columns:
            if column not in ("year", "duration"):
                table[column] = [None if v is None else str(v) for v in table[column]]
    else:
        table = read_csv_table(path)
    require_columns(table, path, COLUMNS)
    return table.astype(object).where(table.notna(), None)


def load(root: Path, layout: str | None = None, *, seed: int = 0, validation_split: float = 0.2,
         test_split: float = 0.0) -> ReadResult:
    """Read MAESTRO under `root` (layout detected when None) into proxy-labelled items."""
    root = Path(root)
    layout = layout or detect(root)
    if layout in ("maestro-csv", "maestro-json"):
        path = metadata_file(root, ".csv" if layout == "maestro-csv" else ".json")
        if path is None:
            raise KellyError(f"{root}: no MAESTRO metadata for layout {layout}; expected {LAYOUT_DESCRIPTIONS[layout]}")
        return _load_metadata(root, path, layout)
    if layout == "maestro-bare":
        return _load_bare(root, seed, validation_split, test_split)
    if layout is None:
        raise no_layout_found("MAESTRO", root, LAYOUT_DESCRIPTIONS)
    raise unknown_layout("MAESTRO", layout, LAYOUTS)


def _load_metadata(root: Path, path: Path, layout: str) -> ReadResult:
    import numpy as np

    tally = Tally()
    table = read_metadata(path)
    rows = [f"row {i} ({f})" for i, f in enumerate(table["midi_filename"])]
    years = numeric_column(table, "year", path, rows)
    durations = numeric_column(table, "duration", path, rows)
    has_audio = "audio_filename" in table.columns
    items: list[Item] = []
    listed: set[str] = set()
    for i, row in enumerate(table.to_dict("records")):
        midi = row["midi_filename"]
        if midi is None or not str(midi).strip():
            raise KellyError(f"{path}: row {i}: empty midi_filename")
        midi = str(midi).strip().replace("\\", "/")
        split = str(row["split"]).strip()
        if split not in SPLITS:
            raise KellyError(f"{path}: {rows[i]}: split {row['split']!r} is not one of {', '.join(SPLITS)}")
        if midi in listed:
            tally.add("duplicate_rows", f"{path.name}: {midi}")
            continue
        listed.add(midi)
        file = root / midi
        if not file.is_file():
            tally.add_missing("missing_midi", path.name, midi)
            continue
        metadata = {
            "composer": row["canonical_composer"],
            "title": row["canonical_title"],
            "year": None if np.isnan(years[i]) else int(years[i]),
            "duration": None if np.isnan(durations[i]) else float(durations[i]),
        }
        if has_audio and row["audio_filename"] is not None:
            metadata["audio_filename"] = row["audio_filename"]
        items.append(Item(source=NAME, item_id=midi, path=file, split=split,
                          label_source=LABEL_PROXY, metadata=metadata))
    survey = Survey.of(root, MIDI_EXTENSIONS)
    for relative, _ in survey.with_extension(MIDI_EXTENSIONS):
        if relative not in listed:
            tally.add("files_not_in_metadata", relative)
    audio = {str(a).strip().replace("\\", "/") for a in table["audio_filename"] if a} if has_audio else set()
    used = {item.item_id for item in items} | {p for p in survey.files if _is_metadata(p)}
    tally.leftovers(survey, used, lambda relative: _why_unused(relative, path.name, audio))
    return tally.result(NAME, layout, root, items)


def _is_metadata(relative: str) -> bool:
    """A MAESTRO metadata file (maestro-v*.csv or .json at the top), read as the listing."""
    return "/" not in relative and relative.startswith("maestro-v") and relative.endswith((".csv", ".json"))


def _why_unused(relative: str, listing: str, audio: set[str]) -> str:
    """Why a file under MAESTRO's folder that is no item is not used."""
    if relative.lower().endswith(MIDI_EXTENSIONS):
        return f"MIDI not listed in {listing}"
    if relative in audio or relative.lower().endswith(AUDIO_EXTENSIONS):
        return "audio (only the MIDI is read)"
    return "not a MIDI file"


def _load_bare(root: Path, seed: int, validation_split: float, test_split: float) -> ReadResult:
    survey = Survey.of(root, MIDI_EXTENSIONS)
    items = [
        Item(source=NAME, item_id=relative, path=Path(absolute),
             split=assign_split(relative, seed=seed, validation_split=validation_split, test_split=test_split),
             label_source=LABEL_PROXY, metadata={})
        for relative, absolute in survey.with_extension(MIDI_EXTENSIONS)
    ]
    tally = Tally()
    tally.leftovers(survey, {item.item_id for item in items},
                    lambda relative: "audio (only the MIDI is read)" if relative.lower().endswith(AUDIO_EXTENSIONS)
                    else "not a MIDI file")
    return tally.result(NAME, "maestro-bare", root, items)
