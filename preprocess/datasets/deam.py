"""DEAM (MediaEval Database for Emotional Analysis in Music): audio clips with valence/arousal.

Layouts:
  deam-distributed  DEAM_audio/MEMD_audio/{song_id}.mp3 and DEAM_Annotations/annotations/
                    annotations averaged per song/song_level/static_annotations_averaged_songs_*.csv
                    (1-9 scale), with the optional per-second dynamic annotations next to it.
  deam-simple       audio/*.wav|mp3|flac|ogg with annotations/annotations.csv or labels.csv
                    (filename,valence,arousal or filename,valence_mean,arousal_mean, in [-1, 1]).

Every item is "annotated": clips without labels are counted ("files_without_labels") and left out,
since the emotion network learns from DEAM's annotations only. DEAM has no official split, so each
clip's side comes from assign_split on its song id (distributed) or relative path (simple).
Every other file under the folder is recorded as unused with why (`ReadResult.unused`): audio
whose name is not a song id, without a label or with an empty one, the annotations this reader does
not read, and what `tree.Survey` names (dangling links, ...).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import KellyError
from preprocess.datasets.base import (
    AUDIO_EXTENSIONS,
    LABEL_ANNOTATED,
    Item,
    ReadResult,
    Tally,
    assign_split,
    match_labels,
    no_layout_found,
    numeric_column,
    read_csv_table,
    require_columns,
    unknown_layout,
)
from preprocess.datasets.tree import Survey

if TYPE_CHECKING:
    import numpy as np

NAME = "deam"
LAYOUTS = ("deam-distributed", "deam-simple")
FOLDER_NAMES = ("deam", "DEAM")
LAYOUT_DESCRIPTIONS = {
    "deam-distributed": "DEAM_audio/MEMD_audio/{song_id}.mp3 with DEAM_Annotations/annotations/"
                        "annotations averaged per song/song_level/static_annotations_averaged_songs_*.csv",
    "deam-simple": "audio/*.wav|mp3|flac|ogg with annotations/annotations.csv or labels.csv",
}

AUDIO_DIR = Path("DEAM_audio") / "MEMD_audio"
ANNOTATIONS_DIR = Path("DEAM_Annotations") / "annotations" / "annotations averaged per song"
STATIC_DIR = ANNOTATIONS_DIR / "song_level"
DYNAMIC_DIR = ANNOTATIONS_DIR / "dynamic (per second annotations)"
STATIC_PATTERN = "static_annotations_averaged_songs_*.csv"
STATIC_COLUMNS = ("song_id", "valence_mean", "arousal_mean")
SIMPLE_COLUMN_SETS = (("filename", "valence", "arousal"), ("filename", "valence_mean", "arousal_mean"))
SIMPLE_LABEL_FILES = (Path("annotations") / "annotations.csv", Path("labels.csv"), Path("annotations") / "labels.csv")
STATIC_SCALE = (1.0, 9.0)        # DEAM's self-assessment-manikin scale


def static_to_unit(values: np.ndarray) -> np.ndarray:
    """Map DEAM's 1-9 ratings to [-1, 1]: (x - 5) / 4, so 1 -> -1, 5 -> 0, 9 -> 1. Same shape out."""
    import numpy as np

    return (np.asarray(values, dtype=np.float64) - 5.0) / 4.0


def layout_present(root: Path, layout: str) -> bool:
    """True when the files that define `layout` are directly under `root`."""
    root = Path(root)
    if layout == "deam-distributed":
        return (root / "DEAM_audio").is_dir() or (root / "DEAM_Annotations").is_dir()
    if layout == "deam-simple":
        return (root / "audio").is_dir() and any((root / p).is_file() for p in SIMPLE_LABEL_FILES)
    raise unknown_layout("DEAM", layout, LAYOUTS)


def detect(root: Path) -> str | None:
    """The most specific DEAM layout under `root`, or None."""
    return next((layout for layout in LAYOUTS if layout_present(root, layout)), None)


def load(root: Path, layout: str | None = None, *, seed: int = 0, validation_split: float = 0.2,
         test_split: float = 0.0) -> ReadResult:
    """Read DEAM under `root` (layout detected when None) into annotated items with seeded splits."""
    root = Path(root)
    layout = layout or detect(root)
    if layout == "deam-distributed":
        return _load_distributed(root, seed, validation_split, test_split)
    if layout == "deam-simple":
        return _load_simple(root, seed, validation_split, test_split)
    if layout is None:
        raise no_layout_found("DEAM", root, LAYOUT_DESCRIPTIONS)
    raise unknown_layout("DEAM", layout, LAYOUTS)


# --- deam-distributed -----------------------------------------------------------------------------

