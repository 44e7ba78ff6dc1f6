"""What every dataset reader returns, and the seeded split shared by datasets without an official one.

Each reader module (deam, maestro, groove, lakh, harmony) has the same interface, as mirdata's do:

    NAME: str                    the source name ("deam", ...)
    LAYOUTS: tuple[str, ...]     the layouts it understands, most specific first
    FOLDER_NAMES: tuple[str, ...] folder names under a datasets root where it looks
    detect(root) -> str | None   the layout found directly under `root`, or None
    load(root, layout=None, *, seed=0, validation_split=0.2, test_split=0.0) -> ReadResult
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from common.errors import KellyError
from preprocess.datasets.tree import FOLDER_LIKE_FILE, Survey, walk_tree
from preprocess.features.spec import LABEL_ANNOTATED, LABEL_PROXY, SPLITS, split_fraction


@dataclass
class Item:
    """One unit of a dataset: a file (or one progression of a chord JSON) with its labels and split.

    valence/arousal are in [-1, 1] when `label_source` is "annotated", and None when it is "proxy"
    (the preprocess job derives them from the music and records that it did).
    """

    source: str                      # "deam" | "maestro" | "groove" | "lakh" | "harmony"
    item_id: str                     # stable identity within the source (relative path, song id, md5, "file.json#3")
    path: Path                       # the file to read (for harmony: the JSON file)
    split: str                       # "train" | "validation" | "test"
    label_source: str                # LABEL_ANNOTATED | LABEL_PROXY
    valence: float | None = None
    arousal: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReadResult:
    """A reader's answer: the items, the layout it read, and what it counted on the way."""

    source: str
    layout: str
    root: Path
    items: list[Item]
    # counted, reported, never fatal: e.g. {"labels_without_file": 3, "files_without_labels": 2, "duplicates": 1}
    counts: dict[str, int] = field(default_factory=dict)
    # short human-readable notes about what was skipped and why (first few examples)
    notes: list[str] = field(default_factory=list)
    # what the dataset's own listings name but the disk lacks, never dropped silently:
    # {listing file name ("info.csv", "maestro-v3.0.0.csv", ...): [entries, in listing order]}
    missing: dict[str, list[str]] = field(default_factory=dict)
    # every file under the source's folder that is neither an item nor metadata the reader read, by
    # why it is not used ("not listed in info.csv", "a link that leads nowhere", ...): [relative paths]
    unused: dict[str, list[str]] = field(default_factory=dict)

    def split_counts(self) -> dict[str, int]:
        out = {s: 0 for s in SPLITS}
        for item in self.items:
            out[item.split] = out.get(item.split, 0) + 1
        return out

    def missing_summary(self, first: int = 3) -> dict[str, dict]:
        """{listing: {"count": n, "first": [the first `first` entries]}} for each listing with missing entries."""
        return {listing: {"count": len(entries), "first": entries[:first]}
                for listing, entries in self.missing.items() if entries}

    def unused_summary(self, first: int = 3) -> dict[str, dict]:
        """{why: {"count": n, "first": [the first `first` paths]}} for each reason files are not used."""
        return {why: {"count": len(paths), "first": paths[:first]} for why, paths in self.unused.items() if paths}


def missing_lines(summary: dict[str, dict]) -> list[str]:
    """One line per listing of a `ReadResult.missing_summary()`:
    "2 listed in info.csv are missing; first: drummer1/eval_session/1_funk_80_beat_4-4.mid"."""
    lines = []
    for listing, info in summary.items():
        count = info["count"]
        verb = "is" if count == 1 else "are"
        first = f"; first: {info['first'][0]}" if info.get("first") else ""
        lines.append(f"{count:,} listed in {listing} {verb} missing{first}")
    return lines


def unused_lines(summary: dict[str, dict]) -> list[str]:
    """One line per reason of a `ReadResult.unused_summary()`, most files first:
    "not used: 2 MIDI not listed in info.csv; first: drummer1/extra.mid"."""
    lines = []
    for why, info in sorted(summary.items(), key=lambda kv: (-kv[1]["count"], kv[0])):
        first = f"; first: {info['first'][0]}" if info.get("first") else ""
        lines.append(f"not used: {info['count']:,} {why}{first}")
    return lines


def assign_split(identity: str, *, seed: int = 0, validation_split: float = 0.2, test_split: float = 0.0) -> str:
    """Deterministic split from a seed and the identity of the source file.

    The identity is hashed with the seed to a number u in [0, 1) (`spec.split_fraction`): u <
    test_split is "test", u < test_split + validation_split is "validation", the rest "train". An
    item's side depends on nothing but its own identity, so adding files moves none of the others,
    and every window of a file goes where its file goes.
    """
    if not 0.0 <= validation_split < 1.0 or not 0.0 <= test_split < 1.0 or validation_split + test_split >= 1.0:
        raise ValueError(f"validation_split={validation_split} and test_split={test_split} must be >= 0 and sum to < 1")
    u = split_fraction(identity, seed)
    if u < test_split:
        return "test"
    if u < test_split + validation_split:
        return "validation"
    return "train"


