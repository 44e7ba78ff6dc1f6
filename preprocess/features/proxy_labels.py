"""Proxy (valence, arousal) in [-1, 1] for MIDI files without emotion annotations.

Each proxy is built only from musical attributes that are NOT what the network trained on that
source learns to predict, so a network cannot reach its targets through the label:

- lakh (MelodyTransformer, HarmonyPredictor targets: pitches and chords):
  valence = mode_valence, arousal = clip((tempo_term + density_term) / 2, -1, 1).
- maestro (DynamicsEngine targets: velocity statistics, note density, articulation, pedal):
  valence = mode_valence, arousal = clip((tempo_term + register_term) / 2, -1, 1), with the
  tempo estimated from the periodicity of the onsets when the file carries only the constant
  120 bpm placeholder tempo (as MAESTRO's performance MIDI does), else from its tempo map.
  Neither velocity nor note density enters.
- groove (GroovePredictor targets: per-bar hit densities, velocities, timing):
  valence = STYLE_VALENCE[primary style] (0 for a style not in the table),
  arousal = tempo_term of the annotated bpm (the file's tempo map when there is none).
  Hit density and velocity do not enter.

The terms:

- mode_valence = clip(MODE_GAIN * (r_major - r_minor), -1, 1), where r_major / r_minor are the
  best Pearson correlations of the file's pitch-class profile (non-drum note durations summed
  per pitch class) with the 12 rotations of the Krumhansl-Kessler major / minor key profiles
  (Krumhansl & Kessler 1982; `spec.KEY_PROFILES`, `spec.key_correlations`). Major-mode music
  leans positive, minor-mode negative. MODE_GAIN is 3: r_major - r_minor lies within about
  [-0.3, 0.35] on real piano, pop and Lakh-style files.
- tempo_term = clip((bpm - 110) / 50, -1, 1): 60 bpm -> -1, 110 -> 0, 160 -> +1. The file's bpm
  is its mean quarter-note rate (quarter notes at the last offset / duration * 60).
- density_term = clip(log2(notes per second / 8) / 2, -1, 1): 2 notes/s -> -1, 32 -> +1 (all
  notes, drums included, over the span from the first onset to the last offset).
- register_term = clip((mean MIDI pitch - 60) / 12, -1, 1): higher register, higher arousal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from preprocess.features.keys import key_name
from preprocess.features.midi import NoteArrays
from preprocess.features.spec import key_correlations

MODE_GAIN = 3.0
CHORD_SECONDS = 0.03     # onsets closer than this are one onset for the tempo estimate

#: valence of Groove MIDI styles (primary style, before any "/"), on [-1, 1]: dance-oriented,
#: major-leaning, celebratory styles high; blues, punk and middle-eastern modal grooves low.
STYLE_VALENCE = {
    "afrobeat": 0.6, "afrocuban": 0.5, "blues": -0.4, "country": 0.4, "dance": 0.7, "funk": 0.6,
    "gospel": 0.6, "highlife": 0.7, "hiphop": 0.0, "jazz": 0.3, "latin": 0.6, "middleeastern": -0.1,
    "neworleans": 0.6, "pop": 0.5, "punk": -0.3, "reggae": 0.5, "rock": 0.1, "soul": 0.4,
}
SOURCES = ("lakh", "maestro", "groove")


@dataclass(frozen=True)
class ProxyLabels:
    valence: float                     # [-1, 1]
    arousal: float                     # [-1, 1]
    attributes: dict[str, Any] = field(default_factory=dict)   # what they were computed from


def pitch_class_profile(notes: NoteArrays) -> np.ndarray:
    """Seconds of sounding time per pitch class (C=0 .. B=11) of the non-drum notes, float64 [12]."""
    pitched = ~notes.is_drum
    seconds = notes.offset[pitched] - notes.onset[pitched]
    return np.bincount(notes.pitch[pitched] % 12, weights=seconds, minlength=12)


def mean_bpm(notes: NoteArrays) -> float:
    """Mean quarter-note rate of the file from its tempo map, quarter notes per minute."""
    if notes.duration <= 0:
        return float(notes.tempo_bpm[0])
    return float(notes.seconds_to_quarters(np.float64(notes.duration)) / notes.duration * 60.0)


def has_placeholder_tempo(notes: NoteArrays) -> bool:
    """True when the tempo map is one 120-bpm tempo: the MIDI default, which performance
    recordings (MAESTRO) carry whatever the music's tempo; their tempo is then read from the onsets."""
    return len(notes.tempo_bpm) <= 1 and (len(notes.tempo_bpm) == 0 or abs(float(notes.tempo_bpm[0]) - 120.0) < 1e-3)


