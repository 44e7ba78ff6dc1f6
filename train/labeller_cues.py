"""Clip-level emotion cues derived exactly from the labeller's frames, inside the model.

    cues = clip_cues(frames [B, T, D], present [B, T] bool)      # [B, len(CUES)], each about [-1, 1]

The frames (`preprocess.features.labeller_input.labeller_frames`) hold per-frame ratios: the mean
velocity of the notes beginning in a frame (0 where none begin), log1p(onset count) / 3. Averaging
them over frames does not give the clip's notes per second or its mean velocity over notes, the two
terms a hand rule reads arousal from; these cues recover them (and a few valence counts) from the
frames themselves, so no cache changes. Every cue is standardised by a fixed, documented scale
(never a statistic fitted on a corpus):

- ``density``: log2(notes per second / 6) / 2, notes per second = sum over frames of
  expm1(3 * onsets) / (frames * frame_seconds), clipped to [-1, 1] (1.5 notes/s -> -1, 24 -> +1);
- ``loudness``: (mean MIDI velocity over the notes - 64) / 32, the frames' velocity weighted by
  their note counts, clipped to [-1, 1]; 0 where the clip's velocities carry no information
  (velocity_known 0), so a flat-velocity file reads arousal from the other cues;
- ``velocity_known``: the share of frames that say velocities vary (0 or 1 for a whole clip);
- ``articulation``: the count-weighted mean of the frames' articulation (log2 note length / 6) * 2;
- ``minor_chords``: 2 * (share of minor and minor-seventh chords among the frames with a chord) - 1;
- ``minor_key``: 2 * (share of frames in a minor key) - 1;
- ``mode_contrast``: 3 * (r_major - r_minor), the Pearson correlations of the clip's key-relative
  sounding pitch-class profile (index 0 = tonic) with the Krumhansl-Kessler major and minor
  profiles at the tonic (spec.KEY_PROFILES), clipped to [-1, 1] (the hand rule's mode term).

`rule_of_cues` is the two-term hand rule read from them: valence the mode contrast, arousal the
mean of density and loudness where velocities vary, else the density alone. An
EmotionLabeller(prior=True) starts from it and learns only a gain and a correction.
"""
from __future__ import annotations

import torch

from preprocess.features import spec

CUES = ("density", "loudness", "velocity_known", "articulation", "minor_chords", "minor_key", "mode_contrast")
FRAME_SECONDS = spec.LABELLER["frame_seconds"]
COUNT_SCALE = 3.0                   # frames' onsets = log1p(count) / 3 (labeller_input.COUNT_SCALE)
DENSITY_CENTRE = 6.0                # notes per second at density 0
LOUDNESS_CENTRE, LOUDNESS_SPAN = 64.0, 32.0      # MIDI velocity
MODE_GAIN = 3.0                     # r_major - r_minor lies within about [-0.3, 0.35]
_COLUMN = {name: index for index, name in enumerate(spec.LABELLER_COLUMNS)}
_SOUNDING = _COLUMN["sounding_0"]
_MINOR_CHORDS = [_COLUMN["chord_min"], _COLUMN["chord_m7"]]


def _centred(profile: tuple) -> torch.Tensor:
    p = torch.tensor(profile, dtype=torch.float32)
    p = p - p.mean()
    return p / p.norm()


_MAJOR, _MINOR = _centred(spec.KEY_PROFILES["major"]), _centred(spec.KEY_PROFILES["minor"])


def _share(weight: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Weighted mean over time of values [B, T] with weights [B, T] (0 where the weights sum to 0)."""
    total = weight.sum(1)
    return (weight * values).sum(1) / total.clamp_min(1e-8)


def clip_cues(frames: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """The cues (module docstring) of each row: frames [B, T, D] float, present [B, T] bool (the
    frames within each row's length) -> [B, len(CUES)] in [-1, 1], same dtype as the frames."""
    weight = present.to(frames.dtype)
    seconds = weight.sum(1).clamp_min(1.0) * FRAME_SECONDS
    count = torch.expm1(COUNT_SCALE * frames[..., _COLUMN["onsets"]]).clamp_min(0.0) * weight
    notes = count.sum(1)
    density = torch.log2((notes / seconds).clamp_min(1e-3) / DENSITY_CENTRE) / 2.0
    known = _share(weight, frames[..., _COLUMN["velocity_known"]])
    velocity = _share(count, frames[..., _COLUMN["velocity"]]) * 127.0
    loudness = torch.where(known > 0.5, (velocity - LOUDNESS_CENTRE) / LOUDNESS_SPAN, torch.zeros_like(known))
    articulation = 2.0 * _share(count, frames[..., _COLUMN["articulation"]])
    chord = weight * (1.0 - frames[..., _COLUMN["chord_N"]])
    minor_chords = 2.0 * _share(chord, frames[..., _MINOR_CHORDS].sum(-1)) - 1.0
    minor_key = 2.0 * _share(weight, frames[..., _COLUMN["minor_key"]]) - 1.0
    profile = torch.einsum("bt,btd->bd", weight, frames[..., _SOUNDING:_SOUNDING + 12])
    profile = profile - profile.mean(1, keepdim=True)
    profile = profile / profile.norm(dim=1, keepdim=True).clamp_min(1e-8)
    contrast = MODE_GAIN * (profile @ _MAJOR.to(profile) - profile @ _MINOR.to(profile))
    cues = torch.stack([density, loudness, known, articulation, minor_chords, minor_key, contrast], dim=1)
    return cues.clamp(-1.0, 1.0)


def rule_of_cues(cues: torch.Tensor) -> torch.Tensor:
    """The hand rule's (valence, arousal) [B, 2] in [-1, 1] from cues [B, len(CUES)] (module
    docstring)."""
    column = {name: i for i, name in enumerate(CUES)}
    density, loudness = cues[:, column["density"]], cues[:, column["loudness"]]
    arousal = torch.where(cues[:, column["velocity_known"]] > 0.5, (density + loudness) / 2.0, density)
    return torch.stack([cues[:, column["mode_contrast"]], arousal], dim=1)
