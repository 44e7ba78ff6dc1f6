"""Groove-MIDI-style drum performances: beats and fills in many styles, played by drummers with
their own micro-timing, swing where the style swings, and accents.

Files are single-track drum MIDI (channel 10, 480 ticks per quarter, a tempo and a time signature
event) at GMD paths such as drummer1/session1/3_rock_100_beat_4-4.mid, listed in info.csv with
GMD's columns and official-style splits.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import rhythm
from .broken import TEXT_AS_MIDI, WriteReport, html_error_page, write_broken, write_file
from .midi_files import MidiTrack, midi_bytes, second_ticks
from .seeding import rng_for

TPQ = 480
HIT_TICKS = 96                      # GMD notes all last about a fifth of a beat
COLUMNS = ["drummer", "session", "id", "style", "bpm", "beat_type", "time_signature",
           "midi_filename", "audio_filename", "duration", "split"]


@dataclass(frozen=True)
class Take:
    """One recorded performance, as info.csv describes it."""

    drummer: int
    session: str                    # "session1", "session2", "eval_session"
    number: int
    style_key: str                  # key into rhythm.STYLES
    bpm: int
    beat_type: str                  # "beat" | "fill"
    bars: int

    @property
    def style(self) -> str:
        name = rhythm.STYLES[self.style_key].name
        return f"{name}/groove{self.number}" if self.session == "eval_session" else name

    @property
    def time_signature(self) -> str:
        num, den = rhythm.STYLES[self.style_key].time_signature
        return f"{num}-{den}"

    @property
    def stem(self) -> str:
        return (f"drummer{self.drummer}/{self.session}/{self.number}_{self.style.replace('/', '-')}_{self.bpm}"
                f"_{self.beat_type}_{self.time_signature}")



def plan_takes(seed: int, rounds: int = 1) -> list[Take]:
    """Per round, two beats and a fill in each style (about 40 takes); then four evaluation-session
    grooves."""
    rng = rng_for(seed, "groove-takes")
    takes: list[Take] = []
    counters: dict[tuple[int, str], int] = {}

    def add(drummer: int, session: str, style_key: str, beat_type: str) -> None:
        style = rhythm.STYLES[style_key]
        bpm = int(rng.integers(style.bpm[0], style.bpm[1] + 1))
        bar_seconds = style.beats_per_bar * 60.0 / bpm
        bars = 1 if beat_type == "fill" else int(np.clip(round(rng.uniform(16, 34) / bar_seconds), 4, 24))
        number = counters[(drummer, session)] = counters.get((drummer, session), 0) + 1
        takes.append(Take(drummer, session, number, style_key, bpm, beat_type, bars))

    for r in range(rounds):
        for i, style_key in enumerate(rhythm.STYLES):
            drummer = 1 + (i + r) % 5
            session = "session1" if (i + r) % 3 else "session2"
            add(drummer, session, style_key, "beat")
            add(drummer, session, style_key, "fill")
            add(1 + (i + r + 2) % 5, "session1", style_key, "beat")
    for style_key in ("rock 4-4", "funk 4-4", "hiphop 4-4", "pop 4-4"):
        add(1, "eval_session", style_key, "beat")
    return takes


def perform_take(take: Take, seed: int) -> list[tuple[float, int, int]]:
    """The take's hits as (seconds, pitch, velocity)."""
    style = rhythm.STYLES[take.style_key]
    rng = rng_for(seed, "groove-take", take.stem)
    feel = rhythm.DrummerFeel.random(rng_for(seed, "drummer", take.drummer))
    hits = []
    if take.beat_type == "fill":
        lead_in = int(rng.integers(0, 2))                  # sometimes a bar of groove before the fill
        for b in range(lead_in):
            hits += rhythm.groove_bar(style, b, variation=0.2, rng=rng)
        hits += rhythm.fill_bar(style, lead_in, rng, start_fraction=float(rng.choice((0.0, 0.25, 0.5))))
        hits += rhythm.crash_downbeat((lead_in + 1) * style.beats_per_bar)
    else:
        crashes = style.name in ("rock", "punk", "pop", "funk", "soul/motown", "hiphop")
        if crashes:
            hits += rhythm.crash_downbeat(0.0)[:1]
        for b in range(take.bars):
            if b % 8 == 7 and b < take.bars - 1:
                hits += rhythm.fill_bar(style, b, rng, start_fraction=0.75)
                if crashes:
                    hits += rhythm.crash_downbeat((b + 1) * style.beats_per_bar)[:1]
            else:
                hits += rhythm.groove_bar(style, b, variation=0.25, rng=rng)
    return rhythm.perform(hits, style, take.bpm, feel, rng)


def take_midi(take: Take, seed: int) -> tuple[bytes, float]:
    """(MIDI bytes, duration in seconds) of a take."""
    played = perform_take(take, seed)
    track = MidiTrack(name="", program=0, is_drum=True)
    track.notes = [(second_ticks(t, TPQ, take.bpm), HIT_TICKS, p, v) for t, p, v in played]
    num, den = rhythm.STYLES[take.style_key].time_signature
    data = midi_bytes([track], tpq=TPQ, tempos=[(0, take.bpm)], time_signature=(num, den))
    end_tick = max(t + d for t, d, _, _ in track.notes)
    return data, end_tick * 60.0 / (take.bpm * TPQ)


def _split(index: int, take: Take) -> str:
    if take.session == "eval_session":
        return "test"
    return ("train", "train", "train", "validation", "train", "train", "test", "train")[index % 8]


def write_groove(root: Path, seed: int, *, rounds: int = 1) -> WriteReport:
    """groove/info.csv and the takes under groove/drummerN/... (`rounds` of plan_takes); one listed
    take is an HTML page."""
    report = WriteReport()
    base = root / "groove"
    rows = []
    for i, take in enumerate(plan_takes(seed, rounds)):
        data, duration = take_midi(take, seed)
        write_file(base, f"{take.stem}.mid", data)
        report.count += 1
        audio = "" if i % 11 == 5 else f"{take.stem}.wav"        # a few takes have no audio, as in GMD
        rows.append([f"drummer{take.drummer}", f"drummer{take.drummer}/{take.session}",
                     f"drummer{take.drummer}/{take.session}/{take.number}", take.style, take.bpm, take.beat_type,
                     take.time_signature, f"{take.stem}.mid", audio, f"{duration:.6f}", _split(i, take)])
    bad = Take(5, "session2", 99, "funk 4-4", 100, "beat", 8)
    write_broken(root, f"groove/{bad.stem}.mid", html_error_page(404, "Not Found", f"/groove/{bad.stem}.mid"),
                 TEXT_AS_MIDI, report)
    rows.append([f"drummer{bad.drummer}", f"drummer{bad.drummer}/{bad.session}",
                 f"drummer{bad.drummer}/{bad.session}/{bad.number}", bad.style, bad.bpm, bad.beat_type,
                 bad.time_signature, f"{bad.stem}.mid", f"{bad.stem}.wav", f"{8 * 4 * 60 / 100:.6f}", "train"])
    table = pd.DataFrame(rows, columns=COLUMNS).sort_values(["drummer", "session", "id"]).reset_index(drop=True)
    table.to_csv(base / "info.csv", index=False, lineterminator="\n")
    return report
