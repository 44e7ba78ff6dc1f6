"""A small composition model: keys, chords and their symbols, Roman-numeral progressions,
voicings, melody, bass and accompaniment lines.

Time is in beats (quarter notes in 4/4 and 3/4) from the start of the piece; pitches are MIDI note
numbers; velocities 1-127. The performers (the writers of each dataset) turn beats into ticks or
seconds and shape the velocities.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from preprocess.features.spec import FLAT_PITCH_CLASS_NAMES as FLAT_NAMES
from preprocess.features.spec import PITCH_CLASS_NAMES as SHARP_NAMES

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)        # natural minor; the harmonic V comes from the numerals

#: chord quality as written after the root -> intervals above the root in semitones
QUALITIES = {
    "": (0, 4, 7),
    "m": (0, 3, 7),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10),
    "6": (0, 4, 7, 9),
    "m6": (0, 3, 7, 9),
    "dim": (0, 3, 6),
    "dim7": (0, 3, 6, 9),
    "m7b5": (0, 3, 6, 10),
    "+": (0, 4, 8),
    "sus4": (0, 5, 7),
    "sus2": (0, 2, 7),
}

# Roman numerals: numeral -> (semitones above the tonic, quality). Case and ° follow the usual
# conventions; "/3" and "/5" after a numeral put the chord's third or fifth in the bass.
MAJOR_NUMERALS = {
    "I": (0, ""), "Imaj7": (0, "maj7"), "I6": (0, "6"), "Isus2": (0, "sus2"),
    "ii": (2, "m"), "ii7": (2, "m7"),
    "iii": (4, "m"), "iii7": (4, "m7"),
    "IV": (5, ""), "IVmaj7": (5, "maj7"), "iv": (5, "m"), "iv6": (5, "m6"),
    "V": (7, ""), "V7": (7, "7"), "Vsus4": (7, "sus4"), "V+": (7, "+"),
    "vi": (9, "m"), "vi7": (9, "m7"),
    "vii°": (11, "dim"), "viiø7": (11, "m7b5"),
    "bIII": (3, ""), "bVI": (8, ""), "bVII": (10, ""),
    "II7": (2, "7"), "III7": (4, "7"), "VI7": (9, "7"), "#iv°7": (6, "dim7"),
}
MINOR_NUMERALS = {
    "i": (0, "m"), "i7": (0, "m7"), "im6": (0, "m6"), "isus4": (0, "sus4"),
    "ii°": (2, "dim"), "iiø7": (2, "m7b5"),
    "III": (3, ""), "IIImaj7": (3, "maj7"), "III+": (3, "+"),
    "iv": (5, "m"), "iv7": (5, "m7"), "IV": (5, ""),
    "v": (7, "m"), "V": (7, ""), "V7": (7, "7"), "Vsus4": (7, "sus4"),
    "VI": (8, ""), "VImaj7": (8, "maj7"),
    "VII": (10, ""), "VII7": (10, "7"),
    "vii°7": (11, "dim7"), "bII": (1, ""),
}

#: progressions people actually play, by mode (one chord per entry)
MAJOR_PROGRESSIONS = (
    ("I", "V", "vi", "IV"),
    ("I", "vi", "IV", "V"),
    ("vi", "IV", "I", "V"),
    ("I", "IV", "V", "I"),
    ("I", "IV", "vi", "V"),
    ("ii7", "V7", "Imaj7", "Imaj7"),
    ("I", "V/3", "vi", "iii", "IV", "I/3", "IV", "V"),
    ("I", "iii", "IV", "V"),
    ("Imaj7", "vi7", "ii7", "V7"),
    ("I", "IV", "I", "V7"),
    ("I", "bVII", "IV", "I"),
    ("I", "Vsus4", "V", "I"),
    ("IV", "V", "iii", "vi"),
)
MINOR_PROGRESSIONS = (
    ("i", "VI", "III", "VII"),
    ("i", "VII", "VI", "V"),
    ("i", "iv", "v", "i"),
    ("i", "iiø7", "V7", "i"),
    ("i", "VI", "VII", "i"),
    ("i", "iv", "VII", "III", "VI", "iiø7", "V7", "i"),
    ("i", "ii°", "V", "i"),
    ("i", "VI", "iv", "V"),
    ("i", "iv", "i", "V7"),
    ("i", "VII", "iv", "i"),
    ("i7", "iv7", "VII7", "IIImaj7"),
)


@dataclass(frozen=True)
class Key:
    """A tonic pitch class (0 = C) and a mode ("major" or "minor")."""

    tonic: int
    mode: str

    @property
    def scale(self) -> tuple[int, ...]:
        """The scale's pitch classes, tonic first."""
        steps = MAJOR_SCALE if self.mode == "major" else MINOR_SCALE
        return tuple((self.tonic + s) % 12 for s in steps)

    @property
    def uses_flats(self) -> bool:
        """Whether the key signature has flats (F major, D minor, ...), so chords are spelled with b."""
        major_tonic = self.tonic if self.mode == "major" else (self.tonic + 3) % 12
        return major_tonic in (5, 10, 3, 8, 1)       # F, Bb, Eb, Ab, Db

    @property
    def sharps(self) -> int:
        """Key signature as MIDI writes it: -7 (7 flats) .. +7 (7 sharps)."""
        major_tonic = self.tonic if self.mode == "major" else (self.tonic + 3) % 12
        fifths = (major_tonic * 7) % 12               # position on the circle of fifths, 0..11
        return fifths - 12 if fifths > 6 or (fifths == 6 and self.uses_flats) else fifths

    def name(self, *, long_accidentals: bool = False) -> str:
        """E.g. "Eb minor", or "E-flat minor" with long_accidentals."""
        tonic = pitch_class_name(self.tonic, flats=self.uses_flats)
        if long_accidentals:
            tonic = tonic[0] + tonic[1:].replace("b", "-flat").replace("#", "-sharp")
        return f"{tonic} {self.mode}"


