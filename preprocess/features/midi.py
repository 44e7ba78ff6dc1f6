"""A MIDI file as flat note arrays in seconds, with its tempo, time-signature and sustain-pedal maps.

Two parsers produce the same `NoteArrays`:

- symusic (C++, the fast route): `notes_from_symusic` reads every track's notes through
  ``track.notes.numpy()`` in ticks and converts ticks to seconds in float64 with the tempo map
  (symusic's own second conversion is float32, off by up to 1e-4 s after 20 minutes).
- pretty_midi (the reference route, about 30 times slower): `notes_from_pretty_midi`.

`load_notes` tries symusic and falls back to pretty_midi; when both fail it raises `MidiError`
naming the file and both reasons. symusic is C++: a few malformed files crash the process instead
of raising, so run it in a worker process that may die.

Where the two parsers disagree, and what both routes do so that they agree:

- Zero-length notes (a note-off on the note-on's own tick; the Groove MIDI e-kit recordings have
  about one in 400 notes like this): symusic keeps them with duration 0, pretty_midi drops them.
  Both routes drop them: a note that never sounds has no duration to learn from.
- Overlapping notes of the same pitch on the same track: symusic pairs note-offs with note-ons
  first-in first-out, pretty_midi lets one note-off end every sounding note of that pitch (what a
  synthesiser does when the key is released). The symusic route ends each such note at the first
  note-off of its pitch after its onset, as pretty_midi does.
- Tempo and time-signature events outside track 0 (not allowed in a type-1 file, but common):
  symusic applies them, pretty_midi ignores them. The pretty_midi route moves them into track 0
  before parsing, so both honour them.
- A program change on a note's own tick but after its note-on: symusic gives the note the program
  at its note-on, pretty_midi the program at its note-off. Left as is (nothing here reads
  `program` beyond drum/non-drum, which is the channel); the real corpus has one such file.

Conventions: notes are sorted by (onset, pitch, offset, velocity, program, is_drum); the tempo map
and the time-signature map start at 0 s (120 bpm and 4/4 are assumed before the first event) and
hold no repeated values; `duration` is the last note's offset.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import KellyError
from preprocess.features.midi_bounds import density_fault, resolution_fault, tempo_fault

#: files whose largest tick is above this are treated as corrupt (pretty_midi's own limit)
MAX_TICK = 10_000_000
DEFAULT_BPM = 120.0
DEFAULT_TIME_SIGNATURE = (4, 4)
SUSTAIN_CONTROLLER = 64
SUSTAIN_THRESHOLD = 64           # CC64 value at or above which the pedal is down


class MidiError(KellyError, ValueError):
    """A MIDI file that cannot be used; the message names the file and the fault.

    A KellyError, so the command line reports it as a user error, and a ValueError for callers
    that handle bad input generically. `path` and `reason` are kept as attributes.
    """

    def __init__(self, path: str | Path | None, reason: str):
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path or '<in-memory MIDI>'}: {reason}")


@dataclass(frozen=True, eq=False)
class NoteArrays:
    """Every note of a file, one array entry per note (N notes), with the file's maps.

    Times are float64 seconds from the start of the file. ``tempo_bpm`` is in quarter notes per
    minute; ``sustain_group`` says which track/instrument a CC64 event belongs to (a pedal is held
    per channel, so events of different groups are not one sequence).
    """

    onset: np.ndarray                    # float64 [N] s
    offset: np.ndarray                   # float64 [N] s, > onset
    pitch: np.ndarray                    # int16 [N] MIDI pitch 0..127
    velocity: np.ndarray                 # int16 [N] 1..127
    program: np.ndarray                  # int16 [N] General MIDI program 0..127
    is_drum: np.ndarray                  # bool [N] channel 10
    tempo_times: np.ndarray              # float64 [T] s, first is 0
    tempo_bpm: np.ndarray                # float64 [T] quarter notes per minute
    time_signature_times: np.ndarray     # float64 [S] s, first is 0
    time_signature_numerator: np.ndarray     # int32 [S]
    time_signature_denominator: np.ndarray   # int32 [S]
    sustain_times: np.ndarray            # float64 [P] s
    sustain_values: np.ndarray           # int16 [P] 0..127
    sustain_group: np.ndarray            # int32 [P]
    duration: float                      # s, the last note's offset
    parser: str = ""                     # "symusic" | "pretty_midi"

    def __len__(self) -> int:
        return int(self.onset.shape[0])

    def select(self, mask: np.ndarray) -> "NoteArrays":
        """The same file with only the notes where `mask` is true (maps and duration unchanged)."""
        return NoteArrays(
            self.onset[mask], self.offset[mask], self.pitch[mask], self.velocity[mask],
            self.program[mask], self.is_drum[mask], self.tempo_times, self.tempo_bpm,
            self.time_signature_times, self.time_signature_numerator, self.time_signature_denominator,
            self.sustain_times, self.sustain_values, self.sustain_group, self.duration, self.parser,
        )

    # --- time in quarter notes -----------------------------------------------------------------
    def _tempo_quarters(self) -> np.ndarray:
        """Quarter-note position of every tempo change, float64 [T]."""
        spans = np.diff(self.tempo_times) * self.tempo_bpm[:-1] / 60.0
        return np.concatenate([[0.0], np.cumsum(spans)])

    def seconds_to_quarters(self, seconds: np.ndarray) -> np.ndarray:
        """Positions in quarter notes (float64, same shape) of times in seconds, through the tempo map."""
        seconds = np.asarray(seconds, dtype=np.float64)
        k = np.clip(np.searchsorted(self.tempo_times, seconds, side="right") - 1, 0, None)
        return self._tempo_quarters()[k] + (seconds - self.tempo_times[k]) * self.tempo_bpm[k] / 60.0

    def quarters_to_seconds(self, quarters: np.ndarray) -> np.ndarray:
        """Times in seconds (float64, same shape) of positions in quarter notes."""
        quarters = np.asarray(quarters, dtype=np.float64)
        starts = self._tempo_quarters()
        k = np.clip(np.searchsorted(starts, quarters, side="right") - 1, 0, None)
        return self.tempo_times[k] + (quarters - starts[k]) * 60.0 / self.tempo_bpm[k]

    def _grid_times(self, unit_quarters: np.ndarray) -> np.ndarray:
        """Times (s) of a grid of `unit_quarters[s]`-long steps restarting at every time-signature change."""
        ts_quarters = self.seconds_to_quarters(self.time_signature_times)
        end = float(self.seconds_to_quarters(np.float64(self.duration)))
        bounds = np.append(ts_quarters[1:], max(end, ts_quarters[-1] + unit_quarters[-1]))
        # steps per segment with a tolerance, so a change landing on a grid point is not counted twice
        steps = [np.arange(max(int(np.ceil((stop - start) / step - 1e-6)), 1)) * step + start
                 for start, stop, step in zip(ts_quarters, bounds, unit_quarters)]
        grid = np.concatenate(steps)
        return self.quarters_to_seconds(grid[(grid < end) | (grid == 0.0)])

    def bar_times(self) -> np.ndarray:
        """Start of every bar before `duration`, float64 [B] s; a time-signature change starts a bar."""
        bar = self.time_signature_numerator * 4.0 / self.time_signature_denominator
        return self._grid_times(bar)

    def beat_times(self) -> np.ndarray:
        """Start of every beat before `duration`, float64 s.

        A beat is the time signature's denominator note, or three of them in compound meters
        (numerator a multiple of 3 above 3, e.g. 6/8 has two dotted-quarter beats), as in
        pretty_midi's and symusic's get_beats.
        """
        num, den = self.time_signature_numerator, self.time_signature_denominator
        compound = (num % 3 == 0) & (num > 3)
        return self._grid_times(np.where(compound, 3.0, 1.0) * 4.0 / den)

    def sustain_intervals(self) -> np.ndarray:
        """Spans during which any group holds the sustain pedal (CC64 >= 64), float64 [K, 2] s, merged."""
        if self.sustain_times.size == 0:
            return np.zeros((0, 2))
        order = np.lexsort((self.sustain_times, self.sustain_group))
        times, group = self.sustain_times[order], self.sustain_group[order]
        down = self.sustain_values[order] >= SUSTAIN_THRESHOLD
        first = np.r_[True, group[1:] != group[:-1]]
        prev = np.r_[False, down[:-1]] & ~first
        starts = times[down & ~prev]
        ends = times[~down & prev]
        # a pedal still down at the group's last event is held to the end of the file
        last = np.r_[group[1:] != group[:-1], True]
        held = last & down
        ends = np.sort(np.concatenate([ends, np.full(int(held.sum()), max(self.duration, times.max()))]))
        starts = np.sort(starts)
        return merge_intervals(starts, ends)


def merge_intervals(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Union of intervals [start, end) as a sorted, disjoint float64 array [K, 2] (same units)."""
    if start.size == 0:
        return np.zeros((0, 2))
    order = np.argsort(start, kind="stable")
    start, end = start[order], end[order]
    reach = np.maximum.accumulate(end)
    new = np.r_[True, start[1:] > reach[:-1]]
    idx = np.flatnonzero(new)
    stops = np.r_[idx[1:], start.size] - 1
    return np.stack([start[idx], reach[stops]], axis=1)


