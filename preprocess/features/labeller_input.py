"""The EmotionLabeller's input: a piece's notes as frames of fixed length in seconds.

    labeller_frames(notes, keys=None, chords=None) -> float32 [T, spec.LABELLER_INPUTS]

Frame t covers [t * f, (t + 1) * f) seconds, f = spec.LABELLER["frame_seconds"] (0.25 s), and
T = ceil(duration / f): the frames run from 0 s to the piece's last note-off. Time is counted in
seconds, never in beats: a transcribed performance (EMOPIA's clips are transcriptions of audio)
has a placeholder tempo map, so beats there mean nothing. Drum notes are left out.

Columns (spec.LABELLER_COLUMNS), every value finite and in [-1, 1] or [0, 1]:

- ``sounding_0..11``: how long each pitch class sounds in the frame, as a distribution (sums to 1;
  all 0 in a silent frame);
- ``onset_0..11``: the notes beginning in the frame, by pitch class, as a distribution;
- ``bass_0..11`` / ``top_0..11``: one-hot pitch class of the lowest / highest pitch sounding in the
  frame (all 0 when silent);
- ``chord_root_0..11``: one-hot root of the chord sounding at the frame's centre
  (`preprocess.features.chords`, one chord per beat; all 0 for N; a diminished set counts from its
  class's lowest root); ``chord_maj`` .. ``chord_N``: one-hot quality of that chord
  (spec.LABELLER_CHORD_QUALITIES). The share of minor chords is the strongest single valence cue
  measured on EMOPIA's training clips (AUC 0.77; the key's mode 0.75);
- ``onsets``: log1p(notes beginning in the frame) / 3, at most 1;
- ``polyphony``: log1p(mean number of notes sounding over the frame) / 3, at most 1;
- ``velocity``: mean MIDI velocity of the notes beginning in the frame / 127 (0 when none begin, or
  when the piece's velocities carry no information, below);
- ``velocity_known``: 1 where the piece's velocities vary (at least
  spec.LABELLER["velocity_min_distinct"] distinct values and a standard deviation of at least
  spec.LABELLER["velocity_min_std"]), else 0 on every frame: a file written with one velocity, or
  two, says nothing about loudness, and the labeller then reads arousal from the rest;
- ``mean_pitch``, ``low_pitch``, ``high_pitch``: (time-weighted mean / lowest / highest sounding
  MIDI pitch - 60) / 48, 0 when silent (register);
- ``articulation``: mean of log2(note length in s) / 6 over the notes beginning in the frame,
  note lengths clipped to [1/64, 64] s (0 when none begin);
- ``minor_key``: 1 when the key sounding at the frame's centre is minor;
- ``silent``: 1 when no note sounds in the frame;
- ``clip_*`` (spec.LABELLER_CLIP_COLUMNS): the whole piece's note-level summary
  (`preprocess.features.clip_features`: key strength, intervals between notes sounding together,
  the top line's moves, density, loudness and register), the same values on every frame.

Pitch classes (and chord roots) are key-relative (index 0 is the tonic of the key sounding at the frame's centre,
from `preprocess.features.keys`; a minor key's tonic too, so A minor's A is 0 and its C is 3), so
the pitch-class blocks, ``minor_key``, and every column but the register ones are the same
for a piece and its transposition; the register columns move by semitones / 48 (``clip_pitch``,
``clip_pitch_high``, ``clip_pitch_low`` by semitones / 127). The sustain pedal
is not read (many files have none, and a labeller must not lean on what another corpus lacks).
"""
from __future__ import annotations

import numpy as np

from preprocess.features import spec
from preprocess.features.clip_features import clip_features
from preprocess.features.midi import NoteArrays, window_count, window_of, window_overlaps
from preprocess.features.spec import CHORD_QUALITIES, DIMINISHED_FIRST, NO_CHORD

FRAME_SECONDS = spec.LABELLER["frame_seconds"]
COLUMN = {name: index for index, name in enumerate(spec.LABELLER_COLUMNS)}
SOUNDING, ONSET, BASS, TOP, CHORD_ROOT = (COLUMN[f"{block}_0"] for block in ("sounding", "onset", "bass", "top", "chord_root"))
CHORD_QUALITY = COLUMN[f"chord_{spec.LABELLER_CHORD_QUALITIES[0]}"]
CLIP = COLUMN[spec.LABELLER_CLIP_COLUMNS[0]]
REGISTER_CENTRE, REGISTER_SPAN = 60.0, 48.0          # MIDI pitch, semitones
LENGTH_RANGE = (1.0 / 64.0, 64.0)                    # s, note lengths for `articulation`
COUNT_SCALE = 3.0                                    # log1p(count) / 3: 19 notes -> 1.0


def velocity_is_informative(velocity: np.ndarray) -> bool:
    """Whether a piece's note velocities (MIDI units, any shape) vary enough to carry loudness."""
    velocity = np.asarray(velocity, dtype=np.float64)
    return (velocity.size > 0 and np.unique(velocity).size >= spec.LABELLER["velocity_min_distinct"]
            and float(velocity.std()) >= spec.LABELLER["velocity_min_std"])


def _distribution(rows: np.ndarray) -> np.ndarray:
    """Rows [T, 12] scaled to sum 1 (rows of zeros stay zero)."""
    total = rows.sum(axis=1, keepdims=True)
    return np.divide(rows, total, out=np.zeros_like(rows), where=total > 0)


