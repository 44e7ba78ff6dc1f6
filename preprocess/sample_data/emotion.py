"""The emotion model behind the sample data: which musical attributes carry valence and arousal.

Every generated piece is composed from a Character, and its labels (where the dataset has labels)
are computed from the same Character, so the labels agree with what is heard:

- valence (unpleasant .. pleasant): mode (major > minor) first, then brightness of the timbre and
  the register of the melody;
- arousal (calm .. excited): tempo first, then loudness and note density.

These are the cues listeners rely on most consistently in music-emotion studies (mode and tempo
above all). All values here are in [-1, 1] unless noted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .music import Chord, Key

TEMPO_RANGE = (56.0, 176.0)      # bpm mapped to -1 .. 1 for arousal


@dataclass(frozen=True)
class Character:
    """How a piece (or a section) sounds. Apart from mode and tempo every field is in [0, 1]."""

    mode: str            # "major" | "minor"
    tempo: float         # beats per minute
    loudness: float      # 0 pianissimo .. 1 fortissimo
    density: float       # 0 long sparse notes .. 1 running sixteenths
    register: float      # 0 low (melody around C4) .. 1 high (around C6)
    brightness: float    # 0 dark, few harmonics .. 1 bright, many harmonics


def _signed(x: float) -> float:
    return min(1.0, max(-1.0, 2.0 * float(x) - 1.0))


def tempo_level(tempo: float) -> float:
    """Tempo mapped linearly from TEMPO_RANGE to [-1, 1]."""
    lo, hi = TEMPO_RANGE
    return float(np.clip(2.0 * (tempo - lo) / (hi - lo) - 1.0, -1.0, 1.0))


def valence_of(c: Character) -> float:
    mode = 1.0 if c.mode == "major" else -1.0
    return float(np.clip(0.6 * mode + 0.22 * _signed(c.brightness) + 0.18 * _signed(c.register), -1.0, 1.0))


def arousal_of(c: Character) -> float:
    return float(np.clip(0.45 * tempo_level(c.tempo) + 0.3 * _signed(c.loudness) + 0.25 * _signed(c.density),
                         -1.0, 1.0))


def character_for(valence: float, arousal: float, rng: np.random.Generator, *, jitter: float = 0.12) -> Character:
    """A Character that expresses the target (valence, arousal), with a little independent variation
    per attribute so that the attributes are not copies of one another."""
    def level(x: float) -> float:                  # [-1, 1] target -> [0, 1] attribute, jittered
        return float(np.clip((x + 1.0) / 2.0 + rng.normal(0.0, jitter), 0.0, 1.0))

    lo, hi = TEMPO_RANGE
    tempo = float(np.clip(lo + (hi - lo) * level(arousal), 60.0, 172.0))
    return Character(
        mode=mode_of(valence),
        tempo=round(tempo),
        loudness=level(arousal),
        density=level(arousal),
        register=level(0.6 * valence + 0.4 * arousal),
        brightness=level(valence),
    )


def mode_of(valence: float) -> str:
    """The mode `character_for` gives a piece aimed at this valence: major from 0 up."""
    return "major" if valence >= 0 else "minor"


def balanced_tonics(targets: list[tuple[float, float]], rng: np.random.Generator) -> list[int]:
    """The tonic (pitch class, 0 = C) of each piece planned for `targets` [(valence, arousal)].

    Real MIDI collections are written in all 24 keys, so the pieces are too: within each mode
    (the valence target's sign, see `mode_of`) the pieces take the 12 tonics in turn, each round
    of 12 in a fresh random order. Every tonic of a mode is then used equally often (to within one
    piece), whatever the emotion: the key says nothing about valence or arousal, the mode does.
    """
    rounds: dict[str, list[int]] = {"major": [], "minor": []}
    out = []
    for valence, _ in targets:
        pending = rounds[mode_of(valence)]
        if not pending:
            pending.extend(int(t) for t in rng.permutation(12))
        out.append(pending.pop())
    return out


def key_for(c: Character, tonic: int) -> Key:
    """The key a piece of character `c` is written in, on `tonic` (see `balanced_tonics`)."""
    return Key(int(tonic) % 12, c.mode)


def spread_targets(n: int, rng: np.random.Generator, *, extent: float = 0.9) -> list[tuple[float, float]]:
    """n (valence, arousal) targets covering the square [-extent, extent]^2 evenly (Latin hypercube),
    half of them on each side of valence 0 (so major and minor are balanced)."""
    v = (rng.permutation(n) + rng.random(n)) / n
    a = (rng.permutation(n) + rng.random(n)) / n
    return [(float(extent * (2 * x - 1)), float(extent * (2 * y - 1))) for x, y in zip(v, a)]


# chord colour -> how it pulls valence (and whether it adds tension, which raises arousal)
_CHORD_VALENCE = {
    "": 0.6, "maj7": 0.55, "6": 0.6, "sus2": 0.35, "sus4": 0.2, "7": 0.3,
    "m": -0.5, "m7": -0.3, "m6": -0.35,
    "dim": -0.9, "dim7": -0.95, "m7b5": -0.8, "+": -0.3,
}
_TENSE = {"7", "dim", "dim7", "m7b5", "+", "sus4"}


def progression_emotion(chords: list[Chord], key: Key) -> tuple[float, float]:
    """(valence, arousal) of a chord progression, each in [-1, 1], rounded to 2 decimals.

    Valence: mean colour of the chords (major bright, minor darker, diminished darkest) plus the
    key's mode. Arousal: harmonic activity, i.e. the number of chords (4 calm .. 16 busy) and
    the share of tense chords (dominant sevenths, diminished, augmented, suspended), plus
    chords from outside the key.
    """
    colours = np.array([_CHORD_VALENCE[c.quality] for c in chords])
    valence = 0.6 * colours.mean() + (0.4 if key.mode == "major" else -0.4)
    tense = np.mean([c.quality in _TENSE for c in chords])
    chromatic = np.mean([any(pc not in key.scale for pc in c.pitch_classes) for c in chords])
    changes = np.mean([a != b for a, b in zip(chords, chords[1:])]) if len(chords) > 1 else 0.0
    arousal = -0.95 + 0.09 * (len(chords) - 4) + 1.1 * tense + 0.5 * chromatic + 0.3 * changes
    return (round(float(np.clip(valence, -1, 1)), 2), round(float(np.clip(arousal, -1, 1)), 2))
