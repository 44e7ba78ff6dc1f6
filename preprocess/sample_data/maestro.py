"""MAESTRO-style solo piano performances: composed pieces played with phrasing, rubato and pedal.

A piece is melody plus accompaniment in one key, in phrases of four bars (form A A B A ..., the last
phrase cadencing). The performance shapes each phrase the way pianists do: velocity swells towards
the phrase's peak (about two thirds in) and falls away, the tempo broadens at phrase ends, the
melody sounds slightly before the accompaniment, onsets wander by a few milliseconds, and the
sustain pedal (CC64) is changed with the harmony. The piece's Character ties the cues together:
fast, loud, dense, high, detached pieces against slow, soft, sparse, low, legato ones, in major or minor.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import json

import numpy as np
import pandas as pd

from . import music
from .broken import TRUNCATED_MIDI, WriteReport, truncated, write_broken, write_file
from .emotion import Character, arousal_of, balanced_tonics, character_for, key_for, spread_targets
from .midi_files import MidiTrack, midi_bytes, second_ticks
from .seeding import rng_for

TPQ = 384                                  # MAESTRO's resolution
COLUMNS = ["canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename", "duration"]
YEARS = (2004, 2006, 2008, 2009, 2011, 2013, 2014, 2015, 2017, 2018)
MELODY_LEAD = 0.015                        # seconds the melody sounds before the accompaniment


@dataclass(frozen=True)
class PiecePlan:
    key: music.Key
    character: Character
    beats_per_bar: int                     # 3 or 4
    texture: str                           # accompaniment pattern (music.accompaniment)
    duration: float                        # target length in seconds

    @property
    def legato(self) -> float:
        """Sounding length as a fraction of the written length: 1.05 legato .. 0.45 detached."""
        return float(np.clip(1.1 - 0.65 * (arousal_of(self.character) + 1) / 2, 0.45, 1.05))

    @property
    def title_form(self) -> str:
        if self.beats_per_bar == 3:
            return "Waltz" if self.character.tempo >= 100 else "Minuet"
        if self.character.tempo < 84:
            return "Nocturne" if self.key.mode == "major" else "Elegy"
        if self.character.tempo < 126:
            return "Impromptu" if self.key.mode == "major" else "Ballade"
        return "Etude" if self.key.mode == "minor" else "Toccata"


def plan_piece(target: tuple[float, float], tonic: int, rng: np.random.Generator) -> PiecePlan:
    """A piece aimed at `target` (valence, arousal), in the mode that target calls for, on `tonic`."""
    character = character_for(*target, rng)
    key = key_for(character, tonic)
    beats_per_bar = 3 if rng.random() < 0.25 else 4
    return PiecePlan(key, character, beats_per_bar, texture_for(character, beats_per_bar),
                     float(rng.uniform(60.0, 90.0)))


def texture_for(character: Character, beats_per_bar: int) -> str:
    """The accompaniment a pianist plays for this character: a waltz in 3/4, else half-note
    chords, arpeggios or an Alberti bass as the density rises."""
    if beats_per_bar == 3:
        return "waltz"
    if character.density < 0.35:
        return "halves"
    return "arpeggio" if character.density < 0.65 else "alberti"


def compose(plan: PiecePlan, rng: np.random.Generator) -> tuple[list[music.NoteEvent], list[music.NoteEvent], int]:
    """(melody, accompaniment, number of bars): phrases of 4 bars in the form A A B A ..."""
    c, key, bpb = plan.character, plan.key, plan.beats_per_bar
    table = music.MAJOR_PROGRESSIONS if key.mode == "major" else music.MINOR_PROGRESSIONS
    picks = rng.choice(len(table), size=2, replace=False)
    phrase_a = [table[picks[0]][i % len(table[picks[0]])] for i in range(4)]
    phrase_b = [table[picks[1]][i % len(table[picks[1]])] for i in range(4)]
    tonic = "I" if key.mode == "major" else "i"
    cadence = phrase_a[:2] + ["V7", tonic]
    bar_seconds = bpb * 60.0 / c.tempo
    n_phrases = max(3, int(round(plan.duration / (4 * bar_seconds))))
    form = ["A", "A", "B", "A"]
    numerals: list[str] = []
    for p in range(n_phrases):
        if p == n_phrases - 1:
            numerals += cadence
        else:
            numerals += phrase_a if form[p % 4] == "A" else phrase_b
    chords = music.progression(numerals, key)
    center = 60 + int(round(22 * c.register))
    # the A material is composed once and repeated; B and the cadence get their own melody
    melody_by_phrase = {}
    for label, chords4 in (("A", chords[:4]), ("B", music.progression(phrase_b, key)),
                           ("C", music.progression(cadence, key))):
        melody_by_phrase[label] = music.melody(chords4, key, rng, beats_per_bar=bpb, density=c.density,
                                               center=center, rest_probability=0.12)
    melody: list[music.NoteEvent] = []
    for p in range(n_phrases):
        label = "C" if p == n_phrases - 1 else form[p % 4]
        melody += music.shift(melody_by_phrase[label], p * 4 * bpb)
    voicings = music.voice_progression(chords, 50 + int(round(8 * c.register)))
    basses = [music.bass_pitch(ch.bass_pitch_class, 36) for ch in chords]
    accompaniment = music.accompaniment(voicings, bpb, plan.texture, bass_pitches=basses)
    if plan.texture != "waltz":                            # a bass note under each bar, as pianists play it
        accompaniment += [music.NoteEvent(b * bpb, bpb * 0.9, basses[b], 70) for b in range(len(chords))]
    return melody, accompaniment, len(chords)


def _time_map(plan: PiecePlan, n_bars: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(beats, seconds) at 1/48-beat resolution with rubato: a slight push towards each phrase's
    peak, a ritardando over its last bar, and a broader one at the end of the piece."""
    bpb = plan.beats_per_bar
    beats = np.arange(0.0, n_bars * bpb + 8.0, 1.0 / 48.0)
    phrase_pos = (beats / (4 * bpb)) % 1.0
    factor = 1.0 + 0.04 * np.sin(np.pi * phrase_pos)                      # > 1 is faster
    factor -= 0.14 * np.clip((phrase_pos - 0.75) / 0.25, 0, 1) ** 2        # phrase-end broadening
    end = n_bars * bpb
    factor -= 0.3 * np.clip((beats - (end - bpb)) / bpb, 0, 1)            # final ritardando
    factor *= 1.0 + 0.01 * rng.standard_normal()
    seconds_per_step = 60.0 / (plan.character.tempo * factor) / 48.0
    return beats, np.concatenate([[0.0], np.cumsum(seconds_per_step)[:-1]])


