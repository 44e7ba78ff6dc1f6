"""Chord vocabulary, the symbol parser, recognition from notes, and HarmonyPredictor samples."""
from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from preprocess.features import spec
from constructed_music import key_of, write_song
from preprocess.features.chords import (
    NO_CHORD,
    VOCABULARY,
    UnknownChord,
    bar_pitch_class_profiles,
    beat_frames,
    beat_phase,
    best_path,
    chord_class,
    chord_scores,
    chord_sequence,
    chord_templates,
    estimate_chords,
    parse_chord,
    recognise_chords,
)
from preprocess.features.embedding import embed
from preprocess.features.harmony import chord_history, harmony_samples
from preprocess.features.midi import load_notes


def cls(name: str) -> int:
    return VOCABULARY.index(name)


# --- vocabulary ----------------------------------------------------------------------------------

def test_vocabulary_has_64_unique_names_over_12_roots():
    assert len(VOCABULARY) == 64 == spec.HARMONY_CLASSES == len(set(VOCABULARY))
    roots = {parse_chord(name).root for name in VOCABULARY[:60]}
    assert roots == set(range(12))
    assert VOCABULARY[:5] == ("C", "Cm", "C7", "Cm7", "Cmaj7")
    assert VOCABULARY[60:] == ("Cdim7", "C#dim7", "Ddim7", "N")
    assert not any("b" in name[1:2] for name in VOCABULARY)            # sharps only


def test_every_vocabulary_name_parses_to_its_own_index():
    for index, name in enumerate(VOCABULARY):
        assert chord_class(name) == index, name


# --- parsing -------------------------------------------------------------------------------------

EXPECTED = {
    # the symbols people write, and the class each folds to
    "C": "C", "Am": "Am", "F#m7": "F#m7", "Bbmaj7": "A#maj7", "Gsus4": "G", "Cdim": "Cdim7",
    "C+": "C", "Caug": "C", "Dm7b5": "Ddim7", "C/E": "C", "Cm": "Cm", "Cmin": "Cm", "CM7": "Cmaj7",
    "Cmaj9": "Cmaj7", "C9": "C7", "C13": "C7", "C6": "C", "Cm6": "Cm", "Cadd9": "C", "C7sus4": "C7",
    "Co": "Cdim7", "Cø": "Cdim7", "C°7": "Cdim7",
    # more spellings
    "AM7": "Amaj7", "AM": "A", "Am7": "Am7", "Amaj7": "Amaj7", "Amin7": "Am7", "Ami7": "Am7",
    "Ama7": "Amaj7", "AMaj7": "Amaj7", "AMIN7": "Am7", "Aminor": "Am", "Amajor": "A",
    "C-": "Cm", "C-7": "Cm7", "C-7b5": "Cdim7", "Cm7-5": "Cdim7", "Cmb5": "Cdim7", "Cmin7b5": "Cdim7",
    "Chdim7": "Cdim7", "Cø7": "Cdim7", "Co7": "Cdim7", "Cdim7": "Cdim7",
    "Bdim": "Ddim7", "Bm7b5": "Ddim7", "Fdim7": "Ddim7", "G#dim7": "Ddim7", "Ebdim": "Cdim7", "Edim": "C#dim7",
    "C+7": "C7", "Caug7": "C7", "C7#5": "C7", "C7+5": "C7", "C7b5": "C7", "C7b9": "C7", "C7(b9)": "C7",
    "C7#9": "C7", "C7b9#11": "C7", "C13b9": "C7", "C7alt": "C7", "C11": "C7", "Cdom7": "C7", "C9sus4": "C7",
    "CmM7": "Cm", "Cm(maj7)": "Cm", "Cminmaj7": "Cm", "Cm9": "Cm7", "Cm11": "Cm7", "Cm6/9": "Cm",
    "Cmadd9": "Cm", "Cm(add9)": "Cm",
    "CΔ": "Cmaj7", "CΔ7": "Cmaj7", "Cmaj13": "Cmaj7", "Cmaj7#11": "Cmaj7", "C+M7": "Cmaj7", "CM9": "Cmaj7",
    "C6/9": "C", "C69": "C", "C5": "C", "C2": "C", "Csus2": "C", "Csus": "C", "C(add9)": "C", "Cadd2": "C",
    "Db": "C#", "C#": "C#", "Dbm7": "C#m7", "Gb7": "F#7", "Ab": "G#", "Cb": "B", "E#m": "Fm", "B#": "C",
    "D♭maj7": "C#maj7", "F♯m": "F#m", "Am/G": "Am", "D/F#": "D", "G7/B": "G7",
    "N": "N", "NC": "N", "N.C.": "N",
    # Harte notation (Isophonics, Billboard, many chord datasets)
    "C:maj": "C", "A:min7": "Am7", "B:hdim7": "Ddim7", "C:maj/3": "C", "D:7/b7": "D7", "Eb:maj7": "D#maj7",
    "F:sus4": "F", "G:9": "G7", "A:min(9)": "Am",
}


