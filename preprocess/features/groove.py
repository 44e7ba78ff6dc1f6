"""GroovePredictor targets: 32 values per bar of a drum performance, in spec.GROOVE_NAMES order.

Drum notes (channel 10) are mapped to the 9 classes of spec.GROOVE_PITCH_TO_CLASS; other drum
pitches are ignored (`DrumHits.unmapped` counts them). Bars come from the file's time-signature
map and positions from its tempo map (`NoteArrays.bar_times`, `seconds_to_quarters`), so an
unquantised performance recorded to a click (Groove MIDI) is measured against that click.

Every hit is placed on the nearest 16th note of its bar (a beat is a quarter note, four 16ths);
a hit played just before a downbeat belongs to the next bar. Per bar, all values in [-1, 1]:

- density_<class>: 2 * min(hits per beat / 4, 1) - 1 (one hit on every 16th is +1).
- velocity_<class>: 2 * mean velocity / 127 - 1; -1 when the class is silent.
- timing_<class>: mean signed offset of its hits from their 16th, in 16ths, * 2 (+1 is half a
  16th late); 0 when silent.
- swing: from the hits near the off-beat 8th (within a quarter note, positions in
  [3/8, 17/24) of the beat: past the "e", before the "a"). d = median delay behind the straight
  off-beat as a fraction of an 8th; swing = clip(6 d - 1, -1, 1): straight 8ths -1, d = 1/6
  (a 58:42 lilt) 0, triplet swing (d = 1/3) or harder +1. -1 when the bar has no off-beat 8ths.
- syncopation: 2 * (fraction of hits on the 2nd or 4th 16th of a beat, the "e" and "a") - 1.
- fill: +1 for a fill bar, -1 for a beat. From `is_fill` when the dataset says (Groove MIDI's
  beat_type); otherwise a bar is a fill when at least FILL_MIN_TOMS of its hits, and at least
  FILL_TOM_SHARE of them, are toms.
- velocity_spread: 2 * min(std(velocity) / 64, 1) - 1 over all hits of the bar.
- total_density: 2 * min(hits per beat / 8, 1) - 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from preprocess.features import spec
from preprocess.features.midi import NoteArrays

N_CLASSES = len(spec.GROOVE_CLASSES)
N_GROOVE = len(spec.GROOVE_NAMES)
TOM_CLASSES = tuple(spec.GROOVE_CLASSES.index(c) for c in ("low_tom", "mid_tom", "high_tom"))
FILL_MIN_TOMS = 3
FILL_TOM_SHARE = 0.25
SWING_WINDOW = (3 / 8, 17 / 24)   # phase within the beat (quarter note) where an off-beat 8th is looked for

_PITCH_TO_CLASS = np.full(128, -1, dtype=np.int64)
for _pitch, _cls in spec.GROOVE_PITCH_TO_CLASS.items():
    _PITCH_TO_CLASS[_pitch] = _cls


@dataclass(frozen=True, eq=False)
class DrumHits:
    """The drum notes of a file that map to a groove class, sorted by onset."""

    onset: np.ndarray        # float64 [H] s
    drum_class: np.ndarray   # int64 [H] index into spec.GROOVE_CLASSES
    velocity: np.ndarray     # int16 [H]
    unmapped: int            # drum notes whose pitch has no class (ignored)


def map_drum_hits(notes: NoteArrays) -> DrumHits:
    """Drum notes mapped to the 9 groove classes. Raises ValueError when the file has no drum notes."""
    drums = notes.is_drum
    if not drums.any():
        raise ValueError("no drum notes")
    cls = _PITCH_TO_CLASS[notes.pitch[drums]]
    mapped = cls >= 0
    return DrumHits(notes.onset[drums][mapped], cls[mapped], notes.velocity[drums][mapped],
                    int((~mapped).sum()))


def fill_label(metadata: dict) -> bool | None:
    """`is_fill` from a Groove MIDI item's metadata ("beat_type": "fill" / "beat"), None when unknown."""
    beat_type = str((metadata or {}).get("beat_type") or "").strip().lower()
    return {"fill": True, "beat": False}.get(beat_type)