# --- helpers shared by the readers ---------------------------------------------------------------

AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg")
MIDI_EXTENSIONS = (".mid", ".midi")


@dataclass
class Tally:
    """Counts of things a reader skipped or noticed, with the first few examples of each as notes."""

    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    unused: dict[str, list[str]] = field(default_factory=dict)
    examples_per_kind: int = 5

    def add(self, kind: str, example: str, n: int = 1) -> None:
        """Count `n` occurrences of `kind`; keep `example` as a note while the kind has few notes."""
        self.counts[kind] = self.counts.get(kind, 0) + n
        if self.counts[kind] - n < self.examples_per_kind:
            self.notes.append(f"{kind}: {example}")

    def add_missing(self, kind: str, listing: str, entry: str, example: str | None = None) -> None:
        """Count one `kind` for an `entry` that the file `listing` names but the disk lacks, and keep
        the entry under its listing (`ReadResult.missing`); `example` is the note (default: `entry`)."""
        self.add(kind, entry if example is None else example)
        self.missing.setdefault(listing, []).append(entry)

    def add_unused(self, why: str, relative: str) -> None:
        """Record that the file at `relative` (under the source's folder) is not used, and why."""
        self.unused.setdefault(why, []).append(relative)

    def leftovers(self, survey: Survey, used: set[str], why: Callable[[str], str], prefix: str = "") -> None:
        """Record as unused every entry of `survey` that is not in `used` (relative paths under the
        survey's root): a file for the reason `why(relative)` gives, an odd entry (a dangling link,
        a FIFO, ...) for its own. `prefix` is put before each recorded path (the survey's folder
        relative to the source's root, with its "/")."""
        for relative in survey.files:
            if relative not in used:
                self.add_unused(why(relative), prefix + relative)
        for relative, reason in survey.odd:
            if reason != FOLDER_LIKE_FILE or not any(u.startswith(relative + "/") for u in used):
                self.add_unused(reason, prefix + relative)

    def result(self, source: str, layout: str, root: Path, items: list) -> "ReadResult":
        """The reader's answer with what this tally counted."""
        return ReadResult(source, layout, root, items, self.counts, self.notes, self.missing, self.unused)


def iter_files(root: Path, extensions: tuple[str, ...]):
    """Yield (relative POSIX path, absolute path string) of every regular file under `root` with one
    of `extensions` (compared lower-case), depth first, in name order (`tree.walk_tree`: hidden
    entries and archive debris skipped, each folder entered once however links lead to it).
    Nothing when `root` is not a folder."""
    if not os.path.isdir(root):
        return
    for relative, absolute, reason in walk_tree(root):
        if reason is None and relative.lower().endswith(extensions):
            yield relative, absolute


def has_files(root: Path, extensions: tuple[str, ...]) -> bool:
    """True when at least one file with one of `extensions` lies anywhere under `root` (stops at the first)."""
    return next(iter_files(root, extensions), None) is not None


