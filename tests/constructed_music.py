"""Constructed songs for the chord and key tests, written as real MIDI files.

A song is a list of chords with their lengths in beats, each in a key. It is played by a bass
(the root on every beat, the fifth on the third beat of a bar), a piano (the chord broken in
eighth notes around middle C and struck above it every other beat), a melody (eighth notes in
the fifth octave: a chord tone on each beat, a step of the key's scale after it, often outside
the chord) and a drum kit, the way pop arrangements sound. Timing (10 ms) and velocity are
humanised a little.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi

from preprocess.features.chords import QUALITY_INTERVALS, parse_chord

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


def chord_tones(symbol: str) -> tuple[int, tuple[int, ...]]:
    """(root pitch class, pitch classes) of a chord symbol such as "Am" or "G7"."""
    chord = parse_chord(symbol)
    return chord.root, tuple((chord.root + i) % 12 for i in QUALITY_INTERVALS[chord.quality])


def write_song(path: Path, chords: list[tuple[str, float, int, bool]], *, bpm: float = 96.0,
               numerator: int = 4, offset_beats: float = 0.0, seed: int = 0) -> Path:
    """Write a song to `path`: `chords` is [(symbol, beats, key tonic, key is minor)], in order.

    offset_beats shifts every note by that many beats off the file's own beat grid (the music of
    many transcriptions does not start on the grid); the tempo and meter stay as written.
    """
    rng = np.random.default_rng(seed)
    beat = 60.0 / bpm
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(numerator, 4, 0.0))
    bass = pretty_midi.Instrument(program=33, name="bass")
    piano = pretty_midi.Instrument(program=0, name="piano")
    lead = pretty_midi.Instrument(program=73, name="melody")
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")

    def add(instrument, pitch, start_beats, length_beats, velocity):
        jitter = rng.normal(0.0, 0.01)
        start = (start_beats + offset_beats) * beat + jitter
        instrument.notes.append(pretty_midi.Note(int(np.clip(velocity + rng.integers(-6, 7), 1, 127)), int(pitch),
                                                 max(start, 0.0), max(start, 0.0) + length_beats * beat))

    position = 0.0
    melody_pitch = 76
    for symbol, beats, tonic, minor in chords:
        root, tones = chord_tones(symbol)
        scale = sorted((tonic + s) % 12 for s in (MINOR if minor else MAJOR))
        for b in range(int(beats)):
            t = position + b
            in_bar = int(round(t)) % numerator
            fifth = in_bar == 2 and len(tones) > 2
            add(bass, 36 + (tones[2] if fifth else root) % 12, t, 0.9, 90)
            # the piano breaks the chord in eighths: the tones from around middle C upwards
            voicing = sorted(55 + (pc - 55) % 12 for pc in tones)
            for e in range(2):
                add(piano, voicing[(2 * b + e) % len(voicing)], t + 0.5 * e, 0.9, 62)
            if b % 2 == 0:
                for p in voicing:                                        # and strikes it on every other beat
                    add(piano, p + 12, t, 1.8, 55)
            # melody: a chord tone on the beat, a scale step towards the next on the off-beat
            on_beat = min((p for p in range(70, 86) if p % 12 in tones), key=lambda p: abs(p - melody_pitch))
            add(lead, on_beat, t, 0.5, 80)
            step = 1 if rng.random() < 0.5 else -1
            passing = on_beat + step
            while passing % 12 not in scale:
                passing += step
            add(lead, passing, t + 0.5, 0.45, 70)
            melody_pitch = int(np.clip(passing + rng.integers(-3, 4), 72, 84))
            # drums: kick on 1 and 3, snare on 2 and 4, hats on eighths
            add(drums, 36 if in_bar % 2 == 0 else 38, t, 0.1, 100)
            add(drums, 42, t, 0.1, 70)
            add(drums, 42, t + 0.5, 0.1, 60)
        position += beats
    pm.instruments.extend([bass, piano, lead, drums])
    pm.write(str(path))
    return path


def key_of(symbols: str, tonic: int, minor: bool, beats: float = 4.0) -> list[tuple[str, float, int, bool]]:
    """Chords for `write_song` from a space-separated string, all in one key, `beats` each."""
    return [(s, beats, tonic, minor) for s in symbols.split()]