def static_annotation_files(root: Path) -> list[Path]:
    """The static song-level CSVs of a distributed DEAM tree, in name order.

    Looked for in the distributed location first, then anywhere under DEAM_Annotations/.
    """
    root = Path(root)
    files = sorted((root / STATIC_DIR).glob(STATIC_PATTERN))
    if not files and (root / "DEAM_Annotations").is_dir():
        files = sorted(p for p in (root / "DEAM_Annotations").rglob(STATIC_PATTERN) if "song_level" in p.parts)
    return files


def read_static_annotations(paths: list[Path]):
    """Song-level labels from DEAM's static CSVs, on DEAM's 1-9 scale, NaN where a cell is empty.

    Columns are chosen by stripped name (song_id, valence_mean, arousal_mean); the 2000-2058 file's
    extra columns are ignored. Returns a DataFrame with song_id (int), valence, arousal (float) and
    file (the CSV's name), one row per CSV row. A value outside [1, 9] or a song id that is not an
    integer raises KellyError naming the file and the row.
    """
    import numpy as np
    import pandas as pd

    frames = []
    for path in paths:
        table = read_csv_table(path)
        require_columns(table, path, STATIC_COLUMNS)
        lines = [f"line {i + 2}" for i in range(len(table))]
        ids = numeric_column(table, "song_id", path, lines)
        bad = np.flatnonzero(np.isnan(ids) | (ids != np.round(ids)))
        if bad.size:
            i = int(bad[0])
            raise KellyError(f"{path}: {lines[i]}: song_id {table['song_id'].iloc[i]!r} is not an integer id")
        ids = ids.astype(np.int64)
        rows = [f"song_id {s}" for s in ids]
        frame = pd.DataFrame({
            "song_id": ids,
            "valence": numeric_column(table, "valence_mean", path, rows),
            "arousal": numeric_column(table, "arousal_mean", path, rows),
            "file": path.name,
        })
        low, high = STATIC_SCALE
        for column in ("valence", "arousal"):
            values = frame[column].to_numpy()
            outside = np.flatnonzero(~np.isnan(values) & ((values < low) | (values > high)))
            if outside.size:
                i = int(outside[0])
                raise KellyError(f"{path}: song_id {ids[i]}: {column}_mean = {values[i]} is outside DEAM's "
                                 f"{low:g}-{high:g} scale")
        frames.append(frame)
    if not frames:
        return pd.DataFrame({"song_id": np.zeros(0, np.int64), "valence": [], "arousal": [], "file": []})
    return pd.concat(frames, ignore_index=True)


_SAMPLE_COLUMN = re.compile(r"^sample_(\d+)ms$")


def read_dynamic_annotations(path: Path) -> tuple[dict[int, np.ndarray], float, float]:
    """Per-second DEAM annotations (arousal.csv or valence.csv): song_id, sample_15000ms, sample_15500ms, ...

    Returns ({song_id: float32 array in [-1, 1], NaN where a sample is missing, trailing NaN padding
    removed}, start time of sample 0 in seconds, sample rate in Hz), start and rate read from the
    column names. Raises KellyError naming the file for irregular sample columns, and the file and
    song id for a value outside [-1, 1].
    """
    import numpy as np

    table = read_csv_table(path, dtype=None)
    require_columns(table, path, ("song_id",))
    sample_columns = [c for c in table.columns if c != "song_id"]
    times_ms = []
    for column in sample_columns:
        match = _SAMPLE_COLUMN.match(column)
        if not match:
            raise KellyError(f"{path}: column {column!r} is not a sample_<milliseconds>ms column")
        times_ms.append(int(match.group(1)))
    if not times_ms:
        raise KellyError(f"{path}: no sample_<milliseconds>ms columns; found columns: {', '.join(table.columns)}")
    steps = np.diff(times_ms)
    if steps.size and (steps[0] <= 0 or np.any(steps != steps[0])):
        raise KellyError(f"{path}: sample columns are not evenly spaced in time ({times_ms[:4]} ...)")
    start_seconds = times_ms[0] / 1000.0
    rate_hz = 1000.0 / float(steps[0]) if steps.size else 2.0
    lines = [f"line {i + 2}" for i in range(len(table))]
    ids = numeric_column(table, "song_id", path, lines)
    if np.any(np.isnan(ids)):
        raise KellyError(f"{path}: {lines[int(np.flatnonzero(np.isnan(ids))[0])]}: empty song_id")
    samples = table[sample_columns]
    not_numeric = [c for c in sample_columns if not np.issubdtype(samples[c].dtype, np.number)]
    if not_numeric:   # text cells: name the first one that is not a number, else convert (e.g. "0.5 ")
        import pandas as pd

        rows = [f"song_id {int(s)}" for s in ids]
        for column in not_numeric:
            numeric_column(table, column, path, rows)
        samples = samples.apply(pd.to_numeric, errors="coerce")
    values = samples.to_numpy(dtype=np.float32)
    outside = np.argwhere(~np.isnan(values) & ((values < -1.0) | (values > 1.0)))
    if outside.size:
        r, c = (int(v) for v in outside[0])
        raise KellyError(f"{path}: song_id {int(ids[r])}: {sample_columns[c]} = {values[r, c]} is outside [-1, 1]")
    series = {}
    for song_id, row in zip(ids.astype(np.int64), values):
        present = np.flatnonzero(~np.isnan(row))
        series[int(song_id)] = row[: present[-1] + 1].copy() if present.size else row[:0].copy()
    return series, start_seconds, rate_hz