#: times within this many seconds of a window boundary count as on it (the two parsers' float
#: arithmetic differs in the last bit, and a note must not change window because of that)
BOUNDARY_SECONDS = 1e-9


def window_count(duration: float, window_seconds: float) -> int:
    """Number of fixed windows covering [0, duration)."""
    return max(int(np.ceil(duration / window_seconds - BOUNDARY_SECONDS)), 1)


def window_of(times: np.ndarray, window_seconds: float, n_windows: int) -> np.ndarray:
    """Index (int64) of the window each time falls in, clipped to [0, n_windows)."""
    index = np.floor(times / window_seconds + BOUNDARY_SECONDS).astype(np.int64)
    return np.clip(index, 0, n_windows - 1)


def window_overlaps(start: np.ndarray, end: np.ndarray, window_seconds: float, n_windows: int):
    """How long each interval [start, end) lies in each fixed window [w*ws, (w+1)*ws).

    Returns (item int64 [M], window int64 [M], seconds float64 [M]): one entry per (interval,
    window) pair that overlaps by more than BOUNDARY_SECONDS, windows beyond `n_windows` dropped.
    """
    first = np.floor(start / window_seconds + BOUNDARY_SECONDS).astype(np.int64)
    last = np.ceil(end / window_seconds - BOUNDARY_SECONDS).astype(np.int64) - 1
    last = np.minimum(np.maximum(last, first), n_windows - 1)
    count = np.maximum(last - first + 1, 0)
    item = np.repeat(np.arange(start.size), count)
    window = first[item] + (np.arange(item.size) - np.repeat(np.cumsum(count) - count, count))
    seconds = (np.minimum(end[item], (window + 1) * window_seconds)
               - np.maximum(start[item], window * window_seconds))
    keep = seconds > BOUNDARY_SECONDS
    return item[keep], window[keep], seconds[keep]


