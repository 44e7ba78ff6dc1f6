"""MIDI parsing (symusic and pretty_midi routes), melody / dynamics / groove windows and proxy labels."""
from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
import symusic
from symusic import ControlChange, Note, Score, Tempo, TimeSignature, Track

from common.errors import KellyError
from preprocess.features import spec
from preprocess.features.dynamics import dynamics_windows
from preprocess.features.groove import fill_label, groove_windows, map_drum_hits
from preprocess.features.melody import melody_windows
from preprocess.features.midi import (
    MidiError,
    NoteArrays,
    load_notes,
    load_notes_pretty_midi,
    load_notes_symusic,
    merge_intervals,
    window_overlaps,
)
from preprocess.features.proxy_labels import (DENSITY_REFERENCE, PERFORMED_VELOCITY_LEVELS, STYLE_VALENCE,
                                              density_term, proxy_labels, tempo_term, velocity_term)


TPQ = 480                       # ticks per quarter note; at 120 bpm a quarter is 0.5 s
D = {name: i for i, name in enumerate(spec.DYNAMICS_NAMES)}
G = {name: i for i, name in enumerate(spec.GROOVE_NAMES)}
C_MAJOR_SCALE = (60, 62, 64, 65, 67, 69, 71, 72)
KICK, SNARE, CLOSED_HAT, LOW_TOM, MID_TOM, HIGH_TOM, CRASH, HAND_CLAP = 36, 38, 42, 43, 47, 50, 49, 39


def write_midi(path: Path, tracks, *, tempos=((0, 120.0),), time_signatures=((0, 4, 4),)) -> Path:
    """Write a MIDI file with symusic. tracks: [(program, is_drum, [(tick, ticks, pitch, velocity)], [(tick, cc, value)])]."""
    score = Score(TPQ)
    for tick, bpm in tempos:
        score.tempos.append(Tempo(tick, float(bpm)))
    for tick, num, den in time_signatures:
        score.time_signatures.append(TimeSignature(tick, num, den))
    for program, is_drum, notes, controls in tracks:
        track = Track(program=program, is_drum=is_drum)
        for tick, dur, pitch, velocity in notes:
            track.notes.append(Note(int(tick), int(dur), int(pitch), int(velocity)))
        for tick, number, value in controls:
            track.controls.append(ControlChange(int(tick), int(number), int(value)))
        score.tracks.append(track)
    score.dump_midi(str(path))
    return path


