"""DynamicsEngine targets: 16 expression values per window of a performance, in spec.DYNAMICS_NAMES order.

Computed from the non-drum notes. A note belongs to the window its onset falls in; values that
need time spans (sustain_pedal, polyphony) use what sounds inside the window. Every value is in
[0, 1]:

- velocity_mean, velocity_median: velocity / 127; velocity_std: population std / 64, clipped;
  velocity_range: (max - min) / 127; velocity_bin_*: fraction of the window's notes per quarter
  of the velocity range.
- articulation: mean over the window's notes of duration / (start of the next onset group - note
  onset), each clipped to [0, 1]: 1 is legato, small is staccato. Onsets closer than
  CHORD_SECONDS to the previous one are one onset group (a chord as a pianist plays it). The
  file's last group has no next onset and is left out; a window holding only that group takes
  the file's mean articulation.
- timing_deviation: std of log(inter-onset interval in s) between consecutive onset groups that
  both start in the window, / 2, clipped; 0 with fewer than two intervals.
- accent_ratio: fraction of notes with velocity > the window's median velocity + 10.
- note_density: note onsets per second / 20, clipped.
- velocity_slope: 0.5 + s / 2, clipped, where s is the least-squares slope of velocity / 127
  against onset time (per second); 0.5 when all onsets coincide.
- sustain_pedal: fraction of the window during which a CC64 pedal is down (>= 64) on any track.
- polyphony: mean number of sounding notes over the window / 10, clipped.
- velocity_contrast: mean |velocity difference| between consecutive notes (onset order) in the
  window / 64, clipped; 0 with a single note.
"""
from __future__ import annotations

import numpy as np

from preprocess.features import spec
from preprocess.features.midi import NoteArrays, window_count, window_of, window_overlaps

N_DYNAMICS = len(spec.DYNAMICS_NAMES)
CHORD_SECONDS = 0.03   # onsets this close to the previous one belong to the same onset group
ACCENT_VELOCITY = 10   # an accent is louder than the window's median by more than this