def _audio_dir(root: Path) -> Path | None:
    for candidate in (root / AUDIO_DIR, root / "DEAM_audio"):
        if candidate.is_dir():
            return candidate
    return None


def _dynamic_dir(root: Path) -> Path | None:
    if (root / DYNAMIC_DIR).is_dir():
        return root / DYNAMIC_DIR
    if (root / "DEAM_Annotations").is_dir():
        for arousal in sorted((root / "DEAM_Annotations").rglob("arousal.csv")):
            if arousal.parent.name == DYNAMIC_DIR.name and "averaged per song" in str(arousal.parent):
                return arousal.parent
    return None


def _load_distributed(root: Path, seed: int, validation_split: float, test_split: float) -> ReadResult:
    import numpy as np

    tally = Tally()
    static_files = static_annotation_files(root)
    if not static_files:
        raise KellyError(f"{root}: no DEAM static annotations; expected {STATIC_DIR / STATIC_PATTERN}")
    audio_dir = _audio_dir(root)
    if audio_dir is None:
        raise KellyError(f"{root}: no DEAM audio folder; expected {AUDIO_DIR}/{{song_id}}.mp3")

    read_files = list(static_files)
    static = read_static_annotations(static_files)
    labels: dict[int, tuple[float, float, str]] = {}
    unlabelled: set[int] = set()       # rows with an empty label: counted once, as nan_labels
    for song_id, valence, arousal, file in static.itertuples(index=False):
        if song_id in labels or song_id in unlabelled:
            tally.add("duplicate_labels", f"{file}: song_id {song_id} (first label kept)")
        elif np.isnan(valence) or np.isnan(arousal):
            tally.add("nan_labels", f"{file}: song_id {song_id}")
            unlabelled.add(int(song_id))
        else:
            labels[int(song_id)] = (float(static_to_unit(valence)), float(static_to_unit(arousal)), file)

    dynamic: dict[str, dict[int, np.ndarray]] = {}
    dynamic_timing: tuple[float, float] | None = None
    dynamic_dir = _dynamic_dir(root)
    if dynamic_dir is not None:
        for name in ("valence", "arousal"):
            path = dynamic_dir / f"{name}.csv"
            if path.is_file():
                read_files.append(path)
                dynamic[name], start, rate = read_dynamic_annotations(path)
                if dynamic_timing is not None and dynamic_timing != (start, rate):
                    raise KellyError(f"{path}: starts at {start} s, {rate} Hz; the other dynamic file at "
                                     f"{dynamic_timing[0]} s, {dynamic_timing[1]} Hz")
                dynamic_timing = (start, rate)

    items: list[Item] = []
    seen: set[int] = set()
    # the two folders of the distributed layout, each surveyed (the root may hold other sources too)
    surveys = {folder: Survey.of(root / folder, AUDIO_EXTENSIONS) for folder in ("DEAM_audio", "DEAM_Annotations")
               if (root / folder).is_dir()}
    audio_prefix = audio_dir.relative_to(root).as_posix()
    used = {p.relative_to(root).as_posix() for p in read_files if p.is_relative_to(root)}
    audio_under = audio_prefix.partition("/")[2]
    for relative, absolute in surveys["DEAM_audio"].with_extension(AUDIO_EXTENSIONS, under=audio_under):
        relative = relative[len(audio_under) + 1:] if audio_under else relative
        stem = relative.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        if not stem.isdigit():
            tally.add("files_without_labels", f"{relative} (name is not a DEAM song id)")
            tally.add_unused("audio whose name is not a DEAM song id", f"{audio_prefix}/{relative}")
            continue
        song_id = int(stem)
        if song_id in seen:
            tally.add("duplicate_files", f"{relative} (song_id {song_id} already read)")
            tally.add_unused("audio for a song id already read", f"{audio_prefix}/{relative}")
            continue
        seen.add(song_id)
        if song_id not in labels:
            if song_id not in unlabelled:
                tally.add("files_without_labels", relative)
                tally.add_unused("audio without a label in the static annotations", f"{audio_prefix}/{relative}")
            else:
                tally.add_unused("audio whose label is empty in the static annotations", f"{audio_prefix}/{relative}")
            continue
        used.add(f"{audio_prefix}/{relative}")
        valence, arousal, file = labels[song_id]
        metadata = {"song_id": song_id, "label_file": file}
        if dynamic_timing is not None:
            for name, series in dynamic.items():
                if song_id in series:
                    metadata[f"dynamic_{name}"] = series[song_id]
            if any(k.startswith("dynamic_") for k in metadata):
                metadata["dynamic_start_seconds"], metadata["dynamic_rate_hz"] = dynamic_timing
        items.append(Item(
            source=NAME, item_id=str(song_id), path=Path(absolute),
            split=assign_split(str(song_id), seed=seed, validation_split=validation_split, test_split=test_split),
            label_source=LABEL_ANNOTATED, valence=valence, arousal=arousal, metadata=metadata,
        ))
    for song_id in sorted(set(labels) - seen):
        file = labels[song_id][2]
        tally.add_missing("labels_without_file", file, f"{audio_prefix}/{song_id}.mp3", f"{file}: song_id {song_id}")
    used |= {relative for paths in tally.unused.values() for relative in paths}
    for folder, survey in surveys.items():
        tally.leftovers(survey, {u[len(folder) + 1:] for u in used if u.startswith(folder + "/")},
                        lambda relative: "not audio" if folder == "DEAM_audio"
                        else "annotations or features this reader does not use", prefix=folder + "/")
    return tally.result(NAME, "deam-distributed", root, items)