@pytest.mark.parametrize("symbol, expected", sorted(EXPECTED.items()))
def test_parse_what_people_write(symbol, expected):
    assert VOCABULARY[chord_class(symbol)] == expected


def test_the_documented_folding_table_holds():
    """Every symbol in the module docstring's table folds to the class its row names."""
    import re

    from preprocess.features import chord_symbols

    doc = chord_symbols.__doc__
    table = doc[doc.index("    written"):doc.index("Alterations and added")].splitlines()[1:]
    row_class = {"maj": "C", "min": "Cm", "7": "C7", "m7": "Cm7", "maj7": "Cmaj7", "diminished set of C": "Cdim7", "N": "N"}
    checked = 0
    expected = None
    for line in table:
        tail = re.search(r"\s{2,}(maj|min|7|m7|maj7|diminished set of C|N)$", line)
        if tail:
            expected = row_class[tail.group(1)]
            line = line[: tail.start()]
        for symbol in re.split(r",\s+|\s+/\s+", re.sub(r"\s\([a-z -]+\)", "", line).strip()):
            if symbol:
                assert VOCABULARY[chord_class(symbol)] == expected, symbol
                checked += 1
    assert checked > 80


def test_enharmonic_spellings_are_equal():
    for flat, sharp in (("Db", "C#"), ("Eb", "D#"), ("Gb", "F#"), ("Ab", "G#"), ("Bb", "A#")):
        for suffix in ("", "m", "7", "m7", "maj7", "dim", "/E"):
            assert chord_class(flat + suffix) == chord_class(sharp + suffix)


def test_case_matters_and_is_never_changed():
    assert chord_class("Am") != chord_class("AM")
    assert chord_class("Am") == cls("Am") and chord_class("AM") == cls("A")
    assert chord_class("Am7") == cls("Am7") and chord_class("AM7") == cls("Amaj7")
    assert parse_chord("Am").quality == "min" and parse_chord("AM").quality == "maj"
    assert parse_chord("Am").symbol == "Am"


def test_slash_chords_keep_the_bass():
    chord = parse_chord("C/E")
    assert (chord.root, chord.quality, chord.bass) == (0, "maj", 4)
    assert parse_chord("Am/G").bass == 7 and parse_chord("Am").bass == 9
    assert parse_chord("D:7/b7").bass == 0 and parse_chord("C:maj/3").bass == 4
    assert parse_chord("N").root is None and parse_chord("N").chord_class == NO_CHORD


@pytest.mark.parametrize("symbol", [
    "H", "X", "Cfoo", "am", "c", "", "  ", "C/H", "Z7", "Cdim9", "C77", "Cmm", "Cx", "Am?",
    "C:foo", "Cmsus4", "Csus4m", "C//E", "Cm5", "7", "m7", "#", "C:(1,3,5)", None, 7,
])
def test_unknown_symbols_raise_and_are_not_c(symbol):
    with pytest.raises(UnknownChord) as info:
        chord_class(symbol)
    assert repr(symbol) in str(info.value)
    assert isinstance(info.value, ValueError)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is UnknownChord and str(copy) == str(info.value)


# --- templates and recognition -------------------------------------------------------------------

