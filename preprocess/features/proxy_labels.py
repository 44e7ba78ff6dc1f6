"""Proxy (valence, arousal) in [-1, 1] for MIDI files without emotion annotations.

A proxy label stands in for what listeners would say, so it is built from the cues listeners
use, whatever the network trained on the source learns to predict from them: measured against
people (EMOPIA, below), loudness and note density are the arousal people hear, and a label that
left them out (as this module's rules once did for MAESTRO) was noise. The rules:

- lakh and maestro (pitched music; one rule, each term where the file carries it):
  valence = mode_valence,
  arousal = clip(mean of density_term, velocity_term (when the velocities are performed) and
  tempo_term (when the tempo map is real), -1, 1).
- groove (GroovePredictor targets: per-bar hit densities, velocities, timing):
  valence = STYLE_VALENCE[primary style] (0 for a style not in the table),
  arousal = tempo_term of the annotated bpm (the file's tempo map when there is none).

The terms ("the notes" are the non-drum notes, or every note of a file that has only drums):

- mode_valence = clip(MODE_GAIN * (r_major - r_minor), -1, 1), where r_major / r_minor are the
  best Pearson correlations of the file's pitch-class profile (non-drum note durations summed
  per pitch class) with the 12 rotations of the Krumhansl-Kessler major / minor key profiles
  (Krumhansl & Kessler 1982; `spec.KEY_PROFILES`, `spec.key_correlations`). Major-mode music
  leans positive, minor-mode negative. MODE_GAIN is 3: r_major - r_minor lies within about
  [-0.3, 0.35] on real piano, pop and Lakh-style files.
- density_term = clip(log2(notes per second / DENSITY_REFERENCE) / 2, -1, 1) with
  DENSITY_REFERENCE = 6: 1.5 notes/s -> -1, 6 -> 0, 24 -> +1 (the notes, over the span from
  their first onset to their last offset).
- velocity_term = clip((mean velocity - 64) / 32, -1, 1): 32 (p) -> -1, 64 (mf) -> 0, 96 (f) -> +1.
  It enters only when the notes take at least PERFORMED_VELOCITY_LEVELS distinct velocities: a
  file written with one or a few fixed velocities (a sequencer's default) says nothing of loudness.
- tempo_term = clip((bpm - 110) / 50, -1, 1): 60 bpm -> -1, 110 -> 0, 160 -> +1, where bpm is the
  file's mean quarter-note rate (quarter notes at the last offset / duration * 60). It enters
  only when the tempo map is real: a single 120-bpm tempo is the MIDI default that performance
  and transcribed MIDI (MAESTRO, EMOPIA) carry whatever the music's tempo.

Agreement with listeners, EMOPIA (pop piano transcribed from audio, four annotators per clip;
the quadrant's signs). Terms and weights chosen on the official train split (767 clips), reported
on the official validation split (198 clips) by bench/emotion_labels.py. AUC of each raw cue for
the high side (train / val):

    cue                                 arousal AUC     valence AUC
    mean velocity                       0.944 / 0.937   0.411 / 0.468
    notes per second                    0.891 / 0.930   0.402 / 0.494
    mean note length (shorter: higher)  0.858 / 0.892
    sounding / inter-onset (lower)      0.633 / 0.690
    onset tempo (the old maestro term)  0.542 / 0.541
    mean pitch (the old register term)  0.504 / 0.457
    r_major - r_minor (the mode term)                   0.771 / 0.762

Balanced accuracy of the sign (train / val), and accuracy over the 4 quadrants:

    rule                                     valence        arousal        4 quadrants
    old lakh (tempo map + all-note density
      around 8 notes/s)                      0.706 / 0.710  0.831 / 0.874  0.598 / 0.606
    old maestro (onset tempo + register)     0.706 / 0.710  0.529 / 0.500  0.375 / 0.354
    new, both routes (EMOPIA's tempo map
      is the placeholder: density + velocity) 0.706 / 0.710  0.907 / 0.935  0.645 / 0.652

(Published symbolic classifiers on EMOPIA's test split reach 0.65-0.83 valence, 0.85-0.89
arousal, 0.58-0.68 for 4 quadrants.) The anchors are the evidence's: the best split of the train
clips by density is 5.96 notes/s (DENSITY_REFERENCE 6) and by mean velocity 65.2 (64, MIDI's
mezzo-forte, kept); the terms are averaged with equal weights (doubling either one scores 0.909-0.915
on val against 0.935).

Tried and not taken: note length adds nothing beside density, which it mostly is (arousal 0.889 on
val with it, 0.935 without); a mode threshold fitted on train (+0.06) scores valence 0.694 on val
against 0.710 at 0, so the threshold stays at 0; Temperley's key profiles, or the bass line's
mode beside the notes', move valence by at most +0.02 on val, within the noise of 198 clips.
Counts of pitch classes stop at about 0.71 valence whatever the profile, and most of the misses
are sad clips read as calm (25 of the 53 Q3 validation clips come out Q4): the rest needs the
order of the notes (a learned labeller). The tempo map could not be measured here (every EMOPIA
clip carries the placeholder); listeners' tempo-map AUC on other corpora is about 0.8. No
listener-labelled multitrack corpus was at hand: the 11 real Lakh-style multitrack files here
play 10-28 non-drum notes per second, so their density term is +0.4..+1 and Lakh labels lean
aroused unless their tempo and velocities say otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from preprocess.features.keys import key_name
from preprocess.features.midi import NoteArrays
from preprocess.features.spec import key_correlations

MODE_GAIN = 3.0
DENSITY_REFERENCE = 6.0          # notes per second at which density_term is 0
PERFORMED_VELOCITY_LEVELS = 8    # distinct velocities from which velocity_term enters

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
    """True when the tempo map is one 120-bpm tempo: the MIDI default, which performance and
    transcribed MIDI (MAESTRO, EMOPIA) carry whatever the music's tempo."""
    return len(notes.tempo_bpm) <= 1 and (len(notes.tempo_bpm) == 0 or abs(float(notes.tempo_bpm[0]) - 120.0) < 1e-3)


