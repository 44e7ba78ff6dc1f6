"""Groove MIDI Dataset (GMD): drum performances with style, tempo, beat/fill and an official split.

Layouts:
  groove-csv   info.csv (drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,
               audio_filename,duration,split) with the MIDI files at their midi_filename; official
               split kept (`seed`/`validation_split`/`test_split` unused); rows whose MIDI file is
               absent are counted ("missing_midi").
  groove-bare  any folder of drum .mid files (the older guides' `groove/`); seeded split on the
               relative path; metadata parsed from GMD file names `{id}_{style}_{bpm}_{beat|fill}_{ts}.mid`.

Every other file under the folder is recorded as unused with why (`ReadResult.unused`): MIDI that
info.csv does not list, audio, anything else, and what `tree.Survey` names (dangling links, ...).

An optional drum_labels.json ({relative path or file name: {"valence": v, "arousal": a}}, values in
[-1, 1]) makes the files it names "annotated"; every other file is "proxy".
"""
from __future__ import annotations

import re
from pathlib import Path

from common.errors import KellyError
from preprocess.datasets.base import (
    AUDIO_EXTENSIONS,
    LABEL_ANNOTATED,
    LABEL_PROXY,
    MIDI_EXTENSIONS,
    SPLITS,
    Item,
    ReadResult,
    Tally,
    assign_split,
    has_files,
    match_labels,
    no_layout_found,
    numeric_column,
    read_csv_table,
    read_label_json,
    require_columns,
    unknown_layout,
)
from preprocess.datasets.tree import Survey

NAME = "groove"
LAYOUTS = ("groove-csv", "groove-bare")
FOLDER_NAMES = ("groove", "groove-v1.0.0-midionly/groove", "groove-v1.0.0/groove", "groove-v1.0.0-midionly",
                "groove-v1.0.0")
LAYOUT_DESCRIPTIONS = {
    "groove-csv": "info.csv with the MIDI files at its midi_filename paths",
    "groove-bare": "any .mid/.midi files (GMD names {id}_{style}_{bpm}_{beat|fill}_{ts}.mid parsed when they match)",
}
INFO_FILE = "info.csv"
LABEL_FILE = "drum_labels.json"
COLUMNS = ("drummer", "session", "id", "style", "bpm", "beat_type", "time_signature", "midi_filename",
           "duration", "split")

#: GMD file name: 1_funk-groove1_138_beat_4-4.mid (the style's "/" is written "-")
GMD_FILE_NAME = re.compile(r"^(?P<id>\d+)_(?P<style>[A-Za-z0-9]+(?:-[A-Za-z0-9-]+)?)_(?P<bpm>\d+)_"
                           r"(?P<beat_type>beat|fill)_(?P<time_signature>\d+-\d+)\.midi?$", re.IGNORECASE)
#: layouts any folder of MIDI/JSON would match: taken from an unnamed folder only when it holds a SIGNATURE_FILE
GENERIC_LAYOUTS = ("groove-bare",)
SIGNATURE_FILES = {"groove-bare": (LABEL_FILE,)}


def split_style(style: str) -> tuple[str, str | None]:
    """("funk", "groove1") from "funk/groove1"; ("rock", None) from "rock"."""
    style = style.strip()
    primary, _, sub = style.partition("/")
    return primary, (sub or None)


def parse_file_name(name: str) -> dict | None:
    """Metadata from a GMD file name, or None when `name` does not follow the pattern.

    "1_funk-groove1_138_beat_4-4.mid" -> {"take": 1, "style": "funk", "substyle": "groove1",
    "bpm": 138, "beat_type": "beat", "time_signature": "4-4"}. The first "-" separates style from
    substyle ("latin-brazilian-baiao" -> "latin", "brazilian-baiao"), as GMD's primary styles have none.
    """
    match = GMD_FILE_NAME.match(name)
    if not match:
        return None
    primary, _, sub = match["style"].partition("-")
    return {"take": int(match["id"]), "style": primary, "substyle": sub or None, "bpm": int(match["bpm"]),
            "beat_type": match["beat_type"].lower(), "time_signature": match["time_signature"]}


def layout_present(root: Path, layout: str) -> bool:
    """True when the files that define `layout` are directly under `root`."""
    root = Path(root)
    if layout == "groove-csv":
        return (root / INFO_FILE).is_file()
    if layout == "groove-bare":
        return root.is_dir() and has_files(root, MIDI_EXTENSIONS)
    raise unknown_layout("Groove", layout, LAYOUTS)


def detect(root: Path) -> str | None:
    """The most specific Groove layout under `root`, or None."""
    return next((layout for layout in LAYOUTS if layout_present(root, layout)), None)


