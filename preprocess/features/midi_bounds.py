"""When a MIDI file's timeline is absurd: the bounds, where they come from, and the checks.

A file that parses can still describe a timeline no music has: a tempo of 1 microsecond per beat
(64 notes within 64 us, each a harmony row of its own), one tick per beat, thousands of notes
starting in one second. Its features would be garbage that looks like data, so `midi.load_notes`
refuses such a file with a `MidiError` naming the fault (each function here returns that fault,
or None), and the preprocess job records it as failed like a corrupt file.

The bounds, against what real files hold: measured with symusic over the 1,165 MIDI files of the
project's real-file corpus (965 EMOPIA pop-piano clips, 152 POP909 songs, 8 Groove drum takes, 5
MAESTRO performances, 12 Lakh-like multitrack files, 23 Slakh stems):

    figure                              corpus min     median     corpus max    refused when
    ticks per beat                      96             384        960           below 24
    microseconds per beat (any tempo)   260,870        500,000    2,000,000     below 1,000 (1 ms)
    most notes starting within 1 s      3              15         72            above 1,000

- MIN_TICKS_PER_BEAT = 24: MIDI's own clock runs at 24 pulses per quarter note, the coarsest grid
  sequencers write; below it a 16th-note triplet has no tick of its own, and a file claiming one
  tick per beat has a timeline its notes cannot sit on. A quarter of the corpus's coarsest (96).
- MIN_BEAT_SECONDS = 1 ms (60,000 bpm): 260 times faster than the corpus's fastest tempo (230 bpm),
  past any notated tempo; only a damaged or machine-made tempo event gets there. Only tempos in
  force while notes sound count (a stray event after the last note harms nothing). No upper bound:
  MIDI's tempo field is 24 bits of microseconds, at most 16.8 s per beat, so no file can declare a
  beat longer than a minute, and a very slow tempo is how files write a fermata.
- MAX_ONSETS_PER_WINDOW = 1,000 notes starting within any 1 s: 14 times the corpus's densest second
  (72, a multitrack file; the densest piano second is 56, an EMOPIA clip, and 43 in MAESTRO), and
  past what a sequence plays: 16 tracks of 32nd notes at 200 bpm start 427 notes a second, 1,280
  only with a triad on every track in every 32nd. Notes starting together (a chord, a tutti) count
  one each; the window is a second, so that a big chord is not taken for a burst.
"""
from __future__ import annotations

import numpy as np

MIN_TICKS_PER_BEAT = 24
MIN_BEAT_SECONDS = 1e-3
DENSITY_WINDOW_SECONDS = 1.0
MAX_ONSETS_PER_WINDOW = 1000


def resolution_fault(ticks_per_beat: int) -> str | None:
    """Why a file's ticks per quarter note makes its timeline untrustworthy, or None."""
    if ticks_per_beat <= 0:
        return f"ticks per quarter note is {ticks_per_beat}"
    if ticks_per_beat < MIN_TICKS_PER_BEAT:
        return (f"ticks per quarter note is {ticks_per_beat}, below {MIN_TICKS_PER_BEAT} (MIDI clock's resolution, "
                "the coarsest a sequencer writes): an absurd timeline")
    return None


def tempo_fault(tempo_times: np.ndarray, bpm: np.ndarray, last_offset: float) -> str | None:
    """Why a tempo map is unusable, or None: a tempo that is not a positive number, or one under
    MIN_BEAT_SECONDS per beat in force before `last_offset` (s).

    tempo_times: float64 [T] s from 0, ascending; bpm: float64 [T] quarter notes per minute.
    """
    bad = ~(np.isfinite(bpm) & (bpm > 0))
    if bad.any():
        return f"tempo of {bpm[bad][0]} bpm"
    beat_seconds = 60.0 / bpm
    absurd = np.flatnonzero((beat_seconds < MIN_BEAT_SECONDS) & (tempo_times < last_offset))
    if absurd.size:
        k = int(absurd[0])
        return (f"a tempo of {beat_seconds[k] * 1e6:.3g} microseconds per beat ({bpm[k]:.6g} bpm) from "
                f"{tempo_times[k]:.6f} s: a beat shorter than {MIN_BEAT_SECONDS * 1e3:g} ms, an absurd timeline")
    return None


def density_fault(onset: np.ndarray) -> str | None:
    """Why the notes are denser than any player or sequencer, or None: more than
    MAX_ONSETS_PER_WINDOW of them start within DENSITY_WINDOW_SECONDS. onset: float64 [N] s, sorted."""
    if onset.size <= MAX_ONSETS_PER_WINDOW:
        return None
    counts = np.searchsorted(onset, onset + DENSITY_WINDOW_SECONDS, side="left") - np.arange(onset.size)
    densest = int(np.argmax(counts))
    if counts[densest] <= MAX_ONSETS_PER_WINDOW:
        return None
    return (f"{int(counts[densest]):,} notes start within {DENSITY_WINDOW_SECONDS:g} s from {onset[densest]:.3f} s: "
            f"denser than any player or sequencer (at most {MAX_ONSETS_PER_WINDOW:,} are accepted)")
