"""Small, deterministic sample datasets in the layouts kelly-ml reads, made of music rather than noise.

`make_sample_data(root)` writes, in seconds, every source in its distributed layout:

    DEAM_audio/MEMD_audio/{song_id}.mp3          20-30 s clips, 44.1 kHz stereo
    DEAM_Annotations/annotations/annotations averaged per song/
        song_level/static_annotations_averaged_songs_1_2000.csv, ..._2000_2058.csv   (1-9 scale)
        dynamic (per second annotations)/arousal.csv, valence.csv                  (2 Hz from 15 s)
    maestro-v3.0.0/maestro-v3.0.0.csv (+ .json) and maestro-v3.0.0/{year}/....midi   piano performances
    groove/info.csv and groove/drummerN/{session}/..._beat_4-4.mid                   drum performances
    lmd_full/{h}/{md5}.mid, lmd_matched/{R}/{R}/{R}/{MSD id}/{md5}.mid, clean_midi/{Artist}/{Title}.mid
    harmony/chord_progressions.json
    emopia/midis/Q{n}_{song id}_{clip}.mid, emopia/split/{train,val,test}.csv            pop-piano clips, quadrants

or, with legacy=True, the older guides' layouts (see preprocess.sample_data.legacy). The music is
composed from a Character per piece (mode, tempo, loudness, density, register, brightness) and the
labels, where a dataset has them, come from the same Character (preprocess.sample_data.emotion).
A few files are broken on purpose, as in real downloads; the summary lists them.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common.errors import KellyError

from .broken import WriteReport

__all__ = ["make_sample_data"]


#: items per source: the default sizes, and small ones for quick checks (same layouts, same faults)
SIZES = {
    "full": {"deam": {"n_clips": 28, "n_full_songs": 4}, "maestro": {"n_pieces": 200}, "groove": {"rounds": 3},
             "lakh": {"n_songs": 200, "n_matched": 12, "n_clean": 5}, "harmony": {"n": 150},
             "emopia": {"n_songs": 48},
             "legacy": {"n_clips": 10, "n_songs": 12, "n_pieces": 6, "n_takes": 14, "n_progressions": 60}},
    "small": {"deam": {"n_clips": 4, "n_full_songs": 1}, "maestro": {"n_pieces": 5}, "groove": {"rounds": 1},
              "lakh": {"n_songs": 8, "n_matched": 4, "n_clean": 2}, "harmony": {"n": 60},
              "emopia": {"n_songs": 8},
              "legacy": {"n_clips": 3, "n_songs": 5, "n_pieces": 3, "n_takes": 6, "n_progressions": 30}},
}


#: written last into the root: what was made, so that an identical request can reuse it
MARKER = ".kelly-sample-data.json"


def make_sample_data(root: Path, *, seed: int = 0, legacy: bool = False, small: bool = False) -> dict:
    """Write the sample datasets under `root` (created; must be absent or empty).

    small=True writes a few items per source (seconds instead of tens of seconds), in the same
    layouts and with the same broken files. A folder that already holds sample data made with the
    same settings is reused as it is (the data is deterministic); any other non-empty folder is a
    KellyError, so files from another seed never mix with these.

    Returns a summary: {"root", "layout" ("distributed" | "legacy"), "seed", "small", "counts"
    (readable items per source), "broken" (relative paths of files that cannot be read), "faults"
    ({path: what is wrong}), "no_notes" (relative paths of valid MIDI files without notes),
    "seconds", "reused"}. Same seed, same bytes (MIDI, CSV, JSON, WAV, MP3).
    """
    root = Path(root)
    settings = {"layout": "legacy" if legacy else "distributed", "seed": seed, "small": small}
    if root.exists() and not root.is_dir():
        raise KellyError(f"{root}: exists and is not a folder; sample data needs an empty folder")
    if root.is_dir() and any(root.iterdir()):
        previous = _read_marker(root)
        if previous is not None and all(previous.get(k) == v for k, v in settings.items()):
            return {**previous, "root": str(root), "reused": True}
        made = f" (it holds sample data made with {_describe(previous)})" if previous is not None else ""
        raise KellyError(f"{root}: folder is not empty{made}; sample data with {_describe(settings)} is written "
                         "only into a new or empty folder, so that files from different runs never mix")
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sizes = SIZES["small" if small else "full"]
    if legacy:
        from .legacy import write_legacy

        reports = write_legacy(root, seed, **sizes["legacy"])
    else:
        from .deam import write_deam

        # DEAM's MP3 encoding (C code, off the GIL) runs in a thread beside the MIDI writers: each
        # source draws from its own seeded streams, so the bytes are those of one after the other
        with ThreadPoolExecutor(max_workers=1) as background:
            deam = background.submit(write_deam, root, seed, **sizes["deam"])
            reports = _write_midi_sources(root, seed, sizes)
            reports = {"deam": deam.result(), **reports}
    faults = {path: fault for r in reports.values() for path, fault in r.broken.items()}
    summary = {
        "root": str(root),
        **settings,
        "counts": {name: r.count for name, r in reports.items()},
        "broken": sorted(faults),
        "faults": dict(sorted(faults.items())),
        "no_notes": sorted(p for r in reports.values() for p in r.no_notes),
        "seconds": round(time.perf_counter() - start, 2),
        "reused": False,
    }
    (root / MARKER).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _write_midi_sources(root: Path, seed: int, sizes: dict) -> dict:
    """The reports of the sources written as MIDI and JSON (every one but DEAM), in order."""
    from .emopia import write_emopia
    from .groove import write_groove
    from .harmony import write_chord_progressions
    from .lakh import write_lakh
    from .maestro import write_maestro

    return {
        "maestro": write_maestro(root, seed, **sizes["maestro"]),
        "groove": write_groove(root, seed, **sizes["groove"]),
        "lakh": write_lakh(root, seed, **sizes["lakh"]),
        "harmony": WriteReport(count=write_chord_progressions(root / "harmony" / "chord_progressions.json",
                                                              seed, **sizes["harmony"])),
        "emopia": write_emopia(root, seed, **sizes["emopia"]),
    }


def _read_marker(root: Path) -> dict | None:
    try:
        return json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _describe(settings: dict) -> str:
    size = "small, " if settings.get("small") else ""
    return f"{size}{settings.get('layout')} layout, seed {settings.get('seed')}"