@dataclass(frozen=True)
class Chord:
    """A root pitch class, a quality from QUALITIES, and an optional bass pitch class (slash chord)."""

    root: int
    quality: str
    bass: int | None = None

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        return tuple((self.root + i) % 12 for i in QUALITIES[self.quality])

    @property
    def bass_pitch_class(self) -> int:
        return self.root if self.bass is None else self.bass

    def symbol(self, *, flats: bool = False) -> str:
        """The symbol as lead sheets write it: "C", "F#m7", "Bbmaj7", "C/E"."""
        text = pitch_class_name(self.root, flats=flats) + self.quality
        if self.bass is not None and self.bass != self.root:
            text += "/" + pitch_class_name(self.bass, flats=flats)
        return text


@dataclass(frozen=True)
class NoteEvent:
    """One note: onset and length in beats, MIDI pitch, velocity."""

    start: float
    duration: float
    pitch: int
    velocity: int = 80


def pitch_class_name(pc: int, *, flats: bool = False) -> str:
    return (FLAT_NAMES if flats else SHARP_NAMES)[pc % 12]


def chord_from_numeral(numeral: str, key: Key) -> Chord:
    """The chord a Roman numeral names in `key`, e.g. ("V7", C major) -> G7; "I/3" -> C/E."""
    base, _, inversion = numeral.partition("/")
    table = MAJOR_NUMERALS if key.mode == "major" else MINOR_NUMERALS
    if base not in table:
        raise ValueError(f"unknown Roman numeral {numeral!r} for a {key.mode} key")
    offset, quality = table[base]
    root = (key.tonic + offset) % 12
    bass = None
    if inversion:
        intervals = QUALITIES[quality]
        bass = (root + intervals[{"3": 1, "5": 2}[inversion]]) % 12
    return Chord(root, quality, bass)


def progression(numerals: tuple[str, ...] | list[str], key: Key) -> list[Chord]:
    return [chord_from_numeral(n, key) for n in numerals]


def voice_chord(chord: Chord, center: int, previous: tuple[int, ...] | None = None, *,
                max_voices: int = 4) -> tuple[int, ...]:
    """Close-position voicing of `chord` near MIDI pitch `center`.

    With a previous voicing, the inversion that moves the voices least is chosen (voice leading);
    otherwise the one whose middle is nearest `center`. Five-note chords drop their fifth.
    """
    pcs = list(chord.pitch_classes)
    if len(pcs) > max_voices:
        pcs.pop(2)
    best, best_cost = None, None
    for rotation in range(len(pcs)):
        order = pcs[rotation:] + pcs[:rotation]
        for low in range(center - 9, center + 3):
            if low % 12 != order[0]:
                continue
            voicing = [low]
            for pc in order[1:]:
                nxt = voicing[-1] + 1
                while nxt % 12 != pc:
                    nxt += 1
                voicing.append(nxt)
            if previous:
                cost = sum(abs(a - b) for a, b in zip(sorted(voicing), sorted(previous)))
                cost += 0.5 * abs(np.mean(voicing) - center)
            else:
                cost = abs(np.mean(voicing) - center)
            if best_cost is None or cost < best_cost:
                best, best_cost = tuple(voicing), cost
    assert best is not None
    return best


