"""Drum grooves: step patterns per style, fills, swing and a drummer's micro-timing.

Pitches are General MIDI drum notes in the Roland mapping the Groove MIDI Dataset uses (kick 36,
snare 38, cross-stick 37, rim shot 40, closed hat 42, pedal hat 44, open hat 46, toms 50/48/47/45/43,
crash 49/57, ride 51, ride bell 53), all of which preprocess.features.spec.GROOVE_PITCH_TO_CLASS
knows. Time is in beats (quarter notes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .music import NoteEvent

KICK, SNARE, CROSS_STICK, RIM_SHOT = 36, 38, 37, 40
CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 42, 44, 46
HIGH_TOM, HIGH_MID_TOM, MID_TOM, LOW_MID_TOM, LOW_TOM, FLOOR_TOM = 50, 48, 47, 45, 43, 58
CRASH, CRASH_2, RIDE, RIDE_BELL = 49, 57, 51, 53

#: step symbol -> velocity before humanisation
STROKES = {"X": 112, "x": 88, "o": 64, "g": 34}


@dataclass(frozen=True)
class DrumStyle:
    """A groove: one step grid per drum, repeating every len(grid) steps."""

    name: str                                  # as the Groove MIDI Dataset writes it: "rock", "jazz/swing"
    time_signature: tuple[int, int]
    beats_per_bar: float                       # quarter-note beats (6/8 -> 3)
    step: float                                # beats per grid step (0.25 = sixteenth)
    patterns: dict[int, str]
    bpm: tuple[int, int]                       # usual tempo range
    swing: float = 0.5                         # 0.5 straight, 2/3 triplet swing
    swing_unit: float = 0.5                    # the note value that swings (0.5 = eighths)
    fill_step: float = 0.25                    # note value of fills

    @property
    def steps_per_bar(self) -> int:
        return int(round(self.beats_per_bar / self.step))


#: styles by a unique key (the name, plus the metre where a style comes in two)
STYLES: dict[str, DrumStyle] = {f"{s.name} {s.time_signature[0]}-{s.time_signature[1]}": s for s in (
    DrumStyle("rock", (4, 4), 4, 0.25, {
        KICK: "X.......X.x.....", SNARE: "....X.......X...", CLOSED_HAT: "X.x.x.x.X.x.x.x."}, (88, 132)),
    DrumStyle("funk", (4, 4), 4, 0.25, {
        KICK: "X.....x...X..x..", SNARE: "....X..g.g..X..g",
        CLOSED_HAT: "XoxoXoxoXoxoXo.o", OPEN_HAT: "..............x."}, (84, 112)),
    DrumStyle("hiphop", (4, 4), 4, 0.25, {
        KICK: "X......x.xX.....", SNARE: "....X.......X...", CLOSED_HAT: "x.o.x.o.x.o.x.o."},
        (82, 98), swing=0.58, swing_unit=0.25),
    DrumStyle("jazz/swing", (4, 4), 4, 0.25, {
        RIDE: "X...x.x.X...x.x.", PEDAL_HAT: "....x.......x...", KICK: "g...g...g...g...",
        SNARE: "......g.......g."}, (120, 220), swing=0.66, fill_step=1 / 3),
    DrumStyle("latin/samba", (4, 4), 4, 0.25, {
        KICK: "X..xX..xX..xX..x", CROSS_STICK: "x..x..x...x..x..", CLOSED_HAT: "xoooxoooxoooxooo"}, (96, 120)),
    DrumStyle("reggae", (4, 4), 4, 0.25, {
        KICK: "........X.......", CROSS_STICK: "........X.......", CLOSED_HAT: "x.o.x.o.x.o.x.o."},
        (70, 84), swing=0.6),
    DrumStyle("punk", (4, 4), 4, 0.25, {
        KICK: "X.x.....X.x.....", SNARE: "....X.......X...", RIDE: "X.x.X.x.X.x.X.x."}, (160, 200)),
    DrumStyle("soul/motown", (4, 4), 4, 0.25, {
        KICK: "X.....x.X.....x.", SNARE: "x...X...x...X...", CLOSED_HAT: "x.x.x.x.x.x.x.x."}, (96, 124)),
    DrumStyle("funk/purdieshuffle", (4, 4), 4, 1 / 3, {
        KICK: "X....xX.....", SNARE: ".g.Xg..g.Xg.", CLOSED_HAT: "x.xx.xx.xx.x"}, (80, 100),
        fill_step=1 / 3),
    DrumStyle("pop", (4, 4), 4, 0.25, {
        KICK: "X.......X.......", SNARE: "....X.......X...", CLOSED_HAT: "x.x.x.x.x.x.x.x."}, (92, 120)),
    DrumStyle("jazz", (3, 4), 3, 0.25, {
        RIDE: "X...x.x.x...", PEDAL_HAT: "....x...x...", KICK: "g...........", SNARE: "..........g."},
        (110, 180), swing=0.66, fill_step=1 / 3),
    DrumStyle("rock", (6, 8), 3, 0.5, {
        KICK: "X.....", SNARE: "...X..", CLOSED_HAT: "Xxxxxx"}, (56, 72)),
    DrumStyle("afrocuban/bembe", (6, 8), 3, 0.5, {
        RIDE_BELL: "x.x.xx.x.x.x", KICK: "X.....X.....", CROSS_STICK: "...x.....x.."}, (100, 126)),
)}

#: tom run orders used in fills, high to low
TOM_RUNS = ((SNARE, SNARE, HIGH_TOM, HIGH_TOM, MID_TOM, MID_TOM, LOW_TOM, LOW_TOM),
            (HIGH_TOM, HIGH_MID_TOM, MID_TOM, LOW_MID_TOM, LOW_TOM, FLOOR_TOM),
            (SNARE, HIGH_TOM, SNARE, MID_TOM, SNARE, LOW_TOM))


def groove_bar(style: DrumStyle, bar: int, *, variation: float = 0.0,
               rng: np.random.Generator | None = None) -> list[NoteEvent]:
    """One bar of the style's groove starting at beat bar * beats_per_bar (straight, unswung).

    With `variation` > 0 and a generator, weak notes are occasionally dropped or ghost notes added,
    as a drummer varies a pattern."""
    t0 = bar * style.beats_per_bar
    n = style.steps_per_bar
    hits: list[NoteEvent] = []
    for pitch, grid in style.patterns.items():
        offset = (bar * n) % len(grid)
        for k in range(n):
            symbol = grid[(offset + k) % len(grid)]
            if symbol == "." and rng is not None and variation and pitch == SNARE and rng.random() < variation / 3:
                symbol = "g"
            if symbol == ".":
                continue
            if rng is not None and variation and symbol in "og" and rng.random() < variation:
                continue
            hits.append(NoteEvent(t0 + k * style.step, style.step, pitch, STROKES[symbol]))
    return hits


def fill_bar(style: DrumStyle, bar: int, rng: np.random.Generator, *, start_fraction: float = 0.5) -> list[NoteEvent]:
    """A fill: the groove until `start_fraction` of the bar, then a crescendo run over snare and toms."""
    t0 = bar * style.beats_per_bar
    start = t0 + style.beats_per_bar * start_fraction
    hits = [h for h in groove_bar(style, bar) if h.start < start - 1e-9]
    run = TOM_RUNS[int(rng.integers(len(TOM_RUNS)))]
    n = int(round((t0 + style.beats_per_bar - start) / style.fill_step))
    for k in range(n):
        pitch = run[min(len(run) - 1, k * len(run) // max(n, 1))]
        velocity = int(70 + 45 * k / max(n - 1, 1))
        hits.append(NoteEvent(start + k * style.fill_step, style.fill_step, pitch, velocity))
        if k % 2 == 0 and style.fill_step < 0.3:
            hits.append(NoteEvent(start + k * style.fill_step, style.fill_step, KICK, 60))
    return hits


def crash_downbeat(beat: float) -> list[NoteEvent]:
    return [NoteEvent(beat, 1.0, CRASH, 118), NoteEvent(beat, 1.0, KICK, 112)]


def swing_beat(beat: float, swing: float, unit: float) -> float:
    """Delay the off-beat of each pair of `unit` notes so the pair splits swing : 1 - swing."""
    pos = beat % (2 * unit)
    if abs(pos - unit) < 1e-6:
        return beat + (2 * swing - 1) * unit
    return beat


@dataclass(frozen=True)
class DrummerFeel:
    """A drummer's timing and touch: per-drum offsets (ms, + = behind the beat), jitter and velocity spread."""

    offsets_ms: dict[int, float]
    jitter_ms: float
    velocity_spread: float

    @staticmethod
    def random(rng: np.random.Generator) -> "DrummerFeel":
        return DrummerFeel(
            offsets_ms={SNARE: float(rng.normal(6, 4)), KICK: float(rng.normal(-2, 3)),
                        CLOSED_HAT: float(rng.normal(-4, 3)), RIDE: float(rng.normal(-3, 3))},
            jitter_ms=float(rng.uniform(5, 12)),
            velocity_spread=float(rng.uniform(5, 10)),
        )


def perform(hits: list[NoteEvent], style: DrumStyle, tempo: float, feel: DrummerFeel,
            rng: np.random.Generator) -> list[tuple[float, int, int]]:
    """Humanised hits as (seconds, pitch, velocity): swing, the drummer's offsets and jitter,
    accents on the beat, velocity spread. Sorted by time."""
    out = []
    for h in hits:
        beat = swing_beat(h.start, style.swing, style.swing_unit) if style.swing != 0.5 else h.start
        seconds = beat * 60.0 / tempo
        seconds += (feel.offsets_ms.get(h.pitch, 0.0) + rng.normal(0.0, feel.jitter_ms)) / 1000.0
        on_beat = abs(h.start - round(h.start)) < 1e-6
        velocity = h.velocity + (6 if on_beat else 0) + rng.normal(0.0, feel.velocity_spread)
        out.append((max(0.0, seconds), h.pitch, int(np.clip(round(velocity), 1, 127))))
    return sorted(out)
