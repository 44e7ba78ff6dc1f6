"""Musically interpretable descriptors of the four emotion-conditioned networks' outputs.

Every descriptor is a function of ONE output vector of a network (or of a target vector of its
training data, which has the same layout), so the same definition measures what a network says
and what the data says. Applied to the mean of several vectors (a cell of the valence/arousal
grid, an item) it describes their average. All functions take float arrays [N, D] (one vector
per row) and return float64 [N]; a descriptor that is undefined for a row (a silent melody row
has no mean pitch) is NaN there.

MelodyTransformer (128 pitch activities, MIDI pitch 0-127; key-relative outputs have their tonic
on C, see preprocess.features.spec.PITCH_REFERENCE):
  mode_score      best Krumhansl-Kessler major-key correlation minus best minor-key correlation
                  of the pitch-class profile (activity summed per pitch class), in [-2, 2]: > 0
                  major, < 0 minor; 0 for a silent row. The best over all 12 tonics, so the score
                  is the same in every transposition.
  mean_pitch      activity-weighted mean MIDI pitch (the register), NaN for a silent row.
  total_activity  sum of the 128 activities: the mean number of pitches sounding (density).
HarmonyPredictor (probability of each of the 64 chord classes, spec.CHORD_VOCABULARY):
  minor_share     probability on minor triads, minor sevenths and the diminished sets.
  tense_share     probability on dominant sevenths and the diminished sets (the chords that
                  pull towards a resolution).
DynamicsEngine (16 expression values in [0, 1], spec.DYNAMICS_NAMES):
  velocity_mean   mean velocity / 127.
  note_density    note onsets per second / 20.
  articulation    sounding length / inter-onset interval: 1 legato, small staccato.
GroovePredictor (32 values in [-1, 1], spec.GROOVE_NAMES):
  hit_density     total_density: 2 * min(hits per beat / 8, 1) - 1.
  mean_velocity   mean of the per-class velocities (velocity / 127, mapped from [-1, 1] to
                  [0, 1]) weighted by each class's density (hits per beat): the velocity of the
                  average hit. NaN when every class is silent.
  syncopation     2 * (fraction of hits on the "e" and "a" 16ths) - 1.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from preprocess.features import spec

#: network -> {descriptor name: what it measures, for reports and plot titles}
DESCRIPTORS: dict[str, dict[str, str]] = {
    "melody": {
        "mode_score": "mode score (KK best major - best minor r)",
        "mean_pitch": "mean pitch (MIDI)",
        "total_activity": "total activity (pitches sounding)",
    },
    "harmony": {
        "minor_share": "P(minor / diminished chord)",
        "tense_share": "P(dominant 7th / diminished chord)",
    },
    "dynamics": {
        "velocity_mean": "velocity mean (/127)",
        "note_density": "note density (onsets/s / 20)",
        "articulation": "articulation (1 legato)",
    },
    "groove": {
        "hit_density": "hit density (total_density)",
        "mean_velocity": "mean hit velocity (/127)",
        "syncopation": "syncopation",
    },
}
CONDITIONED = tuple(DESCRIPTORS)


def _rows(values, width: int) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"expected vectors of {width} values, got shape {np.shape(values)}")
    return x


# --- melody ---------------------------------------------------------------------------------------

def pitch_class_profiles(activity) -> np.ndarray:
    """float64 [N, 12]: the activity of each row summed per pitch class (C = 0)."""
    x = _rows(activity, spec.MELODY_TARGETS)
    padded = np.zeros((len(x), 132))                   # 11 octaves of 12: pitches 128-131 stay 0
    padded[:, : x.shape[1]] = x
    return padded.reshape(len(x), 11, 12).sum(axis=1)


def mode_score(activity) -> np.ndarray:
    """Best KK major-key correlation minus best minor-key correlation of each row's pitch-class
    profile, float64 [N]; 0 for a silent (or flat) row."""
    profiles = pitch_class_profiles(activity)
    out = np.zeros(len(profiles))
    for i, profile in enumerate(profiles):
        major, minor = spec.key_correlations(profile)
        out[i] = float(major.max() - minor.max())
    return out


def mean_pitch(activity) -> np.ndarray:
    x = _rows(activity, spec.MELODY_TARGETS)
    total = x.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, x @ np.arange(x.shape[1]) / total, np.nan)


def total_activity(activity) -> np.ndarray:
    return _rows(activity, spec.MELODY_TARGETS).sum(axis=1)


# --- harmony --------------------------------------------------------------------------------------

def _quality_classes() -> tuple[np.ndarray, np.ndarray]:
    diminished = list(range(spec.DIMINISHED_FIRST, spec.DIMINISHED_FIRST + 3))
    minor = [5 * r + spec.CHORD_QUALITIES.index(q) for r in range(12) for q in ("min", "m7")] + diminished
    tense = [5 * r + spec.CHORD_QUALITIES.index("7") for r in range(12)] + diminished
    return np.array(sorted(minor)), np.array(sorted(tense))


def minor_share(probabilities) -> np.ndarray:
    minor, _ = _quality_classes()
    return _rows(probabilities, spec.HARMONY_CLASSES)[:, minor].sum(axis=1)


def tense_share(probabilities) -> np.ndarray:
    _, tense = _quality_classes()
    return _rows(probabilities, spec.HARMONY_CLASSES)[:, tense].sum(axis=1)


# --- dynamics -------------------------------------------------------------------------------------

def _dynamics_value(name: str) -> Callable[[np.ndarray], np.ndarray]:
    column = spec.DYNAMICS_NAMES.index(name)

    def value(outputs) -> np.ndarray:
        return _rows(outputs, len(spec.DYNAMICS_NAMES))[:, column].copy()

    value.__name__ = name
    value.__doc__ = f"The DynamicsEngine's {name} value (spec.DYNAMICS_NAMES[{column}])."
    return value


velocity_mean = _dynamics_value("velocity_mean")
note_density = _dynamics_value("note_density")
articulation = _dynamics_value("articulation")


# --- groove ---------------------------------------------------------------------------------------

def _groove_columns(prefix: str) -> list[int]:
    return [spec.GROOVE_NAMES.index(f"{prefix}_{c}") for c in spec.GROOVE_CLASSES]


def hit_density(outputs) -> np.ndarray:
    return _rows(outputs, len(spec.GROOVE_NAMES))[:, spec.GROOVE_NAMES.index("total_density")].copy()


def mean_velocity(outputs) -> np.ndarray:
    x = _rows(outputs, len(spec.GROOVE_NAMES))
    weight = np.clip((x[:, _groove_columns("density")] + 1.0) / 2.0, 0.0, None)     # hits per beat / 4
    velocity = np.clip((x[:, _groove_columns("velocity")] + 1.0) / 2.0, 0.0, 1.0)  # velocity / 127
    total = weight.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (weight * velocity).sum(axis=1) / total, np.nan)


def syncopation(outputs) -> np.ndarray:
    return _rows(outputs, len(spec.GROOVE_NAMES))[:, spec.GROOVE_NAMES.index("syncopation")].copy()


FUNCTIONS: dict[str, dict[str, Callable]] = {
    "melody": {"mode_score": mode_score, "mean_pitch": mean_pitch, "total_activity": total_activity},
    "harmony": {"minor_share": minor_share, "tense_share": tense_share},
    "dynamics": {"velocity_mean": velocity_mean, "note_density": note_density, "articulation": articulation},
    "groove": {"hit_density": hit_density, "mean_velocity": mean_velocity, "syncopation": syncopation},
}
assert all(set(FUNCTIONS[k]) == set(DESCRIPTORS[k]) for k in DESCRIPTORS)


def describe(key: str, vectors) -> dict[str, np.ndarray]:
    """Every descriptor of network `key` for each row of `vectors` [N, D]: {name: float64 [N]}.

    For harmony, `vectors` are probabilities over the 64 classes (a one-hot row for a target);
    turn class indices into one-hot rows with `one_hot` first.
    """
    if key not in FUNCTIONS:
        raise ValueError(f"no descriptors for network {key!r}; defined for {', '.join(FUNCTIONS)}")
    return {name: fn(vectors) for name, fn in FUNCTIONS[key].items()}


def one_hot(classes, n: int = spec.HARMONY_CLASSES) -> np.ndarray:
    """float64 [N, n]: class indices [N] as one-hot rows."""
    classes = np.asarray(classes, dtype=np.int64).ravel()
    out = np.zeros((classes.size, n))
    out[np.arange(classes.size), classes] = 1.0
    return out
