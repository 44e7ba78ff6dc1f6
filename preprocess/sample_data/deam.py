"""DEAM-style audio clips with static and dynamic valence/arousal annotations that agree with the music.

Each clip has one or two sections (a Character each: mode, tempo, loudness, density, register,
brightness); the second section may change tempo, density, loudness (ramped: a crescendo or a
diminuendo) or mode. The labels come from the same Characters (preprocess.sample_data.emotion):

- dynamic labels (2 Hz from 15 s, in [-1, 1]) follow the section change with the lag of human raters
  (exponential smoothing, 1.5 s time constant) and a small spread between them;
- static labels (1-9 scale) are the mean and population standard deviation of five simulated
  raters' integer ratings of the clip as a whole, as DEAM's song-level files report them.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import music, rhythm, synth
from .broken import TEXT_AS_MP3, WriteReport, html_error_page, write_broken
from .emotion import Character, arousal_of, character_for, spread_targets, valence_of
from .seeding import rng_for

ANNOTATIONS = "DEAM_Annotations/annotations/annotations averaged per song"
STATIC_1_2000 = f"{ANNOTATIONS}/song_level/static_annotations_averaged_songs_1_2000.csv"
STATIC_2000_2058 = f"{ANNOTATIONS}/song_level/static_annotations_averaged_songs_2000_2058.csv"
DYNAMIC_AROUSAL = f"{ANNOTATIONS}/dynamic (per second annotations)/arousal.csv"
DYNAMIC_VALENCE = f"{ANNOTATIONS}/dynamic (per second annotations)/valence.csv"
AUDIO_DIR = "DEAM_audio/MEMD_audio"

STATIC_HEADER_1_2000 = "song_id, valence_mean, valence_std, arousal_mean, arousal_std"
#: the real second file's header, including its misspelled "valence_ max_mean"
STATIC_HEADER_2000_2058 = (
    "song_id, valence_mean, valence_std, valence_ max_mean, valence_max_std, valence_min_mean, "
    "valence_min_std, arousal_mean, arousal_std, arousal_max_mean, arousal_max_std, arousal_min_mean, "
    "arousal_min_std"
)

DYNAMIC_START = 15.0          # seconds: DEAM's continuous annotations start 15 s into each clip
DYNAMIC_STEP = 0.5            # seconds (2 Hz)
RATER_LAG = 1.5               # seconds: time constant of the raters' response
N_RATERS = 5


@dataclass(frozen=True)
class Section:
    start: float              # seconds
    key: music.Key
    character: Character
    progression: tuple[str, ...]


@dataclass(frozen=True)
class ClipPlan:
    """One clip: its sections, and the loudness ramp into the second section (seconds)."""

    song_id: int
    duration: float
    sections: tuple[Section, ...]
    ramp: float = 0.0

    def character_at(self, t: float) -> Character:
        """The Character sounding at time t (s); loudness ramps linearly over `ramp` seconds after a change."""
        index = max(i for i, s in enumerate(self.sections) if s.start <= t or i == 0)
        current = self.sections[index].character
        if index == 0 or self.ramp <= 0:
            return current
        previous = self.sections[index - 1].character
        w = min(1.0, (t - self.sections[index].start) / self.ramp)
        return Character(current.mode, current.tempo, (1 - w) * previous.loudness + w * current.loudness,
                         current.density, current.register, current.brightness)


def plan_clip(song_id: int, duration: float, target: tuple[float, float], rng: np.random.Generator) -> ClipPlan:
    """A clip expressing `target` (valence, arousal) in its first section; most clips change mid-way."""
    valence, arousal = target
    first = character_for(valence, arousal, rng)
    key = music.Key(int(rng.integers(12)), first.mode)
    sections = [Section(0.0, key, first, _pick_progression(key.mode, rng))]
    ramp = 0.0
    change = rng.random()
    if change < 0.7:
        boundary = float(rng.uniform(min(13.0, duration - 8.0), duration - 5.0))
        if change < 0.25:                       # the mood turns: relative major <-> minor
            valence_b = float(np.clip(-0.8 * valence + rng.normal(0, 0.1), -0.9, 0.9))
            arousal_b = float(np.clip(arousal + rng.normal(0, 0.2), -0.9, 0.9))
        else:                                   # energy rises or falls
            direction = -1.0 if arousal > 0.3 else (1.0 if arousal < -0.3 else float(rng.choice((-1.0, 1.0))))
            arousal_b = float(np.clip(arousal + direction * rng.uniform(0.5, 0.9), -0.95, 0.95))
            valence_b = float(np.clip(valence + rng.normal(0, 0.1), -0.9, 0.9))
            if np.sign(valence_b) != np.sign(valence):
                valence_b = -valence_b
        second = character_for(valence_b, arousal_b, rng)
        if second.mode == first.mode:
            key_b = key
        else:                                   # relative key: same notes, other mode
            key_b = music.Key((key.tonic + (3 if second.mode == "major" else -3)) % 12, second.mode)
        sections.append(Section(boundary, key_b, second, _pick_progression(key_b.mode, rng)))
        ramp = float(rng.uniform(2.0, 6.0))
    return ClipPlan(song_id, duration, tuple(sections), ramp)


def _pick_progression(mode: str, rng: np.random.Generator) -> tuple[str, ...]:
    table = music.MAJOR_PROGRESSIONS if mode == "major" else music.MINOR_PROGRESSIONS
    return table[int(rng.integers(len(table)))]


def emotion_curve(plan: ClipPlan, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valence and arousal in [-1, 1] of the music at each time (s), before any rater lag."""
    chars = [plan.character_at(float(t)) for t in times]
    return (np.array([valence_of(c) for c in chars]), np.array([arousal_of(c) for c in chars]))