# --- shared canonical form ------------------------------------------------------------------------
def _canonical_steps(times: np.ndarray, *values: np.ndarray, default: tuple):
    """A step map starting at 0 with the last value at each time kept and repeats dropped."""
    times = np.asarray(times, dtype=np.float64)
    values = [np.asarray(v) for v in values]
    if times.size:
        order = np.argsort(times, kind="stable")
        times, values = times[order], [v[order] for v in values]
        last_at_time = np.r_[times[1:] != times[:-1], True]
        times, values = times[last_at_time], [v[last_at_time] for v in values]
    if times.size == 0 or times[0] > 0:
        times = np.r_[0.0, times]
        values = [np.r_[np.asarray([d], dtype=v.dtype), v] for d, v in zip(default, values)]
    same = np.ones(times.size - 1, dtype=bool)
    for v in values:
        same &= v[1:] == v[:-1]
    changed = np.r_[True, ~same]
    return times[changed], [v[changed] for v in values]


def _note_order(onset, offset, pitch, velocity, program, is_drum) -> np.ndarray:
    """Indices that sort notes by (onset, pitch, offset, velocity, program, is_drum).

    With integer ticks, one stable sort on onset * 128 + pitch settles it unless two notes share
    both (the concatenated tracks are runs already in time order, which timsort merges quickly).
    """
    tiebreak = (velocity.astype(np.int64) * 128 + program) * 2 + is_drum     # < 2**15
    if onset.dtype.kind == "i" and offset.max() < 2**24:
        key = onset.astype(np.int64) * 128 + pitch
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        tied = ordered[1:] == ordered[:-1]
        if not np.any(tied):
            return order
        # rank of (onset, pitch), then offset and tiebreak, in one nearly sorted int64 key
        rank = np.cumsum(np.r_[0, ~tied])
        inner = (offset[order].astype(np.int64) << 15) + tiebreak[order]
        return order[np.argsort((rank << 39) + inner, kind="stable")]
    return np.lexsort((tiebreak, offset, pitch, onset))


