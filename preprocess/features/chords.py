"""Chord recognition from notes, in the 64 classes of `chord_symbols` (which also parses written
symbols): at the pace of the beat (`estimate_chords`, what the harmony samples use) and, the earlier
method kept as a baseline, one chord per bar (`recognise_chords`).

The vocabulary and the parser's names (VOCABULARY, QUALITIES, QUALITY_INTERVALS, NO_CHORD,
PITCH_CLASS_NAMES, NO_CHORD_SYMBOLS, ParsedChord, UnknownChord, parse_chord, chord_class) are
imported here too, so that a caller reads every chord name from this one module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from preprocess.features.chord_symbols import (  # noqa: F401  (the parser's names, see above)
    NO_CHORD_SYMBOLS,
    QUALITY_INTERVALS,
    ParsedChord,
    UnknownChord,
    chord_class,
    parse_chord,
)
from preprocess.features.spec import CHORD_QUALITIES as QUALITIES
from preprocess.features.spec import CHORD_VOCABULARY as VOCABULARY  # noqa: F401
from preprocess.features.spec import DIMINISHED_FIRST, NO_CHORD, PITCH_CLASS_NAMES  # noqa: F401

if TYPE_CHECKING:
    from preprocess.features.midi import NoteArrays

# --- recognition from notes ----------------------------------------------------------------------

def chord_templates() -> np.ndarray:
    """float32 [64, 12]: 1 where a class holds a pitch class. Row 63 ("N") is all zeros."""
    templates = np.zeros((64, 12), dtype=np.float32)
    for r in range(12):
        for q, quality in enumerate(QUALITIES):
            templates[5 * r + q, [(r + i) % 12 for i in QUALITY_INTERVALS[quality]]] = 1.0
    for r in range(3):
        templates[DIMINISHED_FIRST + r, [r, r + 3, r + 6, r + 9]] = 1.0
    return templates


def _bar_edges(bar_times: np.ndarray, offset: np.ndarray, end: float | None) -> np.ndarray:
    bar_times = np.asarray(bar_times, dtype=np.float64).ravel()
    if not np.isfinite(bar_times).all() or np.any(np.diff(bar_times) < 0):
        raise ValueError("bar_times must be finite and non-decreasing")
    if end is None:
        if bar_times.size >= 2:
            end = bar_times[-1] + (bar_times[-1] - bar_times[-2])
        else:
            end = float(offset.max()) if offset.size else bar_times[-1]
    return np.append(bar_times, max(float(end), bar_times[-1]))


def frame_overlaps(onset: np.ndarray, offset: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How long each note [onset, offset) sounds in each frame [edges[k], edges[k+1]).

    onset, offset: float64 [n] s; edges: float64 [frames + 1] s, non-decreasing. Notes before the
    first edge count in the first frame, notes after the last in the last. Returns (note int64
    [M], frame int64 [M], seconds float64 [M]), one entry per (note, frame) pair that overlaps
    by more than 0 s.
    """
    n_frames = edges.size - 1
    if n_frames < 1 or onset.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    first = np.clip(np.searchsorted(edges, onset, side="right") - 1, 0, n_frames - 1)
    last = np.clip(np.searchsorted(edges, offset, side="left") - 1, 0, n_frames - 1)
    spans = np.maximum(last - first + 1, 1)
    note = np.repeat(np.arange(onset.size), spans)
    frame = first[note] + (np.arange(note.size) - np.repeat(np.cumsum(spans) - spans, spans))
    seconds = np.minimum(offset[note], edges[frame + 1]) - np.maximum(onset[note], edges[frame])
    keep = seconds > 0
    return note[keep], frame[keep], seconds[keep]