# --- deam-simple ----------------------------------------------------------------------------------

def _load_simple(root: Path, seed: int, validation_split: float, test_split: float) -> ReadResult:
    import numpy as np

    tally = Tally()
    label_file = next((root / p for p in SIMPLE_LABEL_FILES if (root / p).is_file()), None)
    if label_file is None:
        raise KellyError(f"{root}: no DEAM label file; expected one of {', '.join(map(str, SIMPLE_LABEL_FILES))}")
    table = read_csv_table(label_file)
    name_column, valence_column, arousal_column = require_columns(table, label_file, *SIMPLE_COLUMN_SETS)
    if table[name_column].isna().any():
        line = int(np.flatnonzero(table[name_column].isna().to_numpy())[0]) + 2
        raise KellyError(f"{label_file}: line {line}: empty {name_column}")
    names = [str(n).strip() for n in table[name_column]]
    rows = [f"line {i + 2} ({n})" for i, n in enumerate(names)]
    valences = numeric_column(table, valence_column, label_file, rows)
    arousals = numeric_column(table, arousal_column, label_file, rows)
    for column, values in ((valence_column, valences), (arousal_column, arousals)):
        outside = np.flatnonzero(~np.isnan(values) & ((values < -1.0) | (values > 1.0)))
        if outside.size:
            i = int(outside[0])
            raise KellyError(f"{label_file}: {rows[i]}: {column} = {values[i]} is outside [-1, 1]")

    labels: dict[str, tuple[float, float] | None] = {}     # None: an empty label, counted once as nan_labels
    for name, valence, arousal in zip(names, valences, arousals):
        if name in labels:
            tally.add("duplicate_labels", f"{label_file.name}: {name} (first label kept)")
        elif np.isnan(valence) or np.isnan(arousal):
            tally.add("nan_labels", f"{label_file.name}: {name}")
            labels[name] = None
        else:
            labels[name] = (float(valence), float(arousal))

    survey = Survey.of(root / "audio", AUDIO_EXTENSIONS)
    files = dict(survey.with_extension(AUDIO_EXTENSIONS))
    matched = match_labels(labels, list(files), label_file, tally, prefixes=("audio/",))
    items = []
    used = set()
    for relative, absolute in files.items():
        used.add(relative)
        if relative not in matched:
            tally.add("files_without_labels", relative)
            tally.add_unused(f"audio without a label in {label_file.name}", f"audio/{relative}")
            continue
        if matched[relative] is None:
            tally.add_unused(f"audio whose label is empty in {label_file.name}", f"audio/{relative}")
            continue
        valence, arousal = matched[relative]
        items.append(Item(
            source=NAME, item_id=relative, path=Path(absolute),
            split=assign_split(relative, seed=seed, validation_split=validation_split, test_split=test_split),
            label_source=LABEL_ANNOTATED, valence=valence, arousal=arousal,
            metadata={"label_file": label_file.name},
        ))
    tally.leftovers(survey, used, lambda relative: "not audio", prefix="audio/")
    return tally.result(NAME, "deam-simple", root, items)
