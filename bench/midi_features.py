"""Per-file cost of the MIDI feature route through symusic and through pretty_midi, side by side.

The route is what the preprocess job does with one MIDI file: parse, melody windows, dynamics
windows, groove windows (when the file has drums) and proxy labels. Both parsers feed the same
feature code, so the ratio is the parser's share. The chords and keys at the pace of the beat
(`chords_and_keys`, which the job also runs on every file with pitched notes) cost the same after
either parser; they are timed on their own and the ratio with them is printed too. Files: the real corpus (../shared/real-corpus)
when present, plus generated multitrack songs (pedalled piano chords, bass, melody, drums; ~6000
notes each). Times are the best of --repeat runs.

    python bench/midi_features.py [--files 40] [--notes 6000] [--no-real] [--repeat 3] [--clock wall|cpu]
                                  [--min-ratio 20]

Exits 1 when symusic is less than --min-ratio times faster over all files.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from preprocess.features.dynamics import dynamics_windows
from preprocess.features.groove import groove_windows
from preprocess.features.keys import chords_and_keys
from preprocess.features.melody import melody_windows
from preprocess.features.midi import MidiError, NoteArrays, load_notes_pretty_midi, load_notes_symusic
from preprocess.features.proxy_labels import proxy_labels

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-corpus"
TPQ = 480
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
PROGRESSIONS = ([0, 4, 5, 3], [0, 5, 3, 4], [5, 3, 0, 4], [0, 3, 4, 4])   # scale degrees: I-V-vi-IV, ...


def file_features(notes: NoteArrays, source: str) -> int:
    """The whole per-file feature route; returns the number of windows produced."""
    windows = melody_windows(notes)[0].shape[0] + dynamics_windows(notes)[0].shape[0]
    if notes.is_drum.any():
        windows += groove_windows(notes)[0].shape[0]
    proxy_labels(notes, source, {})
    return windows


def _triad(degree: int, tonic: int) -> np.ndarray:
    idx = np.array([degree, degree + 2, degree + 4])
    return tonic + MAJOR[idx % 7] + 12 * (idx // 7)


def generated_song(path: Path, n_notes: int, rng: np.random.Generator) -> Path:
    """A pop-song-like multitrack file: block chords, bass, an 8th-note melody and a drum kit."""
    import symusic
    from symusic import ControlChange, Note, Score, Tempo, TimeSignature, Track

    tonic = 48 + int(rng.integers(0, 12))
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    bars = max(1, n_notes // 32)                     # 8 chord + 4 bass + 8 melody + 12 drum notes per bar
    bar_ticks = 4 * TPQ
    chords, bass, melody, drums, pedal = [], [], [], [], []
    melody_degree = 7
    for bar in range(bars):
        start = bar * bar_ticks
        triad = _triad(progression[bar % 4], tonic)
        for half in range(2):
            chord_start = start + half * 2 * TPQ
            pedal += [(chord_start + 10, 127), (chord_start + 2 * TPQ - 15, 0)]   # re-pedalled per chord
            for p in np.r_[triad + 12, triad[0] + 24]:
                chords.append((start + half * 2 * TPQ, 2 * TPQ - 20, p, 60 + int(rng.integers(-8, 9))))
        for beat in range(4):
            bass.append((start + beat * TPQ, TPQ - 40, triad[0] - 12 + (7 if beat == 2 else 0), 85 + int(rng.integers(-6, 7))))
        for eighth in range(8):
            melody_degree = int(np.clip(melody_degree + rng.choice([-2, -1, 1, 2]), 3, 13))
            p = tonic + 12 + MAJOR[melody_degree % 7] + 12 * (melody_degree // 7)
            melody.append((start + eighth * TPQ // 2 + int(rng.integers(-6, 7)), TPQ // 2 - 30, p,
                           75 + 15 * (eighth % 2 == 0) + int(rng.integers(-5, 6))))
        for eighth in range(8):
            drums.append((start + eighth * TPQ // 2 + int(rng.integers(-4, 5)), 60, 42, 65 + 20 * (eighth % 2 == 0)))
        drums += [(start, 60, 36, 110), (start + 2 * TPQ + TPQ // 2, 60, 36, 95),
                  (start + TPQ, 60, 38, 100), (start + 3 * TPQ, 60, 38, 105)]

    score = Score(TPQ)
    score.tempos.append(Tempo(0, float(rng.integers(80, 161))))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    for program, is_drum, notes in ((0, False, chords), (33, False, bass), (73, False, melody), (0, True, drums)):
        t, d, p, v = (np.array(c) for c in zip(*notes))
        t = np.maximum(t, 0)
        track = Track(program=program, is_drum=is_drum)
        track.notes = Note.from_numpy(t.astype(np.int32), d.astype(np.int32), p.astype(np.int8), v.astype(np.int8))
        if program == 0 and not is_drum:
            track.controls = ControlChange.from_numpy(np.array([e[0] for e in pedal], np.int32),
                                                      np.full(len(pedal), 64, np.uint8),
                                                      np.array([e[1] for e in pedal], np.uint8))
        score.tracks.append(track)
    score.dump_midi(str(path))
    assert symusic.Score(str(path)).note_num() == len(chords) + len(bass) + len(melody) + len(drums)
    return path


def source_of(path: Path) -> str:
    parts = path.parts
    return "groove" if "drum_midi" in parts else "maestro" if "piano_midi" in parts else "lakh"


def time_route(load, path: Path, repeat: int = 1, clock=time.perf_counter) -> tuple[float, int]:
    """Best time (ms) of `repeat` runs of parse + features, and the number of windows."""
    best = float("inf")
    for _ in range(repeat):
        start = clock()
        notes = load(path)
        windows = file_features(notes, source_of(path))
        best = min(best, (clock() - start) * 1e3)
    return best, windows


def time_harmony(notes: NoteArrays, repeat: int = 1, clock=time.perf_counter) -> float:
    """Best time (ms) of `repeat` runs of the chords and keys of a file (0 without pitched notes)."""
    if not (~notes.is_drum).any():
        return 0.0
    best = float("inf")
    for _ in range(repeat):
        start = clock()
        chords_and_keys(notes)
        best = min(best, (clock() - start) * 1e3)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40, help="generated files (default 40)")
    parser.add_argument("--notes", type=int, default=6000, help="notes per generated file (default 6000)")
    parser.add_argument("--no-real", action="store_true", help="leave out the real corpus")
    parser.add_argument("--min-ratio", type=float, default=20.0, help="required speed-up (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per file and route, best kept (default 3)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall clock, or this process's CPU time (steadier on a shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(args.seed)
        files = [generated_song(Path(tmp) / f"song_{i:02d}.mid", args.notes, rng) for i in range(args.files)]
        if REAL.exists() and not args.no_real:
            files += sorted(p for kind in ("piano_midi", "multitrack_midi", "drum_midi")
                            for p in (REAL / kind).rglob("*.mid"))
        # warm both routes (imports, first-call costs) on the first file
        time_route(load_notes_symusic, files[0])
        time_route(load_notes_pretty_midi, files[0])

        print(f"{args.clock} clock, best of {args.repeat}")
        print(f"{'file':44s} {'notes':>6s} {'symusic ms':>11s} {'pretty_midi ms':>15s} {'ratio':>7s} "
              f"{'chords+keys ms':>15s}")
        totals = np.zeros(3)
        for path in files:
            try:
                fast, windows_fast = time_route(load_notes_symusic, path, args.repeat, clock)
                slow, windows_slow = time_route(load_notes_pretty_midi, path, args.repeat, clock)
            except MidiError as exc:
                print(f"{path.name[:44]:44s} skipped: {exc.reason}")
                continue
            if windows_fast != windows_slow:
                print(f"{path.name[:44]:44s} windows differ: {windows_fast} vs {windows_slow}")
            notes = load_notes_symusic(path)
            harmony = time_harmony(notes, args.repeat, clock)
            totals += (fast, slow, harmony)
            print(f"{path.name[:44]:44s} {len(notes):6d} {fast:11.2f} {slow:15.1f} {slow / fast:6.1f}x {harmony:15.2f}")
        ratio = totals[1] / totals[0]
        per_file = totals / len(files)
        print(f"\n{len(files)} files: symusic {per_file[0]:.2f} ms/file, pretty_midi {per_file[1]:.1f} ms/file, "
              f"{ratio:.1f}x (required {args.min_ratio:g}x)")
        print(f"with the chords and keys ({per_file[2]:.2f} ms/file after either parser): symusic "
              f"{per_file[0] + per_file[2]:.2f} ms/file, pretty_midi {per_file[1] + per_file[2]:.1f} ms/file, "
              f"{(totals[1] + totals[2]) / (totals[0] + totals[2]):.1f}x")
    return 0 if ratio >= args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