def tempo_term(bpm: float) -> float:
    return float(np.clip((bpm - 110.0) / 50.0, -1.0, 1.0))


def density_term(notes_per_second: float) -> float:
    return float(np.clip(np.log2(max(notes_per_second, 1e-6) / DENSITY_REFERENCE) / 2.0, -1.0, 1.0))


def velocity_term(mean_velocity: float) -> float:
    return float(np.clip((mean_velocity - 64.0) / 32.0, -1.0, 1.0))


def arousal_cues(notes: NoteArrays) -> dict[str, Any]:
    """What the arousal of a pitched file is computed from: {"notes_per_second", "mean_velocity",
    "velocity_levels" (distinct velocities), "velocity_performed", "tempo_bpm", "tempo_map_real"}.

    The notes are the non-drum notes, or all notes of a drum-only file; their density is taken
    over the span from their first onset to their last offset (at least 1 ms).
    """
    pitched = ~notes.is_drum
    chosen = notes.select(pitched) if pitched.any() else notes
    if len(chosen) == 0:
        return {"notes_per_second": 0.0, "mean_velocity": 64.0, "velocity_levels": 0, "velocity_performed": False,
                "tempo_bpm": mean_bpm(notes), "tempo_map_real": not has_placeholder_tempo(notes)}
    span = max(float(chosen.offset.max() - chosen.onset.min()), 1e-3)
    levels = int(np.unique(chosen.velocity).size)
    return {"notes_per_second": len(chosen) / span, "mean_velocity": float(chosen.velocity.mean()),
            "velocity_levels": levels, "velocity_performed": levels >= PERFORMED_VELOCITY_LEVELS,
            "tempo_bpm": mean_bpm(notes), "tempo_map_real": not has_placeholder_tempo(notes)}


def listener_arousal(cues: dict[str, Any]) -> tuple[float, str]:
    """(arousal in [-1, 1], the terms it averaged, e.g. "density+velocity") from `arousal_cues`."""
    terms = {"density": density_term(cues["notes_per_second"])}
    if cues["velocity_performed"]:
        terms["velocity"] = velocity_term(cues["mean_velocity"])
    if cues["tempo_map_real"]:
        terms["tempo"] = tempo_term(cues["tempo_bpm"])
    return float(np.clip(np.mean(list(terms.values())), -1.0, 1.0)), "+".join(terms)


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
    cues = arousal_cues(notes)
    arousal, terms = listener_arousal(cues)
    attributes.update(key_info)
    attributes.update(cues, arousal_terms=terms)
    return ProxyLabels(valence, arousal, attributes)