def _group_median(values: np.ndarray, group: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Median of `values` per group id in [0, n): (median [n], count [n]); median 0 where empty."""
    count = np.bincount(group, minlength=n)
    order = np.lexsort((values, group))
    v = values[order]
    first = np.r_[0, np.cumsum(count)[:-1]]
    has = count > 0
    lo = np.where(has, first + (count - 1) // 2, 0)
    hi = np.where(has, first + count // 2, 0)
    if v.size == 0:
        return np.zeros(n), count
    return np.where(has, (v[lo] + v[hi]) / 2.0, 0.0), count


def groove_windows(notes: NoteArrays, *, is_fill: bool | None = None,
                   min_notes: int = spec.MIDI["min_notes_per_window"]):
    """Groove values of every bar with at least `min_notes` mapped drum hits.

    Returns (targets float32 [W, 32] in [-1, 1], columns in spec.GROOVE_NAMES order,
    window_index int32 [W], the bar's number in the file). Raises ValueError ("no drum notes")
    when the file has none.
    """
    hits = map_drum_hits(notes)
    if hits.onset.size == 0:
        raise ValueError(f"no drum notes of the {N_CLASSES} groove classes ({hits.unmapped} unmapped drum notes)")

    bar_times = notes.bar_times()
    bar_q = notes.seconds_to_quarters(bar_times)
    ts_index = np.searchsorted(notes.time_signature_times, bar_times, side="right") - 1
    last_len = 4.0 * notes.time_signature_numerator[ts_index[-1]] / notes.time_signature_denominator[ts_index[-1]]
    bar_len = np.diff(np.r_[bar_q, bar_q[-1] + last_len])
    n_bars = bar_q.size

    q = notes.seconds_to_quarters(hits.onset)
    snapped = np.round(q * 4.0) / 4.0
    bar = np.clip(np.searchsorted(bar_q, snapped + 1e-9, side="right") - 1, 0, n_bars - 1)
    position = (q - bar_q[bar]) * 4.0                  # 16ths from the bar start
    sixteenth = np.round(position)
    offset = position - sixteenth                      # in 16ths, [-0.5, 0.5]
    phase = np.mod(position / 4.0, 1.0)                # fraction of the beat

    velocity = hits.velocity.astype(np.float64)
    cls = hits.drum_class
    flat = bar * N_CLASSES + cls
    size = n_bars * N_CLASSES
    count = np.bincount(flat, minlength=size).reshape(n_bars, N_CLASSES).astype(np.float64)
    vel_sum = np.bincount(flat, weights=velocity, minlength=size).reshape(n_bars, N_CLASSES)
    off_sum = np.bincount(flat, weights=offset, minlength=size).reshape(n_bars, N_CLASSES)
    safe = np.maximum(count, 1.0)
    beats = bar_len[:, None]

    out = np.zeros((n_bars, N_GROOVE))
    out[:, 0:N_CLASSES] = 2.0 * np.minimum(count / beats / 4.0, 1.0) - 1.0
    out[:, N_CLASSES:2 * N_CLASSES] = np.where(count > 0, 2.0 * vel_sum / safe / 127.0 - 1.0, -1.0)
    out[:, 2 * N_CLASSES:3 * N_CLASSES] = np.where(count > 0, 2.0 * off_sum / safe, 0.0)

    col = {name: i for i, name in enumerate(spec.GROOVE_NAMES)}
    off_beat = (phase >= SWING_WINDOW[0]) & (phase < SWING_WINDOW[1])
    delay = (phase[off_beat] - 0.5) / 0.5
    median_delay, n_off = _group_median(delay, bar[off_beat], n_bars)
    out[:, col["swing"]] = np.where(n_off > 0, np.clip(6.0 * median_delay - 1.0, -1.0, 1.0), -1.0)

    total = np.bincount(bar, minlength=n_bars).astype(np.float64)
    total_safe = np.maximum(total, 1.0)
    weak = (np.mod(sixteenth, 2) == 1).astype(np.float64)
    out[:, col["syncopation"]] = 2.0 * np.bincount(bar, weights=weak, minlength=n_bars) / total_safe - 1.0

    if is_fill is None:
        toms = count[:, list(TOM_CLASSES)].sum(axis=1)
        fill = (toms >= FILL_MIN_TOMS) & (toms >= FILL_TOM_SHARE * total)
        out[:, col["fill"]] = np.where(fill, 1.0, -1.0)
    else:
        out[:, col["fill"]] = 1.0 if is_fill else -1.0

    mean = np.bincount(bar, weights=velocity, minlength=n_bars) / total_safe
    var = np.maximum(np.bincount(bar, weights=velocity**2, minlength=n_bars) / total_safe - mean**2, 0.0)
    out[:, col["velocity_spread"]] = 2.0 * np.minimum(np.sqrt(var) / 64.0, 1.0) - 1.0
    out[:, col["total_density"]] = 2.0 * np.minimum(total / bar_len / 8.0, 1.0) - 1.0

    keep = np.flatnonzero(total >= max(min_notes, 1))
    return np.clip(out[keep], -1.0, 1.0).astype(np.float32), keep.astype(np.int32)