def bar_pitch_class_profiles(onset, offset, pitch, bar_times, is_drum=None, *, end: float | None = None) -> np.ndarray:
    """float64 [bars, 12]: seconds each pitch class sounds in each bar (non-drum notes only).

    onset, offset: note times in seconds [n]; pitch: MIDI pitch [n]; is_drum: bool [n] or None.
    bar_times: bar start times in seconds [bars], non-decreasing; bar k spans
    [bar_times[k], bar_times[k+1]), and the last bar ends at `end`, or one bar length (the one
    before it) after its start, or at the last offset when there is only one bar.
    """
    onset = np.asarray(onset, dtype=np.float64).ravel()
    offset = np.asarray(offset, dtype=np.float64).ravel()
    pitch = np.asarray(pitch).ravel()
    if not (onset.shape == offset.shape == pitch.shape):
        raise ValueError(f"onset, offset and pitch differ in length: {onset.size}, {offset.size}, {pitch.size}")
    keep = np.ones(onset.size, dtype=bool) if is_drum is None else ~np.asarray(is_drum, dtype=bool).ravel()
    if keep.shape != onset.shape:
        raise ValueError(f"is_drum has {keep.size} entries for {onset.size} notes")
    if np.size(bar_times) == 0:
        return np.zeros((0, 12), dtype=np.float64)              # no bars, no profiles
    edges = _bar_edges(bar_times, offset, end)
    n_bars = edges.size - 1
    profiles = np.zeros((n_bars, 12), dtype=np.float64)
    keep &= offset > onset
    onset, offset, pc = onset[keep], offset[keep], pitch[keep].astype(np.int64) % 12
    if onset.size == 0:
        return profiles
    note, bar, seconds = frame_overlaps(onset, offset, edges)
    np.add.at(profiles, (bar, pc[note]), seconds)
    return profiles


def match_templates(profiles: np.ndarray) -> np.ndarray:
    """int64 [bars]: the class whose template is closest (cosine) to each profile [bars, 12].

    All-zero profiles give N (63). Ties (to 1e-9) go to the lower class index.
    """
    profiles = np.asarray(profiles, dtype=np.float64)
    templates = chord_templates()[:NO_CHORD].astype(np.float64)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    norms = np.linalg.norm(profiles, axis=1)
    scores = np.round(profiles @ templates.T / np.maximum(norms, 1e-12)[:, None], 9)
    classes = np.argmax(scores, axis=1).astype(np.int64)
    classes[norms <= 0] = NO_CHORD
    return classes


def recognise_chords(onset, offset, pitch, bar_times, is_drum=None, *, end: float | None = None) -> np.ndarray:
    """int64 [bars]: one chord class per bar, by template matching on the bar's duration-weighted
    pitch-class profile of non-drum notes (see bar_pitch_class_profiles). Bars with no pitched
    notes are N (63)."""
    return match_templates(bar_pitch_class_profiles(onset, offset, pitch, bar_times, is_drum, end=end))


def chord_sequence(classes: Sequence[int]) -> list[int]:
    """The chord progression of per-bar classes: N dropped, then consecutive repeats merged.

    [C, C, N, C, G, G, Am] -> [C, G, Am] (a bar of silence does not split a held chord).
    """
    out: list[int] = []
    for c in classes:
        c = int(c)
        if not 0 <= c < 64:
            raise ValueError(f"chord class {c} is outside 0..63")
        if c != NO_CHORD and (not out or out[-1] != c):
            out.append(c)
    return out


