"""Audio features for the EmotionRecognizer: one 128-band log-mel vector per 0.5 s of a clip.

The chain, with the parameters in `spec.AUDIO`:

    file --soundfile--> float32 [samples, channels] at the file's rate
         --mean over channels--> mono --soxr HQ, once--> 22,050 Hz
         --STFT (2048, hop 512, periodic Hann, centred, zero padded)--> power
         --mel filterbank (Slaney scale and area norm, as librosa.filters.mel)--> [128, frames]
         --10*log10(max(power, 1e-10))--> log-mel in dB re 1.0 (no top_db clipping)
         --mean over the frames whose centre falls in each window--> [W, 128]
         --mean of the windows--> clip vector [128]

The STFT is computed here with scipy.fft, and the mel bands with a sparse copy of the Slaney
filterbank built once per process; the result matches `librosa.feature.melspectrogram` (same
parameters) to within 1e-6 relative and is faster (see bench/audio_features.py). Nothing here
imports librosa: its lazy imports (about 1-2 s) would be paid again in every worker process.

Bad input raises `AudioError` (a `ValueError` and a `KellyError`) naming the file and the fault:
it cannot be decoded, it holds NaN or Inf samples, it is silent (RMS of the mono mix below
`spec.AUDIO["silence_rms"]`, i.e. -80 dBFS), or it is shorter than one window. Where a file
silent or too short decodes to less than TRUNCATED_FRACTION of the length its header declares (an
mp3 cut short keeps its Xing header's frame count), the reason says it is truncated or damaged. Clipping is not an
error: `AudioFeatures.clipped_fraction` records the fraction of decoded samples (all channels,
before mixing) with |x| >= `spec.AUDIO["clip_level"]`, for the caller to report or filter on.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft
import soundfile
import soxr

from common.errors import KellyError
from preprocess.features import spec

SAMPLE_RATE: int = spec.AUDIO["sample_rate"]
N_FFT: int = spec.AUDIO["n_fft"]
HOP_LENGTH: int = spec.AUDIO["hop_length"]
N_MELS: int = spec.AUDIO["n_mels"]
WINDOW_SECONDS: float = spec.AUDIO["window_seconds"]
SILENCE_RMS: float = spec.AUDIO["silence_rms"]
CLIP_LEVEL: float = spec.AUDIO["clip_level"]
POWER_FLOOR = 1e-10             # the log's floor: -100 dB

_STFT_BLOCK = 2048              # frames per FFT block (about 47 s of audio): bounds memory on long files


class AudioError(KellyError, ValueError):
    """A file that cannot give audio features; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):                 # survives pickling, e.g. from a worker process
        return type(self), (self.path, self.reason)


@dataclass
class AudioFeatures:
    """What `audio_features` returns for one file."""

    path: str
    windows: np.ndarray          # float32 [W, 128]: log-mel (dB) per 0.5-s window
    clip: np.ndarray             # float32 [128]: mean of `windows`
    duration_s: float            # decoded length in seconds
    original_sr: int             # the file's sample rate (Hz)
    channels: int                # the file's channel count
    clipped_fraction: float      # fraction of decoded samples with |x| >= CLIP_LEVEL (0 for clean audio)
    rms: float                   # RMS of the mono mix (full scale = 1)

    @property
    def n_windows(self) -> int:
        return int(self.windows.shape[0])


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode `path` (wav, flac, ogg, mp3: whatever libsndfile reads) to mono float32 at SAMPLE_RATE.

    Returns (y [samples] float32, original sample rate in Hz). Channels are averaged; the signal is
    resampled once with soxr's HQ filter (librosa's res_type="soxr_hq"). Raises AudioError when
    the file cannot be decoded or holds NaN/Inf samples.
    """
    data, original_sr, _ = _decode(path)
    return _to_mono_resampled(data, original_sr), original_sr


#: a decode shorter than this fraction of the length the file's header declares is a cut-short file
TRUNCATED_FRACTION = 0.95


def _decode(path: str | Path) -> tuple[np.ndarray, int, int]:
    """float32 [samples, channels], the sample rate and the frame count the header declares, or AudioError."""
    try:
        with soundfile.SoundFile(str(path)) as sound:
            declared, sr = int(sound.frames), int(sound.samplerate)
            data = sound.read(dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        detail = str(exc).strip() or type(exc).__name__
        if not Path(path).is_file():
            raise AudioError(path, "file not found") from None
        if "does not exist" in detail:
            # libsndfile's words for a file it recognises no format in
            detail = f"{Path(path).stat().st_size} bytes in no audio format libsndfile reads"
        raise AudioError(path, f"cannot be decoded as audio ({detail})") from None
    if sr <= 0:
        raise AudioError(path, f"declares an invalid sample rate {sr}")
    if data.size and not np.isfinite(data).all():
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise AudioError(path, f"holds {bad} NaN or Inf samples")
    return data, int(sr), declared


def _truncated(path, decoded: int, declared: int, sr: int, what: str) -> AudioError | None:
    """The error for a file whose decode stops well short of the length its header declares (a
    download cut short, a damaged file), where that makes it unusable (`what`: silent, too short);
    None when the file is as long as it says. mp3 headers (Xing/Info) state the frame count."""
    if declared <= 0 or decoded >= TRUNCATED_FRACTION * declared:
        return None
    return AudioError(path, f"is truncated or damaged: decodes to {decoded / sr:.2f} s of the {declared / sr:.2f} s "
                            f"its header declares ({what})")


def _to_mono_resampled(data: np.ndarray, sr: int) -> np.ndarray:
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if sr != SAMPLE_RATE and mono.size:
        mono = soxr.resample(mono, sr, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3.0)
    log_part = hz >= 1000.0
    return np.where(log_part, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """The inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3.0))