def _assemble(onset, offset, pitch, velocity, program, is_drum, tempo, time_signature, sustain,
              parser: str, path, ticks=None) -> NoteArrays:
    """Drop zero-length notes, sort, validate and pack the arrays of one file.

    `ticks` = (onset ticks, offset ticks), when known, orders the notes faster than seconds do
    (the order is the same: seconds grow strictly with ticks).
    """
    onset = np.asarray(onset, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    sounding = offset > onset
    onset, offset = onset[sounding], offset[sounding]
    pitch = np.asarray(pitch, dtype=np.int16)[sounding]
    velocity = np.asarray(velocity, dtype=np.int16)[sounding]
    program = np.asarray(program, dtype=np.int16)[sounding]
    is_drum = np.asarray(is_drum, dtype=bool)[sounding]
    tempo_times, (bpm,) = _canonical_steps(tempo[0], np.asarray(tempo[1], dtype=np.float64),
                                           default=(DEFAULT_BPM,))
    ts_times, (num, den) = _canonical_steps(
        time_signature[0], np.asarray(time_signature[1], dtype=np.int32),
        np.asarray(time_signature[2], dtype=np.int32), default=DEFAULT_TIME_SIGNATURE)
    if np.any(num <= 0) or np.any(den <= 0):
        raise MidiError(path, "time signature with a zero numerator or denominator")
    if onset.size == 0:
        raise MidiError(path, "no notes")
    if ticks is not None:
        order = _note_order(ticks[0][sounding], ticks[1][sounding], pitch, velocity, program, is_drum)
    else:
        order = _note_order(onset, offset, pitch, velocity, program, is_drum)
    fault = tempo_fault(tempo_times, bpm, float(offset.max())) or density_fault(onset[order])
    if fault:                            # a timeline no music has (midi_bounds)
        raise MidiError(path, fault)
    sus_times, sus_values, sus_group = (np.asarray(a) for a in sustain)
    return NoteArrays(
        onset=onset[order], offset=offset[order], pitch=pitch[order], velocity=velocity[order],
        program=program[order], is_drum=is_drum[order],
        tempo_times=tempo_times, tempo_bpm=bpm,
        time_signature_times=ts_times, time_signature_numerator=num, time_signature_denominator=den,
        sustain_times=sus_times.astype(np.float64), sustain_values=sus_values.astype(np.int16),
        sustain_group=sus_group.astype(np.int32),
        duration=float(offset.max()), parser=parser,
    )


# --- symusic route --------------------------------------------------------------------------------
def _pretty_midi_note_ends(start: np.ndarray, end: np.ndarray, key: np.ndarray) -> np.ndarray:
    """End every note at the first note-off of its key after its onset (pretty_midi's pairing).

    `start`, `end` are ticks of symusic's first-in first-out pairing; `key` identifies
    (track, pitch). The note-off ticks of a key are exactly the FIFO ends of its notes.
    """
    span = int(end.max()) + 2
    key = key.astype(np.int64) * span
    by_start = np.argsort(key + start, kind="stable")
    same_key = key[by_start][1:] == key[by_start][:-1]
    if not np.any(same_key & (start[by_start][1:] < end[by_start][:-1])):
        return end                                   # no overlapping notes of one key: nothing to do
    # position of the first (key, end) strictly after (key, start) among the sorted pairs
    sorted_pairs = np.sort(key + end)
    pos = np.minimum(np.searchsorted(sorted_pairs, key + start, side="right"), end.size - 1)
    return np.minimum(end, sorted_pairs[pos] - key)


def _ticks_to_seconds(ticks: np.ndarray, tempo_ticks: np.ndarray, mspq: np.ndarray, tpq: int,
                      tempo_seconds: np.ndarray) -> np.ndarray:
    """Seconds of tick positions; the integer product ticks * microseconds comes first, so whole
    beats land on exact values (480 ticks at 500000 us per 480-tick quarter is exactly 0.5 s)."""
    k = np.clip(np.searchsorted(tempo_ticks, ticks, side="right") - 1, 0, None)
    return tempo_seconds[k] + (ticks - tempo_ticks[k]) * mspq[k] / (1e6 * tpq)


def notes_from_symusic(score, path: str | Path | None = None) -> NoteArrays:
    """`NoteArrays` of a symusic Score in ticks (as ``symusic.Score(path)`` loads it).

    Raises MidiError for too few ticks per quarter, a tick above MAX_TICK, no notes, or an absurd
    timeline (`midi_bounds`: a tempo under 1 ms per beat, notes denser than any player).
    """
    tpq = int(score.ticks_per_quarter)
    if resolution_fault(tpq):
        raise MidiError(path, resolution_fault(tpq))
    tracks = [t for t in score.tracks]
    note_data = [t.notes.numpy() for t in tracks]
    counts = np.array([d["time"].size for d in note_data], dtype=np.int64)
    if counts.sum() == 0:
        raise MidiError(path, "no notes")
    start = np.concatenate([d["time"] for d in note_data]).astype(np.int64)
    end = start + np.concatenate([d["duration"] for d in note_data]).astype(np.int64)
    pitch = np.concatenate([d["pitch"] for d in note_data]).astype(np.int16)
    velocity = np.concatenate([d["velocity"] for d in note_data]).astype(np.int16)
    track_index = np.repeat(np.arange(len(tracks)), counts)
    program = np.array([t.program for t in tracks], dtype=np.int16)[track_index]
    is_drum = np.array([t.is_drum for t in tracks], dtype=bool)[track_index]
    largest = int(end.max())
    if largest > MAX_TICK:
        raise MidiError(path, f"largest tick {largest} is above {MAX_TICK}; the file is probably corrupt")
    sounding = end > start
    start, end, pitch, velocity = start[sounding], end[sounding], pitch[sounding], velocity[sounding]
    track_index, program, is_drum = track_index[sounding], program[sounding], is_drum[sounding]
    if start.size == 0:
        raise MidiError(path, "no notes (every note has zero length)")
    end = _pretty_midi_note_ends(start, end, track_index.astype(np.int64) * 128 + pitch)

    tempos = score.tempos.numpy()
    if np.any(tempos["mspq"] <= 0):
        raise MidiError(path, "a tempo event of 0 microseconds per quarter note")
    tempo_ticks, (mspq,) = _canonical_steps(tempos["time"].astype(np.float64),
                                            tempos["mspq"].astype(np.float64), default=(500000.0,))
    tempo_seconds = np.r_[0.0, np.cumsum(np.diff(tempo_ticks) * mspq[:-1] / (1e6 * tpq))]

    def seconds(ticks):
        return _ticks_to_seconds(np.asarray(ticks, dtype=np.float64), tempo_ticks, mspq, tpq, tempo_seconds)

    ts = score.time_signatures.numpy()
    controls = [t.controls.numpy() for t in tracks]
    is_sustain = [c["number"] == SUSTAIN_CONTROLLER for c in controls]
    sus_ticks = np.concatenate([c["time"][m] for c, m in zip(controls, is_sustain)] + [np.zeros(0)])
    sus_values = np.concatenate([c["value"][m] for c, m in zip(controls, is_sustain)] + [np.zeros(0)])
    sus_group = np.repeat(np.arange(len(tracks)), [int(m.sum()) for m in is_sustain])
    return _assemble(
        seconds(start), seconds(end), pitch, velocity, program, is_drum,
        tempo=(tempo_seconds, 60e6 / mspq),
        time_signature=(seconds(ts["time"]), ts["numerator"], ts["denominator"]),
        sustain=(seconds(sus_ticks), sus_values, sus_group),
        parser="symusic", path=path, ticks=(start, end),
    )


def load_notes_symusic(path: str | Path) -> NoteArrays:
    """Parse `path` with symusic only. Raises MidiError (symusic's reason in it)."""
    import symusic

    try:
        score = symusic.Score.from_file(str(path), fmt="midi")
    except Exception as exc:  # symusic raises RuntimeError/ValueError with its own text
        raise MidiError(path, f"symusic could not parse it ({type(exc).__name__}: {exc})") from exc
    return notes_from_symusic(score, path)


# --- pretty_midi route ----------------------------------------------------------------------------
def _move_meta_to_first_track(midi) -> None:
    """Move tempo and time-signature events of tracks 1.. into track 0 (in place, mido delta times)."""
    import mido

    if midi.type != 1:                # type 0 has one track; type 2 tracks are independent songs
        return
    moved = []
    for track in midi.tracks[1:]:
        if not any(m.type in ("set_tempo", "time_signature") for m in track):
            continue
        tick, carry, kept = 0, 0, []
        for msg in track:
            tick += msg.time
            if msg.type in ("set_tempo", "time_signature"):
                moved.append((tick, msg))
                carry += msg.time
            else:
                kept.append(msg.copy(time=msg.time + carry))
                carry = 0
        track[:] = kept
    if not moved:
        return
    first, tick, events = midi.tracks[0], 0, []
    for msg in first:
        tick += msg.time
        events.append((tick, 0, msg))
    events += [(t, 1, m) for t, m in moved]
    end_of_track = [e for e in events if e[2].type == "end_of_track"]
    events = [e for e in events if e[2].type != "end_of_track"]
    events.sort(key=lambda e: (e[0], e[1]))
    last_tick = max([e[0] for e in events] + [e[0] for e in end_of_track])
    rebuilt, previous = [], 0
    for t, _, msg in events:
        rebuilt.append(msg.copy(time=t - previous))
        previous = t
    rebuilt.append(mido.MetaMessage("end_of_track", time=last_tick - previous))
    first[:] = rebuilt


def notes_from_pretty_midi(pm, path: str | Path | None = None) -> NoteArrays:
    """`NoteArrays` of a pretty_midi.PrettyMIDI object. Raises MidiError when it has no notes."""
    rows = [(n.start, n.end, n.pitch, n.velocity, inst.program, inst.is_drum)
            for inst in pm.instruments for n in inst.notes]
    if not rows:
        raise MidiError(path, "no notes")
    onset, offset, pitch, velocity, program, is_drum = (np.array(c) for c in zip(*rows))
    tempo_times, bpm = pm.get_tempo_changes()
    ts = pm.time_signature_changes
    sustain = [(cc.time, cc.value, i) for i, inst in enumerate(pm.instruments)
               for cc in inst.control_changes if cc.number == SUSTAIN_CONTROLLER]
    sus = [np.array(c) for c in zip(*sustain)] if sustain else [np.zeros(0)] * 3
    return _assemble(
        onset, offset, pitch, velocity, program, is_drum,
        tempo=(tempo_times, bpm),
        time_signature=(np.array([t.time for t in ts]), np.array([t.numerator for t in ts], dtype=np.int32),
                        np.array([t.denominator for t in ts], dtype=np.int32)),
        sustain=sus, parser="pretty_midi", path=path,
    )


def load_notes_pretty_midi(path: str | Path) -> NoteArrays:
    """Parse `path` with mido + pretty_midi (the reference route). Raises MidiError with the reason."""
    import mido
    import pretty_midi

    try:
        midi = mido.MidiFile(str(path), clip=False)
        if resolution_fault(midi.ticks_per_beat):
            raise MidiError(path, resolution_fault(midi.ticks_per_beat))
        _move_meta_to_first_track(midi)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pm = pretty_midi.PrettyMIDI(mido_object=midi)
    except MidiError:
        raise
    except Exception as exc:  # mido/pretty_midi raise OSError, EOFError, ValueError, KeyError, ...
        raise MidiError(path, f"pretty_midi could not parse it ({type(exc).__name__}: {exc})") from exc
    return notes_from_pretty_midi(pm, path)


def load_notes(path: str | Path) -> NoteArrays:
    """Notes and maps of the MIDI file at `path`: symusic, or pretty_midi when symusic raises.

    Raises MidiError when the file is missing or empty, when both parsers fail (both reasons in
    the message), or when the file parses but is unusable (no notes, a tick above MAX_TICK, or a
    timeline no music has: see `midi_bounds`).
    """
    path = Path(path)
    if not path.is_file():
        raise MidiError(path, "no such file")
    if path.stat().st_size == 0:
        raise MidiError(path, "empty file (0 bytes)")
    import symusic

    try:
        score = symusic.Score.from_file(str(path), fmt="midi")
    except Exception as exc:
        symusic_reason = f"{type(exc).__name__}: {exc}"
    else:
        return notes_from_symusic(score, path)
    try:
        return load_notes_pretty_midi(path)
    except MidiError as exc:
        raise MidiError(path, f"symusic failed ({symusic_reason}); {exc.reason}") from exc
