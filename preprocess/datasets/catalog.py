"""Where each dataset is published: the official archives, their checksums and licences, in one table.

`kelly datasets download` fetches from here and `kelly datasets list` shows it. A *subset* is what
one download installs: one or more archives, unpacked together into one folder under the datasets
folder (`dest`), laid out as the readers in this package expect (`layout`).

Every URL and checksum below was read from a public dataset loader or from the publisher's page; the
comment beside each entry says which. Where nobody publishes a checksum, the first download records
the sha256 and size it computed (in `<datasets>/.kelly-checksums.json`) and later downloads must match.

The table can be overridden, for mirrors and for tests, by a JSON file named with `--catalog FILE`
or the environment variable KELLY_DATASETS_CATALOG:

    {"maestro/midi": {"archives": {"maestro-v3.0.0-midi.zip": {"url": "http://mirror/x.zip",
                                                                "sha256": "...", "size": 123}}}}

Each archive's fields (url, size, md5, sha256) replace the table's; giving either checksum replaces
both published ones (an override is a different file, or the same file vouched for by its provider).
Sizes are in bytes. Every field is checked (`sources`), and a wrong one is a KellyError naming the
file, the entry, the field and what it should be: url a text address (http, https, ftp or file),
size and extracted_size whole numbers >= 0 or null, md5 32 and sha256 64 hexadecimal digits or null.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from common.errors import KellyError

CATALOG_ENV = "KELLY_DATASETS_CATALOG"
MiB = 2**20
GiB = 2**30


@dataclass(frozen=True)
class Archive:
    """One published file. `member_root` is the folder inside the archive whose contents are installed
    ("" = the whole archive); they land at `into` under the subset's destination ("" = the destination)."""

    file_name: str
    url: str
    size: int | None = None          # exact bytes, where published (checked after download)
    md5: str | None = None
    sha256: str | None = None
    member_root: str = ""
    into: str = ""
    approx_size: int | None = None   # bytes as the publisher rounds them, for display and the disk check only
    source_note: str = ""            # which loader or page gave the URL and checksum

    @property
    def checksum_published(self) -> bool:
        return bool(self.md5 or self.sha256)

    def display_size(self) -> int | None:
        return self.size if self.size is not None else self.approx_size


@dataclass(frozen=True)
class Subset:
    """What one download installs: `archives` unpacked together into `dest` (relative to the datasets folder)."""

    source: str                      # the reader: "deam", "maestro", "groove", "lakh"
    name: str                        # "midi", "audio", "lmd_full", ...
    title: str
    dest: str
    layout: str                      # the reader layout the unpacked folder has
    archives: tuple[Archive, ...]
    default: bool = True             # fetched when the source is named without --subset
    extracted_size: int | None = None  # bytes unpacked, where published (disk check before downloading)
    contains: tuple[str, ...] = ()   # other subsets of the same source that this one holds entirely

    @property
    def key(self) -> str:
        return f"{self.source}/{self.name}"


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    homepage: str
    licence: str
    subsets: tuple[Subset, ...]
    no_archive: str = ""             # why there is nothing to download, and where to look instead


# --- the table --------------------------------------------------------------------------------------

_DEAM_LICENCE = ("audio: each song under its own Creative Commons licence (Free Music Archive, Jamendo, "
                 "MedleyDB; some are non-commercial); annotations: for research, cite Aljanaki, Yang & "
                 "Soleymani 2017 (PLoS ONE 12(3): e0173392)")