# --- recognition at the pace of the beat ---------------------------------------------------------
#
# The model, per beat frame t with pitch-class distribution q_t (how long each pitch class sounds in
# the frame, notes more than HIGH_REGISTER semitones above the file's median pitch counted at
# HIGH_REGISTER_WEIGHT, divided by their sum; relative to the file, so a transposed file gets the
# transposed chords) and
# bass pitch class b_t (the lowest pitch sounding for at least BASS_MIN_FRACTION of the frame):
#
#   score_t(c) = sum_pc q_t[pc] log E[c, pc] + BASS_GAIN log B[c, b_t]
#
# E[c] is chord c's pitch-class distribution: CHORD_TONE_WEIGHTS on its root, third, fifth and
# seventh (the four tones of a diminished set at DIMINISHED_TONE_WEIGHT), NON_CHORD_TONE_WEIGHT
# elsewhere, normalised to sum 1; N is uniform. B[c] is the same for the bass with BASS_WEIGHTS.
# A seventh chord therefore wins over its triad only when the seventh sounds, and the bass settles
# what the upper notes leave open (C and E alone: C, or Am over an A in the bass). Frames with
# no pitched note score 0 for every chord and SILENCE_N_SCORE for N. Each frame's scores are
# weighted by its length in beats, and the chord sequence is the one that maximises the sum of
# scores minus CHANGE_PENALTY per change (Viterbi), so a chord lasts as long as its notes do and
# a passing tone does not split it.
#
# Frames are the file's beats (`NoteArrays.beat_times`), shifted by the phase at which its notes
# begin (`beat_phase`): a MIDI file whose music does not start on its own beat grid (a pickup
# written without a partial bar, a transcription with an offset) still gets one frame per sounded
# beat, with chord changes on frame edges.

CHORD_TONE_WEIGHTS = (1.0, 0.8, 0.9, 0.7)     # root, third, fifth, seventh (relative, before normalising)
DIMINISHED_TONE_WEIGHT = 0.8
NON_CHORD_TONE_WEIGHT = 0.05
BASS_WEIGHTS = (0.6, 0.15, 0.15, 0.05)        # bass on the root, third, fifth, seventh
BASS_OTHER_WEIGHT = 0.01                      # bass on a tone outside the chord
BASS_GAIN = 0.3
BASS_MIN_FRACTION = 0.25                      # of the frame, for a note to count as the bass
HIGH_REGISTER = 11                            # semitones above the file's median pitch, above which a note counts ...
HIGH_REGISTER_WEIGHT = 0.5                    # ... at this weight: melodies carry the passing tones
CHANGE_PENALTY = 0.7                          # per chord change, in beats of evidence
SILENCE_N_SCORE = 0.3                         # N's score in a silent beat (chords score 0)
PHASE_BINS = 48                               # resolution of `beat_phase`, per beat


def _chord_distributions(tone_weights: Sequence[float], other: float, diminished: float) -> np.ndarray:
    """float64 [64, 12]: each class's pitch-class distribution (rows sum to 1; N uniform)."""
    table = np.full((64, 12), other, dtype=np.float64)
    for r in range(12):
        for q, quality in enumerate(QUALITIES):
            for interval, weight in zip(QUALITY_INTERVALS[quality], tone_weights):
                table[5 * r + q, (r + interval) % 12] = weight
    for r in range(3):
        table[DIMINISHED_FIRST + r, [r, r + 3, r + 6, r + 9]] = diminished
    table[NO_CHORD] = 1.0
    return table / table.sum(axis=1, keepdims=True)


LOG_TONE = np.log(_chord_distributions(CHORD_TONE_WEIGHTS, NON_CHORD_TONE_WEIGHT, DIMINISHED_TONE_WEIGHT))
LOG_BASS = np.log(_chord_distributions(BASS_WEIGHTS, BASS_OTHER_WEIGHT, BASS_WEIGHTS[1]))
_BASS_SCORES = np.ascontiguousarray(BASS_GAIN * LOG_BASS.T)          # [12 bass pitch classes, 64]
_PHASE_KERNEL = np.exp(-0.5 * (np.arange(-4, 5) / 1.5) ** 2)         # 1.5 bins, symmetric


