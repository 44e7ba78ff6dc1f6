"""Chord and key recognition from MIDI, scored with mir_eval against labelled pop songs.

    python bench/chords.py [--songs DIR] [--no-chorder] [--limit N]

DIR holds one folder per song in POP909's layout: NNN/NNN.mid, NNN/chord_midi.txt
(`start end label`, Harte syntax, on the MIDI's timeline) and NNN/key_audio.txt (`start end key`,
e.g. `C:maj`). Default: the pop909 folder of the real-file corpus beside the checkout, or
$KELLY_POP909 when set.

Systems, all on the MIDI's own timeline and scored the mir_eval way (time-weighted over the
labelled span, mean over songs):

- kelly-ml: `preprocess.features.chords.estimate_chords` (chords at the pace of the beat) and
  `preprocess.features.keys.estimate_keys` (a key per section);
- per bar: the per-bar template recogniser (`recognise_chords` on `bar_times`) with the
  whole-file Krumhansl-Kessler key (`spec.key_correlations`): the previous method;
- chorder (PyPI `chorder`, a rule-based recogniser for pop MIDI; `pip install kelly-ml[bench]`),
  one chord per beat; it has no key estimate.

Chords: mir_eval's `root` and `majmin` scores. Keys: per song, the fraction of the labelled time
whose estimated key is exactly the label's (`key_exact`) and mir_eval's MIREX weighted key score
(`key_mirex`: fifth 0.5, relative 0.3, parallel 0.2), both time-weighted, so a key track is
scored section by section; and the same two for the whole-piece key (`KeyTrack.main`) against
the label's longest key (`main_exact`, `main_mirex`, one key per song as key estimates are
usually scored). Figures are broken down by meter (songs whose time signatures are all 4/4, and
the rest) and for the songs whose label changes key.

The last line is `majmin X root Y key_mirex Z key_exact W` for kelly-ml over all songs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from preprocess.features import chords  # noqa: E402
from preprocess.features.keys import KeyTrack, estimate_keys  # noqa: E402
from preprocess.features.midi import MidiError, NoteArrays, load_notes  # noqa: E402
from preprocess.features.proxy_labels import pitch_class_profile  # noqa: E402
from preprocess.features.spec import key_correlations  # noqa: E402

DEFAULT_SONGS = Path(os.environ.get("KELLY_POP909")
                     or REPO.parent / "shared" / "real-corpus" / "pop909")
HARTE_QUALITY = {"maj": "maj", "min": "min", "7": "7", "m7": "min7", "maj7": "maj7"}
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
CHORDER_QUALITY = {"M": "maj", "m": "min", "o": "dim", "+": "aug", "7": "7", "M7": "maj7", "m7": "min7",
                   "o7": "dim7", "/o7": "hdim7", "sus2": "sus2", "sus4": "sus4"}


@dataclass
class Song:
    name: str
    midi: Path
    notes: NoteArrays
    chord_intervals: np.ndarray          # float64 [n, 2] s
    chord_labels: list[str]
    key_intervals: np.ndarray            # float64 [m, 2] s
    key_labels: list[str]                # "C major", mir_eval's key syntax
    four_four: bool                      # every time signature of the file is 4/4


def class_label(c: int) -> str:
    """Harte label of a chord class; a diminished set is named dim7 on its lowest pitch class."""
    c = int(c)
    if c == chords.NO_CHORD:
        return "N"
    if c >= chords.DIMINISHED_FIRST:
        return f"{chords.PITCH_CLASS_NAMES[c - chords.DIMINISHED_FIRST]}:dim7"
    return f"{chords.PITCH_CLASS_NAMES[c // 5]}:{HARTE_QUALITY[chords.QUALITIES[c % 5]]}"


def key_label(tonic: int, minor: bool) -> str:
    return f"{NOTE_NAMES[int(tonic) % 12]} {'minor' if minor else 'major'}"


def read_labels(path: Path) -> tuple[np.ndarray, list[str]]:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    intervals = np.array([[float(r[0]), float(r[1])] for r in rows], dtype=np.float64).reshape(-1, 2)
    return intervals, [r[2] for r in rows]


def load_song(folder: Path) -> Song:
    midi = folder / f"{folder.name}.mid"
    notes = load_notes(midi)
    chord_intervals, chord_labels = read_labels(folder / "chord_midi.txt")
    key_intervals, keys = read_labels(folder / "key_audio.txt")
    key_labels = [k.replace(":maj", " major").replace(":min", " minor") for k in keys]
    four_four = bool(np.all((notes.time_signature_numerator == 4) & (notes.time_signature_denominator == 4)))
    return Song(folder.name, midi, notes, chord_intervals, chord_labels, key_intervals, key_labels, four_four)


# --- the systems ---------------------------------------------------------------------------------

def kelly_chords(song: Song) -> tuple[np.ndarray, list[str]]:
    track = chords.estimate_chords(song.notes)
    return np.stack([track.start, track.end], axis=1), [class_label(c) for c in track.chord]


def per_bar_chords(song: Song) -> tuple[np.ndarray, list[str]]:
    notes = song.notes
    bars = notes.bar_times()
    classes = chords.recognise_chords(notes.onset, notes.offset, notes.pitch, bars, notes.is_drum, end=notes.duration)
    edges = np.append(bars, max(notes.duration, bars[-1]))
    keep = edges[1:] > edges[:-1]
    return np.stack([edges[:-1], edges[1:]], axis=1)[keep], [class_label(c) for c in classes[keep]]


def chorder_chords(song: Song) -> tuple[np.ndarray, list[str]]:
    """chorder's Dechorder.dechord: one chord per beat (a quarter note of the file's ticks)."""
    import miditoolkit
    from chorder import Dechorder

    midi = miditoolkit.MidiFile(str(song.midi))
    found = Dechorder.dechord(midi)
    tick_seconds = midi.get_tick_to_time_mapping()
    beat = midi.ticks_per_beat
    ticks = np.minimum(np.arange(len(found) + 1) * beat, len(tick_seconds) - 1)
    times = tick_seconds[ticks]
    labels = []
    for chord in found:
        if chord.root_pc is None or chord.quality is None:
            labels.append("N")
        else:
            labels.append(f"{NOTE_NAMES[chord.root_pc]}:{CHORDER_QUALITY[chord.quality]}")
    intervals = np.stack([times[:-1], times[1:]], axis=1)
    keep = intervals[:, 1] > intervals[:, 0]
    return intervals[keep], [lab for lab, k in zip(labels, keep) if k]


def whole_file_key(song: Song) -> KeyTrack:
    """The previous key estimate: one Krumhansl-Kessler key for the whole file."""
    major, minor = key_correlations(pitch_class_profile(song.notes))
    is_minor = minor.max() > major.max()
    tonic = int(minor.argmax() if is_minor else major.argmax())
    return KeyTrack(np.zeros(1), np.array([tonic]), np.array([is_minor]), song.notes.duration)


# --- scores --------------------------------------------------------------------------------------

def chord_scores(song: Song, intervals: np.ndarray, labels: list[str]) -> dict[str, float]:
    """mir_eval's root and majmin scores, as mir_eval.chord.evaluate computes them."""
    import mir_eval

    ref_intervals, ref_labels = song.chord_intervals, song.chord_labels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est_intervals, est_labels = mir_eval.util.adjust_intervals(
            intervals, labels, ref_intervals.min(), ref_intervals.max(), mir_eval.chord.NO_CHORD,
            mir_eval.chord.NO_CHORD)
        merged, ref, est = mir_eval.util.merge_labeled_intervals(ref_intervals, ref_labels, est_intervals, est_labels)
        durations = mir_eval.util.intervals_to_durations(merged)
        return {"root": float(mir_eval.chord.weighted_accuracy(mir_eval.chord.root(ref, est), durations)),
                "majmin": float(mir_eval.chord.weighted_accuracy(mir_eval.chord.majmin(ref, est), durations))}