SOURCES: tuple[Source, ...] = (
    Source(
        name="deam",
        title="DEAM: 1,802 songs and excerpts with valence/arousal ratings (MediaEval 2013-2015)",
        homepage="https://cvml.unige.ch/databases/DEAM/",
        licence=_DEAM_LICENCE,
        subsets=(
            Subset(
                source="deam", name="audio+annotations", title="the mp3 audio and the averaged annotations",
                dest="deam", layout="deam-distributed",
                archives=(
                    # Neither mirdata nor muspy has a DEAM loader; the URLs are the publisher's
                    # (cvml.unige.ch/databases/DEAM/). No checksum or exact size is published: the first
                    # download records them. DEAM_audio.zip holds MEMD_audio/, DEAM_Annotations.zip holds
                    # annotations/; each is unpacked into a folder of its own name, as the readers expect.
                    Archive("DEAM_audio.zip", "https://cvml.unige.ch/databases/DEAM/DEAM_audio.zip",
                            into="DEAM_audio", source_note="publisher's page; no checksum published"),
                    Archive("DEAM_Annotations.zip", "https://cvml.unige.ch/databases/DEAM/DEAM_Annotations.zip",
                            into="DEAM_Annotations", source_note="publisher's page; no checksum published"),
                ),
            ),
        ),
    ),
    Source(
        name="maestro",
        title="MAESTRO v3.0.0: 1,276 piano performances (about 200 hours) with an official split",
        homepage="https://magenta.tensorflow.org/datasets/maestro",
        licence="CC BY-NC-SA 4.0 (non-commercial, share-alike)",
        subsets=(
            Subset(
                source="maestro", name="midi", title="MIDI and metadata only", dest="maestro-v3.0.0",
                layout="maestro-csv",
                # URL, size and sha256: muspy, muspy/datasets/maestro.py (MAESTRODatasetV3); the same
                # sha256 is on Magenta's MAESTRO page, which gives the unpacked size ("56MB (81MB
                # uncompressed)"; its MB are MiB: 58,416,533 bytes is its "56MB"). mirdata's maestro.py
                # lists only v2.0.0.
                archives=(Archive("maestro-v3.0.0-midi.zip",
                                  "https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/maestro-v3.0.0-midi.zip",
                                  size=58_416_533,
                                  sha256="70470ee253295c8d2c71e6d9d4a815189e35c89624b76d22fce5a019d5dde12c",
                                  member_root="maestro-v3.0.0",
                                  source_note="muspy datasets/maestro.py (MAESTRODatasetV3); Magenta's page"),),
                extracted_size=81 * MiB,
            ),
            Subset(
                source="maestro", name="audio", title="WAV audio, MIDI and metadata", dest="maestro-v3.0.0",
                layout="maestro-csv", default=False, contains=("midi",),
                # URL and sha256: Magenta's MAESTRO page ("Size: 101GB (120GB uncompressed)"; no exact
                # byte count). mirdata's maestro.py has the same archive for v2.0.0 only; muspy has none.
                archives=(Archive("maestro-v3.0.0.zip",
                                  "https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/maestro-v3.0.0.zip",
                                  sha256="6680fea5be2339ea15091a249fbd70e49551246ddbd5ca50f1b2352c08c95291",
                                  member_root="maestro-v3.0.0", approx_size=101 * GiB,
                                  source_note="Magenta's MAESTRO page"),),
                extracted_size=120 * GiB,
            ),
        ),
    ),
    Source(
        name="groove",
        title="Groove MIDI Dataset v1.0.0: 1,150 drum performances (13.6 hours) with an official split",
        homepage="https://magenta.tensorflow.org/datasets/groove",
        licence="CC BY 4.0",
        subsets=(
            Subset(
                source="groove", name="midi", title="MIDI and info.csv only", dest="groove", layout="groove-csv",
                # URL: tensorflow-datasets, tensorflow_datasets/audio/groove.py (_DOWNLOAD_URL_MIDI_ONLY);
                # size and sha256: its url_checksums/groove.txt. mirdata's groove_midi.py lists only the
                # archive with audio.
                archives=(Archive("groove-v1.0.0-midionly.zip",
                                  "https://storage.googleapis.com/magentadata/datasets/groove/groove-v1.0.0-midionly.zip",
                                  size=3_260_318,
                                  sha256="651cbc524ffb891be1a3e46d89dc82a1cecb09a57c748c7b45b844c4841dcc1e",
                                  member_root="groove",
                                  source_note="tensorflow-datasets audio/groove.py and url_checksums/groove.txt"),),
            ),
            Subset(
                source="groove", name="audio", title="synthesised WAV audio, MIDI and info.csv",
                dest="groove", layout="groove-csv", default=False, contains=("midi",),
                # URL and md5: mirdata, mirdata/datasets/groove_midi.py (REMOTES["all"]); size and sha256:
                # tensorflow-datasets url_checksums/groove.txt.
                archives=(Archive("groove-v1.0.0.zip",
                                  "https://storage.googleapis.com/magentadata/datasets/groove/groove-v1.0.0.zip",
                                  size=5_111_599_714, md5="99db7e2a087761a913b2abfb19e86181",
                                  sha256="21559feb2f1c96ca53988fd4d7060b1f2afe1d854fb2a8dcea5ff95cf3cce7e9",
                                  member_root="groove",
                                  source_note="mirdata datasets/groove_midi.py; "
                                              "tensorflow-datasets url_checksums/groove.txt"),),
            ),
        ),
    ),
    Source(
        name="lakh",
        title="Lakh MIDI Dataset v0.1: 176,581 multitrack MIDI files (45,129 matched to the Million Song Dataset)",
        homepage="https://colinraffel.com/projects/lmd/",
        licence="CC BY 4.0",
        subsets=(
            Subset(
                source="lakh", name="lmd_full", title="all 176,581 files, named by md5", dest="lakh_midi/lmd_full",
                layout="lmd_full",
                # URL, size, md5 and sha256: muspy, muspy/datasets/lmd.py (LakhMIDIDataset).
                archives=(Archive("lmd_full.tar.gz", "http://hog.ee.columbia.edu/craffel/lmd/lmd_full.tar.gz",
                                  size=1_768_163_879, md5="2536ce3fd2cede53ddaa264f731859ab",
                                  sha256="6fcfe2ac49ca08f3f214cec86ab138d4fc4dabcd7f27f491a838dae6db45a12b",
                                  member_root="lmd_full", source_note="muspy datasets/lmd.py (LakhMIDIDataset)"),),
            ),
            Subset(
                source="lakh", name="lmd_matched", title="the 45,129 files matched to the Million Song Dataset",
                dest="lakh_midi/lmd_matched", layout="lmd_matched", default=False,
                # URL, size, md5 and sha256: muspy, muspy/datasets/lmd.py (LakhMIDIMatchedDataset).
                archives=(Archive("lmd_matched.tar.gz", "http://hog.ee.columbia.edu/craffel/lmd/lmd_matched.tar.gz",
                                  size=1_407_072_670, md5="fb80d01c22020295bb3eeef31f1aa63a",
                                  sha256="621ff830aed771f469e5bfa13dc12a33c6ed69090adeda63d0b5c47783af0191",
                                  member_root="lmd_matched",
                                  source_note="muspy datasets/lmd.py (LakhMIDIMatchedDataset)"),),
            ),
            Subset(
                source="lakh", name="clean_midi", title="files named {Artist}/{Title}.mid",
                dest="lakh_midi/clean_midi", layout="clean_midi", default=False,
                # URL: the dataset's page (colinraffel.com/projects/lmd/, "Clean MIDI subset"). Neither
                # mirdata nor muspy lists it, and no checksum is published: the first download records one.
                archives=(Archive("clean_midi.tar.gz", "http://hog.ee.columbia.edu/craffel/lmd/clean_midi.tar.gz",
                                  member_root="clean_midi", source_note="the dataset's page; no checksum published"),),
            ),
        ),
    ),
    Source(
        name="emopia",
        title="EMOPIA 1.0: 1,087 pop-piano clips (MIDI) from 387 songs, each with the emotion quadrant "
              "that four annotators heard (Hung et al., ISMIR 2021)",
        homepage="https://annahung31.github.io/EMOPIA/",
        licence="CC BY-NC-SA 4.0 (non-commercial, share-alike)",
        subsets=(
            Subset(
                source="emopia", name="midi", title="the MIDI clips (midis/), label.csv and the song metadata",
                dest="emopia", layout="emopia-release",
                # Zenodo record 5090631 (EMOPIA_1.0.zip, 10.5281/zenodo.5090631); the archive holds one
                # folder EMOPIA_1.0/ whose contents (midis/Q{n}_{youtube id}_{clip}.mid, label.csv, ...)
                # are installed into emopia/. md5: the one Zenodo's record lists for the file, as a public
                # fetch script quotes it (8f760ddc...). Zenodo gives no exact byte count outside its API:
                # its "5.5 MB" (decimal) is used for the disk check only. muspy's loader has only the
                # later 2.x releases (records 5151045, 5257995).
                archives=(Archive("EMOPIA_1.0.zip", "https://zenodo.org/records/5090631/files/EMOPIA_1.0.zip",
                                  md5="8f760ddcc014d144f1e2c5451bf003ac", member_root="EMOPIA_1.0",
                                  approx_size=5_500_000,
                                  source_note="Zenodo record 5090631 (md5 as its file list gives it)"),),
            ),
        ),
    ),
    Source(
        name="harmony",
        title="chord progressions with valence/arousal (the HarmonyPredictor's data)",
        homepage="",
        licence="yours",
        subsets=(),
        no_archive=("the chord-progression source has no public archive: write your progressions as JSON "
                    "([{\"chords\": [\"C\", \"Am\", \"F\", \"G\"], "
                    "\"emotion\": {\"valence\": 0.5, \"arousal\": 0.7}}]) "
                    "into datasets/harmony/chord_progressions.json; datasets/README.md describes the format"),
    ),
)


