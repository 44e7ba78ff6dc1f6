"""Time audio_features() against the bare steps it is built on, on the same files, in one run.

    python bench/audio_features.py [--files 4] [--repeats 3] [--seconds 45] [--no-real]

Bare steps: soundfile.read -> channel mean -> soxr.resample (HQ) -> librosa.feature.melspectrogram.
Ours: preprocess.features.audio.audio_features(path) (decode, checks, resample, mel, log, windows).
The files are synthesised 44.1 kHz stereo MP3 clips (chords with harmonics, a bass line, a noisy
hi-hat, phrase envelopes) written into a temporary folder, plus the real-corpus audio when
../shared/real-corpus exists. Both paths are warmed up first (librosa's lazy imports are reported
separately); then each file is timed `repeats` times per path, interleaved, and the best time kept.
The target: ours / bare <= 1.3 over all files. Exit status 1 if it is missed.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import soxr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REAL_AUDIO = REPO.parent / "shared" / "real-corpus"
TARGET_RATIO = 1.3
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}

from preprocess.features import audio, spec  # noqa: E402


def synthesise_clip(seconds: float, sr: int, seed: int) -> np.ndarray:
    """float32 [n, 2]: a I-vi-IV-V progression (harmonic tones), bass, hi-hat noise, stereo spread."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    tonic = 48 + int(rng.integers(0, 12))
    progression = [(0, 4, 7), (9, 12, 16), (5, 9, 12), (7, 11, 14)]          # I vi IV V
    bar = 2.0
    out = np.zeros((t.size, 2), dtype=np.float64)
    for i, start in enumerate(np.arange(0.0, seconds, bar)):
        idx = slice(int(start * sr), int(min(start + bar, seconds) * sr))
        tt = t[idx] - start
        envelope = np.exp(-1.5 * tt) * (1 - np.exp(-60 * tt))
        chord = progression[i % 4]
        for j, step in enumerate(chord):
            f0 = 440.0 * 2 ** ((tonic + 12 + step - 69) / 12)
            tone = sum(np.sin(2 * np.pi * h * f0 * tt) / h**1.5 for h in range(1, 7))
            pan = 0.3 + 0.2 * j
            out[idx, 0] += 0.08 * envelope * tone * (1 - pan)
            out[idx, 1] += 0.08 * envelope * tone * pan
        fb = 440.0 * 2 ** ((tonic - 12 + chord[0] - 69) / 12)
        out[idx, :] += (0.15 * envelope * (np.sin(2 * np.pi * fb * tt) + 0.3 * np.sin(4 * np.pi * fb * tt)))[:, None]
    hat = rng.standard_normal(t.size) * np.exp(-40 * ((t * 4) % 1.0))
    out += 0.02 * hat[:, None]
    return (out / max(1.0, np.abs(out).max() / 0.9)).astype(np.float32)


def bare(path: Path) -> np.ndarray:
    import librosa

    y, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if sr != spec.AUDIO["sample_rate"]:
        y = soxr.resample(y, sr, spec.AUDIO["sample_rate"], quality="HQ")
    return librosa.feature.melspectrogram(
        y=y, sr=spec.AUDIO["sample_rate"], n_fft=spec.AUDIO["n_fft"], hop_length=spec.AUDIO["hop_length"],
        n_mels=spec.AUDIO["n_mels"], fmax=spec.AUDIO["fmax"],
    )


def elapsed(fn, path: Path) -> float:
    start = time.perf_counter()
    fn(path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4, help="synthesised 45-s MP3 clips")
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-real", action="store_true", help="leave out the real-corpus audio")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(args.files):
            path = Path(tmp) / f"clip_{i}.mp3"
            soundfile.write(str(path), synthesise_clip(args.seconds, 44100, seed=i), 44100, format="MP3")
            files.append(path)
        if not args.no_real and REAL_AUDIO.exists():
            for path in sorted(REAL_AUDIO.rglob("*")):
                if path.suffix.lower() in AUDIO_SUFFIXES and "stems" not in path.parts:
                    files.append(path)

        start = time.perf_counter()
        bare(files[0])
        first_bare = time.perf_counter() - start
        start = time.perf_counter()
        audio.audio_features(files[0])
        first_ours = time.perf_counter() - start
        print(f"first call in this process: bare {first_bare * 1e3:.0f} ms, audio_features {first_ours * 1e3:.0f} ms "
              "(lazy imports; once per process)")

        print(f"{'file':58s} {'seconds':>7s} {'bare ms':>8s} {'ours ms':>8s} {'ratio':>6s}")
        total_bare = total_ours = 0.0
        for path in files:
            times_bare, times_ours = [], []
            for _ in range(args.repeats):
                times_bare.append(elapsed(bare, path))
                times_ours.append(elapsed(audio.audio_features, path))
            b, o = min(times_bare), min(times_ours)
            total_bare += b
            total_ours += o
            info = soundfile.info(str(path))
            name = path.name if len(path.name) <= 58 else path.name[:55] + "..."
            print(f"{name:58s} {info.duration:7.1f} {b * 1e3:8.1f} {o * 1e3:8.1f} {o / b:6.2f}")

    ratio = total_ours / total_bare
    verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
    print(f"all {len(files)} files: bare {total_bare * 1e3:.0f} ms, audio_features {total_ours * 1e3:.0f} ms, "
          f"ratio {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