def key_scores(song: Song, track: KeyTrack) -> dict[str, float]:
    """Time-weighted exact and MIREX key scores over the labelled span."""
    import mir_eval

    edges = np.unique(np.concatenate([song.key_intervals.ravel(), track.start]))
    lo, hi = song.key_intervals.min(), song.key_intervals.max()
    edges = edges[(edges >= lo) & (edges <= hi)]
    mids = (edges[:-1] + edges[1:]) / 2
    widths = np.diff(edges)
    which = np.searchsorted(song.key_intervals[:, 0], mids, side="right") - 1
    tonic, minor = track.at(mids)
    exact = mirex = 0.0
    for w, ref, t, m in zip(widths, which, tonic, minor):
        ref_key, est_key = song.key_labels[ref], key_label(t, m)
        exact += w * (ref_key == est_key or mir_eval.key.weighted_score(ref_key, est_key) == 1.0)
        mirex += w * mir_eval.key.weighted_score(ref_key, est_key)
    total = widths.sum()
    longest = song.key_labels[int(np.argmax(song.key_intervals[:, 1] - song.key_intervals[:, 0]))]
    main = mir_eval.key.weighted_score(longest, key_label(*track.main))
    return {"key_exact": exact / total, "key_mirex": mirex / total, "main_exact": float(main == 1.0), "main_mirex": main}


