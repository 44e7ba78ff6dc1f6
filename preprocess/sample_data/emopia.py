"""EMOPIA-style pop-piano clips with the quadrant listeners gave each: `emopia/midis/` and `emopia/split/`.

The layout of the real collection as it is shared (EMOPIA 1.0's MIDI with its official split):

    emopia/midis/Q{n}_{song id}_{clip}.mid      one piano track, the 120-bpm placeholder tempo
    emopia/split/train.csv, val.csv, test.csv   header `fname,label`: `Q1_0vLPYiPN7qY_0,Q1`

Q1 is +valence +arousal, Q2 -V +A, Q3 -V -A, Q4 +V -A. A song (an 11-character YouTube id, which
may hold "_" and "-") gives one to five clips of 20-40 s, numbered as they were cut from it (not
always consecutively), and the split keeps a song's clips together (about 70/15/15 % of the
songs). The song sets a target emotion, a key, a mode and a metre; each clip is a section of it
whose emotion wanders from the song's (so a song's clips can sit in different quadrants, as a
fifth of the real songs' do), performed as the MAESTRO-style pieces are (phrasing, rubato, pedal)
and written as a transcription is: seconds at the placeholder tempo, no key signature.

No easier than the real clips:

- the mode follows valence only loosely: P(major) = 0.5 + 0.35 tanh(4 v), so about a quarter of
  the positive clips are minor and of the negative ones major (as in EMOPIA, where the mode term
  reads 28 % of Q4 clips as minor and 37 % of Q3 clips as major);
- loudness, density and tempo vary around the clip's emotion with a spread of CUE_JITTER (a
  quarter of their range), so the cues overlap between quadrants; the register hardly follows
  the emotion at all (in EMOPIA the mean pitch's AUC is 0.46-0.50 for arousal, 0.48-0.56 for
  valence);
- the file name's quadrant is what annotators said: about one clip in ten (LABEL_DISAGREEMENT)
  has the side of its weaker axis flipped, the disagreement real annotators show.

Songs are planned in all 24 keys: within each mode the tonics are used in turn
(`emotion.balanced_tonics`), whatever the emotion.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import music
from .broken import WriteReport, write_file
from .emotion import balanced_tonics, character_for, spread_targets
from .maestro import PiecePlan, perform, texture_for
from .midi_files import MidiTrack, midi_bytes, second_ticks
from .seeding import rng_for

TPQ = 384                                  # the real clips' resolution
PLACEHOLDER_BPM = 120.0                    # what a transcription writes for the tempo
CLIP_SECONDS = (20.0, 40.0)
CUE_JITTER = 0.25
LABEL_DISAGREEMENT = 0.1
SECTION_SPREAD = 0.25                      # how far a clip's emotion wanders from its song's
SPLITS = (("train", 0.7), ("val", 0.15), ("test", 0.15))
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass(frozen=True)
class ClipPlan:
    """One clip: where it comes from, the emotion it was made with and the quadrant it is labelled."""

    song_id: str
    clip: int
    split: str
    valence: float                         # the generator's emotion of the clip, [-1, 1]
    arousal: float
    label: int                             # the annotated quadrant 1..4 (the file name's)
    seconds: float                         # the clip's length
    piece: PiecePlan                       # the section it is cut from (a little longer)

    @property
    def fname(self) -> str:
        return f"Q{self.label}_{self.song_id}_{self.clip}"


def quadrant(valence: float, arousal: float) -> int:
    """Russell quadrant 1..4 of a (valence, arousal) point; 0 counts as positive."""
    if arousal >= 0:
        return 1 if valence >= 0 else 2
    return 4 if valence >= 0 else 3


def song_id(rng: np.random.Generator) -> str:
    return "".join(ID_ALPHABET[i] for i in rng.integers(0, len(ID_ALPHABET), size=11))


def clip_plans(seed: int, n_songs: int) -> list[ClipPlan]:
    """Every clip of `n_songs` songs, in song order (deterministic in `seed`)."""
    targets = spread_targets(n_songs, rng_for(seed, "emopia-targets"))
    mode_rng = rng_for(seed, "emopia-modes")
    modes = ["major" if mode_rng.random() < 0.5 + 0.35 * np.tanh(4.0 * v) else "minor" for v, _ in targets]
    tonics = balanced_tonics([(1.0 if m == "major" else -1.0, a) for m, (_, a) in zip(modes, targets)],
                             rng_for(seed, "emopia-tonics"))
    order = rng_for(seed, "emopia-split").permutation(n_songs)
    bounds = np.cumsum([share for _, share in SPLITS]) * n_songs
    split_of = {int(song): SPLITS[int(np.searchsorted(bounds, rank, side="right"))][0]
                for rank, song in enumerate(order)}
    plans: list[ClipPlan] = []
    for s, ((v, a), mode, tonic) in enumerate(zip(targets, modes, tonics)):
        rng = rng_for(seed, "emopia-song", s)
        identity = song_id(rng)
        beats_per_bar = 3 if rng.random() < 0.15 else 4
        n_clips = int(rng.choice((1, 2, 2, 3, 3, 4, 5)))
        numbers = np.sort(rng.choice(n_clips + 2, size=n_clips, replace=False))
        for number in numbers:
            cv = float(np.clip(v + rng.normal(0.0, SECTION_SPREAD), -1.0, 1.0))
            ca = float(np.clip(a + rng.normal(0.0, SECTION_SPREAD), -1.0, 1.0))
            character = character_for(cv, ca, rng, jitter=CUE_JITTER)
            register = float(np.clip(0.5 + 0.1 * cv + rng.normal(0.0, CUE_JITTER), 0.0, 1.0))
            character = replace(character, mode=mode, register=register)
            label_v, label_a = cv, ca
            if rng.random() < LABEL_DISAGREEMENT:          # annotators heard the weaker axis the other way
                if abs(cv) < abs(ca):
                    label_v = -cv if cv != 0 else -1.0
                else:
                    label_a = -ca if ca != 0 else -1.0
            piece = PiecePlan(music.Key(int(tonic), mode), character, beats_per_bar,
                              texture_for(character, beats_per_bar), 0.0)
            seconds = float(rng.uniform(*CLIP_SECONDS))
            piece = replace(piece, duration=seconds + 4 * piece.beats_per_bar * 60.0 / character.tempo)
            plans.append(ClipPlan(identity, int(number), split_of[s], cv, ca, quadrant(label_v, label_a),
                                  seconds, piece))
    return plans


def clip_midi(plan: ClipPlan, rng: np.random.Generator) -> bytes:
    """The clip as a transcription writes it: one piano track, seconds at the placeholder tempo,
    cut at the clip's length (notes sounding past it end there, the pedal is lifted)."""
    notes, pedal = perform(plan.piece, rng)
    end = min(plan.seconds, max(onset + length for onset, length, _, _ in notes))
    track = MidiTrack(name="", program=0)
    for onset, length, pitch, velocity in notes:
        if onset < end - 0.05:
            stop = min(onset + length, end)
            track.notes.append((second_ticks(onset, TPQ, PLACEHOLDER_BPM),
                                max(1, second_ticks(stop - onset, TPQ, PLACEHOLDER_BPM)), pitch, velocity))
    track.controls = [(second_ticks(t, TPQ, PLACEHOLDER_BPM), 64, value) for t, value in pedal if t < end]
    track.controls.append((second_ticks(end, TPQ, PLACEHOLDER_BPM), 64, 0))
    return midi_bytes([track], tpq=TPQ, tempos=[(0, PLACEHOLDER_BPM)], time_signature=(plan.piece.beats_per_bar, 4))


def write_emopia(root: Path, seed: int, *, n_songs: int = 48) -> WriteReport:
    """emopia/midis/*.mid and emopia/split/{train,val,test}.csv for `n_songs` songs (about 2.6 clips each)."""
    report = WriteReport()
    base = root / "emopia"
    rows: dict[str, list[str]] = {name: [] for name, _ in SPLITS}
    for i, plan in enumerate(clip_plans(seed, n_songs)):
        write_file(base, f"midis/{plan.fname}.mid", clip_midi(plan, rng_for(seed, "emopia-clip", i)))
        rows[plan.split].append(f"{plan.fname},Q{plan.label}\n")
        report.count += 1
    for name, lines in rows.items():
        write_file(base, f"split/{name}.csv", ("fname,label\n" + "".join(lines)).encode("utf-8"))
    return report