@dataclass(frozen=True, eq=False)
class BeatFrames:
    """A file cut into beat frames (F frames), with what sounds in each.

    edges: float64 [F + 1] s, from 0 to the file's duration; frame k is [edges[k], edges[k+1]).
    profile: float64 [F, 12], how long each pitch class sounds in the frame, in beats (non-drum
      notes; notes more than HIGH_REGISTER above the file's median pitch count at HIGH_REGISTER_WEIGHT).
    bass: int64 [F], the lowest MIDI pitch sounding for at least BASS_MIN_FRACTION of the frame,
      -1 where none does.
    beats: float64 [F], each frame's length in beats (1 inside the file; less for the frames cut by
      its start or end).
    phase: the beat phase the frames were shifted by, in beats [0, 1) (see `beat_phase`).
    """

    edges: np.ndarray
    profile: np.ndarray
    bass: np.ndarray
    beats: np.ndarray
    phase: float


def _beat_grid(notes: "NoteArrays") -> np.ndarray:
    """float64 [B] s: the file's beats, continued at the last beat length past its duration."""
    beats = notes.beat_times()
    if beats.size >= 2:
        step = beats[-1] - beats[-2]
    else:
        num, den = int(notes.time_signature_numerator[-1]), int(notes.time_signature_denominator[-1])
        quarters = (3.0 if num % 3 == 0 and num > 3 else 1.0) * 4.0 / den
        step = quarters * 60.0 / float(notes.tempo_bpm[-1])
    more = max(int(np.ceil((notes.duration - beats[-1]) / step)), 0) + 2
    return np.concatenate([beats, beats[-1] + step * np.arange(1, more + 1)])


def beat_phase(onset: np.ndarray, offset: np.ndarray, beats: np.ndarray) -> float:
    """Where in the beat the notes begin, in beats [0, 1): 0 when they begin on the beats.

    onset, offset: note times in seconds [n]; beats: beat times in seconds [B], increasing, B >= 2,
    past the last offset. Each onset's position within its beat is weighted by the note's length
    in beats (up to one beat), the positions are histogrammed in PHASE_BINS bins and smoothed
    (a Gaussian of 1.5 bins, circular), and the centre of the fullest bin is the phase.
    0.0 for no notes.
    """
    index = np.arange(beats.size, dtype=np.float64)
    return _phase(np.interp(onset, beats, index), np.interp(offset, beats, index))


def _phase(start: np.ndarray, stop: np.ndarray) -> float:
    """`beat_phase` of notes given as positions in beats [n]."""
    if start.size == 0:
        return 0.0
    length = np.clip(stop - start, 0.0, 1.0)
    bins = np.floor((start % 1.0) * PHASE_BINS + 0.5).astype(np.int64) % PHASE_BINS
    histogram = np.bincount(bins, weights=length, minlength=PHASE_BINS)
    smoothed = np.convolve(np.concatenate([histogram[-4:], histogram, histogram[:4]]), _PHASE_KERNEL, mode="valid")
    return float(np.argmax(smoothed)) / PHASE_BINS


def beat_frames(notes: "NoteArrays") -> BeatFrames:
    """Cut a file into beat frames at the phase its notes begin (`beat_phase`), with each frame's
    pitch-class profile and bass (see `BeatFrames`). A file with no pitched notes gets frames
    with empty profiles and no bass."""
    grid = _beat_grid(notes)
    index = np.arange(grid.size, dtype=np.float64)
    pitched = ~notes.is_drum
    pitch = notes.pitch[pitched].astype(np.int64)
    start = np.interp(notes.onset[pitched], grid, index)       # in beats from the start of the file
    stop = np.interp(notes.offset[pitched], grid, index)
    phase = _phase(start, stop)
    end = float(np.interp(notes.duration, grid, index))
    # frame edges in beats: 0, then every beat from `phase` on, then the end of the file
    bounds = np.arange(phase, end, 1.0)
    bounds = np.concatenate([[0.0], bounds[bounds > 0.0], [end]])
    n_frames = bounds.size - 1
    beats = np.diff(bounds)

    first = np.clip(np.searchsorted(bounds, start, side="right") - 1, 0, n_frames - 1)
    last = np.clip(np.searchsorted(bounds, stop, side="left") - 1, first, n_frames - 1)
    spans = last - first + 1
    note = np.repeat(np.arange(start.size), spans)
    frame = first[note] + (np.arange(note.size) - np.repeat(np.cumsum(spans) - spans, spans))
    overlap = np.minimum(stop[note], bounds[frame + 1]) - np.maximum(start[note], bounds[frame])
    keep = overlap > 1e-9
    note, frame, overlap = note[keep], frame[keep], overlap[keep]
    high = np.median(pitch) + HIGH_REGISTER if pitch.size else 128.0
    weight = np.where(pitch[note] > high, HIGH_REGISTER_WEIGHT, 1.0)
    profile = np.bincount(frame * 12 + pitch[note] % 12, weights=overlap * weight,
                          minlength=n_frames * 12).reshape(n_frames, 12)
    long_enough = overlap >= BASS_MIN_FRACTION * beats[frame]
    lowest = np.full(n_frames, 128, dtype=np.int64)
    np.minimum.at(lowest, frame[long_enough], pitch[note[long_enough]])
    bass = np.where(lowest < 128, lowest, -1)
    edges = np.interp(bounds, index, grid)
    edges[0], edges[-1] = 0.0, notes.duration
    return BeatFrames(edges, profile, bass, beats, phase)


