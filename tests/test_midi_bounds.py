"""MIDI whose timeline no music has (features/midi_bounds.py): refused by both parser routes, with the
reason; the edges of real music kept; the real corpus inside the bounds."""
from __future__ import annotations

from pathlib import Path

import mido
import pytest

from preprocess.features.midi import MidiError, load_notes, load_notes_pretty_midi

C_MAJOR_SCALE = (60, 62, 64, 65, 67, 69, 71, 72)


def write_mido(path: Path, ticks_per_beat: int, microseconds_per_beat: int, notes: int, step_ticks: int) -> Path:
    """A one-track file: `notes` notes of a C major scale, one every `step_ticks`, each that long."""
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=microseconds_per_beat, time=0)])
    for i in range(notes):
        pitch = C_MAJOR_SCALE[i % len(C_MAJOR_SCALE)]
        track += [mido.Message("note_on", note=pitch, velocity=80, time=0),
                  mido.Message("note_off", note=pitch, velocity=0, time=step_ticks)]
    midi.tracks.append(track)
    midi.save(str(path))
    return path


@pytest.mark.parametrize("case, args, reason", [
    ("tempo_1us", (480, 1, 64, 480), "a tempo of 1 microseconds per beat"),        # 64 notes within 64 us
    ("tpb_1", (1, 500_000, 64, 1), "ticks per quarter note is 1, below 24"),
    ("tpb_12", (12, 500_000, 64, 12), "ticks per quarter note is 12, below 24"),
    ("burst", (960, 500_000, 1500, 1), "notes start within 1 s"),                 # 1,920 notes a second
])
def test_an_absurd_timeline_is_refused_by_both_routes(tmp_path, case, args, reason):
    path = write_mido(tmp_path / f"{case}.mid", *args)
    for load in (load_notes, load_notes_pretty_midi):
        with pytest.raises(MidiError) as info:
            load(path)
        assert reason in info.value.reason and case in str(info.value), (load.__name__, str(info.value))


def test_timelines_at_the_edges_of_music_are_kept(tmp_path):
    """24 ticks per beat, 1.1 ms per beat for a flourish, a fermata at 16.7 s per beat, 900 notes a
    second and a stray absurd tempo after the last note are music (or harmless): kept."""
    for name, args in {"tpb_24": (24, 500_000, 32, 24), "fast": (480, 1_100, 64, 480),
                       "fermata": (480, 16_777_215, 4, 480), "dense": (960, 1_066_667, 1500, 1)}.items():
        notes = load_notes(write_mido(tmp_path / f"{name}.mid", *args))
        assert len(notes) == args[2] and load_notes_pretty_midi(tmp_path / f"{name}.mid").duration == \
            pytest.approx(notes.duration)
    path = write_mido(tmp_path / "stray.mid", 480, 500_000, len(C_MAJOR_SCALE), 480)
    midi = mido.MidiFile(str(path))
    midi.tracks[0].insert(-1, mido.MetaMessage("set_tempo", tempo=1, time=480 * 20))    # 20 beats after the end
    midi.save(str(path))
    assert len(load_notes(path)) == len(C_MAJOR_SCALE) == len(load_notes_pretty_midi(path))


def test_real_corpus_lies_inside_the_timeline_bounds(real_corpus):
    files = sorted(p for p in real_corpus.rglob("*.mid*") if "broken_midi" not in p.parts)
    assert len(files) > 1000
    refused = []
    for path in files:
        try:
            load_notes(path)
        except MidiError as exc:
            if "absurd" in exc.reason or "denser than" in exc.reason:
                refused.append(str(exc))
    assert refused == []
