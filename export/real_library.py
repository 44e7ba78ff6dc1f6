"""The real RTNeural for `kelly verify --rtneural-dir`: which programs check which file.

A file with its header beside it (`emotionrecognizer.h`, as `kelly export` writes it) goes through
`export.compiled.CompiledModels` on each backend: the header's compile-time `Model` and the
run-time parser, in one program built with -Wall -Werror. A file without one goes through the
run-time parser alone (`export.harness.RTNeuralHarness`); when the file bears a plugin file name
(a kelly export) the missing header is a fault. Headers are compiled together, one program per
backend, each network once; when that program does not compile, each header is compiled alone so
that the fault names the one that fails.

No C++ compiler: one line on stderr saying the RTNeural checks are left out, and every other check
runs. A folder that is not an RTNeural checkout, or a checkout too old for the headers' API, is a
usage error (KellyError) before anything is checked.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from common.errors import KellyError
from export.compiled import CompiledModels, header_namespace
from export.harness import CompileError, HarnessError, NoCompilerError, RTNeuralHarness, Toolchain
from export.plugin import PLUGIN_NETWORKS

PLUGIN_FILE_STEMS = {name.lower() for name in PLUGIN_NETWORKS}


class MissingHeader:
    """Stands in for the compile-time check of a kelly export whose header is not beside it."""

    def __init__(self, header: Path):
        self.header = header

    def run(self, json_path, inputs):
        raise HarnessError(f"no {self.header.name} beside it (kelly export writes one with each network): "
                           "the compile-time API cannot be checked; export again")

    def notes(self, json_path) -> list[str]:
        return []


class HeaderGroup:
    """One backend's CompiledModels for several headers, falling back to one program per header
    when they do not compile together."""

    def __init__(self, toolchain: Toolchain, backend: str, headers: dict[Path, Path]):
        self.toolchain, self.backend, self.headers = toolchain, backend, headers
        self.together = CompiledModels(toolchain, backend, headers)
        self.alone: dict[Path, CompiledModels] = {}

    def _models_for(self, json_path: Path) -> CompiledModels:
        if not self.alone:
            try:
                self.together.build()
                return self.together
            except CompileError:
                if len(self.headers) == 1:
                    raise
                self.alone = {path: CompiledModels(self.toolchain, self.backend, {path: header})
                              for path, header in self.headers.items()}
        return self.alone[json_path]

    def run(self, json_path, inputs):
        return self._models_for(Path(json_path)).run(json_path, inputs)

    def notes(self, json_path) -> list[str]:
        models = self.alone.get(Path(json_path), self.together)
        return models.notes(json_path)


class RealLibrary:
    """The runners for each file, built lazily (compiling only what a file needs)."""

    def __init__(self, toolchain: Toolchain | None, backends: list[str], files):
        self.toolchain = toolchain
        self.backends = backends
        self.runners: dict[Path, list] = {Path(path): [] for path in files}
        if toolchain is None:
            return
        groups: list[dict[Path, Path]] = []           # JSON -> header, each network once per group
        harnesses = {backend: RTNeuralHarness(toolchain=toolchain, backend=backend) for backend in backends}
        for path in self.runners:
            header = path.with_suffix(".h")
            try:
                namespace = header_namespace(header) if header.is_file() else None
            except HarnessError:
                namespace = None
            if namespace is None:
                self.runners[path] += harnesses.values()
                if path.stem.lower() in PLUGIN_FILE_STEMS:
                    self.runners[path].append(MissingHeader(header))
                continue
            group = next((g for g in groups if namespace not in {header_namespace(h) for h in g.values()}), None)
            if group is None:
                group = {}
                groups.append(group)
            group[path] = header
        for group in groups:
            for backend in backends:
                runner = HeaderGroup(toolchain, backend, group)
                for path in group:
                    self.runners[path].append(runner)

    def runners_for(self, path) -> list:
        return self.runners.get(Path(path), [])

    @classmethod
    @contextlib.contextmanager
    def open(cls, rtneural_dir, backends, files):
        """A context giving `runners_for(path)`; see the module's docstring for what is refused."""
        if rtneural_dir is None:
            yield lambda path: []
            return
        try:
            toolchain = Toolchain(rtneural_dir)
        except NoCompilerError as exc:
            print(f"kelly verify: RTNeural checks left out: {exc}; every other check runs", file=sys.stderr)
            yield lambda path: []
            return
        except HarnessError as exc:
            raise KellyError(f"{exc} (--rtneural-dir)") from None
        try:
            available = toolchain.available_backends()
            chosen = list(dict.fromkeys(backends or available))
            for backend in chosen:
                try:
                    toolchain.backend_flags(backend)
                except HarnessError as exc:
                    raise KellyError(f"{exc} (--rtneural-backend {backend})") from None
            library = cls(toolchain, chosen, files)
            print(f"checking against {toolchain.describe()}, backends: {', '.join(chosen)}")
            yield library.runners_for
        finally:
            toolchain.close()