PRODUCT_ROWS = 256                            # rows per block in `small_product`
_STAY_BONUS = 1e-9                            # settles exact ties in `best_path` with costs


def small_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for a tall, thin a [n, k] and a small b [k, m], in blocks of PRODUCT_ROWS rows.

    BLAS (OpenBLAS) spreads a product of more than 262144 multiply-adds over threads, which for
    these products costs more CPU than the work itself; blocks below that size stay on one thread.
    """
    if a.shape[0] <= PRODUCT_ROWS:
        return a @ b
    return np.concatenate([a[i:i + PRODUCT_ROWS] @ b for i in range(0, a.shape[0], PRODUCT_ROWS)])


def chord_scores(profile: np.ndarray, bass: np.ndarray) -> np.ndarray:
    """float64 [F, 64]: each class's log-likelihood score per frame (the model above).

    profile: float64 [F, 12], how long each pitch class sounds (any unit: each row is normalised);
    bass: int [F], MIDI pitch or -1 for none.
    Silent frames (an all-zero profile) score 0 for every chord and SILENCE_N_SCORE for N.
    """
    profile = np.asarray(profile, dtype=np.float64)
    bass = np.asarray(bass, dtype=np.int64)
    total = profile.sum(axis=1)
    silent = total <= 0
    scores = small_product(profile / np.where(silent, 1.0, total)[:, None], LOG_TONE.T)
    has_bass = bass >= 0
    scores[has_bass] += _BASS_SCORES[bass[has_bass] % 12]
    scores[silent] = 0.0
    scores[silent, NO_CHORD] = SILENCE_N_SCORE
    return scores


def best_path(scores: np.ndarray, change_penalty) -> np.ndarray:
    """int64 [F]: the state sequence s maximising sum_t scores[t, s_t] minus a penalty for every
    change of state (Viterbi).

    scores: float64 [F, S], log-domain. change_penalty, in the same units: a number >= 0, the cost
    of any change (three numpy calls per frame, about 3 us, then a vectorised backtrack), or
    float64 [S, S] with the cost of each change i -> j at [i, j] (the diagonal is not used; S^2
    work per frame). Ties keep the current state, then go to the lowest index. F = 0 gives an
    empty path.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n_frames, n_states = scores.shape
    if n_frames == 0:
        return np.zeros(0, dtype=np.int64)
    if np.ndim(change_penalty):
        return _best_path_costs(scores, np.asarray(change_penalty, dtype=np.float64))
    # best[t]: the best total of a path ending in each state at frame t
    best = np.empty_like(scores)
    best[0] = scores[0]
    leader = np.zeros(n_frames, dtype=np.int64)         # leader[t]: the best state at t - 1
    previous = best[0]
    for t in range(1, n_frames):
        k = int(previous.argmax())
        leader[t] = k
        current = best[t]
        np.maximum(previous, previous[k] - change_penalty, out=current)
        current += scores[t]
        previous = current
    # a state is entered at t (from leader[t]) unless staying in it scored at least as well;
    # entered[s, t] is the frame at which the run of s that holds at t began
    frames = np.arange(n_frames, dtype=np.int32)
    threshold = best[frames[:-1], leader[1:]] - change_penalty
    entered = np.zeros((n_states, n_frames), dtype=np.int32)
    entered[:, 1:] = np.where(best[:-1].T >= threshold, 0, frames[1:])
    np.maximum.accumulate(entered, axis=1, out=entered)
    path = np.empty(n_frames, dtype=np.int64)
    t, state = n_frames - 1, int(best[-1].argmax())
    while True:
        begin = int(entered[state, t])
        path[begin:t + 1] = state
        if begin == 0:
            return path
        t, state = begin - 1, int(leader[begin])


