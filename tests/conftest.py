"""Shared test fixtures.

The real-file corpus (real MIDI, audio and dataset metadata, kept outside the repository for
licence reasons) is looked for in ``KELLY_REAL_CORPUS`` or else in ``real-corpus`` under the folder
``shared`` beside the checkout. Tests that need it take the ``real_corpus`` fixture (or carry the
``needs_real_corpus`` mark) and are skipped, with the reason, where it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_CORPUS = Path(os.environ.get("KELLY_REAL_CORPUS")
                   or Path(__file__).resolve().parents[2] / "shared" / "real-corpus")

needs_real_corpus = pytest.mark.skipif(not REAL_CORPUS.is_dir(), reason=f"real-file corpus not present at {REAL_CORPUS}")


@pytest.fixture
def real_corpus() -> Path:
    """The real-file corpus folder; the test is skipped where it is absent."""
    if not REAL_CORPUS.is_dir():
        pytest.skip(f"real-file corpus not present at {REAL_CORPUS}")
    return REAL_CORPUS
