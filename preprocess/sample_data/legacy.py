"""The older guides' simpler layouts, smaller than the distributed ones:

    deam/audio/*.wav + deam/annotations/annotations.csv    filename,valence,arousal in [-1, 1]
    lakh_midi/*.mid + lakh_midi/emotion_labels.json        {file: {valence, arousal}}, some files unlabelled
    maestro/*.midi                                         a bare folder
    groove/*.mid + groove/drum_labels.json                 GMD-style names, {file: {valence, arousal}}
    harmony/chord_progressions.json
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from preprocess.features import spec

from . import deam, groove, lakh, maestro, rhythm
from .broken import TRUNCATED_MIDI, ZERO_BYTES, WriteReport, truncated, write_broken, write_file
from .emotion import balanced_tonics, spread_targets, tempo_level
from .harmony import write_chord_progressions
from .seeding import rng_for

LEGACY_SAMPLE_RATE = 22050

#: how pleasant a groove style feels (drums have no mode): danceable, bright styles high
STYLE_VALENCE = {"funk": 0.5, "latin/samba": 0.6, "soul/motown": 0.55, "pop": 0.45, "reggae": 0.4,
                 "afrocuban/bembe": 0.35, "jazz/swing": 0.3, "jazz": 0.25, "funk/purdieshuffle": 0.45,
                 "rock": 0.1, "punk": -0.1, "hiphop": -0.15}


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")


def drum_emotion(take: groove.Take, hits: list[tuple[float, int, int]]) -> tuple[float, float]:
    """(valence, arousal) of a drum take: arousal from tempo, hits per second and mean velocity;
    valence from the style (with a 6/8 rock ballad feel a little lower)."""
    duration = max(t for t, _, _ in hits) + 0.5
    density = min(1.0, len(hits) / duration / 12.0)
    velocity = float(np.mean([v for _, _, v in hits])) / 127.0
    arousal = 0.5 * tempo_level(take.bpm) + 0.3 * (2 * density - 1) + 0.2 * (2 * velocity - 1)
    style = rhythm.STYLES[take.style_key]
    valence = STYLE_VALENCE.get(style.name, 0.0)
    if style.name == "rock" and style.time_signature == (6, 8):
        valence -= 0.3
    return round(float(np.clip(valence, -1, 1)), 3), round(float(np.clip(arousal, -1, 1)), 3)


def write_legacy(root: Path, seed: int, *, n_clips: int = 10, n_songs: int = 12, n_pieces: int = 6,
                 n_takes: int = 14, n_progressions: int = 60) -> dict[str, WriteReport]:
    import soundfile as sf

    reports = {name: WriteReport() for name in spec.SOURCES}

    # DEAM: wav clips with clip-level labels in [-1, 1]
    rng = rng_for(seed, "legacy-deam")
    durations = [float(np.round(rng.uniform(20.0, 26.0), 1)) for _ in range(n_clips)]
    plans = deam.clip_plans(seed, list(range(1, n_clips + 1)), durations)
    rows = []
    for plan in plans:
        name = f"clip_{plan.song_id:03d}.wav"
        path = root / "deam" / "audio" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, deam.render_clip(plan, seed, LEGACY_SAMPLE_RATE), LEGACY_SAMPLE_RATE, subtype="PCM_16")
        _, valence, arousal = deam.perceived_curve(plan)
        rows.append({"filename": name, "valence": round(float(valence.mean()), 3),
                     "arousal": round(float(arousal.mean()), 3)})
    (root / "deam" / "annotations").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "deam" / "annotations" / "annotations.csv", index=False, lineterminator="\n")
    reports["deam"].count = len(rows)

    # Lakh: songs by title, labels for most of them, one truncated file
    labels = {}
    for plan in lakh.song_plans(seed, n_songs):
        name = f"{slug(plan.title)}.mid"
        write_file(root, f"lakh_midi/{name}", lakh.song_midi(plan, rng_for(seed, "lakh-song", plan.index)))
        reports["lakh"].count += 1
        if plan.index % 4 != 3:                          # every fourth song has no annotation
            labels[name] = {"valence": plan.valence, "arousal": plan.arousal}
    extra = lakh.plan_song(n_songs, (0.4, 0.4), 9, rng_for(seed, "lakh-plan", n_songs))
    extra_bytes = lakh.song_midi(extra, rng_for(seed, "lakh-song", n_songs))
    write_broken(root, "lakh_midi/midnight_drive.mid", truncated(extra_bytes), TRUNCATED_MIDI.format(percent=45),
                 reports["lakh"])
    (root / "lakh_midi" / "emotion_labels.json").write_text(json.dumps(labels, indent=2) + "\n", encoding="utf-8")

    # MAESTRO: a bare folder of performances and one zero-byte file
    targets = spread_targets(n_pieces, rng_for(seed, "legacy-maestro-targets"))
    tonics = balanced_tonics(targets, rng_for(seed, "legacy-maestro-tonics"))
    for i, (target, tonic) in enumerate(zip(targets, tonics)):
        rng = rng_for(seed, "legacy-maestro", i)
        data, _ = maestro.performance_midi(maestro.plan_piece(target, tonic, rng), rng)
        write_file(root, f"maestro/{maestro.file_name(2018, i + 1, 1).split('/')[1]}.midi", data)
        reports["maestro"].count += 1
    write_broken(root, f"maestro/{maestro.file_name(2018, n_pieces + 1, 1).split('/')[1]}.midi", b"", ZERO_BYTES,
                 reports["maestro"])

    # Groove: GMD-named takes in one folder, with drum labels
    drum_labels = {}
    for take in groove.plan_takes(seed)[:n_takes]:
        name = f"{take.number + 100 * take.drummer}_{take.stem.split('_', 1)[1]}.mid"
        data, _ = groove.take_midi(take, seed)
        write_file(root, f"groove/{name}", data)
        valence, arousal = drum_emotion(take, groove.perform_take(take, seed))
        drum_labels[name] = {"valence": valence, "arousal": arousal}
        reports["groove"].count += 1
    (root / "groove" / "drum_labels.json").write_text(json.dumps(drum_labels, indent=2) + "\n", encoding="utf-8")

    reports["harmony"].count = write_chord_progressions(root / "harmony" / "chord_progressions.json", seed,
                                                        n_progressions)
    return reports