def load(root: Path, layout: str | None = None, *, seed: int = 0, validation_split: float = 0.2,
         test_split: float = 0.0) -> ReadResult:
    """Read the Groove MIDI Dataset under `root` (layout detected when None)."""
    root = Path(root)
    layout = layout or detect(root)
    if layout not in LAYOUTS:
        if layout is None:
            raise no_layout_found("Groove", root, LAYOUT_DESCRIPTIONS)
        raise unknown_layout("Groove", layout, LAYOUTS)
    tally = Tally()
    survey = Survey.of(root, MIDI_EXTENSIONS)
    if layout == "groove-csv":
        entries = _entries_from_info(root, survey, tally)
    else:
        entries = _entries_from_files(survey, seed, validation_split, test_split)

    labels = {}
    label_file = root / LABEL_FILE
    if label_file.is_file():
        labels = match_labels(read_label_json(label_file, tally), [e[0] for e in entries], label_file, tally)
    items = []
    for relative, split, metadata in entries:
        label = labels.get(relative)
        items.append(Item(
            source=NAME, item_id=relative, path=root / relative, split=split,
            label_source=LABEL_ANNOTATED if label else LABEL_PROXY,
            valence=label[0] if label else None, arousal=label[1] if label else None, metadata=metadata,
        ))
    unlisted = f"MIDI not listed in {INFO_FILE}" if layout == "groove-csv" else "not a MIDI file"
    tally.leftovers(survey, {item.item_id for item in items} | {INFO_FILE, LABEL_FILE},
                    lambda relative: unlisted if relative.lower().endswith(MIDI_EXTENSIONS)
                    else "audio (only the MIDI is read)" if relative.lower().endswith(AUDIO_EXTENSIONS)
                    else "not a MIDI file")
    return tally.result(NAME, layout, root, items)


def _entries_from_info(root: Path, survey: Survey, tally: Tally) -> list[tuple[str, str, dict]]:
    """(relative path, official split, metadata) for every info.csv row whose MIDI file exists."""
    import numpy as np

    path = root / INFO_FILE
    table = read_csv_table(path)
    require_columns(table, path, COLUMNS)
    table = table.astype(object).where(table.notna(), None)
    rows = [f"line {i + 2} ({f})" for i, f in enumerate(table["midi_filename"])]
    bpms = numeric_column(table, "bpm", path, rows)
    durations = numeric_column(table, "duration", path, rows)
    entries = []
    listed = set()
    for i, row in enumerate(table.to_dict("records")):
        if not row["midi_filename"]:
            raise KellyError(f"{path}: line {i + 2}: empty midi_filename")
        relative = str(row["midi_filename"]).strip().replace("\\", "/")
        split = str(row["split"]).strip()
        if split not in SPLITS:
            raise KellyError(f"{path}: {rows[i]}: split {row['split']!r} is not one of {', '.join(SPLITS)}")
        if relative in listed:
            tally.add("duplicate_rows", f"{INFO_FILE}: {relative}")
            continue
        listed.add(relative)
        if not (root / relative).is_file():
            tally.add_missing("missing_midi", INFO_FILE, relative)
            continue
        style, substyle = split_style(row["style"] or "")
        metadata = {
            "style": style, "substyle": substyle,
            "bpm": None if np.isnan(bpms[i]) else (int(bpms[i]) if bpms[i].is_integer() else float(bpms[i])),
            "beat_type": row["beat_type"], "time_signature": row["time_signature"],
            "drummer": row["drummer"], "session": row["session"], "groove_id": row["id"],
            "duration": None if np.isnan(durations[i]) else float(durations[i]),
        }
        if row.get("audio_filename"):
            metadata["audio_filename"] = row["audio_filename"]
        entries.append((relative, split, metadata))
    for relative, _ in survey.with_extension(MIDI_EXTENSIONS):
        if relative not in listed:
            tally.add("files_not_in_metadata", relative)
    return entries


_DRUMMER = re.compile(r"^drummer\d+$")


def _entries_from_files(survey: Survey, seed: int, validation_split: float, test_split: float):
    """(relative path, seeded split, metadata parsed from the name and folders) for every MIDI file."""
    entries = []
    for relative, _ in survey.with_extension(MIDI_EXTENSIONS):
        parts = relative.split("/")
        metadata = parse_file_name(parts[-1]) or {}
        if len(parts) >= 2 and _DRUMMER.match(parts[0]):
            metadata["drummer"] = parts[0]
            if len(parts) >= 3:
                metadata["session"] = "/".join(parts[:2])
        split = assign_split(relative, seed=seed, validation_split=validation_split, test_split=test_split)
        entries.append((relative, split, metadata))
    return entries
