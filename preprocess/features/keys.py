"""The key of a MIDI file section by section: `estimate_keys(notes) -> KeyTrack`.

Keys are indexed 0..23: k < 12 is the major key on tonic pitch class k (0 = C .. 11 = B), k >= 12
the minor key on tonic k - 12. Evidence is gathered per beat frame (`chords.beat_frames`: the
file's beats, at the phase its notes begin) and the key of each frame is the one that maximises

    sum_t beats_t * score_t(key_t) - (the cost of every key change)

(Viterbi, `chords.best_path`, over the file's chords: a key changes where a chord does). A change
costs KEY_CHANGE_PENALTY, or RELATIVE_CHANGE_PENALTY between relative keys (C major and A minor),
which share their notes and are told apart by weaker evidence. A key holds until the music has
left it for long enough to pay for the change: a modulation that lasts is followed, a passing
tonicisation is not. In frame t, with q_t the frame's pitch-class distribution, c_t its chord
(`chords.beat_chords`) and b_t its bass pitch class:

    score_t(k) = sum_pc q_t[pc] log SCALE[k, pc]            the notes fit the key's scale
               + TONIC_GAIN     if c_t is k's tonic triad (C or Cmaj7 in C major; Am or Am7 in A minor)
               + DOMINANT_GAIN  if c_t is a major chord or dominant seventh on k's fifth (G, G7; E, E7 in A minor)
               + BASS_GAIN      if b_t is k's tonic

SCALE[k] is the key's scale (major, or natural minor) with SCALE_DEGREE_WEIGHTS on its degrees
(the tonic triad's tones a little above the others), the raised seventh of a minor key (G# in A
minor) at LEADING_TONE_WEIGHT and the other pitch classes at OTHER_TONE_WEIGHT, normalised. A
major key and its relative minor share their scale, so what tells them apart is what a listener
hears as home: which tonic sounds longest, as a note, as a chord and in the bass, and the dominant
that leads to it (E major in A minor, not the E minor of C major). A silent frame scores 0 for
every key.

The penalties are in beats of evidence. Music clearly in a distant key scores 1 to 3 more per beat
for it, so a change to such a key takes a few bars to pay for. Between relative keys the
difference is about 1 per bar of 4/4, so a move to the relative key is followed when about 8 bars
are clearly in it, at the start or the end of a piece, and a passage inside a piece when it holds
twice that (leaving and coming back are two changes): the relative-major chorus of a minor song is
heard within the minor key unless it stays away that long.

What this does not see: phrase structure and endings. A minor song in the natural minor whose
tonic is marked only by where its phrases begin and end (Am G F G | Am G F E, with a chorus of
C F G C) is called C major.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from preprocess.features.chords import (QUALITIES, BeatFrames, ChordTrack, beat_chords, beat_frames, best_path,
                                         segments, small_product)
from preprocess.features.midi import NoteArrays
from preprocess.features.spec import KEY_TONIC_NAMES

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
SCALE_DEGREE_WEIGHTS = (1.5, 1.0, 1.2, 1.0, 1.2, 1.0, 1.0)    # the scale's degrees 1..7: the tonic triad stands out
LEADING_TONE_WEIGHT = 0.3
OTHER_TONE_WEIGHT = 0.1
TONIC_GAIN = 0.5
DOMINANT_GAIN = 0.2
BASS_GAIN = 0.3
KEY_CHANGE_PENALTY = 20.0          # beats of evidence, for a change of key ...
RELATIVE_CHANGE_PENALTY = 8.0      # ... and for a change to the relative key (C major <-> A minor)


def key_name(tonic: int, minor: bool) -> str:
    """"C major", "F# minor", ... (flats for Eb, Ab and Bb: spec.KEY_TONIC_NAMES)."""
    return f"{KEY_TONIC_NAMES[int(tonic) % 12]} {'minor' if minor else 'major'}"


@dataclass(frozen=True, eq=False)
class KeyTrack:
    """The keys of a piece as K consecutive segments.

    start: float64 [K] s, increasing, start[0] == 0.0; segment k lasts from start[k] to start[k+1]
      (the last to `end`).
    tonic: int64 [K], the tonic's pitch class, 0 = C .. 11 = B.
    minor: bool [K], True for a minor key.
    end: float, s, the end of the piece (the file's duration).
    """

    start: np.ndarray
    tonic: np.ndarray
    minor: np.ndarray
    end: float

    def __post_init__(self):
        start = np.asarray(self.start, dtype=np.float64).ravel()
        tonic = np.asarray(self.tonic, dtype=np.int64).ravel()
        minor = np.asarray(self.minor, dtype=bool).ravel()
        if not start.size or not (start.size == tonic.size == minor.size):
            raise ValueError(f"a key track needs K >= 1 equal-length start, tonic and minor; got "
                             f"{start.size}, {tonic.size}, {minor.size}")
        if start[0] != 0.0 or np.any(np.diff(start) <= 0) or not float(self.end) >= start[-1]:
            raise ValueError("key segments must start at 0.0, in increasing order, before the end")
        if tonic.min() < 0 or tonic.max() > 11:
            raise ValueError(f"tonic pitch classes must be 0..11, got {tonic.min()}..{tonic.max()}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "tonic", tonic)
        object.__setattr__(self, "minor", minor)
        object.__setattr__(self, "end", float(self.end))

    def __len__(self) -> int:
        return int(self.start.size)

    def at(self, times) -> tuple[np.ndarray, np.ndarray]:
        """(tonic int64, minor bool), each shaped like `times`: the key sounding at each time in
        seconds. Times before 0 get the first key, times after `end` the last."""
        times = np.asarray(times, dtype=np.float64)
        k = np.clip(np.searchsorted(self.start, times, side="right") - 1, 0, self.start.size - 1)
        return self.tonic[k], self.minor[k]

    @property
    def durations(self) -> np.ndarray:
        """float64 [K] s, how long each segment lasts."""
        return np.diff(np.append(self.start, max(self.end, self.start[-1])))

    @property
    def main(self) -> tuple[int, bool]:
        """(tonic, minor) of the key holding the most time over the piece (its segments added up;
        a tie goes to the key heard first)."""
        index = self.tonic + 12 * self.minor
        seconds = np.bincount(index, weights=self.durations, minlength=24)
        best = seconds.max()
        first = next(int(i) for i in index if seconds[i] == best)
        return first % 12, first >= 12

    def names(self) -> list[str]:
        """The segments' keys as "C major", "A minor", ..."""
        return [key_name(t, m) for t, m in zip(self.tonic, self.minor)]


def _scale_table() -> np.ndarray:
    """float64 [24, 12]: log SCALE (see the module docstring)."""
    table = np.full((24, 12), OTHER_TONE_WEIGHT)
    for k in range(12):
        table[k, [(k + i) % 12 for i in MAJOR_SCALE]] = SCALE_DEGREE_WEIGHTS
        table[12 + k, [(k + i) % 12 for i in NATURAL_MINOR_SCALE]] = SCALE_DEGREE_WEIGHTS
        table[12 + k, (k + 11) % 12] = LEADING_TONE_WEIGHT
    return np.log(table / table.sum(axis=1, keepdims=True))


def _chord_roles() -> tuple[np.ndarray, np.ndarray]:
    """(is_tonic, is_dominant), bool [24, 64]: whether a chord class is a key's tonic triad (or its
    diatonic seventh: Cmaj7 in C major, Am7 in A minor), or a major chord or dominant seventh on
    the key's fifth."""
    tonic = np.zeros((24, 64), dtype=bool)
    dominant = np.zeros((24, 64), dtype=bool)
    major, minor, seventh, minor7, major7 = (QUALITIES.index(q) for q in ("maj", "min", "7", "m7", "maj7"))
    for k in range(12):
        tonic[k, [5 * k + major, 5 * k + major7]] = True
        tonic[12 + k, [5 * k + minor, 5 * k + minor7]] = True
        fifth = (k + 7) % 12
        dominant[[k, 12 + k], 5 * fifth + major] = True
        dominant[[k, 12 + k], 5 * fifth + seventh] = True
    return tonic, dominant


LOG_SCALE = _scale_table()
IS_TONIC, IS_DOMINANT = _chord_roles()
KEY_CHORD = TONIC_GAIN * IS_TONIC + DOMINANT_GAIN * IS_DOMINANT      # [24, 64]
KEY_BASS = np.tile(np.eye(12) * BASS_GAIN, (2, 1))                  # [24, 12]: the bass on the key's tonic


def _change_costs() -> np.ndarray:
    """float64 [24, 24]: the cost of a change from key i to key j."""
    costs = np.full((24, 24), KEY_CHANGE_PENALTY)
    major = np.arange(12)
    relative_minor = 12 + (major + 9) % 12
    costs[major, relative_minor] = costs[relative_minor, major] = RELATIVE_CHANGE_PENALTY
    np.fill_diagonal(costs, 0.0)
    return costs


CHANGE_COSTS = _change_costs()


def key_scores(profile: np.ndarray, chord: np.ndarray, bass: np.ndarray) -> np.ndarray:
    """float64 [F, 24]: score_t(k) of the module docstring for each frame and key.

    profile: float64 [F, 12], how long each pitch class sounds (each row is normalised); chord:
    int [F], classes 0..63; bass: int [F], MIDI pitch or -1 for none. Silent frames (an all-zero
    profile) score 0.
    """
    profile = np.asarray(profile, dtype=np.float64)
    chord = np.asarray(chord, dtype=np.int64)
    bass = np.asarray(bass, dtype=np.int64)
    total = profile.sum(axis=1)
    silent = total <= 0
    scores = small_product(profile / np.where(silent, 1.0, total)[:, None], LOG_SCALE.T)
    scores += KEY_CHORD[:, chord].T
    has_bass = bass >= 0
    scores[has_bass] += KEY_BASS[:, bass[has_bass] % 12].T
    scores[silent] = 0.0
    return scores


def keys_of_frames(frames: BeatFrames, chord: np.ndarray) -> np.ndarray:
    """int64 [F]: the key index (0..23) of each beat frame, from its notes and its chord [F].

    The frames of one chord (a run of equal classes) are scored together, so a key changes
    where a chord does.
    """
    chord = np.asarray(chord, dtype=np.int64)
    scores = key_scores(frames.profile, chord, frames.bass) * frames.beats[:, None]
    if scores.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, chord[1:] != chord[:-1]])
    path = best_path(np.add.reduceat(scores, starts, axis=0), CHANGE_COSTS)
    return np.repeat(path, np.diff(np.append(starts, scores.shape[0])))


