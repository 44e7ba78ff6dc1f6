"""What `kelly verify` finds in one file: faults (where and what) and the differences it measured.

`Report.format()` gives the lines the command prints: the verdict and the differences (results,
stdout) and one line per fault (`Report.fault_lines()`, stderr).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: max |RTNeural - PyTorch| accepted by default on any output value (float32 arithmetic); the
#: real library stays within 7e-7 of PyTorch on the plugin's networks (docs/rtneural.md)
TOLERANCE = 1e-6


@dataclass
class Finding:
    """One fault: where (layer index, None for the whole file) and what."""

    layer: int | None
    fault: str
    layer_kind: str = ""

    def describe(self, path: str | Path) -> str:
        where = "" if self.layer is None else f"layer {self.layer}{f' ({self.layer_kind})' if self.layer_kind else ''}: "
        return f"{path}: {where}{self.fault}"


@dataclass
class Report:
    """What `verify_file` found in one file."""

    path: Path
    network: str | None = None
    findings: list[Finding] = field(default_factory=list)
    #: check name -> max |difference|, e.g. "reference vs pytorch, 200 single steps"
    differences: dict[str, float] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    #: max |difference| accepted (`TOLERANCE` unless loosened)
    tolerance: float = TOLERANCE
    #: what was measured or left out without being a fault (timings, a check that could not run)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, layer: int | None, fault: str, layer_kind: str = "") -> None:
        self.findings.append(Finding(layer, fault, layer_kind))

    def summary(self) -> str:
        """The verdict, the differences measured and the notes: what the command prints on stdout."""
        status = "OK" if self.ok else f"FAILED ({len(self.findings)} fault{'s' if len(self.findings) != 1 else ''})"
        lines = [f"{self.path}: {self.network or 'unknown network'}: {status}; checked {', '.join(self.checks) or 'nothing'}"]
        for name, value in self.differences.items():
            lines.append(f"  max |difference| {name}: {value:.3g} (limit {self.tolerance:g})")
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)

    def fault_lines(self) -> list[str]:
        """One line per fault, naming the file and the layer: what the command prints on stderr."""
        return [finding.describe(self.path) for finding in self.findings]

    def format(self) -> str:
        """The summary followed by the faults, indented: the whole report as one text."""
        return "\n".join([self.summary(), *(f"  {line}" for line in self.fault_lines())])

