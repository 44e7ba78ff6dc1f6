"""Audio features: decoding, the log-mel against librosa, windows, and the bad-input errors."""
from __future__ import annotations

import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest
import soundfile

from common.errors import KellyError
from preprocess.features import audio, spec
from preprocess.features.audio import AudioError, audio_features, load_audio

SR = 44100


def harmonic_tone(f0: float, seconds: float, sr: int = SR, harmonics: int = 6, amplitude: float = 0.3) -> np.ndarray:
    """A plucked-string-like tone: harmonics falling as 1/h, a short attack, a slow decay."""
    t = np.arange(int(round(seconds * sr))) / sr
    tone = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, harmonics + 1))
    envelope = (1 - np.exp(-t / 0.01)) * np.exp(-t / 3.0)
    return (amplitude * envelope * tone / np.abs(tone).max()).astype(np.float32)


def write(path: Path, data: np.ndarray, sr: int = SR, **kwargs) -> Path:
    soundfile.write(str(path), data, sr, **kwargs)
    return path


def band_centres() -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(n_mels=spec.AUDIO["n_mels"] + 2, fmin=0.0, fmax=spec.AUDIO["fmax"])[1:-1]


def test_a440_lands_in_its_mel_band(tmp_path):
    t = np.arange(2 * SR) / SR
    path = write(tmp_path / "a440.wav", (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32))
    feats = audio_features(path)
    centres = band_centres()
    expected = int(np.argmin(np.abs(centres - 440.0)))
    assert abs(int(np.argmax(feats.clip)) - expected) <= 1
    assert centres[int(np.argmax(feats.clip))] == pytest.approx(440.0, rel=0.06)
    # the tone's band stands far above the bands an octave away
    assert feats.clip[expected] - feats.clip[int(np.argmin(np.abs(centres - 880.0)))] > 30.0
    assert feats.clip[expected] - feats.clip[int(np.argmin(np.abs(centres - 220.0)))] > 30.0


def test_harmonics_of_a_tone_show_as_peaks(tmp_path):
    path = write(tmp_path / "c3.flac", harmonic_tone(130.81, 3.0))
    clip = audio_features(path).clip
    centres = band_centres()
    for h in (1, 2, 3, 4):
        band = int(np.argmin(np.abs(centres - h * 130.81)))
        between = int(np.argmin(np.abs(centres - (h + 0.5) * 130.81)))
        assert clip[band] > clip[between] + 6.0, f"harmonic {h}"


def test_log_mel_matches_librosa():
    import librosa

    y = np.concatenate([harmonic_tone(f, 0.8, sr=22050) for f in (261.63, 329.63, 392.0)])
    ours = audio.log_mel(y)
    ref = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=512, n_mels=128, fmax=11025.0)
    ref_db = 10 * np.log10(np.maximum(ref, 1e-10))
    assert ours.shape == ref.shape == (128, 1 + y.size // 512)
    assert ours.dtype == np.float32
    loud = ref_db > -60.0
    assert np.abs(ours - ref_db)[loud].max() < 5e-3
    # quiet bins differ only by float32 rounding, relative to the loudest bin
    assert np.abs(audio.mel_power(y) - ref).max() < 1e-6 * ref.max()


@pytest.mark.parametrize("seconds, expected", [(2.0, 4), (2.3, 4), (1.24, 2), (0.5, 1), (3.75, 7)])
def test_window_count_is_floor_of_duration(tmp_path, seconds, expected):
    path = write(tmp_path / "tone.wav", harmonic_tone(220.0, seconds))
    feats = audio_features(path)
    assert feats.windows.shape == (expected, 128)
    assert feats.n_windows == expected == int(np.floor(seconds / 0.5 + 1e-9))
    assert feats.duration_s == pytest.approx(seconds, abs=1e-4)
    assert np.allclose(feats.clip, feats.windows.mean(axis=0), atol=1e-4)


def test_window_means_take_frames_whose_centre_is_inside():
    n_frames = 100
    logmel = np.tile(np.arange(n_frames, dtype=np.float32), (128, 1))     # band value = frame index
    windows = audio.window_features(logmel, 0.5)
    centres = np.arange(n_frames) * 512 / 22050
    assert windows.shape == (int(np.floor(n_frames * 512 / 22050 / 0.5)), 128)
    for k in range(windows.shape[0]):
        inside = np.flatnonzero((centres >= 0.5 * k) & (centres < 0.5 * (k + 1)))
        assert windows[k, 0] == pytest.approx(inside.mean())
    assert np.all(windows == windows[:, :1])


def test_mp3_stereo_is_mixed_and_resampled_once(tmp_path):
    left = harmonic_tone(196.0, 2.0)
    right = harmonic_tone(293.66, 2.0)
    path = write(tmp_path / "stereo.mp3", np.stack([left, right], axis=1), format="MP3")
    y, sr = load_audio(path)
    assert sr == SR and y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - 2.0 * 22050) < 0.06 * 22050          # MP3 adds encoder padding
    feats = audio_features(path)
    assert feats.channels == 2 and feats.original_sr == SR
    assert np.isfinite(feats.windows).all() and feats.clipped_fraction == 0.0
    centres = band_centres()
    for f0 in (196.0, 293.66):                               # both channels are in the mix
        assert feats.clip[int(np.argmin(np.abs(centres - f0)))] > np.median(feats.clip) + 20


