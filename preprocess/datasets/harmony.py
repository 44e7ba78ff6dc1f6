"""Chord progressions with emotion labels, for the HarmonyPredictor.

Layout:
  chord-json  harmony/chord_progressions.json, or every other *.json in the folder when that file is
              absent, each a list of progressions:
              [{"chords": ["C", "Am", "F", "G"], "emotion": {"valence": 0.5, "arousal": 0.7}}, ...]

One item per progression, item_id "<file name>#<index>", path the JSON file. Chord symbols are kept
as written, surrounding spaces removed, never re-cased ("Am" is A minor, "AM" would be A major). A progression with an
"emotion" is "annotated" (values must be in [-1, 1]); one without is "proxy". Other keys of a
progression (e.g. "key", "name") are copied into metadata. Split: assign_split on the item_id.
"""
from __future__ import annotations

from pathlib import Path

from common.errors import KellyError
from preprocess.datasets.base import (
    LABEL_ANNOTATED,
    LABEL_PROXY,
    Item,
    ReadResult,
    Tally,
    assign_split,
    read_json,
    unit_label,
    unknown_layout,
)
from preprocess.datasets.tree import Survey

NAME = "harmony"
LAYOUTS = ("chord-json",)
FOLDER_NAMES = ("harmony", "chords")
LAYOUT_DESCRIPTIONS = {"chord-json": "chord_progressions.json (or other *.json) as [{chords, emotion}]"}
DEFAULT_FILE = "chord_progressions.json"
#: JSON files other readers own, never read as chord progressions when sitting in the same folder
OTHER_SOURCES_JSON = ("emotion_labels.json", "drum_labels.json", "maestro-v*.json")
#: layouts any folder of MIDI/JSON would match: taken from an unnamed folder only when it holds a SIGNATURE_FILE
GENERIC_LAYOUTS = ("chord-json",)
SIGNATURE_FILES = {"chord-json": (DEFAULT_FILE,)}


def progression_files(root: Path) -> list[Path]:
    """chord_progressions.json when present, else every *.json in `root` (name order) that belongs to no other reader."""
    root = Path(root)
    if (root / DEFAULT_FILE).is_file():
        return [root / DEFAULT_FILE]
    return sorted(p for p in root.glob("*.json")
                  if p.is_file() and not p.name.startswith(".")
                  and not any(p.match(pattern) for pattern in OTHER_SOURCES_JSON))


def layout_present(root: Path, layout: str) -> bool:
    """True when `root` holds chord-progression JSON."""
    if layout != "chord-json":
        raise unknown_layout("harmony", layout, LAYOUTS)
    return Path(root).is_dir() and bool(progression_files(root))


def detect(root: Path) -> str | None:
    """"chord-json" when `root` holds chord-progression JSON, else None."""
    return "chord-json" if layout_present(root, "chord-json") else None


def read_progressions(path: Path) -> list[dict]:
    """The progressions of one JSON file, validated: [{"chords": [str, ...], "valence": float|None,
    "arousal": float|None, "extra": {other keys}}]. Raises KellyError naming the file and the index
    for malformed JSON, a missing or empty chord list, a chord that is not text, or a label outside [-1, 1]."""
    data = read_json(path)
    if not isinstance(data, list):
        raise KellyError(f"{path}: expected a list of {{\"chords\": [...], \"emotion\": {{...}}}} objects, "
                         f"found {type(data).__name__}")
    progressions = []
    for index, entry in enumerate(data):
        where = f"progression {index}"
        if not isinstance(entry, dict):
            raise KellyError(f"{path}: {where}: expected an object with \"chords\", found {entry!r}")
        chords = entry.get("chords")
        if not isinstance(chords, list) or not chords:
            raise KellyError(f"{path}: {where}: \"chords\" must be a non-empty list of chord symbols, found {chords!r}")
        bad = [c for c in chords if not isinstance(c, str) or not c.strip()]
        if bad:
            raise KellyError(f"{path}: {where}: chord {bad[0]!r} is not a chord symbol")
        valence = arousal = None
        emotion = entry.get("emotion")
        if emotion is not None:
            if not isinstance(emotion, dict) or "valence" not in emotion or "arousal" not in emotion:
                raise KellyError(f"{path}: {where}: \"emotion\" must be {{\"valence\": v, \"arousal\": a}}, "
                                 f"found {emotion!r}")
            valence = unit_label(emotion["valence"], path, where, "valence")
            arousal = unit_label(emotion["arousal"], path, where, "arousal")
        extra = {k: v for k, v in entry.items() if k not in ("chords", "emotion")}
        progressions.append({"chords": [c.strip() for c in chords], "valence": valence, "arousal": arousal,
                             "extra": extra, "has_emotion": emotion is not None})
    return progressions


def load(root: Path, layout: str | None = None, *, seed: int = 0, validation_split: float = 0.2,
         test_split: float = 0.0) -> ReadResult:
    """Read every chord progression under `root` into items (annotated when it has an emotion, else proxy)."""
    root = Path(root)
    layout = layout or detect(root)
    if layout is None:
        raise KellyError(f"{root}: no chord progressions found; looked for {LAYOUT_DESCRIPTIONS['chord-json']}")
    if layout not in LAYOUTS:
        raise unknown_layout("harmony", layout, LAYOUTS)
    files = progression_files(root)
    if not files:
        raise KellyError(f"{root}: no chord progressions found; looked for {LAYOUT_DESCRIPTIONS['chord-json']}")
    tally = Tally()
    items = []
    for path in files:
        for index, progression in enumerate(read_progressions(path)):
            item_id = f"{path.name}#{index}"
            labelled = progression["valence"] is not None and progression["arousal"] is not None
            if progression["has_emotion"] and not labelled:
                tally.add("nan_labels", item_id)
            items.append(Item(
                source=NAME, item_id=item_id, path=path,
                split=assign_split(item_id, seed=seed, validation_split=validation_split, test_split=test_split),
                label_source=LABEL_ANNOTATED if labelled else LABEL_PROXY,
                valence=progression["valence"] if labelled else None,
                arousal=progression["arousal"] if labelled else None,
                metadata={**progression["extra"], "chords": progression["chords"], "index": index},
            ))
    read = {path.name for path in files}
    tally.leftovers(Survey.of(root), read, lambda relative: _why_unused(relative, read))
    return tally.result(NAME, layout, root, items)


def _why_unused(relative: str, read: set[str]) -> str:
    """Why a file beside the chord progressions is not read."""
    if "/" in relative or not relative.endswith(".json"):
        return "not chord-progression JSON (only *.json at the top of the folder are read)"
    if any(Path(relative).match(pattern) for pattern in OTHER_SOURCES_JSON):
        return "another source's label file"
    return f"JSON not read: {DEFAULT_FILE} is present, and then only it is read"