def test_templates():
    templates = chord_templates()
    assert templates.shape == (64, 12) and templates.dtype == np.float32
    assert np.array_equal(np.flatnonzero(templates[cls("C")]), [0, 4, 7])
    assert np.array_equal(np.flatnonzero(templates[cls("Am")]), [0, 4, 9])
    assert np.array_equal(np.flatnonzero(templates[cls("G7")]), [2, 5, 7, 11])
    assert np.array_equal(np.flatnonzero(templates[cls("Ddim7")]), [2, 5, 8, 11])
    assert not templates[NO_CHORD].any()
    assert len({row.tobytes() for row in templates}) == 64


def one_bar(pitches, bar=2.0):
    n = len(pitches)
    return np.zeros(n), np.full(n, bar), np.array(pitches), np.array([0.0, bar])


@pytest.mark.parametrize("pitches, expected", [
    ([60, 64, 67], "C"), ([57, 60, 64], "Am"), ([55, 59, 62, 65], "G7"),
    ([48, 64, 67, 72, 76], "C"), ([62, 65, 69, 72], "Dm7"), ([53, 57, 60, 64], "Fmaj7"),
    ([59, 62, 65, 68], "Ddim7"), ([66, 70, 73], "F#"),
])
def test_recognise_a_synthetic_bar(pitches, expected):
    onset, offset, pitch, bars = one_bar(pitches)
    classes = recognise_chords(onset, offset, pitch, bars[:1], end=bars[1])
    assert VOCABULARY[classes[0]] == expected


def test_profiles_weight_notes_by_duration_within_each_bar():
    # a half note C and a quarter note E in bar 0; a whole-bar G that ties into bar 1
    onset = np.array([0.0, 1.0, 1.5])
    offset = np.array([1.0, 1.5, 3.0])
    profiles = bar_pitch_class_profiles(onset, offset, np.array([60, 64, 67]), np.array([0.0, 2.0]), end=4.0)
    assert profiles.shape == (2, 12)
    assert profiles[0, 0] == pytest.approx(1.0) and profiles[0, 4] == pytest.approx(0.5)
    assert profiles[0, 7] == pytest.approx(0.5) and profiles[1, 7] == pytest.approx(1.0)
    assert profiles.sum() == pytest.approx(3.0)