def chords_and_keys(notes: NoteArrays) -> tuple[ChordTrack, KeyTrack]:
    """The chords (`preprocess.features.chords.estimate_chords`) and the keys (`estimate_keys`) of a
    file from one pass over its beats: the beat frames and the chord of each beat are computed once
    and serve both.

    Raises ValueError when the file has no pitched (non-drum) notes: it has no key.
    """
    if not np.any(~notes.is_drum):
        raise ValueError(f"no key: the file has no pitched notes ({len(notes)} drum notes only)")
    frames = beat_frames(notes)
    chord = beat_chords(frames)
    start, end, classes = segments(frames.edges, chord)
    chords = ChordTrack(start, end, classes.astype(np.int64))
    start, _, key = segments(frames.edges, keys_of_frames(frames, chord))
    return chords, KeyTrack(start, key % 12, key >= 12, notes.duration)


def estimate_keys(notes: NoteArrays) -> KeyTrack:
    """The keys of a file, section by section (the model in the module docstring).

    Returns a KeyTrack whose segments cover [0, notes.duration]; `track.at(times)` gives the key
    at any time in seconds and `track.main` the key of the whole piece.
    Raises ValueError when the file has no pitched (non-drum) notes: it has no key.
    """
    return chords_and_keys(notes)[1]