# --- lookup and overrides ---------------------------------------------------------------------------

#: what each archive field of an override must be: (check, the words for it)
_URL_SCHEMES = ("http://", "https://", "ftp://", "file://")
_HEX = {"md5": 32, "sha256": 64}


def _byte_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_archive_field(where: str, field: str, value) -> None:
    """KellyError naming the override field and what it should be, for a value that cannot serve."""
    if field == "url":
        if not isinstance(value, str) or not value.strip().lower().startswith(_URL_SCHEMES):
            raise KellyError(f"{where}: \"url\" must be a text address starting with "
                             f"{', '.join(_URL_SCHEMES)}; found {value!r}")
    elif field == "size":
        if value is not None and not _byte_count(value):
            raise KellyError(f"{where}: \"size\" must be a whole number of bytes >= 0 (or null: not published); "
                             f"found {value!r}")
    elif value is not None:                       # md5, sha256
        digits = _HEX[field]
        if not isinstance(value, str) or len(value) != digits or any(c not in "0123456789abcdefABCDEF" for c in value):
            raise KellyError(f"{where}: \"{field}\" must be {digits} hexadecimal digits (or null: not published); "
                             f"found {value!r}")


def sources(overrides: dict | None = None, origin: str = "catalog override") -> dict[str, Source]:
    """{name: Source}, with `overrides` (see the module docstring) applied.

    Every field is checked: KellyError naming `origin` (the file), the entry and the field, and
    what it should be.
    """
    table = {s.name: s for s in SOURCES}
    if not overrides:
        return table
    subsets = {sub.key: sub for s in SOURCES for sub in s.subsets}
    unknown = [k for k in overrides if k not in subsets]
    if unknown:
        raise KellyError(f"{origin}: unknown subset {unknown[0]!r}; known: {', '.join(subsets)}")
    for key, changes in overrides.items():
        subset = subsets[key]
        archives = {a.file_name: a for a in subset.archives}
        if not isinstance(changes, dict) or set(changes) - {"archives", "extracted_size"}:
            raise KellyError(f"{origin}: {key!r}: expected {{\"archives\": {{file name: {{url, size, md5, "
                             f"sha256}}}}, \"extracted_size\": bytes}}, found {changes!r}")
        if "extracted_size" in changes and changes["extracted_size"] is not None \
                and not _byte_count(changes["extracted_size"]):
            raise KellyError(f"{origin}: {key!r}: \"extracted_size\" must be a whole number of bytes >= 0 "
                             f"(or null: not published); found {changes['extracted_size']!r}")
        given = changes.get("archives") or {}
        if not isinstance(given, dict):
            raise KellyError(f"{origin}: {key!r}: \"archives\" must be an object {{file name: {{url, size, md5, "
                             f"sha256}}}}; found {given!r}")
        for file_name, fields in given.items():
            if file_name not in archives:
                raise KellyError(f"{origin}: {key!r}: no archive {file_name!r}; its archives: "
                                 f"{', '.join(archives)}")
            where = f"{origin}: {key!r} {file_name}"
            if not isinstance(fields, dict):
                raise KellyError(f"{where}: expected an object {{url, size, md5, sha256}}, found {fields!r}")
            bad = set(fields) - {"url", "size", "md5", "sha256"}
            if bad:
                raise KellyError(f"{where}: unknown field(s) {', '.join(sorted(bad))}; allowed: url, size, md5, sha256")
            for field, value in fields.items():
                _check_archive_field(where, field, value)
            update = {k: (v.strip() if k == "url" else v.lower() if isinstance(v, str) else v)
                      for k, v in fields.items()}
            if "md5" in update or "sha256" in update:
                update.setdefault("md5", None)
                update.setdefault("sha256", None)
            archives[file_name] = replace(archives[file_name], source_note="override", **update)
        update = {"archives": tuple(archives.values())}
        if "extracted_size" in changes:
            update["extracted_size"] = changes["extracted_size"]
        subsets[key] = replace(subset, **update)
    return {s.name: replace(s, subsets=tuple(subsets[sub.key] for sub in s.subsets)) for s in SOURCES}