def perform(plan: PiecePlan, rng: np.random.Generator) -> tuple[list[tuple[float, float, int, int]],
                                                                list[tuple[float, int]]]:
    """The performance: notes as (onset s, duration s, pitch, velocity) and pedal as (time s, CC64 value)."""
    melody, accompaniment, n_bars = compose(plan, rng)
    beats, seconds = _time_map(plan, n_bars, rng)
    c, bpb = plan.character, plan.beats_per_bar
    base = 34 + 58 * c.loudness
    swell = 8 + 14 * c.loudness
    legato = plan.legato

    def at(beat):
        return np.interp(beat, beats, seconds)

    notes = []
    for line, offset, lead in ((melody, 8, MELODY_LEAD), (accompaniment, -8, 0.0)):
        if not line:
            continue
        # every note of the line at once; the noise is drawn as note by note: velocity's, then onset's
        start = np.array([n.start for n in line])
        end = start + np.array([n.duration for n in line])
        written = np.array([n.velocity for n in line], dtype=np.float64)
        noise = rng.standard_normal((len(line), 2))
        shape = np.sin(np.pi * ((start / (4 * bpb)) % 1.0) ** 1.61)   # peak about two thirds into the phrase
        downbeat = np.where(np.abs(start % bpb) < 1e-9, 5, 0)
        velocity = base + swell * (shape - 0.5) + offset + downbeat + (written - 80) * 0.3 + 4.0 * noise[:, 0]
        onset = at(start) - lead + 0.008 * noise[:, 1]
        length = (at(end) - at(start)) * legato
        velocity = np.clip(np.round(velocity), 8, 124).astype(int)
        notes += [(max(0.0, float(o)), max(0.03, float(d)), n.pitch, int(v))
                  for o, d, n, v in zip(onset, length, line, velocity)]
    pedal: list[tuple[float, int]] = []
    change_every = bpb if legato > 0.75 else 4 * bpb            # detached pieces pedal only phrase ends
    for b in range(0, n_bars * bpb, change_every):
        if change_every > bpb:
            b = b + 3 * bpb                                       # last bar of the phrase
        t = float(at(b))
        pedal += [(t + 0.01, 0), (t + 0.07, 40), (t + 0.1, 90), (t + 0.13, 127)]
        if change_every > bpb:
            pedal.append((float(at(b + bpb)) - 0.05, 0))
    pedal.append((max(n[0] + n[1] for n in notes) + 0.2, 0))
    return sorted(notes), sorted(pedal)