def summarise(rows: list[dict], songs: list[Song], system: str) -> None:
    groups = (("all", [True] * len(songs)), ("4/4", [s.four_four for s in songs]),
              ("other", [not s.four_four for s in songs]),
              ("key change", [len(set(s.key_labels)) > 1 for s in songs]))
    for name, mask in groups:
        picked = [r for r, m in zip(rows, mask) if m]
        if not picked:
            continue
        cells = [f"{k} {np.mean([r[k] for r in picked]):.3f}" for k in picked[0] if k != "seconds"]
        print(f"  {system:9s} {name:10s} ({len(picked):3d} songs)  " + "  ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=Path, default=DEFAULT_SONGS, help=f"folder of song folders (default {DEFAULT_SONGS})")
    parser.add_argument("--no-chorder", action="store_true", help="leave chorder out (it is slow)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N songs")
    parser.add_argument("--verbose", action="store_true", help="one line per song")
    args = parser.parse_args(argv)

    folders = sorted(p for p in args.songs.iterdir() if (p / "chord_midi.txt").is_file()) if args.songs.is_dir() else []
    if not folders:
        print(f"bench/chords.py: no labelled songs (NNN/NNN.mid with chord_midi.txt) in {args.songs}", file=sys.stderr)
        return 2
    try:
        import mir_eval  # noqa: F401
    except ImportError:
        print("bench/chords.py: mir_eval is not installed; pip install 'kelly-ml[bench]'", file=sys.stderr)
        return 2
    use_chorder = not args.no_chorder
    if use_chorder:
        try:
            import chorder  # noqa: F401
        except ImportError:
            print("chorder is not installed (pip install 'kelly-ml[bench]'); leaving it out", file=sys.stderr)
            use_chorder = False
    if args.limit:
        folders = folders[: args.limit]

    songs, kelly, per_bar, chorder_rows = [], [], [], []
    seconds = {"kelly": 0.0, "per bar": 0.0, "chorder": 0.0}
    for folder in folders:
        try:
            song = load_song(folder)
        except (MidiError, OSError, ValueError) as exc:
            print(f"{folder.name}: skipped ({exc})")
            continue
        songs.append(song)
        start = time.perf_counter()
        intervals, labels = kelly_chords(song)
        track = estimate_keys(song.notes)
        seconds["kelly"] += time.perf_counter() - start
        kelly.append({**chord_scores(song, intervals, labels), **key_scores(song, track)})
        start = time.perf_counter()
        intervals, labels = per_bar_chords(song)
        old_key = whole_file_key(song)
        seconds["per bar"] += time.perf_counter() - start
        per_bar.append({**chord_scores(song, intervals, labels), **key_scores(song, old_key)})
        if use_chorder:
            start = time.perf_counter()
            intervals, labels = chorder_chords(song)
            seconds["chorder"] += time.perf_counter() - start
            chorder_rows.append(chord_scores(song, intervals, labels))
        if args.verbose:
            k, b = kelly[-1], per_bar[-1]
            print(f"{song.name} {'4/4' if song.four_four else 'oth'} majmin {k['majmin']:.3f} (bar {b['majmin']:.3f})"
                  f"  root {k['root']:.3f}  key {k['key_exact']:.2f} (KK {b['key_exact']:.2f})"
                  f"  ref {song.key_labels[0]} est {key_label(*track.main)}")

    print(f"{len(songs)} songs from {args.songs}; mean over songs, time-weighted within each")
    summarise(kelly, songs, "kelly-ml")
    summarise(per_bar, songs, "per bar")
    if use_chorder:
        summarise(chorder_rows, songs, "chorder")
    print("seconds per song: " + ", ".join(f"{k} {v / len(songs) * 1e3:.1f} ms" for k, v in seconds.items() if v))
    changing = [r for r, s in zip(kelly, songs) if len(set(s.key_labels)) > 1]
    if changing:
        print(f"songs that change key: {len(changing)}; exact key over {np.mean([r['key_exact'] for r in changing]):.3f} of their time")
    mean = {k: float(np.mean([r[k] for r in kelly])) for k in kelly[0]}
    print(f"majmin {mean['majmin']:.3f} root {mean['root']:.3f} key_mirex {mean['key_mirex']:.3f} key_exact {mean['key_exact']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
