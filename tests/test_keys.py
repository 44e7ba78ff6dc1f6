"""Keys section by section: the KeyTrack interface, and estimate_keys on constructed songs."""
from __future__ import annotations

import numpy as np
import pytest

from constructed_music import key_of, write_song
from preprocess.features.chords import beat_chords, beat_frames
from preprocess.features.keys import KeyTrack, estimate_keys, key_name, key_scores
from preprocess.features.midi import load_notes
from preprocess.features.proxy_labels import pitch_class_profile
from preprocess.features.spec import key_correlations

C, E, F_SHARP, A, E_FLAT = 0, 4, 6, 9, 3
BPM = 100
BAR = 4 * 60.0 / BPM                     # seconds per bar of 4/4


# --- the KeyTrack interface ----------------------------------------------------------------------

def test_key_track_at_main_and_names():
    track = KeyTrack(np.array([0.0, 10.0, 25.0]), np.array([0, 9, 0]), np.array([False, True, False]), 40.0)
    tonic, minor = track.at(np.array([-1.0, 0.0, 9.99, 10.0, 24.0, 25.0, 39.0, 50.0]))
    assert tonic.dtype == np.int64 and minor.dtype == bool
    assert list(tonic) == [0, 0, 0, 9, 9, 0, 0, 0]
    assert list(minor) == [False, False, False, True, True, False, False, False]
    scalar_tonic, scalar_minor = track.at(12.0)
    assert scalar_tonic.shape == () and int(scalar_tonic) == 9 and bool(scalar_minor)
    assert np.allclose(track.durations, [10.0, 15.0, 15.0])
    assert track.main == (0, False)                  # C major: 10 + 15 s, against 15 s of A minor
    assert track.names() == ["C major", "A minor", "C major"] and len(track) == 3
    # a tie goes to the key heard first
    assert KeyTrack(np.array([0.0, 5.0]), np.array([2, 7]), np.array([False, False]), 10.0).main == (2, False)
    assert key_name(10, True) == "Bb minor" and key_name(6, False) == "F# major"


@pytest.mark.parametrize("start, tonic, minor, end", [
    ([], [], [], 1.0),                               # no segment
    ([0.0, 1.0], [0], [False], 2.0),                 # lengths differ
    ([0.5], [0], [False], 2.0),                      # does not start at 0
    ([0.0, 2.0, 1.0], [0, 0, 0], [False] * 3, 3.0),  # not increasing
    ([0.0], [12], [False], 1.0),                     # not a pitch class
    ([0.0, 2.0], [0, 1], [False, False], 1.0),       # ends before its last segment starts
])
def test_key_track_refuses_malformed_segments(start, tonic, minor, end):
    with pytest.raises(ValueError):
        KeyTrack(np.array(start, dtype=float), np.array(tonic, dtype=int), np.array(minor, dtype=bool), end)


def test_a_file_without_pitched_notes_has_no_key(tmp_path):
    notes = load_notes(write_song(tmp_path / "song.mid", key_of("C G C", C, False)))
    with pytest.raises(ValueError, match="no pitched notes"):
        estimate_keys(notes.select(notes.is_drum))


# --- constructed songs ---------------------------------------------------------------------------

def segments_in_bars(track: KeyTrack) -> list[tuple[str, float]]:
    return [(name, round(start / BAR, 2)) for name, start in zip(track.names(), track.start)]


@pytest.mark.parametrize("tonic, minor, progression", [
    (C, False, "C Am F G C Am Dm G7 C F C G Am F G7 C"),
    (E_FLAT, False, "Eb Cm Ab Bb Eb Ab Bb Eb Cm Fm Bb7 Eb Ab Bb7 Eb Eb"),
    (F_SHARP, True, "F#m Bm C#7 F#m D Bm C#7 F#m F#m D A E F#m Bm C#7 F#m"),
])
def test_one_key_holds_through_a_song(tmp_path, tonic, minor, progression):
    track = estimate_keys(load_notes(write_song(tmp_path / "song.mid", key_of(progression, tonic, minor), bpm=BPM)))
    assert track.names() == [key_name(tonic, minor)] and track.main == (tonic, minor)


def test_c_major_modulating_to_a_minor_then_e_major(tmp_path):
    """Three 16-bar sections, each closing on its own cadence. The first change is to the
    relative minor, which shares C major's notes: only its tonic, its bass and its dominant
    (E major, with G#) tell it apart."""
    song = (key_of("C F G C Am Dm G7 C C Am F G C F G7 C", C, False)
            + key_of("Am Dm E7 Am F Dm E Am Am F Dm E7 Am Dm E Am", A, True)
            + key_of("E A B7 E C#m A B E E C#m A B7 E A B E", E, False))
    notes = load_notes(write_song(tmp_path / "modulating.mid", song, bpm=BPM))
    track = estimate_keys(notes)
    assert track.names() == ["C major", "A minor", "E major"]
    assert np.allclose(track.start / BAR, [0, 16, 32], atol=0.5)
    tonic, minor = track.at(np.array([8.0, 24.0, 40.0]) * BAR)
    assert list(tonic) == [C, A, E] and list(minor) == [False, True, False]


def test_a_minor_song_with_a_strong_relative_major_passage(tmp_path):
    """An A minor song in the natural minor (Am Em F G) with an 8-bar chorus in C major: the
    chorus alone is C major, and one key for the whole file calls the song C major; the song is
    A minor."""
    verse = "Am Em F G Am Em F Am"
    song = key_of(verse, A, True) + key_of("C G Am F C G F C", C, False) + key_of(verse, A, True)
    notes = load_notes(write_song(tmp_path / "minor.mid", song, bpm=BPM))
    frames = beat_frames(notes)
    chorus = slice(32, 64)                                         # beats of bars 8..16
    evidence = (key_scores(frames.profile, beat_chords(frames), frames.bass) * frames.beats[:, None])[chorus].sum(axis=0)
    assert evidence.argmax() == C                                  # the chorus on its own: C major
    major, minor = key_correlations(pitch_class_profile(notes))
    assert major.max() > minor.max() and major.argmax() == C       # the whole file at once: C major

    track = estimate_keys(notes)
    assert track.main == (A, True)
    verses = np.r_[np.arange(0.5, 8.0), np.arange(16.5, 24.0)] * BAR
    tonic, is_minor = track.at(verses)
    assert np.all(tonic == A) and np.all(is_minor)
    # the chorus is heard inside A minor, or as a move to its relative major: no other key
    tonic, is_minor = track.at(np.arange(8.5, 16.0) * BAR)
    assert set(zip(tonic.tolist(), is_minor.tolist())) <= {(A, True), (C, False)}


@pytest.mark.parametrize("name, tonic", [("MidiTok/Mr. Blue Sky.mid", 5), ("midi-dataset/2414Letitbe.mid", C)])
def test_real_songs_main_key(real_corpus, name, tonic):
    """Mr. Blue Sky (F major, by its key signature) and Let It Be (C major)."""
    track = estimate_keys(load_notes(real_corpus / "multitrack_midi" / name))
    assert track.main == (tonic, False)
