"""Chord progressions as lead sheets write them, with emotion labels from their harmony.

Progressions are common Roman-numeral patterns in all twelve major and minor keys, coloured the
way songwriters colour them: sevenths, suspended dominants, inversions (slash chords), secondary
dominants, borrowed chords, diminished and augmented chords. Labels come from
preprocess.sample_data.emotion.progression_emotion.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import music
from .emotion import progression_emotion
from .seeding import rng_for

SEVENTHS = {
    "major": {"I": "Imaj7", "ii": "ii7", "iii": "iii7", "IV": "IVmaj7", "V": "V7", "vi": "vi7", "vii°": "viiø7"},
    "minor": {"i": "i7", "iv": "iv7", "III": "IIImaj7", "VI": "VImaj7", "VII": "VII7", "V": "V7", "ii°": "iiø7"},
}
#: chord that a secondary dominant or passing chord may replace, keyed by the chord it leads into
LEADING = {
    "major": {"ii": "VI7", "ii7": "VI7", "vi": "III7", "vi7": "III7", "V": "II7", "V7": "II7", "I": "vii°"},
    "minor": {"i": "vii°7", "i7": "vii°7", "III": "VII", "iv": "i7"},
}
BORROWED = {"major": {"IV": "iv", "vi": "bVI", "V": "bVII", "iii": "bIII"}, "minor": {"v": "V", "iv": "IV", "i": "im6"}}
ALTERED = {"major": {"V": "V+", "I": "I6", "IV": "iv6"}, "minor": {"III": "III+", "i": "isus4", "V": "Vsus4"}}


def colour(numerals: list[str], mode: str, rng: np.random.Generator, amount: float) -> list[str]:
    """Re-harmonise a plain progression; `amount` in [0, 1] is how much colour to add."""
    out = list(numerals)
    for i, n in enumerate(out):
        if rng.random() < amount * 0.5 and n in SEVENTHS[mode]:
            out[i] = SEVENTHS[mode][n]
        elif rng.random() < amount * 0.25 and n in BORROWED[mode]:
            out[i] = BORROWED[mode][n]
        elif rng.random() < amount * 0.25 and n in ALTERED[mode]:
            out[i] = ALTERED[mode][n]
        elif rng.random() < amount * 0.15 and n in ("I", "V", "IV", "i", "VI", "III"):
            out[i] = n + ("/3" if rng.random() < 0.7 else "/5")
        elif rng.random() < amount * 0.3 and n in ("V", "V7") and mode == "major":
            out[i] = "Vsus4"
    for i in range(len(out) - 1):                      # secondary dominants and passing chords
        nxt = out[i + 1]
        if nxt in LEADING[mode] and rng.random() < amount * 0.35:
            out[i] = LEADING[mode][nxt]
    return out


def make_progression(key: music.Key, length: int, rng: np.random.Generator, amount: float) -> list[str]:
    """Roman numerals of a coloured progression of `length` chords in `key`."""
    table = music.MAJOR_PROGRESSIONS if key.mode == "major" else music.MINOR_PROGRESSIONS
    numerals: list[str] = []
    while len(numerals) < length:
        numerals += table[int(rng.integers(len(table)))]
    return colour(numerals[:length], key.mode, rng, amount)


def spell(numeral: str, key: music.Key) -> str:
    """The chord symbol; chords borrowed a flat degree (bVI, bVII, ...) are spelled with flats in any key."""
    return music.chord_from_numeral(numeral, key).symbol(flats=key.uses_flats or numeral.startswith("b"))


def chord_progressions(seed: int, n: int = 150) -> list[dict]:
    """[{"chords": ["C", "Am", "F", "G"], "emotion": {"valence": v, "arousal": a}}, ...] in all 24 keys."""
    rng = rng_for(seed, "harmony")
    out = []
    for i in range(n):
        key = music.Key((i * 7) % 12, "major" if (i // 12) % 2 == 0 else "minor")
        length = int(rng.choice((4, 4, 4, 5, 6, 8, 8, 8, 12, 16)))
        numerals = make_progression(key, length, rng, amount=float(rng.uniform(0.0, 1.0)))
        valence, arousal = progression_emotion(music.progression(numerals, key), key)
        out.append({"chords": [spell(n, key) for n in numerals],
                    "emotion": {"valence": valence, "arousal": arousal}})
    return out


def write_chord_progressions(path: Path, seed: int, n: int = 150) -> int:
    """Write the JSON file; returns the number of progressions."""
    progressions = chord_progressions(seed, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(progressions, indent=2) + "\n", encoding="utf-8")
    return len(progressions)