def perceived_curve(plan: ClipPlan, rate: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, valence, arousal) at `rate` Hz over the clip, smoothed by the raters' lag."""
    times = np.arange(0.0, plan.duration, 1.0 / rate)
    valence, arousal = emotion_curve(plan, times)
    alpha = 1.0 - np.exp(-1.0 / (rate * RATER_LAG))
    for curve in (valence, arousal):
        for i in range(1, len(curve)):
            curve[i] = curve[i - 1] + alpha * (curve[i] - curve[i - 1])
    return times, valence, arousal


def dynamic_times(duration: float) -> np.ndarray:
    """Start times (s) of the annotated half-second windows: 15.0, 15.5, ... while inside the clip."""
    return np.arange(DYNAMIC_START, duration - DYNAMIC_STEP + 1e-9, DYNAMIC_STEP)


def dynamic_labels(plan: ClipPlan, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Averaged continuous annotations at 2 Hz from 15 s: (valence, arousal), each in [-1, 1]."""
    times, valence, arousal = perceived_curve(plan)
    at = dynamic_times(plan.duration) + DYNAMIC_STEP / 2
    out = []
    for curve in (valence, arousal):
        values = 0.85 * np.interp(at, times, curve) + rng.normal(0.0, 0.02, len(at))
        out.append(np.round(np.clip(values, -1.0, 1.0), 4))
    return out[0], out[1]


def static_labels(plan: ClipPlan, rng: np.random.Generator, *, extremes: bool = False) -> dict[str, float]:
    """Song-level annotations on DEAM's 1-9 scale from simulated raters' integer ratings.

    Keys: valence_mean, valence_std, arousal_mean, arousal_std, and with `extremes` also
    {valence,arousal}_{max,min}_{mean,std} (each rater's highest and lowest rating during the song).
    """
    times, valence, arousal = perceived_curve(plan)
    out: dict[str, float] = {}
    for name, curve in (("valence", valence), ("arousal", arousal)):
        scale = 5.0 + 4.0 * curve                                    # [-1, 1] -> [1, 9]
        bias = rng.normal(0.0, 0.6, N_RATERS)
        ratings = np.clip(np.round(scale.mean() + bias + rng.normal(0.0, 0.5, N_RATERS)), 1, 9)
        out[f"{name}_mean"] = round(float(ratings.mean()), 2)
        out[f"{name}_std"] = round(float(ratings.std()), 2)
        if extremes:
            per_rater = np.clip(np.round(scale[None, :] + bias[:, None]
                                         + rng.normal(0.0, 0.4, (N_RATERS, len(scale)))), 1, 9)
            for stat, values in (("max", per_rater.max(axis=1)), ("min", per_rater.min(axis=1))):
                out[f"{name}_{stat}_mean"] = round(float(values.mean()), 2)
                out[f"{name}_{stat}_std"] = round(float(values.std()), 2)
    return out


# --- arrangement and rendering -------------------------------------------------------------------

def _patterns(c: Character) -> tuple[str, str, str | None]:
    """(accompaniment, bass, drum style key or None) for a Character's density."""
    if c.density < 0.3:
        return "sustain", "whole", None
    if c.density < 0.5:
        return "halves", "half", None
    if c.density < 0.75:
        return "arpeggio", "quarter", "pop 4-4"
    return "stabs", "eighth", ("funk 4-4" if c.density > 0.88 else "rock 4-4")


def render_clip(plan: ClipPlan, seed: int, sr: int = synth.SAMPLE_RATE) -> np.ndarray:
    """The clip's audio, float32 stereo, shape (round(duration * sr), 2), peaks below 1."""
    rng = rng_for(seed, "deam-audio", plan.song_id)
    n = int(round(plan.duration * sr))
    gains = {"chords": 0.5, "bass": 0.8, "melody": 0.7, "drums": 0.6}
    pans = {"chords": -0.3, "bass": 0.0, "melody": 0.25, "drums": 0.05}
    buffers = {name: np.zeros(n, dtype=np.float32) for name in gains}
    for i, section in enumerate(plan.sections):
        end = plan.sections[i + 1].start if i + 1 < len(plan.sections) else plan.duration
        c, key = section.character, section.key
        beat = 60.0 / c.tempo
        n_bars = int(np.ceil((end - section.start) / (4 * beat))) + 1
        numerals = [section.progression[b % len(section.progression)] for b in range(n_bars)]
        chords = music.progression(numerals, key)
        comp, bass_pattern, drum_style = _patterns(c)
        voicings = music.voice_progression(chords, 52 + int(round(10 * c.register)))
        lines = {
            "chords": (music.accompaniment(voicings, 4, comp, velocity=72), "pad" if c.density < 0.5 else "keys"),
            "bass": (music.bass_line(chords, key, 4, bass_pattern, velocity=96), "bass"),
            "melody": (music.melody(chords, key, rng, beats_per_bar=4, density=c.density,
                                    center=62 + int(round(22 * c.register)), rest_probability=0.15), "lead"),
        }

        def in_section(onset: float) -> bool:
            return section.start <= onset < end

        for name, (notes, kind) in lines.items():
            timed = [(section.start + x.start * beat, x.duration * beat, x.pitch, x.velocity) for x in notes]
            timed = [x for x in timed if in_section(x[0])]
            synth.render_notes(timed, synth.instrument(kind, c.brightness), n, sr, out=buffers[name])
        if drum_style is not None:
            style = rhythm.STYLES[drum_style]
            hits = [h for b in range(n_bars) for h in rhythm.groove_bar(style, b, variation=0.3, rng=rng)]
            feel = rhythm.DrummerFeel.random(rng)
            played = [(section.start + t, p, v) for t, p, v in rhythm.perform(hits, style, c.tempo, feel, rng)]
            played = [h for h in played if in_section(h[0])]
            if i > 0:
                played.append((section.start, rhythm.CRASH, 110))
            synth.render_drums(played, n, rng, sr, out=buffers["drums"])
    parts = [(buffers[name], gains[name], pans[name]) for name in gains]
    mix = synth.mix_stereo(parts)
    # level: section one normalised to -20 dB RMS, then the loudness curve (-32 .. -10 dBFS)
    first_end = int(min(n, (plan.sections[1].start if len(plan.sections) > 1 else plan.duration) * sr))
    mix *= 10 ** ((-20.0 - synth.rms_db(mix[:first_end])) / 20)
    control_t = np.arange(0.0, plan.duration + 0.1, 0.1)
    level_db = np.array([-32.0 + 22.0 * plan.character_at(float(t)).loudness for t in control_t]) + 20.0
    gain = np.interp(np.arange(n, dtype=np.float32) / np.float32(sr), control_t, 10 ** (level_db / 20))
    mix *= gain.astype(np.float32)[:, None]
    fade = min(n // 4, int(0.05 * sr))
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)[:, None]
    mix[:fade] *= ramp
    mix[n - fade:] *= ramp[::-1]
    return np.tanh(mix)


# --- the distributed layout ----------------------------------------------------------------------

def clip_plans(seed: int, song_ids: list[int], durations: list[float]) -> list[ClipPlan]:
    """Plans for the given songs, their targets spread over the valence-arousal plane."""
    targets = spread_targets(len(song_ids), rng_for(seed, "deam-targets"))
    order = rng_for(seed, "deam-order").permutation(len(song_ids))
    return [plan_clip(sid, dur, targets[order[i]], rng_for(seed, "deam-plan", sid))
            for i, (sid, dur) in enumerate(zip(song_ids, durations))]


def _number(x: float, *, keep_decimal: bool) -> str:
    """DEAM's number style: the first file writes 3 and 5.7, the second 5.0 and 3.17."""
    return repr(round(float(x), 2)) if keep_decimal else f"{round(float(x), 2):g}"


def _static_csv(header: str, rows: list[tuple[int, dict[str, float]]], *, keep_decimal: bool) -> bytes:
    names = [h.strip().replace("valence_ max_mean", "valence_max_mean") for h in header.split(",")][1:]
    lines = [header] + [",".join([str(sid)] + [_number(labels[k], keep_decimal=keep_decimal) for k in names])
                        for sid, labels in rows]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _dynamic_csv(rows: list[tuple[int, np.ndarray]]) -> bytes:
    width = max(len(v) for _, v in rows)
    header = ["song_id"] + [f"sample_{int(round(1000 * (DYNAMIC_START + k * DYNAMIC_STEP)))}ms" for k in range(width)]
    lines = [",".join(header)]
    for sid, values in rows:
        cells = [f"{v:.4f}" for v in values] + [""] * (width - len(values))
        lines.append(",".join([str(sid)] + cells))
    return ("\n".join(lines) + "\n").encode("ascii")


def deam_plans(seed: int, n_clips: int, n_full_songs: int) -> list[ClipPlan]:
    """Plans of the readable clips: ids 1..n_clips are excerpts of 20-26 s, ids from 2001 longer
    "full songs" of 26-30 s. (DEAM's own excerpts are 45 s; these are shorter because MP3 encoding
    dominates the time sample data takes to write.)"""
    rng = rng_for(seed, "deam-durations")
    clip_ids = list(range(1, n_clips + 1))
    song_ids = list(range(2001, 2001 + n_full_songs))
    durations = [float(np.round(rng.uniform(20.0, 26.0), 1)) for _ in clip_ids]
    durations += [float(np.round(rng.uniform(26.0, 30.0), 1)) for _ in song_ids]
    return clip_plans(seed, clip_ids + song_ids, durations)


def write_deam(root: Path, seed: int, *, n_clips: int = 28, n_full_songs: int = 4, workers: int = 2) -> WriteReport:
    """DEAM_audio/MEMD_audio/{id}.mp3 (44.1 kHz stereo) and DEAM_Annotations/... as distributed, for
    the clips of deam_plans; the full songs are listed in the second static file. One more id
    (n_clips + 1) has an undecodable .mp3 and label rows, as a failed download would."""
    report = WriteReport()
    plans = deam_plans(seed, n_clips, n_full_songs)
    broken_id = n_clips + 1
    broken_plan = plan_clip(broken_id, 24.0, (0.3, -0.2), rng_for(seed, "deam-plan", broken_id))

    audio_dir = root / AUDIO_DIR
    audio_dir.mkdir(parents=True, exist_ok=True)

    def encode(plan: ClipPlan) -> None:
        import soundfile as sf

        sf.write(audio_dir / f"{plan.song_id}.mp3", render_clip(plan, seed), synth.SAMPLE_RATE, format="MP3")

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(encode, plans))
    report.count = len(plans)
    write_broken(root, f"{AUDIO_DIR}/{broken_id}.mp3",
                 html_error_page(404, "Not Found", f"/MEMD_audio/{broken_id}.mp3"), TEXT_AS_MP3, report)

    labelled = sorted(plans + [broken_plan], key=lambda p: p.song_id)
    static = {p.song_id: static_labels(p, rng_for(seed, "deam-static", p.song_id), extremes=p.song_id > 2000)
              for p in labelled}
    dynamic = {p.song_id: dynamic_labels(p, rng_for(seed, "deam-dynamic", p.song_id)) for p in labelled}
    (root / STATIC_1_2000).parent.mkdir(parents=True, exist_ok=True)
    excerpts = [(p.song_id, static[p.song_id]) for p in labelled if p.song_id <= 2000]
    songs = [(p.song_id, static[p.song_id]) for p in labelled if p.song_id > 2000]
    (root / STATIC_1_2000).write_bytes(_static_csv(STATIC_HEADER_1_2000, excerpts, keep_decimal=False))
    (root / STATIC_2000_2058).write_bytes(_static_csv(STATIC_HEADER_2000_2058, songs, keep_decimal=True))
    (root / DYNAMIC_AROUSAL).parent.mkdir(parents=True, exist_ok=True)
    (root / DYNAMIC_AROUSAL).write_bytes(_dynamic_csv([(p.song_id, dynamic[p.song_id][1]) for p in labelled]))
    (root / DYNAMIC_VALENCE).write_bytes(_dynamic_csv([(p.song_id, dynamic[p.song_id][0]) for p in labelled]))
    return report