def chord_parts(chord: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(root pitch class int64, quality index into spec.LABELLER_CHORD_QUALITIES int64) of chord
    classes 0..63 (any shape); N has root -1."""
    chord = np.asarray(chord, dtype=np.int64)
    n_qualities = len(CHORD_QUALITIES)
    root = np.where(chord < DIMINISHED_FIRST, chord // n_qualities, chord - DIMINISHED_FIRST)
    quality = np.where(chord < DIMINISHED_FIRST, chord % n_qualities, n_qualities)
    return np.where(chord == NO_CHORD, -1, root), np.where(chord == NO_CHORD, n_qualities + 1, quality)


def labeller_frames(notes: NoteArrays, keys=None, chords=None, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """The labeller's input frames of a piece (the module docstring gives every column).

    notes: the piece (`preprocess.features.midi.load_notes`); keys, chords: its
    `preprocess.features.keys.KeyTrack` and `preprocess.features.chords.ChordTrack` (estimated here
    when None, both in one pass by `keys.chords_and_keys`). Returns float32
    [T, spec.LABELLER_INPUTS], T = ceil(duration / frame_seconds) >= 1.
    Raises ValueError when the piece has no pitched (non-drum) notes.
    """
    pitched = ~notes.is_drum
    if not np.any(pitched):
        raise ValueError(f"no pitched notes to label ({len(notes)} drum notes only)")
    if keys is None or chords is None:
        from preprocess.features.keys import chords_and_keys

        found_chords, found_keys = chords_and_keys(notes)
        keys = found_keys if keys is None else keys
        chords = found_chords if chords is None else chords
    onset, offset = notes.onset[pitched], notes.offset[pitched]
    pitch = notes.pitch[pitched].astype(np.int64)
    velocity = notes.velocity[pitched].astype(np.float64)
    n_frames = window_count(float(offset.max()), frame_seconds)
    centre = (np.arange(n_frames) + 0.5) * frame_seconds
    tonic, minor = keys.at(centre)
    out = np.zeros((n_frames, spec.LABELLER_INPUTS), dtype=np.float64)

    # the chord at each frame's centre
    segment = np.clip(np.searchsorted(chords.start, centre, side="right") - 1, 0, len(chords.chord) - 1)
    root, quality = chord_parts(chords.chord[segment])
    out[np.arange(n_frames), CHORD_QUALITY + quality] = 1.0
    has_root = np.flatnonzero(root >= 0)
    out[has_root, CHORD_ROOT + (root[has_root] - tonic[has_root]) % 12] = 1.0

    # notes beginning in each frame
    first = window_of(onset, frame_seconds, n_frames)
    relative = (pitch - tonic[first]) % 12
    np.add.at(out, (first, ONSET + relative), 1.0)
    out[:, ONSET:ONSET + 12] = _distribution(out[:, ONSET:ONSET + 12])
    count = np.bincount(first, minlength=n_frames).astype(np.float64)
    out[:, COLUMN["onsets"]] = np.minimum(np.log1p(count) / COUNT_SCALE, 1.0)
    begun = count > 0
    if velocity_is_informative(velocity):
        loud = np.bincount(first, weights=velocity, minlength=n_frames)
        out[begun, COLUMN["velocity"]] = loud[begun] / count[begun] / 127.0
        out[:, COLUMN["velocity_known"]] = 1.0
    length = np.log2(np.clip(offset - onset, *LENGTH_RANGE)) / 6.0
    out[begun, COLUMN["articulation"]] = np.bincount(first, weights=length, minlength=n_frames)[begun] / count[begun]

    # notes sounding in each frame, by the time they sound there
    item, frame, seconds = window_overlaps(onset, offset, frame_seconds, n_frames)
    sounding_pitch = pitch[item]
    np.add.at(out, (frame, SOUNDING + (sounding_pitch - tonic[frame]) % 12), seconds)
    total = np.bincount(frame, weights=seconds, minlength=n_frames)
    out[:, SOUNDING:SOUNDING + 12] = _distribution(out[:, SOUNDING:SOUNDING + 12])
    out[:, COLUMN["polyphony"]] = np.minimum(np.log1p(total / frame_seconds) / COUNT_SCALE, 1.0)
    heard = total > 0
    low = np.full(n_frames, 128, dtype=np.int64)
    high = np.full(n_frames, -1, dtype=np.int64)
    np.minimum.at(low, frame, sounding_pitch)
    np.maximum.at(high, frame, sounding_pitch)
    rows = np.flatnonzero(heard)
    out[rows, BASS + (low[rows] - tonic[rows]) % 12] = 1.0
    out[rows, TOP + (high[rows] - tonic[rows]) % 12] = 1.0
    mean = np.bincount(frame, weights=seconds * sounding_pitch, minlength=n_frames)
    out[rows, COLUMN["mean_pitch"]] = (mean[rows] / total[rows] - REGISTER_CENTRE) / REGISTER_SPAN
    out[rows, COLUMN["low_pitch"]] = (low[rows] - REGISTER_CENTRE) / REGISTER_SPAN
    out[rows, COLUMN["high_pitch"]] = (high[rows] - REGISTER_CENTRE) / REGISTER_SPAN
    out[:, COLUMN["minor_key"]] = minor
    out[:, COLUMN["silent"]] = ~heard
    out[:, CLIP:] = clip_features(onset, offset, pitch, velocity)
    return out.astype(np.float32)