@functools.lru_cache(maxsize=None)
def mel_filterbank() -> np.ndarray:
    """float32 [128, n_fft/2 + 1]: the Slaney mel filterbank for spec.AUDIO (read-only).

    The same triangles and area normalisation as `librosa.filters.mel(htk=False, norm="slaney")`
    (a test holds them equal), written out here because building it through librosa costs about
    a second of lazy imports in every fresh worker process, more than the features of 20 clips.
    """
    fft_hz = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    edges = mel_to_hz(np.linspace(hz_to_mel(spec.AUDIO["fmin"]), hz_to_mel(spec.AUDIO["fmax"]), N_MELS + 2))
    width = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    fb = weights.astype(np.float32)
    fb.flags.writeable = False
    return fb


@functools.lru_cache(maxsize=None)
def _sparse_filterbank():
    # each FFT bin feeds at most two bands (about 2,000 of the 131,200 weights are non-zero), so a
    # sparse product is 2-3x faster than a dense BLAS one, and needs no BLAS threads
    import scipy.sparse

    return scipy.sparse.csr_matrix(mel_filterbank())


@functools.lru_cache(maxsize=None)
def _hann() -> np.ndarray:
    n = np.arange(N_FFT)
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)   # periodic, as scipy's fftbins=True
    window.flags.writeable = False
    return window