def _group_sum(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(index, weights=values, minlength=n)


def dynamics_windows(notes: NoteArrays, window_seconds: float = spec.MIDI["dynamics_window_seconds"],
                     min_notes: int = spec.MIDI["min_notes_per_window"]):
    """Expression values of every window with at least `min_notes` non-drum onsets.

    Returns (targets float32 [W, 16] in [0, 1], columns in spec.DYNAMICS_NAMES order,
    window_index int32 [W], the window's position in the file). No pitched notes gives W = 0.
    """
    pitched = ~notes.is_drum
    onset, offset = notes.onset[pitched], notes.offset[pitched]
    velocity = notes.velocity[pitched].astype(np.float64)
    n = onset.size
    if n == 0:
        return np.zeros((0, N_DYNAMICS), np.float32), np.zeros(0, np.int32)
    n_windows = window_count(notes.duration, window_seconds)
    window = window_of(onset, window_seconds, n_windows)
    count = np.bincount(window, minlength=n_windows).astype(np.float64)
    safe = np.maximum(count, 1.0)
    out = np.zeros((n_windows, N_DYNAMICS))
    col = {name: i for i, name in enumerate(spec.DYNAMICS_NAMES)}

    # velocity statistics; notes are sorted by onset, so sort by (window, velocity) for order stats
    mean = _group_sum(window, velocity, n_windows) / safe
    var = np.maximum(_group_sum(window, velocity**2, n_windows) / safe - mean**2, 0.0)
    by_velocity = np.lexsort((velocity, window))
    sorted_v = velocity[by_velocity]
    first = np.r_[0, np.cumsum(count)[:-1]].astype(np.int64)
    has = count > 0
    lo = np.where(has, first + (count.astype(np.int64) - 1) // 2, 0)
    hi = np.where(has, first + count.astype(np.int64) // 2, 0)
    median = np.where(has, (sorted_v[lo] + sorted_v[hi]) / 2.0, 0.0)
    vmin = np.where(has, sorted_v[first.clip(max=n - 1)], 0.0)
    vmax = np.where(has, sorted_v[(first + count.astype(np.int64) - 1).clip(0, n - 1)], 0.0)
    out[:, col["velocity_mean"]] = mean / 127.0
    out[:, col["velocity_std"]] = np.sqrt(var) / 64.0
    out[:, col["velocity_range"]] = (vmax - vmin) / 127.0
    out[:, col["velocity_median"]] = median / 127.0
    bins = np.bincount(window * 4 + np.minimum(velocity // 32, 3).astype(np.int64), minlength=n_windows * 4)
    out[:, col["velocity_bin_0_31"]:col["velocity_bin_96_127"] + 1] = bins.reshape(n_windows, 4) / safe[:, None]
    louder = velocity > median[window] + ACCENT_VELOCITY
    out[:, col["accent_ratio"]] = _group_sum(window, louder.astype(np.float64), n_windows) / safe

    # onset groups: articulation and inter-onset regularity
    new_group = np.r_[True, np.diff(onset) > CHORD_SECONDS]
    group = np.cumsum(new_group) - 1
    group_start = onset[new_group]
    measured = group < group_start.size - 1           # the last onset group has no next onset
    gap = group_start[np.minimum(group + 1, group_start.size - 1)] - onset
    ratio = np.clip((offset - onset) / np.where(measured, gap, 1.0), 0.0, 1.0) * measured
    n_measured = np.bincount(window, weights=measured.astype(np.float64), minlength=n_windows)
    file_articulation = ratio[measured].mean() if measured.any() else 1.0
    out[:, col["articulation"]] = np.where(
        n_measured > 0, _group_sum(window, ratio, n_windows) / np.maximum(n_measured, 1.0), file_articulation)
    group_window = window[new_group]
    same = group_window[1:] == group_window[:-1]
    log_ioi = np.log(np.maximum(np.diff(group_start), 1e-6))[same]
    ioi_window = group_window[1:][same]
    k = np.bincount(ioi_window, minlength=n_windows).astype(np.float64)
    s1, s2 = _group_sum(ioi_window, log_ioi, n_windows), _group_sum(ioi_window, log_ioi**2, n_windows)
    ioi_std = np.sqrt(np.maximum(s2 / np.maximum(k, 1) - (s1 / np.maximum(k, 1)) ** 2, 0.0))
    out[:, col["timing_deviation"]] = np.where(k >= 2, ioi_std / 2.0, 0.0)

    out[:, col["note_density"]] = count / window_seconds / 20.0

    # least-squares slope of velocity/127 against onset time within each window
    t_mean = _group_sum(window, onset, n_windows) / safe
    dt = onset - t_mean[window]
    sxx = _group_sum(window, dt**2, n_windows)
    sxy = _group_sum(window, dt * (velocity / 127.0 - mean[window] / 127.0), n_windows)
    slope = np.where(sxx > 1e-12, sxy / np.where(sxx > 1e-12, sxx, 1.0), 0.0)
    out[:, col["velocity_slope"]] = 0.5 + slope / 2.0

    pedal = notes.sustain_intervals()
    if pedal.shape[0]:
        _, pw, ps = window_overlaps(pedal[:, 0], pedal[:, 1], window_seconds, n_windows)
        out[:, col["sustain_pedal"]] = _group_sum(pw, ps, n_windows) / window_seconds
    _, nw, ns = window_overlaps(onset, offset, window_seconds, n_windows)
    out[:, col["polyphony"]] = _group_sum(nw, ns, n_windows) / window_seconds / 10.0

    consecutive = window[1:] == window[:-1]
    jumps = np.abs(np.diff(velocity))[consecutive]
    jw = window[1:][consecutive]
    m = np.bincount(jw, minlength=n_windows).astype(np.float64)
    out[:, col["velocity_contrast"]] = _group_sum(jw, jumps, n_windows) / np.maximum(m, 1) / 64.0

    keep = np.flatnonzero(count >= max(min_notes, 1))
    return np.clip(out[keep], 0.0, 1.0).astype(np.float32), keep.astype(np.int32)