def voice_progression(chords: list[Chord], center: int) -> list[tuple[int, ...]]:
    """Voicings for a sequence of chords with smooth voice leading."""
    out: list[tuple[int, ...]] = []
    for chord in chords:
        out.append(voice_chord(chord, center, out[-1] if out else None))
    return out


def bass_pitch(pc: int, low: int = 36) -> int:
    """The pitch of class `pc` in the octave starting at `low` (E1-D#2 region by default)."""
    return low + (pc - low) % 12


def bass_line(chords: list[Chord], key: Key, beats_per_bar: int, pattern: str, *,
              low: int = 36, velocity: int = 90) -> list[NoteEvent]:
    """One chord per bar; patterns: "whole", "half" (root, fifth), "quarter" (root, root, fifth,
    approach note), "eighth" (driving root eighths), "walking" (scale walk to the next root)."""
    notes: list[NoteEvent] = []
    scale = key.scale
    for bar, chord in enumerate(chords):
        t0 = bar * beats_per_bar
        root = bass_pitch(chord.bass_pitch_class, low)
        fifth = root + 7 if root + 7 <= low + 14 else root - 5
        nxt = bass_pitch(chords[(bar + 1) % len(chords)].bass_pitch_class, low)
        if pattern == "whole":
            notes.append(NoteEvent(t0, beats_per_bar * 0.95, root, velocity))
        elif pattern == "half":
            half = beats_per_bar / 2 if beats_per_bar % 2 == 0 else 2
            notes.append(NoteEvent(t0, half * 0.9, root, velocity))
            notes.append(NoteEvent(t0 + half, (beats_per_bar - half) * 0.9, fifth, velocity - 8))
        elif pattern == "quarter":
            line = [root, root, fifth, nxt - 1 if nxt > root else nxt + 1][:beats_per_bar]
            for b, p in enumerate(line):
                notes.append(NoteEvent(t0 + b, 0.85, p, velocity - (0 if b == 0 else 10)))
        elif pattern == "eighth":
            for k in range(beats_per_bar * 2):
                p = root if k < beats_per_bar * 2 - 1 else fifth
                notes.append(NoteEvent(t0 + k / 2, 0.4, p, velocity - (0 if k % 2 == 0 else 14)))
        elif pattern == "walking":
            degrees = [p for p in range(root - 5, root + 13) if p % 12 in scale or p % 12 in chord.pitch_classes]
            direction = 1 if nxt >= root else -1
            line, p = [root], root
            for _ in range(beats_per_bar - 2):
                candidates = [d for d in degrees if 0 < (d - p) * direction <= 3]
                p = candidates[0] if candidates else p + 2 * direction
                line.append(p)
            line.append(nxt - direction)                       # chromatic approach to the next root
            for b, pitch in enumerate(line[:beats_per_bar]):
                notes.append(NoteEvent(t0 + b, 0.9, pitch, velocity - (0 if b == 0 else 6)))
        else:
            raise ValueError(f"unknown bass pattern {pattern!r}")
    return notes