def write_progression(path: Path) -> pretty_midi.PrettyMIDI:
    """Four bars at 120 bpm: C | Am | F | G7 (piano arpeggios over a bass line), drums throughout,
    then an empty bar of drums only, then C again."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    piano = pretty_midi.Instrument(program=0)
    bass = pretty_midi.Instrument(program=33)
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    bar = 2.0
    progression = [(48, [60, 64, 67, 72]), (45, [57, 60, 64, 69]), (41, [53, 57, 60, 65]), (43, [55, 59, 62, 65]),
                   None, (48, [64, 67, 72, 76])]
    for i, chord in enumerate(progression):
        start = i * bar
        for beat in range(8):                                  # kick and hat on eighths: pitches 36, 42
            drums.notes.append(pretty_midi.Note(100, 36 if beat % 4 == 0 else 42, start + beat * 0.25, start + beat * 0.25 + 0.1))
        if chord is None:
            continue
        root, tones = chord
        bass.notes.append(pretty_midi.Note(90, root, start, start + 1.9))
        for step, p in enumerate(tones + tones[:1:-1]):        # an arpeggio in eighths, up and back
            pm_note = pretty_midi.Note(70 + step, p, start + step * 0.25, start + step * 0.25 + 0.4)
            piano.notes.append(pm_note)
        piano.notes.append(pretty_midi.Note(60, tones[0] + 2, start + 1.75, start + 1.85))   # a short passing tone
    pm.instruments.extend([piano, bass, drums])
    pm.write(str(path))
    return pretty_midi.PrettyMIDI(str(path))


def note_arrays(pm: pretty_midi.PrettyMIDI):
    rows = [(n.start, n.end, n.pitch, inst.is_drum) for inst in pm.instruments for n in inst.notes]
    onset, offset, pitch, is_drum = (np.array(col) for col in zip(*rows))
    return onset, offset, pitch, is_drum.astype(bool)


def test_recognise_a_midi_progression(tmp_path):
    pm = write_progression(tmp_path / "progression.mid")
    onset, offset, pitch, is_drum = note_arrays(pm)
    bars = pm.get_downbeats()
    assert len(bars) == 6
    classes = recognise_chords(onset, offset, pitch, bars, is_drum, end=pm.get_end_time())
    assert [VOCABULARY[c] for c in classes] == ["C", "Am", "F", "G7", "N", "C"]
    assert [VOCABULARY[c] for c in chord_sequence(classes)] == ["C", "Am", "F", "G7", "C"]
    # with the drums counted as pitches the answer would change: they are left out
    with_drums = recognise_chords(onset, offset, pitch, bars, None, end=pm.get_end_time())
    assert VOCABULARY[with_drums[4]] != "N"


def test_the_same_progression_at_the_pace_of_the_beat(tmp_path):
    pm = write_progression(tmp_path / "progression.mid")
    track = estimate_chords(load_notes(tmp_path / "progression.mid"))
    # the drums-only bar is N, the arpeggios and the passing tone do not split a chord
    assert [VOCABULARY[c] for c in track.chord] == ["C", "Am", "F", "G7", "N", "C"]
    assert np.allclose(track.start, [0, 2, 4, 6, 8, 10]) and track.end[-1] == pytest.approx(pm.get_end_time())
    assert np.array_equal(track.end[:-1], track.start[1:])


def test_bars_without_notes_and_no_bars():
    onset, offset, pitch = np.array([0.5]), np.array([1.5]), np.array([64])
    classes = recognise_chords(onset, offset, pitch, np.array([0.0, 2.0, 4.0]), end=6.0)
    # a lone E fits every triad holding E equally; ties go to the lowest class index, C
    assert list(classes) == [cls("C"), NO_CHORD, NO_CHORD]
    assert recognise_chords(onset, offset, pitch, np.array([])).shape == (0,)
    empty = np.array([])
    assert list(recognise_chords(empty, empty, empty, np.array([0.0, 2.0]))) == [NO_CHORD, NO_CHORD]
    with pytest.raises(ValueError, match="non-decreasing"):
        recognise_chords(onset, offset, pitch, np.array([2.0, 0.0]))


def test_chord_sequence_drops_n_and_merges_repeats():
    c, g, am = cls("C"), cls("G"), cls("Am")
    assert chord_sequence([c, c, NO_CHORD, c, g, g, am, NO_CHORD]) == [c, g, am]
    assert chord_sequence([NO_CHORD, NO_CHORD]) == []
    with pytest.raises(ValueError):
        chord_sequence([64])


@pytest.mark.parametrize("name, tonic", [("MidiTok/Mr. Blue Sky.mid", 5), ("midi-dataset/2414Letitbe.mid", 0)])
def test_real_songs_come_out_in_their_key(name, tonic, real_corpus):
    """Mr. Blue Sky (F major, by its key signature) and Let It Be (C major): most bars' chords
    should use only notes of the key's major scale."""
    pm = pretty_midi.PrettyMIDI(str(real_corpus / "multitrack_midi" / name))
    onset, offset, pitch, is_drum = note_arrays(pm)
    classes = recognise_chords(onset, offset, pitch, pm.get_downbeats(), is_drum, end=pm.get_end_time())
    chords = classes[classes != NO_CHORD]
    assert len(chords) > 0.8 * len(classes)
    scale = {(tonic + step) % 12 for step in (0, 2, 4, 5, 7, 9, 11)}
    diatonic = [set(np.flatnonzero(chord_templates()[c])) <= scale for c in chords]
    assert np.mean(diatonic) > 0.75
    # and the key's own tonic chord is among the three most frequent
    values, counts = np.unique(chords, return_counts=True)
    assert 5 * tonic in values[np.argsort(counts)[::-1][:3]]
    # the same at the pace of the beat, weighted by how long each chord lasts
    track = estimate_chords(load_notes(real_corpus / "multitrack_midi" / name))
    sounding = track.chord != NO_CHORD
    seconds = (track.end - track.start)[sounding]
    diatonic = np.array([set(np.flatnonzero(chord_templates()[c])) <= scale for c in track.chord[sounding]])
    assert seconds[diatonic].sum() > 0.7 * seconds.sum()      # Mr. Blue Sky's Eb and A7 are not diatonic
    longest = np.bincount(track.chord[sounding], weights=seconds, minlength=64)
    assert 5 * tonic in np.argsort(longest)[::-1][:3]


