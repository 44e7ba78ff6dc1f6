"""A small additive synthesiser: harmonic wavetables with ADSR envelopes, synthetic drums, stereo mix.

All signals are float32 at `sr` Hz (44.1 kHz by default); mono arrays have shape (n,), stereo (n, 2).
Times are in seconds, pitches MIDI note numbers, velocities 1-127.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

SAMPLE_RATE = 44100
_TABLE_SIZE = 4096                 # power of two: phase wraps with a bit mask


@dataclass(frozen=True)
class Timbre:
    """Harmonic amplitudes (fundamental first) and an ADSR envelope (seconds; sustain level 0-1)."""

    harmonics: tuple[float, ...]
    attack: float
    decay: float          # time constant of the fall from the peak towards the sustain level
    sustain: float
    release: float


_ENVELOPES = {              # attack, decay, sustain, release
    "keys": (0.004, 0.45, 0.22, 0.25),
    "pad": (0.22, 0.6, 0.8, 0.5),
    "bass": (0.008, 0.25, 0.55, 0.08),
    "lead": (0.025, 0.2, 0.75, 0.12),
    "pluck": (0.003, 0.18, 0.1, 0.15),
}


def instrument(kind: str, brightness: float) -> Timbre:
    """A timbre of `kind` ("keys", "pad", "bass", "lead", "pluck"); brightness in [0, 1] sets how many
    harmonics sound and how slowly their amplitudes fall (1/k^p, p from 2.4 dark to 1.0 bright)."""
    n = 3 + int(round(5 * brightness)) if kind != "bass" else 4
    slope = 2.4 - 1.4 * brightness
    harmonics = tuple(float(k ** -slope) for k in range(1, n + 1))
    if kind == "pad":                                  # hollower: odd harmonics stronger
        harmonics = tuple(a * (1.0 if k % 2 == 0 else 0.55) for k, a in enumerate(harmonics))
    return Timbre(harmonics, *_ENVELOPES[kind])


def wavetable(harmonics: tuple[float, ...]) -> np.ndarray:
    """One period of the harmonic sum, peak-normalised, shape (_TABLE_SIZE,)."""
    phase = 2 * np.pi * np.arange(_TABLE_SIZE) / _TABLE_SIZE
    table = sum(a * np.sin((k + 1) * phase + 0.3 * k) for k, a in enumerate(harmonics))
    return (table / np.max(np.abs(table))).astype(np.float32)


def envelope(n_on: int, timbre: Timbre, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Gain over a note held for n_on samples plus its release; shape (n_on + release samples,)."""
    t = np.arange(n_on, dtype=np.float32) / sr
    n_attack = max(1, int(timbre.attack * sr))
    held = timbre.sustain + (1 - timbre.sustain) * np.exp(-np.maximum(t - timbre.attack, 0) / timbre.decay)
    held[:n_attack] *= np.linspace(0.0, 1.0, n_attack, dtype=np.float32)[: len(held[:n_attack])]
    n_release = int(timbre.release * sr)
    last = held[-1] if n_on else 0.0
    release = last * np.exp(-np.arange(n_release, dtype=np.float32) / (sr * timbre.release / 4))
    return np.concatenate([held, release]).astype(np.float32)


def midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


def render_notes(notes: Iterable[tuple[float, float, int, int]], timbre: Timbre, n_samples: int,
                 sr: int = SAMPLE_RATE, out: np.ndarray | None = None) -> np.ndarray:
    """Mono signal, shape (n_samples,), of (onset s, duration s, pitch, velocity) notes; added into
    `out` when given."""
    table = wavetable(timbre.harmonics)
    if out is None:
        out = np.zeros(n_samples, dtype=np.float32)
    cache: dict[tuple[int, int], np.ndarray] = {}
    for onset, duration, pitch, velocity in notes:
        n_on = max(1, int(duration * sr))
        key = (int(pitch), n_on)
        if key not in cache:
            env = envelope(n_on, timbre, sr)
            step = midi_hz(pitch) * _TABLE_SIZE / sr
            idx = (np.arange(len(env)) * step).astype(np.int64) & (_TABLE_SIZE - 1)
            cache[key] = table[idx] * env
        _add_note(out, cache[key], onset, velocity, sr)
    return out