def assert_same_notes(a: NoteArrays, b: NoteArrays, *, compare_program: bool = True) -> None:
    assert len(a) == len(b)
    np.testing.assert_allclose(a.onset, b.onset, atol=1e-6, rtol=0)
    np.testing.assert_allclose(a.offset, b.offset, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(a.pitch, b.pitch)
    np.testing.assert_array_equal(a.velocity, b.velocity)
    np.testing.assert_array_equal(a.is_drum, b.is_drum)
    if compare_program:
        np.testing.assert_array_equal(a.program, b.program)
    np.testing.assert_allclose(a.tempo_times, b.tempo_times, atol=1e-6, rtol=0)
    np.testing.assert_allclose(a.tempo_bpm, b.tempo_bpm, rtol=1e-9)
    np.testing.assert_allclose(a.time_signature_times, b.time_signature_times, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(a.time_signature_numerator, b.time_signature_numerator)
    np.testing.assert_array_equal(a.time_signature_denominator, b.time_signature_denominator)
    np.testing.assert_allclose(a.sustain_intervals(), b.sustain_intervals(), atol=1e-6, rtol=0)
    assert a.duration == pytest.approx(b.duration, abs=1e-6)


# --- musical material -----------------------------------------------------------------------------
def scale_notes(velocities=None, ticks=TPQ):
    velocities = velocities or [80] * len(C_MAJOR_SCALE)
    return [(i * ticks, ticks, p, v) for i, (p, v) in enumerate(zip(C_MAJOR_SCALE, velocities))]


def chord_progression(roots_and_thirds, bars=1):
    """Block triads, one per bar of 4/4 (1920 ticks), with the root an octave lower in the bass."""
    notes = []
    for i, triad in enumerate(roots_and_thirds * bars):
        start = i * 4 * TPQ
        notes += [(start, 4 * TPQ, p, 70) for p in triad]
        notes.append((start, 4 * TPQ, triad[0] - 12, 80))
    return notes


def drum_bar(bar: int, swing_delay: float = 0.0, snare_late_ticks: int = 0):
    """One 4/4 bar: kick on 1 and 3, snare on 2 and 4, closed hats on every 8th, the off-beat
    hats delayed by `swing_delay` of an 8th (240 ticks)."""
    start = bar * 4 * TPQ
    hits = [(start, 60, KICK, 100), (start + 2 * TPQ, 60, KICK, 100),
            (start + TPQ + snare_late_ticks, 60, SNARE, 90), (start + 3 * TPQ + snare_late_ticks, 60, SNARE, 90)]
    for beat in range(4):
        hits.append((start + beat * TPQ, 60, CLOSED_HAT, 70))
        hits.append((start + beat * TPQ + 240 + round(swing_delay * 240), 60, CLOSED_HAT, 50))
    return hits


def tom_fill_bar(bar: int):
    """A bar of 16th notes down the toms (high, mid, low) ending on four snare hits."""
    start = bar * 4 * TPQ
    toms = [HIGH_TOM] * 4 + [MID_TOM] * 4 + [LOW_TOM] * 4 + [SNARE] * 4
    return [(start + i * TPQ // 4, 60, p, 85 + (i % 4) * 5) for i, p in enumerate(toms)]


# --- parsing --------------------------------------------------------------------------------------
def test_scale_parses_identically_through_both_routes(tmp_path):
    path = write_midi(tmp_path / "scale.mid", [(0, False, scale_notes(), [(480, 64, 127), (1440, 64, 0)])])
    a, b = load_notes_symusic(path), load_notes_pretty_midi(path)
    assert a.parser == "symusic" and b.parser == "pretty_midi"
    assert_same_notes(a, b)
    np.testing.assert_allclose(a.onset, np.arange(8) * 0.5)
    np.testing.assert_allclose(a.offset - a.onset, 0.5)
    np.testing.assert_array_equal(a.pitch, C_MAJOR_SCALE)
    assert a.onset.dtype == np.float64 and a.duration == pytest.approx(4.0)
    np.testing.assert_allclose(a.sustain_intervals(), [[0.5, 1.5]])
    assert load_notes(path).parser == "symusic"


def write_edge_case_file(path: Path) -> Path:
    """A type-1 file written with mido: tempo changes in track 1 (not track 0), a time-signature
    change, overlapping notes of one pitch, a zero-length note, a pedal, and a drum track."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TPQ)
    conductor = mido.MidiTrack([mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0),
                                mido.MetaMessage("time_signature", numerator=4, denominator=4, time=3 * TPQ * 2)])
    events = [  # absolute tick, message
        (0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100))),
        (0, mido.Message("program_change", program=0, channel=0)),
        (0, mido.Message("control_change", control=64, value=127, channel=0)),
        (0, mido.Message("note_on", note=60, velocity=70, channel=0)),
        (240, mido.Message("note_on", note=60, velocity=90, channel=0)),      # overlaps the first C
        (480, mido.Message("note_off", note=60, velocity=0, channel=0)),      # pretty_midi: ends both
        (720, mido.Message("note_off", note=60, velocity=0, channel=0)),
        (960, mido.Message("note_on", note=64, velocity=80, channel=0)),
        (960, mido.Message("note_off", note=64, velocity=0, channel=0)),      # zero length: dropped
        (960, mido.Message("note_on", note=67, velocity=85, channel=0)),
        (1440, mido.Message("control_change", control=64, value=0, channel=0)),
        (1920, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(140))),
        (1920, mido.Message("note_off", note=67, velocity=0, channel=0)),
        (1920, mido.Message("note_on", note=72, velocity=100, channel=0)),
        (3840, mido.Message("note_off", note=72, velocity=0, channel=0)),
    ]
    drums = [(t, mido.Message(kind, note=KICK if i % 2 == 0 else SNARE, velocity=100 if kind == "note_on" else 0, channel=9))
             for i, start in enumerate(range(0, 3840, 480)) for t, kind in ((start, "note_on"), (start + 60, "note_off"))]
    for messages in (events, sorted(drums, key=lambda e: e[0])):
        track, last = mido.MidiTrack(), 0
        for tick, msg in messages:
            track.append(msg.copy(time=tick - last))
            last = tick
        midi.tracks.append(track)
    midi.tracks.insert(0, conductor)
    midi.save(str(path))
    return path


def test_edge_cases_parse_identically_and_as_documented(tmp_path):
    path = write_edge_case_file(tmp_path / "edge.mid")
    a, b = load_notes_symusic(path), load_notes_pretty_midi(path)
    assert_same_notes(a, b)
    # tempo events in track 1 are honoured by both routes: 100 bpm, then 140 bpm from tick 1920
    seconds_per_quarter_140 = mido.bpm2tempo(140) / 1e6                  # 428571 microseconds, as stored
    np.testing.assert_allclose(a.tempo_bpm, [100.0, 60 / seconds_per_quarter_140], rtol=1e-12)
    np.testing.assert_allclose(a.tempo_times, [0.0, 4 * 0.6])
    pitched = a.select(~a.is_drum)
    # the zero-length E is gone; the overlapping Cs both end at the first note-off (tick 480)
    np.testing.assert_array_equal(pitched.pitch, [60, 60, 67, 72])
    np.testing.assert_allclose(pitched.offset[:2], [0.6, 0.6])
    np.testing.assert_allclose(pitched.offset[3], 2.4 + 4 * seconds_per_quarter_140)
    np.testing.assert_array_equal(a.time_signature_numerator, [3, 4])
    # 3/4 bars of 1.8 s at 100 bpm, then 4/4 from tick 2880 (where the tempo is 140)
    np.testing.assert_allclose(a.bar_times()[:3], [0.0, 1.8, 2.4 + 960 / TPQ * seconds_per_quarter_140])


def test_bars_and_beats_follow_time_signatures_like_pretty_midi(tmp_path):
    notes = [(i * 240, 240, 60 + i % 12, 80) for i in range(40)]
    path = write_midi(tmp_path / "meters.mid", [(0, False, notes, [])], tempos=((0, 90.0), (2880, 120.0)),
                      time_signatures=((0, 6, 8), (2880, 3, 4), (5760, 4, 4)))
    ours = load_notes(path)
    reference = pretty_midi.PrettyMIDI(str(path))
    np.testing.assert_allclose(ours.bar_times(), reference.get_downbeats(), atol=1e-9)
    np.testing.assert_allclose(ours.beat_times(), reference.get_beats(), atol=1e-9)
    # 6/8 at 90 bpm: a bar is 3 quarters = 2 s, a beat is a dotted quarter
    assert ours.bar_times()[1] == pytest.approx(2.0)
    assert ours.beat_times()[1] == pytest.approx(1.0)
    q = ours.seconds_to_quarters(np.array([0.0, 2.0, 4.0, 4.5]))
    np.testing.assert_allclose(q, [0.0, 3.0, 6.0, 7.0], atol=1e-5)     # 90 bpm is stored as 666667 us
    np.testing.assert_allclose(ours.quarters_to_seconds(q), [0.0, 2.0, 4.0, 4.5], atol=1e-12)


def test_load_notes_falls_back_to_pretty_midi_when_symusic_raises(tmp_path, monkeypatch):
    path = write_midi(tmp_path / "scale.mid", [(0, False, scale_notes(), [])])
    expected = load_notes(path)

    class RefusingScore:
        @staticmethod
        def from_file(*args, **kwargs):
            raise RuntimeError("MiniMidi: unexpected event")

    monkeypatch.setattr(symusic, "Score", RefusingScore)
    fallback = load_notes(path)
    assert fallback.parser == "pretty_midi"
    assert_same_notes(fallback, expected)


def test_broken_files_raise_midi_error_naming_file_and_reason(tmp_path):
    good = write_midi(tmp_path / "good.mid", [(0, False, scale_notes() * 25, [])])
    cases = {}
    (tmp_path / "zero.mid").write_bytes(b"")
    cases["zero.mid"] = "empty file"
    (tmp_path / "truncated.mid").write_bytes(good.read_bytes()[: good.stat().st_size * 3 // 5])
    cases["truncated.mid"] = "pretty_midi"
    (tmp_path / "notes.mid").write_text("Verse 1: C G Am F\nChorus: F G C C\n")
    cases["notes.mid"] = "symusic"
    write_midi(tmp_path / "silent.mid", [(0, False, [], [(0, 64, 127)])])
    cases["silent.mid"] = "no notes"
    midi = mido.MidiFile(ticks_per_beat=TPQ)
    midi.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=80, time=0),
                                       mido.Message("note_off", note=60, velocity=0, time=20_000_000)]))
    midi.save(str(tmp_path / "huge_tick.mid"))
    cases["huge_tick.mid"] = "largest tick"
    cases["missing.mid"] = "no such file"
    for name, reason in cases.items():
        with pytest.raises(MidiError) as info:
            load_notes(tmp_path / name)
        assert name in str(info.value) and reason in str(info.value), str(info.value)
        assert isinstance(info.value, ValueError) and isinstance(info.value, KellyError)
    with pytest.raises(MidiError, match="symusic failed .*pretty_midi could not parse"):
        load_notes(tmp_path / "truncated.mid")


# --- melody ---------------------------------------------------------------------------------------
def test_melody_scale_gives_half_windows(tmp_path):
    notes = load_notes(write_midi(tmp_path / "scale.mid", [(0, False, scale_notes(), [])]))
    targets, index = melody_windows(notes)
    assert targets.shape == (4, 128) and targets.dtype == np.float32
    np.testing.assert_array_equal(index, [0, 1, 2, 3])
    for w in range(4):
        expected = np.zeros(128)
        expected[[C_MAJOR_SCALE[2 * w], C_MAJOR_SCALE[2 * w + 1]]] = 0.5
        np.testing.assert_allclose(targets[w], expected, atol=1e-6)


def test_melody_chords_are_not_histograms_and_doublings_count_once(tmp_path):
    piano = chord_progression([(60, 64, 67)])                      # C major held for 2 s
    strings = [(TPQ, 3 * TPQ, 60, 60)]                             # a second C, 0.5 s .. 2.0 s
    late = [(6 * TPQ, TPQ // 2, 72, 90)]                           # 3.0 .. 3.25 s, after a silent second
    drums = [(i * TPQ, 60, KICK, 100) for i in range(8)]          # drums never enter melody targets
    notes = load_notes(write_midi(tmp_path / "chords.mid", [(0, False, piano, []), (48, False, strings + late, []),
                                                              (0, True, drums, [])]))
    targets, index = melody_windows(notes)
    np.testing.assert_array_equal(index, [0, 1, 3])
    np.testing.assert_allclose(targets[0, [48, 60, 64, 67]], 1.0)
    assert targets[0].sum() == pytest.approx(4.0)
    assert targets[2, 72] == pytest.approx(0.25) and targets[2].sum() == pytest.approx(0.25)
    assert targets[:, KICK].max() == 0.0


def test_window_helpers():
    item, window, seconds = window_overlaps(np.array([0.5, 2.0]), np.array([1.75, 2.5]), 1.0, 3)
    np.testing.assert_array_equal(item, [0, 0, 1])
    np.testing.assert_array_equal(window, [0, 1, 2])
    np.testing.assert_allclose(seconds, [0.5, 0.75, 0.5])
    np.testing.assert_allclose(merge_intervals(np.array([3.0, 0.0, 1.0]), np.array([4.0, 2.0, 1.5])),
                               [[0.0, 2.0], [3.0, 4.0]])


# --- dynamics -------------------------------------------------------------------------------------
def eighths(velocities, length=240):
    return [(i * 240, length, C_MAJOR_SCALE[i % 8], v) for i, v in enumerate(velocities)]


def test_dynamics_of_a_crescendo(tmp_path):
    velocities = [40, 50, 60, 70, 80, 90, 100, 110]
    path = write_midi(tmp_path / "crescendo.mid", [(0, False, eighths(velocities), [(480, 64, 127), (1440, 64, 0)])])
    targets, index = dynamics_windows(load_notes(path))
    assert targets.shape == (1, 16) and index.tolist() == [0]
    row = targets[0]
    v = np.array(velocities, dtype=float)
    expected = {
        "velocity_mean": 75 / 127, "velocity_std": v.std() / 64, "velocity_range": 70 / 127,
        "velocity_median": 75 / 127, "velocity_bin_0_31": 0.0, "velocity_bin_32_63": 3 / 8,
        "velocity_bin_64_95": 3 / 8, "velocity_bin_96_127": 2 / 8, "articulation": 1.0,
        "timing_deviation": 0.0, "accent_ratio": 3 / 8, "note_density": 8 / 2 / 20,
        "velocity_slope": 0.5 + (10 / 127 / 0.25) / 2, "sustain_pedal": 0.5, "polyphony": 0.1,
        "velocity_contrast": 10 / 64,
    }
    assert set(expected) == set(spec.DYNAMICS_NAMES)
    for name, value in expected.items():
        assert row[D[name]] == pytest.approx(value, abs=1e-5), name
    assert row[D["velocity_slope"]] > 0.5


def test_dynamics_diminuendo_staccato_and_uneven_rhythm(tmp_path):
    diminuendo = load_notes(write_midi(tmp_path / "dim.mid", [(0, False, eighths([110, 100, 90, 80, 70, 60, 50, 40], 120), [])]))
    row = dynamics_windows(diminuendo)[0][0]
    assert row[D["velocity_slope"]] < 0.5
    assert row[D["articulation"]] == pytest.approx(0.5)           # each note sounds half its interval
    assert row[D["polyphony"]] == pytest.approx(0.05, abs=1e-6)
    # long-short rhythm: IOIs alternate 0.5 s and 0.25 s -> std(log IOI) = ln(2) / 2
    ticks = [0, 480, 720, 1200, 1440, 1920]
    uneven = load_notes(write_midi(tmp_path / "uneven.mid", [(0, False, [(t, 200, 67, 80) for t in ticks], [])]))
    targets, index = dynamics_windows(uneven)
    assert targets[0, D["timing_deviation"]] == pytest.approx(np.log(2) / 2 / 2, abs=1e-5)


def test_dynamics_rolled_chord_is_one_onset(tmp_path):
    # a C major chord rolled over 20 ms every half second: articulation stays legato
    notes = [(start + k * 10, TPQ, p, 70) for start in range(0, 8 * TPQ, TPQ) for k, p in enumerate((60, 64, 67))]
    targets, _ = dynamics_windows(load_notes(write_midi(tmp_path / "rolled.mid", [(0, False, notes, [])])))
    assert targets[0, D["articulation"]] > 0.95
    assert targets[0, D["timing_deviation"]] == pytest.approx(0.0, abs=1e-3)
    assert targets[0, D["polyphony"]] == pytest.approx(0.3, abs=0.01)


# --- groove ---------------------------------------------------------------------------------------
def groove_file(tmp_path, name, bars):
    return load_notes(write_midi(tmp_path / name, [(0, True, [h for b in bars for h in b], [])]))


@pytest.mark.parametrize("delay, swing, timing_hat, syncopation", [
    (0.0, -1.0, 0.0, -1.0),               # straight 8ths
    (1 / 6, 0.0, 1 / 3, -1.0),            # off-beats 1/6 of an 8th late
    (1 / 3, 1.0, -1 / 3, -1 / 3),         # triplet swing: off-beats land nearer the "a" 16th (4 of 12 hits)
])
def test_groove_swing_from_delayed_off_beats(tmp_path, delay, swing, timing_hat, syncopation):
    notes = groove_file(tmp_path, "groove.mid", [drum_bar(0, delay), drum_bar(1, delay)])
    targets, index = groove_windows(notes)
    assert targets.shape == (2, 32) and index.tolist() == [0, 1]
    row = targets[1]
    assert row[G["swing"]] == pytest.approx(swing, abs=1e-5)
    assert row[G["timing_closed_hat"]] == pytest.approx(timing_hat, abs=1e-5)
    assert row[G["syncopation"]] == pytest.approx(syncopation, abs=1e-5)
    assert row[G["density_kick"]] == pytest.approx(-0.75) and row[G["density_snare"]] == pytest.approx(-0.75)
    assert row[G["density_closed_hat"]] == pytest.approx(0.0) and row[G["density_ride"]] == -1.0
    assert row[G["velocity_kick"]] == pytest.approx(2 * 100 / 127 - 1, abs=1e-6)
    assert row[G["velocity_closed_hat"]] == pytest.approx(2 * 60 / 127 - 1, abs=1e-6)
    assert row[G["velocity_crash"]] == -1.0 and row[G["timing_crash"]] == 0.0
    assert row[G["timing_kick"]] == 0.0 and row[G["fill"]] == -1.0
    velocities = np.array([100, 100, 90, 90] + [70, 50] * 4, dtype=float)
    assert row[G["velocity_spread"]] == pytest.approx(2 * velocities.std() / 64 - 1, abs=1e-5)
    assert row[G["total_density"]] == pytest.approx(2 * (12 / 4) / 8 - 1)


def test_groove_timing_fills_and_unmapped_hits(tmp_path):
    late = drum_bar(0, snare_late_ticks=12)                      # 12 ticks = 0.1 of a 16th
    early_downbeat = [(2 * 4 * TPQ - 10, 60, CRASH, 110)]        # lands just before bar 2's downbeat
    clap = [(TPQ, 60, HAND_CLAP, 80)]
    notes = groove_file(tmp_path, "fill.mid", [late, tom_fill_bar(1), early_downbeat + drum_bar(2), clap])
    hits = map_drum_hits(notes)
    assert hits.unmapped == 1 and hits.onset.size == 12 + 16 + 13
    targets, index = groove_windows(notes)
    assert index.tolist() == [0, 1, 2]
    assert targets[0, G["timing_snare"]] == pytest.approx(0.2, abs=1e-5)
    np.testing.assert_array_equal(targets[:, G["fill"]], [-1.0, 1.0, -1.0])   # the tom bar by the heuristic
    assert targets[2, G["timing_crash"]] == pytest.approx(2 * -10 / 120, abs=1e-5)
    assert targets[1, G["velocity_crash"]] == -1.0
    labelled, _ = groove_windows(notes, is_fill=True)
    assert np.all(labelled[:, G["fill"]] == 1.0)
    assert fill_label({"beat_type": "fill"}) is True and fill_label({"beat_type": "beat"}) is False
    assert fill_label({}) is None


def test_groove_bars_follow_three_four(tmp_path):
    hits = [(b * 3 * TPQ + beat * TPQ, 60, KICK if beat == 0 else SNARE, 90) for b in range(3) for beat in range(3)]
    path = write_midi(tmp_path / "waltz.mid", [(0, True, hits, [])], time_signatures=((0, 3, 4),))
    targets, index = groove_windows(load_notes(path))
    assert index.tolist() == [0, 1, 2]
    assert targets[0, G["density_kick"]] == pytest.approx(2 * (1 / 3) / 4 - 1)
    assert targets[0, G["total_density"]] == pytest.approx(2 * 1 / 8 - 1)


def test_groove_without_drums_is_an_error(tmp_path):
    notes = load_notes(write_midi(tmp_path / "piano.mid", [(0, False, scale_notes(), [])]))
    with pytest.raises(ValueError, match="no drum notes"):
        groove_windows(notes)


# --- proxy labels ---------------------------------------------------------------------------------
C_MAJOR_CHORDS = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)]      # I IV V I
A_MINOR_CHORDS = [(57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64)]      # i iv V i (harmonic minor)


def song(tmp_path, name, chords, melody, bpm=120.0, velocity_scale=1.0, double=False, transpose=0, performed=False):
    """A piano song; `performed` spreads the velocities over 12 levels (a player's, not a sequencer's)."""
    notes = chord_progression(chords, bars=2) + [(i * TPQ, TPQ, p, 90) for i, p in enumerate(melody)]
    notes = [(t, d, p + transpose, min(127, round((v + ((i % 12) - 6 if performed else 0)) * velocity_scale)))
             for i, (t, d, p, v) in enumerate(notes)]
    tracks = [(0, False, notes, [])] + ([(0, False, notes, [])] if double else [])
    return load_notes(write_midi(tmp_path / name, tracks, tempos=((0, bpm),)))


def test_proxy_valence_follows_mode(tmp_path):
    major = proxy_labels(song(tmp_path, "major.mid", C_MAJOR_CHORDS, C_MAJOR_SCALE * 4), "lakh", {})
    minor_melody = (69, 71, 72, 74, 76, 77, 80, 81) * 4
    minor = proxy_labels(song(tmp_path, "minor.mid", A_MINOR_CHORDS, minor_melody), "lakh", {})
    assert major.attributes["key"] == "C major" and minor.attributes["key"] == "A minor"
    assert major.valence > 0.3 and minor.valence < -0.3
    for labels in (major, minor):
        assert -1.0 <= labels.valence <= 1.0 and -1.0 <= labels.arousal <= 1.0


def test_proxy_arousal_terms():
    assert density_term(DENSITY_REFERENCE) == 0.0 and density_term(1.5) == -1.0 and density_term(24.0) == 1.0
    assert velocity_term(64) == 0.0 and velocity_term(32) == -1.0 and velocity_term(96) == 1.0
    assert velocity_term(80) == pytest.approx(0.5) and velocity_term(127) == 1.0
    assert tempo_term(110) == 0.0 and tempo_term(60) == -1.0 and tempo_term(160) == 1.0


def test_proxy_tempo_enters_only_from_a_real_tempo_map(tmp_path):
    slow = proxy_labels(song(tmp_path, "slow.mid", C_MAJOR_CHORDS, C_MAJOR_SCALE * 4, bpm=70), "lakh", {})
    fast = proxy_labels(song(tmp_path, "fast.mid", C_MAJOR_CHORDS, C_MAJOR_SCALE * 4, bpm=160), "lakh", {})
    assert slow.attributes["tempo_bpm"] == pytest.approx(70) and fast.attributes["tempo_bpm"] == pytest.approx(160)
    assert slow.attributes["tempo_map_real"] and slow.attributes["arousal_terms"] == "density+tempo"
    assert fast.arousal > slow.arousal
    assert fast.valence == pytest.approx(slow.valence)
    for labels in (slow, fast):   # two fixed velocities: a sequencer's, so loudness does not enter
        assert not labels.attributes["velocity_performed"]
        density = density_term(labels.attributes["notes_per_second"])
        assert labels.arousal == pytest.approx((density + tempo_term(labels.attributes["tempo_bpm"])) / 2)
    placeholder = proxy_labels(song(tmp_path, "placeholder.mid", C_MAJOR_CHORDS, C_MAJOR_SCALE * 4), "maestro", {})
    assert not placeholder.attributes["tempo_map_real"] and placeholder.attributes["arousal_terms"] == "density"


def test_proxy_arousal_follows_loudness_and_density(tmp_path):
    """What listeners hear as arousal (EMOPIA: velocity AUC 0.94, density 0.89): both routes."""
    melody = C_MAJOR_SCALE * 4
    for source in ("maestro", "lakh"):
        base = proxy_labels(song(tmp_path, "base.mid", C_MAJOR_CHORDS, melody, performed=True), source, {})
        louder = proxy_labels(song(tmp_path, "loud.mid", C_MAJOR_CHORDS, melody, velocity_scale=1.3,
                                   performed=True), source, {})
        denser = proxy_labels(song(tmp_path, "dense.mid", C_MAJOR_CHORDS, melody, double=True, performed=True),
                              source, {})
        higher = proxy_labels(song(tmp_path, "high.mid", C_MAJOR_CHORDS, melody, transpose=12, performed=True),
                              source, {})
        assert base.attributes["velocity_levels"] >= PERFORMED_VELOCITY_LEVELS
        assert base.attributes["arousal_terms"] == "density+velocity"
        expected = (density_term(base.attributes["notes_per_second"]) +
                    velocity_term(base.attributes["mean_velocity"])) / 2
        assert base.arousal == pytest.approx(expected)
        assert louder.arousal > base.arousal and louder.valence == base.valence
        assert denser.attributes["notes_per_second"] == pytest.approx(2 * base.attributes["notes_per_second"])
        assert denser.arousal == pytest.approx(base.arousal + 0.25)     # twice the notes: +0.5 density, halved
        assert higher.arousal == pytest.approx(base.arousal)            # register is not what listeners hear


def test_proxy_drum_only_file_reads_its_hits(tmp_path):
    notes = groove_file(tmp_path, "drums.mid", [drum_bar(0), drum_bar(1)])
    labels = proxy_labels(notes, "lakh", {})
    assert labels.valence == 0.0 and labels.attributes["key"] is None
    assert labels.attributes["notes_per_second"] == pytest.approx(len(notes) / (notes.offset.max() - notes.onset.min()))


def test_proxy_groove_uses_style_and_annotated_bpm(tmp_path):
    notes = groove_file(tmp_path, "funk.mid", [drum_bar(0), drum_bar(1)])
    funk = proxy_labels(notes, "groove", {"style": "funk", "substyle": "groove1", "bpm": 160, "beat_type": "beat"})
    assert funk.valence == STYLE_VALENCE["funk"] and funk.arousal == 1.0
    busier = groove_file(tmp_path, "busy.mid", [drum_bar(0) + tom_fill_bar(0), drum_bar(1)])   # more, louder hits
    same = proxy_labels(busier, "groove", {"style": "funk/groove1", "bpm": 160})
    assert (same.valence, same.arousal) == (funk.valence, funk.arousal)
    unknown = proxy_labels(notes, "groove", {})
    assert unknown.valence == 0.0 and unknown.attributes["tempo_from"] == "tempo map"
    assert unknown.arousal == pytest.approx((120 - 110) / 50)
    with pytest.raises(ValueError, match="source 'deam'"):
        proxy_labels(notes, "deam", {})


# --- the real corpus ------------------------------------------------------------------------------
#: files whose program numbers differ between the routes: program changes on the tick of a
#: note-on but after it; symusic gives the note the program at its note-on, pretty_midi at its note-off
PROGRAM_CHANGE_AT_NOTE = {"All The Small Things.mid"}


def real_midi_files(root: Path, kind: str):
    return sorted(p for p in (root / kind).rglob("*") if p.suffix.lower() in (".mid", ".midi"))


def test_real_corpus_parsers_agree(real_corpus):
    files = [p for kind in ("piano_midi", "multitrack_midi", "drum_midi") for p in real_midi_files(real_corpus, kind)]
    files += real_midi_files(real_corpus, "datasets/mirdata/slakh/babyslakh_16k")
    assert len(files) >= 20
    for path in files:
        a, b = load_notes_symusic(path), load_notes_pretty_midi(path)
        assert_same_notes(a, b, compare_program=path.name not in PROGRAM_CHANGE_AT_NOTE)


def test_real_groove_zero_length_hit_is_dropped(real_corpus):
    path = real_corpus / "drum_midi/groove/drummer1/eval_session/2_funk-groove2_105_beat_4-4.mid"
    raw = symusic.Score(str(path)).note_num()
    assert raw == 324 and len(load_notes(path)) == 323 == len(load_notes_pretty_midi(path))


def test_real_broken_files_raise_midi_error(real_corpus):
    for path in real_midi_files(real_corpus, "broken_midi"):
        with pytest.raises(MidiError) as info:
            load_notes(path)
        assert path.name in str(info.value)


def test_real_corpus_features_are_finite_and_in_range(real_corpus):
    files = [p for kind in ("piano_midi", "multitrack_midi", "drum_midi", "broken_midi")
             for p in real_midi_files(real_corpus, kind)]
    usable = 0
    for path in files:
        try:
            notes = load_notes(path)
        except MidiError:
            continue
        usable += 1
        for targets, lo, hi in (melody_windows(notes)[0], 0, 1), (dynamics_windows(notes)[0], 0, 1):
            assert np.all(np.isfinite(targets)) and targets.min(initial=lo) >= lo and targets.max(initial=hi) <= hi
        if notes.is_drum.any():
            targets, index = groove_windows(notes)
            assert targets.shape[1] == 32 and np.all(np.isfinite(targets)) and np.all(np.abs(targets) <= 1)
            assert np.all(np.diff(index) > 0)
        source = "groove" if "drum_midi" in path.parts else "maestro" if "piano_midi" in path.parts else "lakh"
        labels = proxy_labels(notes, source, {})
        assert -1 <= labels.valence <= 1 and -1 <= labels.arousal <= 1
    assert usable >= 20


def test_real_emopia_proxies_agree_with_listeners(real_corpus):
    """The documented agreement on EMOPIA's official validation clips (proxy_labels' docstring)."""
    import csv

    folder = real_corpus / "emopia"
    if not folder.is_dir():
        pytest.skip(f"no EMOPIA clips at {folder}")
    with (folder / "split" / "val.csv").open(newline="") as handle:
        clips = [(folder / "midis" / f"{row['fname']}.mid", int(row["label"][1])) for row in csv.DictReader(handle)]
    assert len(clips) == 198
    quadrant = np.array([q for _, q in clips])
    labels = [proxy_labels(load_notes(path), "maestro", {}) for path, _ in clips]
    valence, arousal = np.array([x.valence for x in labels]) >= 0, np.array([x.arousal for x in labels]) >= 0

    def balanced(predicted, truth):
        return 0.5 * (predicted[truth].mean() + (~predicted[~truth]).mean())

    assert balanced(arousal, np.isin(quadrant, (1, 2))) == pytest.approx(0.935, abs=0.002)
    assert balanced(valence, np.isin(quadrant, (1, 4))) == pytest.approx(0.710, abs=0.002)
    predicted = np.where(arousal, np.where(valence, 1, 2), np.where(valence, 4, 3))
    assert np.mean(predicted == quadrant) == pytest.approx(0.652, abs=0.003)
    assert all(x.attributes["arousal_terms"] == "density+velocity" for x in labels)   # the placeholder tempo