def onset_tempo(onset: np.ndarray, *, frame_seconds: float = 0.01, min_bpm: float = 40.0,
                max_bpm: float = 240.0, prior_bpm: float = 120.0, prior_octaves: float = 1.0) -> float:
    """Beat rate (bpm) from the periodicity of note onsets; NaN with fewer than 8 onset groups.

    Onsets within CHORD_SECONDS are one event. The autocorrelation of the event train, smoothed
    by a 20 ms Gaussian against expressive timing, is the histogram of differences between
    event times (`frame_seconds` bins) convolved with a Gaussian of 20 ms * sqrt(2); it is
    weighted by a log-normal prior around `prior_bpm` (as librosa's tempo estimate does) and
    maximised over lags from 60 / `max_bpm` to 60 / `min_bpm` seconds.
    """
    onset = np.sort(np.asarray(onset, dtype=np.float64))
    if onset.size == 0:
        return float("nan")
    starts = onset[np.r_[True, np.diff(onset) > CHORD_SECONDS]]
    if starts.size < 8:
        return float("nan")
    sigma = 0.02 * np.sqrt(2.0) / frame_seconds                   # frames
    max_lag = int(np.ceil(60.0 / min_bpm / frame_seconds))
    reach = (max_lag + 4 * sigma) * frame_seconds
    # every pair of events less than `reach` apart
    stop = np.searchsorted(starts, starts + reach, side="right")
    count = stop - np.arange(starts.size) - 1
    first = np.repeat(np.arange(starts.size), count)
    second = first + 1 + np.arange(first.size) - np.repeat(np.cumsum(count) - count, count)
    lag_frames = np.round((starts[second] - starts[first]) / frame_seconds).astype(np.int64)
    n_bins = max_lag + int(4 * sigma) + 2
    histogram = np.bincount(lag_frames, minlength=n_bins)[:n_bins].astype(np.float64)
    taps = np.arange(-int(4 * sigma), int(4 * sigma) + 1)
    autocorr = np.convolve(histogram, np.exp(-0.5 * (taps / sigma) ** 2), mode="same")
    lags = np.arange(max(1, int(np.floor(60.0 / max_bpm / frame_seconds))), max_lag + 1)
    bpm = 60.0 / (lags * frame_seconds)
    prior = np.exp(-0.5 * (np.log2(bpm / prior_bpm) / prior_octaves) ** 2)
    score = autocorr[lags] * prior
    if not np.any(score > 0):
        return float("nan")
    return float(bpm[np.argmax(score)])


def tempo_term(bpm: float) -> float:
    return float(np.clip((bpm - 110.0) / 50.0, -1.0, 1.0))


def density_term(notes_per_second: float) -> float:
    return float(np.clip(np.log2(max(notes_per_second, 1e-6) / 8.0) / 2.0, -1.0, 1.0))


def register_term(mean_pitch: float) -> float:
    return float(np.clip((mean_pitch - 60.0) / 12.0, -1.0, 1.0))


def mode_valence(notes: NoteArrays) -> tuple[float, dict[str, Any]]:
    """Valence from the mode of the pitch-class profile, with the key it found."""
    profile = pitch_class_profile(notes)
    if not np.any(profile > 0):
        return 0.0, {"key": None, "r_major": 0.0, "r_minor": 0.0}
    major, minor = key_correlations(profile)
    r_major, r_minor = float(major.max()), float(minor.max())
    key = key_name(int(major.argmax()), False) if r_major >= r_minor else key_name(int(minor.argmax()), True)
    valence = float(np.clip(MODE_GAIN * (r_major - r_minor), -1.0, 1.0))
    return valence, {"key": key, "r_major": r_major, "r_minor": r_minor}


def proxy_labels(notes: NoteArrays, source: str, metadata: dict | None = None) -> ProxyLabels:
    """Documented proxy (valence, arousal) of a file of `source` ("lakh", "maestro", "groove").

    `metadata` is the dataset item's metadata; for "groove" its "style" and "bpm" (info.csv) are
    used when present. Raises ValueError for another source.
    """
    metadata = metadata or {}
    if source not in SOURCES:
        raise ValueError(f"no proxy labels for source {source!r}; expected one of {SOURCES}")
    attributes: dict[str, Any] = {"source": source}

    if source == "groove":
        style = str(metadata.get("style") or "").strip().lower()
        primary = style.split("/")[0]
        valence = STYLE_VALENCE.get(primary, 0.0)
        bpm = metadata.get("bpm")
        try:
            bpm = float(bpm)
        except (TypeError, ValueError):
            bpm = float("nan")
        bpm_from = "metadata"
        if not np.isfinite(bpm) or bpm <= 0:
            bpm, bpm_from = mean_bpm(notes), "tempo map"
        arousal = tempo_term(bpm)
        attributes.update(style=style, style_known=primary in STYLE_VALENCE, tempo_bpm=bpm, tempo_from=bpm_from)
        return ProxyLabels(float(valence), float(arousal), attributes)

    valence, key_info = mode_valence(notes)
    attributes.update(key_info)
    if source == "maestro":
        pitched = ~notes.is_drum
        if has_placeholder_tempo(notes):
            bpm, bpm_from = onset_tempo(notes.onset[pitched]), "onsets"
        else:
            bpm, bpm_from = mean_bpm(notes), "tempo map"
        if not np.isfinite(bpm):
            bpm, bpm_from = mean_bpm(notes), "tempo map"
        mean_pitch = float(notes.pitch[pitched].mean()) if pitched.any() else 60.0
        arousal = float(np.clip((tempo_term(bpm) + register_term(mean_pitch)) / 2.0, -1.0, 1.0))
        attributes.update(tempo_bpm=bpm, tempo_from=bpm_from, mean_pitch=mean_pitch)
    else:  # lakh
        bpm = mean_bpm(notes)
        span = max(notes.duration - float(notes.onset.min()), 1e-3)
        density = len(notes) / span
        arousal = float(np.clip((tempo_term(bpm) + density_term(density)) / 2.0, -1.0, 1.0))
        attributes.update(tempo_bpm=bpm, tempo_from="tempo map", notes_per_second=density)
    return ProxyLabels(valence, arousal, attributes)