def test_ogg_and_16_khz_files_decode(tmp_path):
    tone = harmonic_tone(440.0, 1.5, sr=16000)
    for name, kwargs in (("tone.ogg", {"format": "OGG", "subtype": "VORBIS"}), ("tone16k.wav", {})):
        feats = audio_features(write(tmp_path / name, tone, sr=16000, **kwargs))
        assert feats.original_sr == 16000 and feats.windows.shape == (3, 128)


def test_silent_file_raises_with_its_name(tmp_path):
    path = write(tmp_path / "silence.wav", np.zeros(SR, dtype=np.float32))
    with pytest.raises(AudioError, match="silence.wav.*silent"):
        audio_features(path)


def test_near_silent_file_is_silent(tmp_path):
    hiss = (1e-5 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    with pytest.raises(AudioError, match="hiss.wav.*silence floor"):
        audio_features(write(tmp_path / "hiss.wav", hiss, subtype="FLOAT"))


def test_shorter_than_one_window_raises(tmp_path):
    path = write(tmp_path / "blip.wav", harmonic_tone(440.0, 0.3))
    with pytest.raises(AudioError, match=r"blip.wav.*shorter than one 0.5 s window"):
        audio_features(path)


def test_a_truncated_mp3_says_it_is_truncated_not_silent(tmp_path):
    """A download cut short keeps its mp3 header's length: what decodes (here the silent intro, or a
    blip) is reported as a truncated file, not as a silent or short one."""
    tone = harmonic_tone(220.0, 6.0)
    tone[: 3 * SR] = 0.0                                     # 3 s of silence before the music
    whole = write(tmp_path / "intro.mp3", tone, format="MP3")
    assert audio_features(whole).duration_s == pytest.approx(6.0, abs=0.1)
    music = write(tmp_path / "music.mp3", harmonic_tone(220.0, 6.0), format="MP3").read_bytes()
    for name, data, what in (("cut_in_intro.mp3", whole.read_bytes(), "what decodes is silent"),
                             ("cut_at_start.mp3", music[: len(music) // 16], "shorter than one 0.5 s window")):
        (tmp_path / name).write_bytes(data[: len(data) // 3] if name == "cut_in_intro.mp3" else data)
        with pytest.raises(AudioError) as info:
            audio_features(tmp_path / name)
        assert name in str(info.value) and info.value.reason.startswith("is truncated or damaged: decodes to ")
        assert "of the 6.00 s its header declares" in info.value.reason and what in info.value.reason


def test_empty_file_raises(tmp_path):
    path = write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioError, match="empty.wav"):
        audio_features(path)


def test_undecodable_files_raise(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is a text file, not audio\n" * 20)
    truncated = tmp_path / "cut.flac"
    write(truncated, harmonic_tone(440.0, 1.0))
    truncated.write_bytes(truncated.read_bytes()[:30])
    for path in (text, truncated):
        with pytest.raises(AudioError, match=path.name + ".*cannot be decoded"):
            audio_features(path)
    with pytest.raises(AudioError, match="missing.ogg: file not found"):
        audio_features(tmp_path / "missing.ogg")
    # libsndfile says "does not exist" of an mp3 it cannot read; the error says what is really wrong
    page = tmp_path / "page.mp3"
    page.write_text("<html><body>404 Not Found</body></html>\n")
    with pytest.raises(AudioError, match=r"page.mp3: cannot be decoded as audio \(40 bytes in no audio format"):
        audio_features(page)
    with pytest.raises(AudioError):
        load_audio(text)


def test_nan_samples_raise(tmp_path):
    tone = harmonic_tone(440.0, 1.0)
    tone[1000:1010] = np.nan
    path = write(tmp_path / "nan.wav", tone, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan.wav.*10 NaN or Inf"):
        audio_features(path)


def test_audio_error_is_a_value_error_and_a_kelly_error(tmp_path):
    path = write(tmp_path / "silence.wav", np.zeros(SR, dtype=np.float32))
    with pytest.raises(ValueError):
        audio_features(path)
    with pytest.raises(KellyError) as info:
        audio_features(path)
    assert info.value.path == str(path) and "silent" in info.value.reason
    import pickle

    copy = pickle.loads(pickle.dumps(info.value))            # as it comes back from a worker process
    assert type(copy) is AudioError and str(copy) == str(info.value) and copy.path == str(path)


def test_clipped_audio_is_recorded_not_rejected(tmp_path):
    tone = np.clip(4.0 * harmonic_tone(110.0, 2.0, amplitude=1.0), -1.0, 1.0)
    feats = audio_features(write(tmp_path / "loud.wav", tone, subtype="FLOAT"))
    assert 0.2 < feats.clipped_fraction < 0.95
    assert np.isfinite(feats.windows).all()
    clean = audio_features(write(tmp_path / "clean.wav", harmonic_tone(110.0, 2.0)))
    assert clean.clipped_fraction == 0.0


def test_real_corpus_audio_gives_finite_features_or_a_recorded_error(real_corpus):
    paths = sorted(p for p in real_corpus.rglob("*") if p.suffix.lower() in {".wav", ".flac", ".ogg", ".mp3"})
    assert paths
    ok, errors = [], []
    for path in paths:
        try:
            feats = audio_features(path)
        except AudioError as exc:
            assert str(path) in str(exc)
            errors.append(exc)
            continue
        assert feats.windows.shape == (int(np.floor(feats.duration_s / 0.5 + 1e-6)), 128)
        assert np.isfinite(feats.windows).all() and np.isfinite(feats.clip).all()
        assert -100.001 <= feats.windows.min() and feats.windows.max() < 60.0
        ok.append(feats)
    names = {Path(f.path).name for f in ok}
    # the real music clips all decode; what fails are the all-zero placeholder stems
    assert {"sample.wav", "gtzan_country.00000.wav", "fma_keys_000010.mp3"} <= names
    assert all("silent" in e.reason for e in errors)
    assert all("stems" in Path(e.path).parts for e in errors)


def test_mel_filterbank_equals_librosas():
    import librosa

    ref = librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128, fmin=0.0, fmax=11025.0, htk=False, norm="slaney")
    ours = audio.mel_filterbank()
    assert ours.shape == ref.shape == (128, 1025)
    assert np.abs(ours - ref).max() <= 1e-6 * np.abs(ref).max()
    assert np.allclose(audio.mel_to_hz(audio.hz_to_mel(np.array([0.0, 440.0, 1000.0, 8000.0]))),
                       [0.0, 440.0, 1000.0, 8000.0])


def test_audio_features_do_not_import_librosa(tmp_path):
    # a worker process pays no librosa import (about a second): decoding, resampling and the mel
    # bands need soundfile, soxr, scipy and numpy only
    clip = write(tmp_path / "clip.wav", harmonic_tone(220.0, 1.0))
    code = ("import sys; from preprocess.features.audio import audio_features; "
            f"f = audio_features({str(clip)!r}); assert f.windows.shape == (2, 128); "
            "print('librosa' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
