"""Lakh-MIDI-style multitrack songs (drums, bass, chords, melody on General MIDI programs) and the
three Lakh layouts: lmd_full (by content hash), lmd_matched (by Million Song Dataset id) and
clean_midi (by artist and title).

Songs are sequenced, not performed: quantised onsets, velocities from the sequencer (some songs use
one velocity throughout, as many Lakh files do). Each follows intro / verse / chorus sections in a
major or minor key at its own tempo; the chorus is higher, louder and denser than the verse.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import music, rhythm
from .broken import TRUNCATED_MIDI, ZERO_BYTES, WriteReport, truncated, write_broken, write_file
from .emotion import Character, arousal_of, balanced_tonics, character_for, key_for, spread_targets, valence_of
from .midi_files import MidiTrack, events_to_ticks, midi_bytes
from .seeding import rng_for

BASS_PROGRAMS = {33: "Fingered Bass", 34: "Picked Bass", 35: "Fretless Bass", 38: "Synth Bass"}
CHORD_PROGRAMS = {0: "Piano", 4: "Electric Piano", 24: "Nylon Guitar", 27: "Clean Guitar", 48: "Strings",
                  89: "Warm Pad", 16: "Organ"}
MELODY_PROGRAMS = {80: "Square Lead", 73: "Flute", 65: "Alto Sax", 56: "Trumpet", 52: "Choir Aahs",
                   11: "Vibraphone", 29: "Overdrive Guitar", 0: "Piano"}

BRIGHT_TITLES = ("Summer Road", "Golden Hour", "Morning Light", "Open Windows", "Dancing Shoes", "High Tide",
                 "Sunday Drive", "Paper Planes", "City Lights", "Wild Flowers", "Good News", "Holiday")
DARK_TITLES = ("Grey Harbour", "Long Night", "Letters Unsent", "Cold Rain", "Empty Rooms", "Last Train",
               "Shadows", "Winter Coat", "Fading Signal", "Quiet Storm", "Broken Clock", "Undertow")
ARTISTS = ("The Lanterns", "Nora Vale", "Harbour Lights", "Static Bloom", "The Early Hours")


@dataclass(frozen=True)
class SongPlan:
    index: int
    key: music.Key
    character: Character
    beats_per_bar: int
    tpq: int
    drum_style: str
    verse: tuple[str, ...]
    chorus: tuple[str, ...]
    programs: tuple[int, int, int]          # bass, chords, melody
    duration: float                         # target seconds
    flat_velocity: bool                     # one velocity throughout, as some sequencers write
    ritardando: bool                        # tempo events slowing the last two bars

    @property
    def title(self) -> str:
        titles = BRIGHT_TITLES if self.key.mode == "major" else DARK_TITLES
        return titles[self.index % len(titles)]

    @property
    def valence(self) -> float:
        return round(valence_of(self.character), 3)

    @property
    def arousal(self) -> float:
        return round(arousal_of(self.character), 3)


def plan_song(index: int, target: tuple[float, float], tonic: int, rng: np.random.Generator) -> SongPlan:
    """The plan of song `index`, aimed at `target` (valence, arousal), in the mode that target
    calls for, on `tonic`."""
    c = character_for(*target, rng)
    key = key_for(c, tonic)
    table = music.MAJOR_PROGRESSIONS if c.mode == "major" else music.MINOR_PROGRESSIONS
    verse, chorus = (table[int(i)] for i in rng.choice(len(table), size=2, replace=False))
    beats_per_bar = 3 if rng.random() < 0.1 else 4
    if beats_per_bar == 3:
        drum_style = "jazz 3-4"
    elif c.density > 0.8:
        drum_style = "funk 4-4" if c.tempo < 120 else "punk 4-4"
    elif c.density > 0.55:
        drum_style = "rock 4-4"
    elif c.tempo < 80:
        drum_style = "reggae 4-4" if c.mode == "major" else "hiphop 4-4"
    else:
        drum_style = "pop 4-4"
    bass = (38, 33) if c.brightness > 0.6 else (35, 34)
    chords = (4, 27, 16, 0) if c.density > 0.5 else (48, 89, 24, 0)
    lead = (80, 56, 29, 65) if target[1] > 0 else (73, 52, 11, 0)
    pick = lambda options: int(options[int(rng.integers(len(options)))])  # noqa: E731
    return SongPlan(index, key, c, beats_per_bar, int(rng.choice((96, 120, 192, 384, 480))), drum_style,
                    tuple(verse), tuple(chorus), (pick(bass), pick(chords), pick(lead)),
                    float(rng.uniform(42.0, 56.0)), bool(rng.random() < 0.2), bool(index % 7 == 3))


def song_sections(plan: SongPlan) -> list[tuple[str, int]]:
    """(section name, bars) from intro to the final chorus, about plan.duration seconds long."""
    bar_seconds = plan.beats_per_bar * 60.0 / plan.character.tempo
    target = plan.duration / bar_seconds
    unit = 8 if target >= 26 else 4                      # slow songs get shorter sections
    out: list[tuple[str, int]] = [("intro", unit // 2), ("verse", unit), ("chorus", unit)]
    while sum(b for _, b in out) + 2 * unit <= target + unit / 2:
        out += [("verse", unit), ("chorus", unit)]
    if sum(b for _, b in out) + unit <= target + unit / 2:
        out.append(("chorus", unit))
    return out + [("ending", 1)]


def compose_song(plan: SongPlan, rng: np.random.Generator) -> dict[str, list[music.NoteEvent]]:
    """Note events (beats) per part: "drums", "bass", "chords", "melody"."""
    c, key, bpb = plan.character, plan.key, plan.beats_per_bar
    parts: dict[str, list[music.NoteEvent]] = {"drums": [], "bass": [], "chords": [], "melody": []}
    style = rhythm.STYLES[plan.drum_style]
    if bpb == 3:
        comp = "waltz"
    elif c.density < 0.5:
        comp = "sustain" if c.density < 0.3 else "halves"
    else:
        comp = "offbeat" if plan.drum_style.startswith("reggae") else "stabs"
    bass_level = int(np.searchsorted((0.3, 0.55, 0.8), c.density, side="right"))
    bass_pattern = ("whole", "half", "quarter", "eighth")[bass_level]
    center = 62 + int(round(18 * c.register))
    bar = 0
    sections = song_sections(plan)
    melodies: dict[str, list[music.NoteEvent]] = {}
    for s, (name, n_bars) in enumerate(sections):
        numerals = plan.chorus if name == "chorus" else plan.verse
        if name == "ending":
            numerals = ("I",) if key.mode == "major" else ("i",)
        chords = music.progression([numerals[b % len(numerals)] for b in range(n_bars)], key)
        t0 = bar * bpb
        voicings = music.voice_progression(chords, 55 + int(round(6 * c.register)))
        basses = [music.bass_pitch(ch.bass_pitch_class, 36) for ch in chords]
        lift = 8 if name == "chorus" else 0
        parts["chords"] += music.shift(music.accompaniment(voicings, bpb, comp if name != "ending" else "sustain",
                                                           velocity=70 + lift, bass_pitches=basses), t0)
        parts["bass"] += music.shift(music.bass_line(chords, key, bpb, bass_pattern if name != "ending" else "whole",
                                                     velocity=92 + lift), t0)
        if name in ("verse", "chorus"):
            if name not in melodies:                   # verses share a tune, choruses share a tune
                melodies[name] = music.melody(chords, key, rng, beats_per_bar=bpb,
                                              density=min(1.0, c.density + (0.15 if name == "chorus" else 0.0)),
                                              center=center + (5 if name == "chorus" else 0), velocity=92 + lift)
            parts["melody"] += music.shift(melodies[name], t0)
        for b in range(n_bars):
            last_before_chorus = b == n_bars - 1 and s + 1 < len(sections) and sections[s + 1][0] == "chorus"
            if name == "intro" and b < 2:
                cymbals = (rhythm.CLOSED_HAT, rhythm.RIDE, rhythm.PEDAL_HAT)
                hits = [h for h in rhythm.groove_bar(style, 0) if h.pitch in cymbals]
            elif name == "ending":
                hits = rhythm.crash_downbeat(0.0)
            elif last_before_chorus:
                hits = rhythm.fill_bar(style, 0, rng, start_fraction=0.5)
            else:
                hits = rhythm.groove_bar(style, 0)
            if b == 0 and name == "chorus":
                hits = hits + rhythm.crash_downbeat(0.0)[:1]
            parts["drums"] += music.shift([h for h in hits if h.start < bpb], (bar + b) * bpb)
        bar += n_bars
    return parts


def song_midi(plan: SongPlan, rng: np.random.Generator) -> bytes:
    parts = compose_song(plan, rng)
    tpq = plan.tpq
    bass, chords, lead = plan.programs
    flat = {"velocity_scale": 0.0, "velocity_offset": 100} if plan.flat_velocity else {}
    tracks = [
        MidiTrack("Drums", 0, True, events_to_ticks(parts["drums"], tpq, **flat)),
        MidiTrack(BASS_PROGRAMS[bass], bass, False, events_to_ticks(parts["bass"], tpq, **flat)),
        MidiTrack(CHORD_PROGRAMS[chords], chords, False, events_to_ticks(parts["chords"], tpq, **flat)),
        MidiTrack("Melody", lead, False, events_to_ticks(parts["melody"], tpq, **flat)),
    ]
    tempo = plan.character.tempo
    tempos = [(0, tempo)]
    if plan.ritardando:
        end_beat = max(n.start for n in parts["drums"])
        for k, beat in enumerate(np.arange(end_beat - 2 * plan.beats_per_bar, end_beat, 1.0)):
            tempos.append((int(round(beat * tpq)), round(tempo * (1.0 - 0.04 * (k + 1)), 2)))
    return midi_bytes(tracks, tpq=tpq, tempos=tempos, time_signature=(plan.beats_per_bar, 4), key=plan.key)


def md5_name(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def msd_id(rng: np.random.Generator) -> str:
    """A Million-Song-Dataset-style track id: TR + 5 letters + 128F + 7 hex digits, e.g. TRAAAGR128F425B14B."""
    letters = "".join(chr(ord("A") + int(i)) for i in rng.integers(0, 26, 5))
    tail = "".join("0123456789ABCDEF"[int(i)] for i in rng.integers(0, 16, 7))
    return f"TR{letters}128F{tail}"


def song_plans(seed: int, n_songs: int) -> list[SongPlan]:
    """Plans for `n_songs` songs spread over the valence/arousal square, in all 24 keys evenly."""
    targets = spread_targets(n_songs, rng_for(seed, "lakh-targets"))
    tonics = balanced_tonics(targets, rng_for(seed, "lakh-tonics"))
    return [plan_song(i, targets[i], tonics[i], rng_for(seed, "lakh-plan", i)) for i in range(n_songs)]


def write_lakh(root: Path, seed: int, *, n_songs: int = 30, n_matched: int = 12, n_clean: int = 5) -> WriteReport:
    """lmd_full/{h}/{md5}.mid for every song; lmd_matched/{R}/{R}/{R}/{MSD id}/{md5}.mid for some (one
    under two ids); clean_midi/{Artist}/{Title}.mid for a few (a second version as Title.1.mid).
    Broken: a truncated file, a zero-byte file and a file with no notes, all named by md5."""
    report = WriteReport()
    plans = song_plans(seed, n_songs)
    files = [song_midi(p, rng_for(seed, "lakh-song", p.index)) for p in plans]
    for data in files:
        h = md5_name(data)
        write_file(root, f"lmd_full/{h[0]}/{h}.mid", data)
    report.count = len(files)

    rng = rng_for(seed, "lakh-layouts")
    matched = [int(i) for i in rng.choice(n_songs, size=min(n_matched, n_songs), replace=False)]
    for k, i in enumerate(matched):
        ids = [msd_id(rng)] + ([msd_id(rng)] if k == 0 else [])     # the first matches two MSD entries
        for tid in ids:
            write_file(root, f"lmd_matched/{tid[2]}/{tid[3]}/{tid[4]}/{tid}/{md5_name(files[i])}.mid", files[i])

    clean = matched[:n_clean]
    for k, i in enumerate(clean):
        write_file(root, f"clean_midi/{ARTISTS[k % len(ARTISTS)]}/{plans[i].title}.mid", files[i])
    # a second version of the first clean song: same song, another arrangement, its own md5
    first = plans[clean[0]]
    variant = song_midi(replace(first, programs=(33, 0, 0), tpq=480),
                        rng_for(seed, "lakh-song", first.index, "version-2"))
    write_file(root, f"clean_midi/{ARTISTS[0]}/{first.title}.1.mid", variant)
    write_file(root, f"lmd_full/{md5_name(variant)[0]}/{md5_name(variant)}.mid", variant)
    report.count += 1

    cut = truncated(files[-1])
    write_broken(root, f"lmd_full/{md5_name(cut)[0]}/{md5_name(cut)}.mid", cut, TRUNCATED_MIDI.format(percent=45),
                 report)
    write_broken(root, f"lmd_full/{md5_name(b'')[0]}/{md5_name(b'')}.mid", b"", ZERO_BYTES, report)
    silent = midi_bytes([MidiTrack("Piano", 0)], tpq=480, tempos=[(0, 120.0)], key=music.Key(0, "major"))
    path = f"lmd_full/{md5_name(silent)[0]}/{md5_name(silent)}.mid"
    write_file(root, path, silent)
    report.no_notes.append(path)
    return report