def _best_path_costs(scores: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """`best_path` with a cost per change i -> j, costs float64 [S, S]."""
    n_frames, n_states = scores.shape
    if costs.shape != (n_states, n_states):
        raise ValueError(f"change costs must be [{n_states}, {n_states}], got {list(costs.shape)}")
    costs = costs.copy()
    np.fill_diagonal(costs, -_STAY_BONUS)                   # staying wins a tie
    states = np.arange(n_states)
    back = np.empty((n_frames, n_states), dtype=np.int64)
    candidates = np.empty((n_states, n_states))             # [from, to]
    total = scores[0].copy()
    for t in range(1, n_frames):
        np.subtract(total[:, None], costs, out=candidates)
        come_from = candidates.argmax(axis=0)
        back[t] = come_from
        total = candidates[come_from, states] + scores[t]
    path = np.empty(n_frames, dtype=np.int64)
    path[-1] = int(total.argmax())
    for t in range(n_frames - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def beat_chords(frames: BeatFrames) -> np.ndarray:
    """int64 [F]: one chord class per beat frame: `chord_scores` weighted by each frame's length in
    beats, smoothed by `best_path` with CHANGE_PENALTY.

    Consecutive frames whose best-scoring class is the same are scored as one (their scores
    added), so a change falls on a beat where the best-fitting chord changes; this halves the
    frames `best_path` walks on real songs.
    """
    scores = chord_scores(frames.profile, frames.bass) * frames.beats[:, None]
    if scores.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    top = scores.argmax(axis=1)
    starts = np.flatnonzero(np.r_[True, top[1:] != top[:-1]])
    path = best_path(np.add.reduceat(scores, starts, axis=0), CHANGE_PENALTY)
    return np.repeat(path, np.diff(np.append(starts, scores.shape[0])))


@dataclass(frozen=True, eq=False)
class ChordTrack:
    """Chord segments of a file (K segments, consecutive repeats merged, N segments kept).

    start, end: float64 [K] s, end[k] == start[k+1], start[0] == 0, end[-1] == the file's duration;
    chord: int64 [K], class indices 0..63.
    """

    start: np.ndarray
    end: np.ndarray
    chord: np.ndarray


def segments(edges: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start [K], end [K], label [K]) of per-frame labels [F] on frame edges [F + 1], consecutive
    equal labels merged."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0), np.zeros(0), labels
    first = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    return edges[first], np.append(edges[first[1:]], edges[-1]), labels[first]


def estimate_chords(notes: "NoteArrays") -> ChordTrack:
    """The chords of a file at the pace of its beats (`beat_frames`, `beat_chords`), as segments.

    A file with no pitched notes is one N segment. `chord_sequence(track.chord)` is the progression.
    """
    frames = beat_frames(notes)
    start, end, chord = segments(frames.edges, beat_chords(frames))
    return ChordTrack(start, end, chord.astype(np.int64))