def mel_power(y: np.ndarray) -> np.ndarray:
    """Mel power spectrogram, float32 [128, frames], frames = 1 + len(y) // 512.

    y: mono float32 samples at SAMPLE_RATE. Equals librosa.feature.melspectrogram(y=y, sr=22050,
    n_fft=2048, hop_length=512, n_mels=128, fmax=11025) (centred frames, zero padding, power 2)
    to float32 rounding.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"mel_power expects mono samples [n], got shape {y.shape}")
    padded = np.pad(y, (N_FFT // 2, N_FFT // 2))
    if padded.size < N_FFT:
        padded = np.pad(padded, (0, N_FFT - padded.size))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    fb = _sparse_filterbank()
    window = _hann()
    out = np.empty((N_MELS, frames.shape[0]), dtype=np.float32)
    for start in range(0, frames.shape[0], _STFT_BLOCK):
        spectrum = scipy.fft.rfft(frames[start:start + _STFT_BLOCK] * window, axis=1)
        power = spectrum.real ** 2
        power += spectrum.imag ** 2
        out[:, start:start + _STFT_BLOCK] = fb @ power.T
    return out


def power_to_db(power: np.ndarray) -> np.ndarray:
    """10*log10(max(power, 1e-10)): dB re 1.0, floor -100 dB, no top_db clipping. Same shape, float32."""
    return (10.0 * np.log10(np.maximum(power, POWER_FLOOR))).astype(np.float32, copy=False)


def log_mel(y: np.ndarray) -> np.ndarray:
    """Log-mel spectrogram in dB, float32 [128, frames], from mono float32 samples at SAMPLE_RATE."""
    return power_to_db(mel_power(y))


def window_count(n_samples: int, window_seconds: float = WINDOW_SECONDS) -> int:
    """Number of whole windows in `n_samples` samples at SAMPLE_RATE: floor(duration / window_seconds)."""
    return int(np.floor(n_samples / (window_seconds * SAMPLE_RATE) + 1e-9))


def window_features(logmel: np.ndarray, window_seconds: float = WINDOW_SECONDS,
                    n_windows: int | None = None) -> np.ndarray:
    """Mean log-mel per window: float32 [W, 128] from logmel [128, frames].

    Frame t is centred at t * 512 / 22050 s; window k holds the frames whose centre lies in
    [k * window_seconds, (k + 1) * window_seconds). W defaults to the number of whole windows the
    frames cover (floor(frames * 512 / 22050 / window_seconds)); pass `n_windows` to set it from
    the sample count instead (audio_features does: W = floor(duration / window_seconds)).
    """
    logmel = np.asarray(logmel, dtype=np.float32)
    if logmel.ndim != 2:
        raise ValueError(f"window_features expects logmel [bands, frames], got shape {logmel.shape}")
    window_samples = window_seconds * SAMPLE_RATE
    if window_samples < HOP_LENGTH:
        raise ValueError(f"window_seconds={window_seconds} is shorter than one hop ({HOP_LENGTH / SAMPLE_RATE:.4f} s)")
    n_frames = logmel.shape[1]
    if n_windows is None:
        n_windows = window_count(n_frames * HOP_LENGTH, window_seconds)
    # first frame of window k: the smallest t with t * hop >= k * window_samples
    starts = np.ceil(np.arange(n_windows + 1) * window_samples / HOP_LENGTH - 1e-9).astype(np.int64)
    if n_windows and starts[-1] > n_frames:
        raise ValueError(f"{n_windows} windows of {window_seconds} s need {starts[-1]} frames, logmel has {n_frames}")
    if n_windows == 0:
        return np.zeros((0, logmel.shape[0]), dtype=np.float32)
    frames = logmel.T
    sums = np.add.reduceat(frames[: starts[-1]], starts[:-1], axis=0, dtype=np.float64)
    return (sums / np.diff(starts)[:, None]).astype(np.float32)


def clip_features(windows: np.ndarray) -> np.ndarray:
    """The clip vector: mean of the window vectors, float32 [128] from [W, 128] (W >= 1)."""
    windows = np.asarray(windows)
    if windows.ndim != 2 or windows.shape[0] == 0:
        raise ValueError(f"clip_features expects windows [W >= 1, bands], got shape {windows.shape}")
    return windows.mean(axis=0, dtype=np.float64).astype(np.float32)


def audio_features(path: str | Path, window_seconds: float = WINDOW_SECONDS) -> AudioFeatures:
    """Decode, check, and summarise one file: see the module docstring. Raises AudioError."""
    data, original_sr, declared = _decode(path)
    duration_s = data.shape[0] / original_sr
    decoded = int(data.shape[0])
    if data.shape[0] == 0:
        raise _truncated(path, decoded, declared, original_sr, "no samples") or AudioError(path, "holds no samples")
    clipped_fraction = float(np.count_nonzero(np.abs(data) >= CLIP_LEVEL)) / data.size
    channels = int(data.shape[1])
    y = _to_mono_resampled(data, original_sr)
    del data
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    if rms < SILENCE_RMS:
        what = "all zeros" if not np.any(y) else f"RMS {rms:.2e} below the silence floor {SILENCE_RMS:.0e}"
        raise _truncated(path, decoded, declared, original_sr, f"what decodes is silent: {what}") \
            or AudioError(path, f"is silent ({what})")
    n_windows = window_count(y.size, window_seconds)
    if n_windows < 1:
        raise _truncated(path, decoded, declared, original_sr, f"shorter than one {window_seconds} s window") \
            or AudioError(path, f"is {duration_s:.3f} s long, shorter than one {window_seconds} s window")
    windows = window_features(log_mel(y), window_seconds, n_windows=n_windows)
    return AudioFeatures(
        path=str(path),
        windows=windows,
        clip=clip_features(windows),
        duration_s=float(duration_s),
        original_sr=original_sr,
        channels=channels,
        clipped_fraction=clipped_fraction,
        rms=rms,
    )