def accompaniment(voicings: list[tuple[int, ...]], beats_per_bar: int, pattern: str, *,
                  velocity: int = 70, bass_pitches: list[int] | None = None) -> list[NoteEvent]:
    """Chord accompaniment, one voicing per bar. Patterns: "sustain" (held), "halves", "stabs"
    (short quarter-note chords), "offbeat" (chords on the "and"s), "arpeggio" (broken chord in
    eighths), "alberti" (low-high-middle-high eighths), "waltz" (bass on 1, chord on 2 and 3;
    needs bass_pitches)."""
    notes: list[NoteEvent] = []
    for bar, voicing in enumerate(voicings):
        t0 = bar * beats_per_bar
        v = sorted(voicing)
        if pattern == "sustain":
            notes += [NoteEvent(t0, beats_per_bar * 0.98, p, velocity) for p in v]
        elif pattern == "halves":
            half = beats_per_bar / 2 if beats_per_bar % 2 == 0 else 1.5
            for s in (0.0, half):
                notes += [NoteEvent(t0 + s, half * 0.95, p, velocity - (0 if s == 0 else 6)) for p in v]
        elif pattern == "stabs":
            for b in range(beats_per_bar):
                notes += [NoteEvent(t0 + b, 0.45, p, velocity - (0 if b == 0 else 8)) for p in v]
        elif pattern == "offbeat":
            for b in range(beats_per_bar):
                notes += [NoteEvent(t0 + b + 0.5, 0.3, p, velocity - 4) for p in v]
        elif pattern == "arpeggio":
            cycle = v + [p + 12 for p in v[1:]]
            cycle = cycle + cycle[-2:0:-1]
            for k in range(beats_per_bar * 2):
                notes.append(NoteEvent(t0 + k / 2, 0.9, cycle[k % len(cycle)], velocity - (0 if k % 2 == 0 else 8)))
        elif pattern == "alberti":
            low, mid, high = v[0], v[len(v) // 2], v[-1]
            for k in range(beats_per_bar * 2):
                p = (low, high, mid, high)[k % 4]
                notes.append(NoteEvent(t0 + k / 2, 0.45, p, velocity - (0 if k % 4 == 0 else 10)))
        elif pattern == "waltz":
            if bass_pitches is None:
                raise ValueError("the waltz pattern needs bass_pitches")
            notes.append(NoteEvent(t0, 0.95, bass_pitches[bar], velocity + 6))
            for b in range(1, beats_per_bar):
                notes += [NoteEvent(t0 + b, 0.6, p, velocity - 10) for p in v]
        else:
            raise ValueError(f"unknown accompaniment pattern {pattern!r}")
    return notes


#: rhythm cells of one beat (durations in beats), by melodic density level 1..3
_BEAT_CELLS = {
    1: ((1.0,), (1.0,), (0.5, 0.5)),
    2: ((0.5, 0.5), (1.0,), (0.75, 0.25), (0.5, 0.5)),
    3: ((0.25, 0.25, 0.25, 0.25), (0.5, 0.25, 0.25), (0.25, 0.25, 0.5), (0.5, 0.5)),
}


def melody_rhythm(rng: np.random.Generator, beats_per_bar: int, density: float) -> list[float]:
    """Note durations (beats) filling one bar; density in [0, 1] picks from whole/half notes up to
    sixteenths."""
    level = int(min(3, np.floor(density * 4)))
    if level == 0:
        return [float(beats_per_bar)] if rng.random() < 0.4 else [2.0, beats_per_bar - 2.0]
    out: list[float] = []
    for _ in range(beats_per_bar):
        cells = _BEAT_CELLS[level]
        out += cells[rng.integers(len(cells))]
    return out


def melody(chords: list[Chord], key: Key, rng: np.random.Generator, *, beats_per_bar: int,
           density: float, center: int, phrase_bars: int = 4, rest_probability: float = 0.1,
           velocity: int = 85) -> list[NoteEvent]:
    """A melody over one chord per bar: stepwise motion on the scale, chord tones on strong beats,
    an arch contour per phrase (peak about two thirds in) ending on a chord tone held longer."""
    scale_pitches = [p for p in range(center - 12, center + 13) if p % 12 in key.scale]
    idx = int(np.argmin([abs(p - center) for p in scale_pitches]))
    notes: list[NoteEvent] = []
    n_bars = len(chords)
    for bar, chord in enumerate(chords):
        t = float(bar * beats_per_bar)
        durations = melody_rhythm(rng, beats_per_bar, density)
        phrase_pos = (bar % phrase_bars) / phrase_bars
        last_bar_of_phrase = bar % phrase_bars == phrase_bars - 1 or bar == n_bars - 1
        if last_bar_of_phrase:                                 # cadence: fewer, longer notes
            durations = durations[: max(1, len(durations) // 2)]
            durations[-1] += beats_per_bar - sum(durations)
        for k, dur in enumerate(durations):
            pos = phrase_pos + (t - bar * beats_per_bar) / (beats_per_bar * phrase_bars)
            target = center - 4 + 9 * np.sin(np.pi * min(1.0, pos * 1.3))
            step = int(rng.choice((-2, -1, -1, 0, 1, 1, 2)))
            step += int(np.sign(target - scale_pitches[idx])) if rng.random() < 0.5 else 0
            idx = int(np.clip(idx + step, 0, len(scale_pitches) - 1))
            strong = abs(t - round(t)) < 1e-9 and (round(t) % 2 == 0 or beats_per_bar == 3)
            if strong or (last_bar_of_phrase and k == len(durations) - 1):
                chord_idx = [i for i, p in enumerate(scale_pitches) if p % 12 in chord.pitch_classes]
                if chord_idx:
                    idx = min(chord_idx, key=lambda i: abs(i - idx))
            is_rest = k > 0 and not last_bar_of_phrase and rng.random() < rest_probability
            if not is_rest:
                notes.append(NoteEvent(t, dur * 0.92, scale_pitches[idx], velocity))
            t += dur
    return notes


def transpose(notes: list[NoteEvent], semitones: int) -> list[NoteEvent]:
    return [replace(n, pitch=n.pitch + semitones) for n in notes]


def shift(notes: list[NoteEvent], beats: float) -> list[NoteEvent]:
    return [replace(n, start=n.start + beats) for n in notes]