def performance_midi(plan: PiecePlan, rng: np.random.Generator) -> tuple[bytes, float]:
    """(MIDI bytes, duration in seconds) of a performance, with a tempo event at the piece's tempo."""
    notes, pedal = perform(plan, rng)
    qpm = plan.character.tempo
    track = MidiTrack(name="", program=0)
    for onset, length, pitch, velocity in notes:
        track.notes.append((second_ticks(onset, TPQ, qpm), max(1, second_ticks(length, TPQ, qpm)), pitch, velocity))
    for t, value in pedal:
        track.controls.append((second_ticks(t, TPQ, qpm), 64, value))
    data = midi_bytes([track], tpq=TPQ, tempos=[(0, qpm)], time_signature=(plan.beats_per_bar, 4))
    duration = max(max(n[0] + n[1] for n in notes), pedal[-1][0])
    return data, duration


def file_name(year: int, session: int, take: int) -> str:
    """A MAESTRO-style file name stem, e.g. 2018/MIDI-Unprocessed_03_R1_2018_01-04_ORIG_MID--AUDIO_03_R1_2018_wav--2."""
    return (f"{year}/MIDI-Unprocessed_{session:02d}_R1_{year}_01-04_ORIG_MID--AUDIO_{session:02d}_R1_{year}"
            f"_wav--{take}")


def write_maestro(root: Path, seed: int, *, n_pieces: int = 16) -> WriteReport:
    """maestro-v3.0.0/maestro-v3.0.0.csv (+ .json) and the .midi files; official splits train/validation/test
    (about 60/20/20), plus one truncated file with its csv row."""
    report = WriteReport()
    base = root / "maestro-v3.0.0"
    targets = spread_targets(n_pieces, rng_for(seed, "maestro-targets"))
    tonics = balanced_tonics(targets, rng_for(seed, "maestro-tonics"))
    rows = []
    titles_seen: dict[str, int] = {}
    for i in range(n_pieces + 1):
        rng = rng_for(seed, "maestro", i)
        plan = plan_piece(targets[i % n_pieces], tonics[i % n_pieces], rng)
        data, duration = performance_midi(plan, rng)
        year = YEARS[i % len(YEARS)] if i % 3 else 2018
        stem = file_name(year, 1 + i // 2, 1 + i % 2 + (i // 4) % 3)
        title = f"{plan.title_form} in {plan.key.name(long_accidentals=True)}"
        titles_seen[title] = titles_seen.get(title, 0) + 1
        if titles_seen[title] > 1:
            title += f", No. {titles_seen[title]}"
        split = ("train", "train", "validation", "train", "test")[i % 5] if i < n_pieces else "train"
        if i == n_pieces:                                  # the broken one: a cut-off download
            write_broken(root, f"maestro-v3.0.0/{stem}.midi", truncated(data),
                         TRUNCATED_MIDI.format(percent=45), report)
        else:
            write_file(base, f"{stem}.midi", data)
            report.count += 1
        rows.append({"canonical_composer": "Anonymous", "canonical_title": title, "split": split, "year": year,
                     "midi_filename": f"{stem}.midi", "audio_filename": f"{stem}.wav",
                     "duration": round(duration, 9)})
    table = pd.DataFrame(rows, columns=COLUMNS).sort_values(["canonical_title", "midi_filename"]).reset_index(drop=True)
    table.to_csv(base / "maestro-v3.0.0.csv", index=False, lineterminator="\n")
    columns = json.loads(table.to_json(orient="columns"))                  # {"column": {"0": value, ...}}
    (base / "maestro-v3.0.0.json").write_text(json.dumps(columns, indent=4) + "\n", encoding="utf-8")
    return report
