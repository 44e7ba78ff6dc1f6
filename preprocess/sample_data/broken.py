"""Deliberately broken files, the kind real dataset downloads contain, and the record of what was written.

Faults written (each listed in the summary with its path):
- a truncated MIDI file (the first part of a valid one, cut inside a track chunk);
- a zero-byte .mid;
- a text file saved as .mid, and one saved as .mp3 (an HTTP error page stored by a download script);
- a valid MIDI file with no notes (listed separately: it parses, but holds nothing to learn from).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TRUNCATED_MIDI = "truncated MIDI: the first {percent}% of a valid file, cut inside a track chunk"
ZERO_BYTES = "zero-byte file"
TEXT_AS_MIDI = "not MIDI: an HTML error page saved as .mid"
TEXT_AS_MP3 = "not audio: an HTML error page saved as .mp3"
NO_NOTES = "valid MIDI with tempo and track events but no notes"


@dataclass
class WriteReport:
    """What one dataset writer produced: the readable items, and the broken or empty files (paths
    relative to the sample-data root, POSIX style) with their faults."""

    count: int = 0
    broken: dict[str, str] = field(default_factory=dict)
    no_notes: list[str] = field(default_factory=list)


def truncated(data: bytes, fraction: float = 0.45) -> bytes:
    """The first `fraction` of a MIDI file's bytes (always past the header, inside the first track)."""
    if len(data) < 40:
        raise ValueError(f"a {len(data)}-byte MIDI file is too short to truncate meaningfully")
    return data[: max(30, int(len(data) * fraction))]


def html_error_page(status: int, reason: str, url_path: str) -> bytes:
    """The body a web server sends with an error status, as a careless download script would save it."""
    return (
        "<!DOCTYPE html>\n<html>\n<head><title>{s} {r}</title></head>\n<body>\n"
        "<h1>{r}</h1>\n<p>The requested URL {u} was not found on this server.</p>\n"
        "<hr><address>Apache Server at example.org Port 80</address>\n</body>\n</html>\n"
    ).format(s=status, r=reason, u=url_path).encode("ascii")


def write_file(root: Path, relative: str, data: bytes) -> Path:
    """Write bytes at root/relative, creating folders; returns the path."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_broken(root: Path, relative: str, data: bytes, fault: str, report: WriteReport) -> None:
    write_file(root, relative, data)
    report.broken[relative] = fault
