"""Standard MIDI files from note lists, written with symusic (type 1, meta events in the first track,
drum tracks on channel 10)."""
from __future__ import annotations

from dataclasses import dataclass, field

from symusic import ControlChange, KeySignature, Note, Score, Tempo, TimeSignature, Track

from .music import Key, NoteEvent


@dataclass
class MidiTrack:
    """One instrument. notes: (tick, duration in ticks, pitch, velocity); controls: (tick, number, value)."""

    name: str
    program: int
    is_drum: bool = False
    notes: list[tuple[int, int, int, int]] = field(default_factory=list)
    controls: list[tuple[int, int, int]] = field(default_factory=list)


def beat_ticks(beats: float, tpq: int) -> int:
    return int(round(beats * tpq))


def second_ticks(seconds: float, tpq: int, qpm: float) -> int:
    """Ticks at a constant tempo of `qpm` quarter notes per minute."""
    return int(round(seconds * tpq * qpm / 60.0))


def events_to_ticks(notes: list[NoteEvent], tpq: int, *, velocity_scale: float = 1.0,
                    velocity_offset: int = 0) -> list[tuple[int, int, int, int]]:
    """NoteEvents (beats) -> (tick, duration, pitch, velocity) rows, velocities clipped to 1..127."""
    rows = []
    for n in notes:
        v = int(min(127, max(1, round(n.velocity * velocity_scale) + velocity_offset)))
        rows.append((beat_ticks(n.start, tpq), max(1, beat_ticks(n.duration, tpq)), n.pitch, v))
    return rows


def midi_bytes(tracks: list[MidiTrack], *, tpq: int, tempos: list[tuple[int, float]],
               time_signature: tuple[int, int] = (4, 4), key: Key | None = None) -> bytes:
    """A complete .mid file. tempos: (tick, quarter notes per minute), the first at tick 0."""
    score = Score(tpq)
    for tick, qpm in tempos:
        score.tempos.append(Tempo(tick, qpm=float(qpm)))
    score.time_signatures.append(TimeSignature(0, time_signature[0], time_signature[1]))
    if key is not None:
        score.key_signatures.append(KeySignature(0, key.sharps, 0 if key.mode == "major" else 1))
    for spec in tracks:
        track = Track(name=spec.name, program=spec.program, is_drum=spec.is_drum)
        for tick, duration, pitch, velocity in sorted(spec.notes):
            track.notes.append(Note(tick, duration, pitch, velocity))
        for tick, number, value in sorted(spec.controls):
            track.controls.append(ControlChange(tick, number, value))
        score.tracks.append(track)
    return bytes(score.dumps_midi())