def read_csv_table(path: Path, *, dtype: Any = str):
    """Read a CSV with pandas, column names stripped of surrounding spaces (DEAM writes "a, b, c").

    With the default dtype=str every cell stays text (empty cells are NaN) so each reader converts
    and checks the columns it uses; pass dtype=None for pandas' numeric inference.
    Raises KellyError naming the file when it cannot be read or has duplicate column names.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(path, skipinitialspace=True, dtype=dtype)
    except FileNotFoundError:
        raise KellyError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise KellyError(f"{path}: not a readable CSV file ({exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise KellyError(f"{path}: duplicate column names {duplicated} (after stripping spaces)")
    return frame


def require_columns(frame, path: Path, *column_sets: tuple[str, ...]) -> tuple[str, ...]:
    """Return the first of `column_sets` whose columns are all in `frame`.

    Raises KellyError naming the file, the columns found and the columns expected.
    """
    found = list(frame.columns)
    for columns in column_sets:
        if all(c in found for c in columns):
            return columns
    expected = " or ".join(", ".join(cs) for cs in column_sets)
    missing = [c for c in column_sets[0] if c not in found]
    raise KellyError(
        f"{path}: missing column(s) {', '.join(missing)}; found columns: {', '.join(found) or '(none)'}; "
        f"expected: {expected}"
    )


def numeric_column(frame, column: str, path: Path, row_names) -> "np.ndarray":
    """Column `column` of `frame` as float64 (NaN where the cell is empty).

    A cell that is present but not a number raises KellyError naming the file, the column and the
    row (`row_names[i]`, e.g. a song id or a file name).
    """
    import numpy as np
    import pandas as pd

    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(np.isnan(values) & raw.notna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise KellyError(f"{path}: row {row_names[i]}: column {column} is {raw.iloc[i]!r}, not a number")
    return values


def unit_label(value: Any, path: Path, where: str, name: str) -> float | None:
    """A valence/arousal value checked to be a number in [-1, 1]; None for null/NaN (the caller counts it).

    Raises KellyError naming the file and `where` (row, key or index) for anything else.
    """
    import math

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KellyError(f"{path}: {where}: {name} is {value!r}, not a number")
    value = float(value)
    if math.isnan(value):
        return None
    if not -1.0 <= value <= 1.0:
        raise KellyError(f"{path}: {where}: {name} = {value} is outside [-1, 1]")
    return value


def read_json(path: Path) -> Any:
    """Parse a JSON file; KellyError naming the file (and line/column) when it is malformed."""
    import json

    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise KellyError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise KellyError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise KellyError(f"{path}: not UTF-8 text ({exc.reason})") from None


def read_label_json(path: Path, tally: Tally) -> dict[str, tuple[float, float]]:
    """Read `{key: {"valence": v, "arousal": a}}` (keys are file names or relative paths), values in [-1, 1].

    Entries with a null/NaN value are counted as "nan_labels" and left out. Anything else that is
    not a finite number in [-1, 1] raises KellyError naming the file and the key.
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise KellyError(f"{path}: expected an object {{file: {{\"valence\": v, \"arousal\": a}}}}, found {type(data).__name__}")
    labels: dict[str, tuple[float, float]] = {}
    for key, entry in data.items():
        if not isinstance(entry, dict) or "valence" not in entry or "arousal" not in entry:
            raise KellyError(f"{path}: key {key!r}: expected {{\"valence\": v, \"arousal\": a}}, found {entry!r}")
        valence = unit_label(entry["valence"], path, f"key {key!r}", "valence")
        arousal = unit_label(entry["arousal"], path, f"key {key!r}", "arousal")
        if valence is None or arousal is None:
            tally.add("nan_labels", f"{path.name}: {key}")
            continue
        labels[key] = (valence, arousal)
    return labels


def _normalise_key(key: str) -> str:
    key = str(key).strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


def match_labels(labels: dict[str, Any], relative_paths: list[str], label_file: Path, tally: Tally,
                 *, prefixes: tuple[str, ...] = (), identities: dict[str, str] | None = None) -> dict[str, Any]:
    """Attach labels keyed by relative path, file name or file stem to the files in `relative_paths`.

    A key is tried, in order, as a relative path (also with one of `prefixes` such as "audio/"
    removed), as a file name, and as a file name without extension. A name or stem shared by several
    files is ambiguous (unless `identities`, {relative path: content id}, says they are one file):
    counted as "ambiguous_labels" and not applied. Keys that match no file are counted as
    "labels_without_file"; a second label for a file already labelled, "duplicate_labels".
    Returns {relative path: label}.
    """
    by_path = {p: p for p in relative_paths}
    by_name: dict[str, list[str]] = {}
    by_stem: dict[str, list[str]] = {}
    for p in relative_paths:
        name = p.rsplit("/", 1)[-1]
        by_name.setdefault(name, []).append(p)
        by_stem.setdefault(name.rsplit(".", 1)[0], []).append(p)

    def lookup(key: str) -> list[str] | None:
        if key in by_path:
            return [key]
        for prefix in prefixes:
            if key.startswith(prefix) and key[len(prefix):] in by_path:
                return [key[len(prefix):]]
        if "/" not in key:
            for index in (by_name, by_stem):
                if key in index:
                    hits = index[key]
                    if identities is not None and len({identities[h] for h in hits}) == 1:
                        return hits[:1]
                    return hits
        return None

    matched: dict[str, Any] = {}
    labelled: set[str] = set()
    # exact paths first, so that a path key wins over a bare name for the same file
    ordered = sorted(labels.items(), key=lambda kv: "/" not in _normalise_key(kv[0]))
    for key, label in ordered:
        hits = lookup(_normalise_key(key))
        if hits is None:
            tally.add_missing("labels_without_file", label_file.name, str(key), f"{label_file.name}: {key}")
        elif len(hits) > 1:
            tally.add("ambiguous_labels", f"{label_file.name}: {key} names {len(hits)} files")
        elif hits[0] in matched or (identities is not None and identities[hits[0]] in labelled):
            tally.add("duplicate_labels", f"{label_file.name}: {key}")
        else:
            matched[hits[0]] = label
            if identities is not None:
                labelled.add(identities[hits[0]])
    return matched


def unknown_layout(name: str, layout: str, layouts) -> KellyError:
    """The error for a layout name that a reader (`name`: "DEAM", "Lakh", ...) does not know."""
    return KellyError(f"unknown {name} layout {layout!r}; known: {', '.join(layouts)}")


def no_layout_found(name: str, root: Path, descriptions: dict[str, str]) -> KellyError:
    """The error for a root holding none of a reader's layouts, listing each one looked for."""
    return KellyError(f"{root}: no {name} layout found; looked for "
                      + "; ".join(f"{k}: {v}" for k, v in descriptions.items()))
