"""One MIDI file -> the EmotionLabeller's input frames: the task `kelly label` hands its workers.

    frames = file_frames("song.mid")        # float32 [T, spec.LABELLER_INPUTS]

The same steps as the cache's EMOPIA rows (`preprocess.extract.extract_emopia`): the notes
(`preprocess.features.midi.load_notes`), the chords and the keys section by section
(`preprocess.features.keys.chords_and_keys`), the frames
(`preprocess.features.labeller_input.labeller_frames`). A file that cannot be read, or has no
pitched note, raises `FramesError` with the step it failed in ("midi", "keys", "frames").
Run it through `preprocess.parallel` (isolated workers): a malformed file that crashes the C++
parser takes down a worker, never the caller.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class FramesError(Exception):
    """A file that gives no frames; `stage` says which step failed."""

    def __init__(self, stage: str, message: str):
        self.stage = stage
        super().__init__(message)


def file_frames(path: str | Path) -> np.ndarray:
    """The labeller's frames of the MIDI file at `path`: float32 [T, spec.LABELLER_INPUTS], T >= 1."""
    from preprocess.features.keys import chords_and_keys
    from preprocess.features.labeller_input import labeller_frames
    from preprocess.features.midi import load_notes

    try:
        notes = load_notes(path)
    except Exception as exc:
        raise FramesError("midi", _reason(exc, path)) from None
    if not np.any(~notes.is_drum):
        raise FramesError("midi", f"no pitched notes ({len(notes)} drum notes only): nothing for the labeller")
    try:
        chords, keys = chords_and_keys(notes)
    except Exception as exc:
        raise FramesError("keys", _reason(exc, path)) from None
    try:
        frames = labeller_frames(notes, keys, chords)
    except Exception as exc:
        raise FramesError("frames", _reason(exc, path)) from None
    if not np.isfinite(frames).all():
        raise FramesError("frames", "non-finite frame values")
    return frames


def prepare_worker() -> None:
    """Import the feature code in a fresh worker before its first file."""
    import symusic  # noqa: F401

    import preprocess.features.keys  # noqa: F401
    import preprocess.features.labeller_input  # noqa: F401


def _reason(exc: Exception, path: str | Path) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace(f"{path}: ", "")