# --- chords at the pace of the beat ----------------------------------------------------------------

def _path_value(scores, path, costs):
    return scores[np.arange(len(path)), list(path)].sum() - sum(costs[a, b] for a, b in zip(path[:-1], path[1:]))


@pytest.mark.parametrize("matrix", [False, True])
def test_best_path_is_the_best_of_all_paths(matrix):
    rng = np.random.default_rng(3)
    for _ in range(60):
        frames, states = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        scores = rng.normal(size=(frames, states))
        penalty = rng.uniform(0.0, 2.0, size=(states, states)) if matrix else float(rng.uniform(0.0, 2.0))
        costs = np.broadcast_to(penalty, (states, states)).copy()
        np.fill_diagonal(costs, 0.0)
        best = max(_path_value(scores, p, costs) for p in itertools.product(range(states), repeat=frames))
        path = best_path(scores, penalty)
        assert path.dtype == np.int64 and path.shape == (frames,)
        assert _path_value(scores, path, costs) == pytest.approx(best)
    assert best_path(np.zeros((0, 5)), 1.0).shape == (0,)
    # a one-frame dip does not pay for two changes; a lasting change does
    scores = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]] + [[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3)
    assert list(best_path(scores, 0.7)) == [0] * 7 + [1] * 3
    assert list(best_path(scores, 0.0)) == [0, 0, 0, 1, 0, 0, 0, 1, 1, 1]


def test_beat_phase_finds_where_the_notes_begin():
    beats = np.arange(0.0, 41.0) * 0.5                             # 120 bpm
    onset = np.arange(0.0, 19.0, 0.5)
    assert beat_phase(onset, onset + 0.45, beats) == 0.0
    assert beat_phase(onset + 0.2, onset + 0.65, beats) == pytest.approx(0.4, abs=1 / 48)
    # off-beat eighths between the beats do not outweigh the longer notes on the beats
    eighths = onset + 0.25
    both = np.r_[onset, eighths]
    assert beat_phase(both, both + np.r_[np.full(onset.size, 0.45), np.full(eighths.size, 0.1)], beats) == 0.0
    assert beat_phase(np.zeros(0), np.zeros(0), beats) == 0.0


def test_chord_scores_hear_sevenths_and_the_bass():
    def best(pitches, bass):
        profile = np.zeros((1, 12))
        for p in pitches:
            profile[0, p % 12] += 1.0
        return VOCABULARY[int(chord_scores(profile, np.array([bass])).argmax())]

    assert best([67, 71, 74], 43) == "G" and best([67, 71, 74, 77], 43) == "G7"
    assert best([60, 64, 67], 48) == "C" and best([60, 64, 67, 71], 48) == "Cmaj7"
    assert best([64, 67, 72], 52) == "C"            # C over E in the bass, not Em
    assert best([64, 67, 71], 52) == "Em"
    assert best([57, 60, 64, 67], 45) == "Am7"
    silent = chord_scores(np.zeros((1, 12)), np.array([-1]))
    assert silent.argmax() == NO_CHORD and silent[0, :NO_CHORD].max() == 0.0


LET_IT_BE = "C G Am F C G F C " * 2 + "Am G F C C G F C"


def test_two_chords_per_bar_of_four_four(tmp_path):
    """Chords changing every two beats, as in most pop in 4/4: every one is found, where it sounds."""
    path = write_song(tmp_path / "let_it_be.mid", key_of(LET_IT_BE, 0, False, beats=2), bpm=92)
    notes = load_notes(path)
    track = estimate_chords(notes)
    symbols = LET_IT_BE.split()
    merged = [s for i, s in enumerate(symbols) if i == 0 or s != symbols[i - 1]]
    assert [VOCABULARY[c] for c in track.chord] == merged
    beat = 60.0 / 92
    changes = [2 * i for i in range(len(symbols)) if i == 0 or symbols[i] != symbols[i - 1]]
    assert np.allclose(track.start / beat, changes, atol=0.05)
    assert chord_sequence(track.chord) == [chord_class(s) for s in merged]
    # one chord per bar cannot: half the chords are lost
    per_bar = recognise_chords(notes.onset, notes.offset, notes.pitch, notes.bar_times(), notes.is_drum,
                               end=notes.duration)
    assert len(chord_sequence(per_bar)) < 0.7 * len(merged)


@pytest.mark.parametrize("offset", [0.25, 0.4, 0.75])
def test_music_off_its_own_beat_grid(tmp_path, offset):
    """A file whose music sits off its own grid (a pickup written without a partial bar, a
    transcription with an offset): the beats are taken where the notes begin."""
    path = write_song(tmp_path / "shifted.mid", key_of(LET_IT_BE, 0, False, beats=2), bpm=92, offset_beats=offset)
    notes = load_notes(path)
    assert beat_frames(notes).phase == pytest.approx(offset, abs=0.05)
    track = estimate_chords(notes)
    symbols = LET_IT_BE.split()
    assert [VOCABULARY[c] for c in track.chord] == [s for i, s in enumerate(symbols) if i == 0 or s != symbols[i - 1]]
    beat = 60.0 / 92
    assert track.start[0] == 0.0 and np.allclose(track.start[1:] / beat % 2, offset, atol=0.05)


def triad(c: int) -> tuple:
    """(root, minor) of a major or minor class (its seventh dropped), as mir_eval's majmin compares."""
    chord = parse_chord(VOCABULARY[c])
    return chord.root, chord.quality in ("min", "m7")


def test_three_four_and_a_file_with_no_pitched_notes(tmp_path):
    waltz = "C Am Dm G7 C F G7 C"
    notes = load_notes(write_song(tmp_path / "waltz.mid", key_of(waltz, 0, False, beats=3), numerator=3))
    track = estimate_chords(notes)
    # a passing tone a step above a chord tone sounds for a fifth of a bar of 3/4, so a triad
    # may come out as its seventh chord (Dm as Dm7); the triads and the changes are right
    assert [triad(c) for c in track.chord] == [triad(chord_class(s)) for s in waltz.split()]
    assert np.allclose(track.start / (60.0 / 96), np.arange(0, 24, 3), atol=0.05)
    drums = notes.select(notes.is_drum)
    track = estimate_chords(drums)
    assert list(track.chord) == [NO_CHORD] and track.start[0] == 0.0 and track.end[-1] == drums.duration
    assert chord_sequence(track.chord) == []


# --- HarmonyPredictor samples --------------------------------------------------------------------

def test_harmony_samples_for_a_progression():
    progression = [cls(c) for c in ("C", "Am", "F", "G7", "C", "Am")]
    emotion = embed(0.6, 0.2)
    contexts, targets = harmony_samples(progression, emotion)
    assert contexts.shape == (5, 128) and contexts.dtype == np.float32
    assert targets.dtype == np.int64 and list(targets) == progression[1:]
    assert np.array_equal(contexts[:, :64], np.tile(emotion, (5, 1)))
    history = contexts[:, 64:]
    # the first sample sees only C
    assert np.flatnonzero(history[0]).tolist() == [cls("C")] and history[0, cls("C")] == 1.0
    # the last sample sees Am F G7 C (latest C first): weights 1, 1/2, 1/4, 1/8 -> C, G7, F, Am
    last = history[4]
    assert last[cls("C")] == 1.0 and last[cls("G7")] == 0.5 and last[cls("F")] == 0.25 and last[cls("Am")] == 0.125
    assert np.count_nonzero(last) == 4
    assert np.allclose(history.max(axis=1), 1.0)


def test_chord_history_adds_repeats_then_scales_to_one():
    a, f = cls("A"), cls("F")
    history = chord_history([a, f, a])                           # A = 1 + 1/4, F = 1/2
    assert history[a] == pytest.approx(1.0) and history[f] == pytest.approx(0.5 / 1.25)
    assert chord_history([]).sum() == 0.0
    assert np.count_nonzero(chord_history(list(range(10)))) == spec.HARMONY_HISTORY


def test_harmony_samples_edge_cases():
    contexts, targets = harmony_samples([cls("C")], embed(0.0, 0.0))
    assert contexts.shape == (0, 128) and targets.shape == (0,)
    with pytest.raises(ValueError):
        harmony_samples([0, 64], embed(0.0, 0.0))
    with pytest.raises(ValueError):
        harmony_samples([0, 5], np.zeros(32))