def _add_note(out: np.ndarray, wave: np.ndarray, onset: float, velocity: int, sr: int) -> None:
    """Add `wave` into `out` from `onset` seconds, at the loudness of `velocity`; cut at the end of `out`."""
    start = int(onset * sr)
    if start >= len(out):
        return
    end = min(len(out), start + len(wave))
    out[start:end] += (velocity / 127.0) ** 1.5 * wave[: end - start]


def _drum_sounds(sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One sample per drum sound, made from decaying sines and noise."""
    def t(seconds: float) -> np.ndarray:
        return np.arange(int(seconds * sr)) / sr

    def noise(seconds: float) -> np.ndarray:
        white = rng.standard_normal(int(seconds * sr) + 1)
        return np.diff(white) / 2.0                       # first difference: tilted towards the highs

    tk = t(0.4)
    kick = np.sin(2 * np.pi * np.cumsum(48 + 100 * np.exp(-tk / 0.03)) / sr) * np.exp(-tk / 0.16)
    ts = t(0.25)
    snare = 0.6 * noise(0.25) * np.exp(-ts / 0.08) + 0.5 * np.sin(2 * np.pi * 185 * ts) * np.exp(-ts / 0.05)
    tc = t(0.06)
    stick = (0.6 * np.sin(2 * np.pi * 1650 * tc) + 0.5 * noise(0.06)) * np.exp(-tc / 0.012)
    th, to, tr, tx = t(0.08), t(0.5), t(1.0), t(1.6)
    sounds = {
        "kick": kick,
        "snare": snare,
        "stick": stick,
        "closed_hat": 0.5 * noise(0.08) * np.exp(-th / 0.022),
        "open_hat": 0.45 * noise(0.5) * np.exp(-to / 0.22),
        "crash": 0.45 * noise(1.6) * np.exp(-tx / 0.7),
        "ride": (0.15 * noise(1.0) + 0.12 * sum(np.sin(2 * np.pi * f * tr) for f in (3150, 4270, 5590)))
        * np.exp(-tr / 0.45),
        "bell": 0.35 * sum(np.sin(2 * np.pi * f * tr) for f in (720, 1080, 1630)) * np.exp(-tr / 0.35),
    }
    for name, base in (("tom_high", 210), ("tom_mid", 150), ("tom_low", 100)):
        sounds[name] = np.sin(2 * np.pi * np.cumsum(base * (1 + 0.35 * np.exp(-to / 0.04))) / sr) * np.exp(-to / 0.22)
    return {k: v.astype(np.float32) for k, v in sounds.items()}


#: GM drum pitch -> synthetic sound
DRUM_SOUNDS = {
    36: "kick", 38: "snare", 40: "snare", 37: "stick",
    42: "closed_hat", 22: "closed_hat", 44: "closed_hat", 46: "open_hat", 26: "open_hat",
    50: "tom_high", 48: "tom_high", 47: "tom_mid", 45: "tom_mid", 43: "tom_low", 58: "tom_low",
    49: "crash", 52: "crash", 55: "crash", 57: "crash", 51: "ride", 59: "ride", 53: "bell",
}


def render_drums(hits: Iterable[tuple[float, int, int]], n_samples: int, rng: np.random.Generator,
                 sr: int = SAMPLE_RATE, out: np.ndarray | None = None) -> np.ndarray:
    """Mono drum track, shape (n_samples,), from (onset s, GM drum pitch, velocity) hits; added into
    `out` when given."""
    sounds = _drum_sounds(sr, rng)
    if out is None:
        out = np.zeros(n_samples, dtype=np.float32)
    for onset, pitch, velocity in hits:
        _add_note(out, sounds[DRUM_SOUNDS[pitch]], onset, velocity, sr)
    return out


def mix_stereo(parts: list[tuple[np.ndarray, float, float]]) -> np.ndarray:
    """Sum (mono, gain, pan in [-1, 1]) parts with constant-power panning; shape (n, 2)."""
    n = max(len(p[0]) for p in parts)
    left = np.zeros(n, dtype=np.float32)
    right = np.zeros(n, dtype=np.float32)
    for mono, gain, pan in parts:
        angle = (pan + 1.0) * np.pi / 4.0
        left[: len(mono)] += np.float32(gain * np.cos(angle)) * mono
        right[: len(mono)] += np.float32(gain * np.sin(angle)) * mono
    return np.stack([left, right], axis=1)


def rms_db(x: np.ndarray) -> float:
    """Root-mean-square level in dB re full scale (1.0)."""
    return float(10.0 * np.log10(max(float(np.mean(np.square(x, dtype=np.float64))), 1e-20)))