def override_path(path: str | Path | None = None) -> Path | None:
    """The override file named by `path`, else by $KELLY_DATASETS_CATALOG, else None."""
    path = path or os.environ.get(CATALOG_ENV) or None
    return None if path is None else Path(path)


def read_overrides(path: str | Path | None = None) -> dict:
    """The override table from `path`, else from $KELLY_DATASETS_CATALOG, else {}."""
    path = override_path(path)
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KellyError(f"{path}: catalog override file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KellyError(f"{path}: not a JSON catalog override ({exc})") from None
    except OSError as exc:                      # a folder, no permission, ...
        raise KellyError(f"{path}: cannot read the catalog override ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise KellyError(f"{path}: expected an object {{\"source/subset\": {{...}}}}, found {type(data).__name__}")
    return data


def load(path: str | Path | None = None) -> dict[str, Source]:
    """The table with the overrides of `path` (or $KELLY_DATASETS_CATALOG) applied and checked."""
    origin = override_path(path)
    return sources(read_overrides(path), origin=str(origin) if origin else "catalog override")


def with_mirror(archive: Archive, base: str | None) -> Archive:
    """`archive` fetched from `base` + its official file name (checksums unchanged)."""
    if not base:
        return archive
    return replace(archive, url=f"{base.rstrip('/')}/{archive.file_name}")


def select(table: dict[str, Source], names: list[str], wanted: list[str] | None) -> list[Subset]:
    """The subsets to fetch for source `names`: their defaults, or those named in `wanted`
    ("midi" applies to every named source that has it; "maestro/audio" to one)."""
    for name in names:
        if name not in table:
            raise KellyError(f"unknown dataset {name!r}; known: {', '.join(table)}")
    chosen: dict[str, list[Subset]] = {name: [] for name in names}
    for text in wanted or ():
        source_name, _, subset_name = text.rpartition("/")
        hits = [sub for name in names if not source_name or name == source_name
                for sub in table[name].subsets if sub.name == subset_name]
        if source_name and source_name not in chosen:
            raise KellyError(f"--subset {text}: {source_name} is not among the datasets named ({', '.join(names)})")
        if not hits:
            offered = ", ".join(sub.key for name in names for sub in table[name].subsets) or "none"
            raise KellyError(f"--subset {text}: no such subset among {', '.join(names)}; subsets: {offered}")
        for sub in hits:
            if sub not in chosen[sub.source]:
                chosen[sub.source].append(sub)
    out: list[Subset] = []
    for name in names:
        source = table[name]
        if not source.subsets:
            raise KellyError(f"{name}: {source.no_archive}")
        out += chosen[name] or [sub for sub in source.subsets if sub.default]
    return out


def human_size(n: int | None) -> str:
    """1.6 GiB, 55.7 MiB, 980 KiB, 12 B; "size not published" for None."""
    if n is None:
        return "size not published"
    for unit, scale in (("TiB", 2**40), ("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
