"""Check an exported JSON with the real RTNeural: compile a C++ program against a user's RTNeural
checkout, load the file with `RTNeural::json_parser::parseJson<float>` (the run-time loader) and
run inputs through it, as independent single steps or as stateful sequences.

`Toolchain` is the compiler and the checkout, shared with the compile-time check (export.compiled):
RTNeural is header-only for this use: a program includes `RTNeural/RTNeural.h`, which includes
`modules/json/json.hpp` (nlohmann/json, vendored in RTNeural's repository); where a checkout
lacks that file, a system copy (`nlohmann/json.hpp`, e.g. Debian's nlohmann-json3-dev) is used.
Backends, as RTNeural's CMake chooses them: "stl" (no define: the plain C++ implementation),
"eigen" (RTNEURAL_USE_EIGEN=1 with `modules/Eigen`) and "xsimd" (RTNEURAL_USE_XSIMD=1 with
`modules/xsimd/include`, or a system xsimd when asked for by name), all with
RTNEURAL_DEFAULT_ALIGNMENT=16 (x86-64 without AVX flags, and ARM).

Before anything is compiled, `Toolchain` checks that the checkout has every API the generated
headers use (`REQUIRED_API`): an older checkout is one line naming what it lacks.

Shapes: `RTNeuralHarness.run(json_path, inputs [S, T, n_in])` -> {name: [S, T, n_out] float32},
the state reset before each of the S sequences (T = 1: single steps).
Errors (no compiler, no checkout, a failed build or run) raise `HarnessError` with the reason.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from common.errors import KellyError

BACKENDS = ("stl", "eigen", "xsimd")

#: the C++ program; usage: harness MODEL.json INPUTS.f32 N_ROWS steps|sequence OUTPUTS.f32
HARNESS_SOURCE = r"""// Runs inputs through an RTNeural model loaded by RTNeural's own JSON parser, as the plugin does.
//
//   rtneural_harness MODEL.json INPUTS.f32 N_ROWS RESET_EVERY OUTPUTS.f32
//
// INPUTS.f32 holds N_ROWS x n_in little-endian float32 values, row after row. reset() comes before
// every RESET_EVERY-th row: 1 gives independent single steps, T gives sequences of T stateful
// steps (one forward() per row). OUTPUTS.f32 receives N_ROWS x n_out float32 values.
// Prints "n_in n_out" on success; on failure prints the reason on stderr and exits non-zero.
#include <RTNeural/RTNeural.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv)
{
    if(argc != 6)
    {
        std::cerr << "usage: " << argv[0] << " MODEL.json INPUTS.f32 N_ROWS RESET_EVERY OUTPUTS.f32\n";
        return 64;
    }
    const long nRows = std::strtol(argv[3], nullptr, 10);
    const long resetEvery = std::strtol(argv[4], nullptr, 10);
    if(nRows < 1 || resetEvery < 1)
    {
        std::cerr << "N_ROWS and RESET_EVERY must be positive\n";
        return 64;
    }

    std::unique_ptr<RTNeural::Model<float>> model;
    try
    {
        std::ifstream jsonStream(argv[1], std::ifstream::binary);
        if(!jsonStream)
        {
            std::cerr << "cannot open " << argv[1] << "\n";
            return 65;
        }
        nlohmann::json document;
        jsonStream >> document;
        model = RTNeural::json_parser::parseJson<float>(document, false);
    }
    catch(const std::exception& e)
    {
        std::cerr << "RTNeural could not load " << argv[1] << ": " << e.what() << "\n";
        return 65;
    }
    if(!model || model->layers.empty())
    {
        std::cerr << "RTNeural returned no model for " << argv[1] << "\n";
        return 65;
    }
    for(size_t i = 0; i < model->layers.size(); ++i)
    {
        if(model->layers[i] == nullptr)
        {
            std::cerr << "RTNeural built a null layer at position " << i << " (unknown activation name)\n";
            return 65;
        }
    }

    const int nIn = model->getInSize();
    const int nOut = model->getOutSize();
    std::vector<float> inputs((size_t)nRows * (size_t)nIn);
    {
        std::ifstream in(argv[2], std::ifstream::binary);
        in.read(reinterpret_cast<char*>(inputs.data()), (std::streamsize)(inputs.size() * sizeof(float)));
        if(!in || in.gcount() != (std::streamsize)(inputs.size() * sizeof(float)))
        {
            std::cerr << argv[2] << " holds fewer than " << nRows << " x " << nIn << " float32 values\n";
            return 66;
        }
    }

    std::vector<float> outputs((size_t)nRows * (size_t)nOut);
    alignas(64) float step[4096];
    if(nIn > 4096)
    {
        std::cerr << "more than 4096 inputs\n";
        return 66;
    }
    for(long row = 0; row < nRows; ++row)
    {
        if(row % resetEvery == 0)
            model->reset();
        std::memcpy(step, inputs.data() + (size_t)row * (size_t)nIn, (size_t)nIn * sizeof(float));
        model->forward(step);
        std::memcpy(outputs.data() + (size_t)row * (size_t)nOut, model->getOutputs(), (size_t)nOut * sizeof(float));
    }

    std::ofstream out(argv[5], std::ofstream::binary);
    out.write(reinterpret_cast<const char*>(outputs.data()), (std::streamsize)(outputs.size() * sizeof(float)));
    if(!out)
    {
        std::cerr << "cannot write " << argv[5] << "\n";
        return 73;
    }
    std::cout << nIn << " " << nOut << "\n";
    return 0;
}
"""

SYSTEM_INCLUDE_DIRS = (Path("/usr/include"), Path("/usr/local/include"), Path("/opt/homebrew/include"))

#: what the generated headers and the check programs use: (what, file under RTNeural/, pattern)
REQUIRED_API = (
    ("the compile-time API (RTNeural::ModelT)", "ModelT.h", r"class ModelT\b"),
    ("ModelT::parseJson(const nlohmann::json&)", "ModelT.h", r"void parseJson\(const nlohmann::json& parent"),
    ("DenseT", "dense/dense.h", r"class DenseT\b"),
    ("LSTMLayerT", "lstm/lstm.h", r"class LSTMLayerT\b"),
    ("TanhActivationT, ReLuActivationT, SigmoidActivationT, SoftmaxActivationT",
     "activation/activation.h", r"class SoftmaxActivationT\b"),
    ("json_parser::parseJson(const nlohmann::json&)", "model_loader.h",
     r"parseJson\(const nlohmann::json& parent"),
)

FIRST_ERROR = re.compile(r"^.*?(?:fatal )?error: .*$", re.MULTILINE)


class HarnessError(KellyError):
    """The RTNeural check could not run: no compiler, no checkout, a failed build or a failed run."""


class NoCompilerError(HarnessError):
    """No C++ compiler on this machine: the RTNeural checks are left out, every other check runs."""


class CompileError(HarnessError):
    """A program did not compile: the message holds the compiler's first error line."""


def find_compiler() -> str:
    """$CXX, else g++, clang++ or c++ on PATH."""
    candidates = [os.environ.get("CXX"), "g++", "clang++", "c++"]
    for name in candidates:
        if name and shutil.which(name):
            return shutil.which(name)
    raise NoCompilerError("no C++ compiler found (looked for $CXX, g++, clang++, c++): install one to check against RTNeural")


def find_checkout(rtneural_dir: str | Path) -> Path:
    """The root of an RTNeural checkout: the folder holding `RTNeural/RTNeural.h`.
    Accepts the root itself or its inner `RTNeural/` folder."""
    path = Path(rtneural_dir).expanduser().resolve()
    if (path / "RTNeural" / "RTNeural.h").is_file():
        return path
    if (path / "RTNeural.h").is_file() and (path / "model_loader.h").is_file():
        return path.parent
    raise HarnessError(f"{path}: not an RTNeural checkout (no RTNeural/RTNeural.h in it)")


def checkout_commit(checkout: Path) -> str | None:
    """The checkout's git commit (short), or None when it is not a git work tree."""
    try:
        result = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def missing_api(checkout: Path) -> list[str]:
    """The `REQUIRED_API` entries the checkout lacks, as "what (RTNeural/file)"."""
    missing = []
    for what, name, pattern in REQUIRED_API:
        path = checkout / "RTNeural" / name
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        if not re.search(pattern, text):
            missing.append(f"{what} (RTNeural/{name})")
    return missing


def first_error_line(output: str) -> str:
    """The compiler's first error line, or its last line when none says "error:"."""
    match = FIRST_ERROR.search(output)
    if match:
        return match.group(0).strip()
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def find_system_json() -> Path | None:
    """An include folder holding `nlohmann/json.hpp`, or None."""
    for folder in SYSTEM_INCLUDE_DIRS:
        if (folder / "nlohmann" / "json.hpp").is_file():
            return folder
    return None


def find_system_xsimd() -> Path | None:
    """An include folder holding `xsimd/xsimd.hpp`, or None."""
    for folder in SYSTEM_INCLUDE_DIRS:
        if (folder / "xsimd" / "xsimd.hpp").is_file():
            return folder
    return None


class Toolchain:
    """A C++ compiler and an RTNeural checkout checked to have every API the headers use."""

    def __init__(self, rtneural_dir: str | Path, *, compiler: str | None = None):
        self.checkout = find_checkout(rtneural_dir)
        self.commit = checkout_commit(self.checkout)
        missing = missing_api(self.checkout)
        if missing:
            raise HarnessError(f"{self.checkout}{f' (commit {self.commit})' if self.commit else ''}: this RTNeural "
                               f"is too old for kelly's headers: it lacks {'; '.join(missing)}; they need RTNeural's "
                               "ModelT on every backend (2021-05-23, commit 9949b37, or later; tested with 1fb1f07)")
        self.compiler = compiler or find_compiler()
        self._workdir = tempfile.TemporaryDirectory(prefix="kelly-rtneural-")
        self.workdir = Path(self._workdir.name)

    def close(self) -> None:
        self._workdir.cleanup()

    def describe(self) -> str:
        return f"RTNeural {self.checkout}" + (f" (commit {self.commit})" if self.commit else "")

    def available_backends(self) -> list[str]:
        """The backends this checkout provides: stl always, eigen with modules/Eigen, xsimd with
        modules/xsimd (a system xsimd is used only when xsimd is asked for by name)."""
        found = ["stl"]
        if (self.checkout / "modules" / "Eigen" / "Eigen" / "Dense").is_file():
            found.append("eigen")
        if (self.checkout / "modules" / "xsimd" / "include" / "xsimd" / "xsimd.hpp").is_file():
            found.append("xsimd")
        return found

    def include_flags(self) -> list[str]:
        """-I flags for RTNeural and its nlohmann/json (a shim to a system copy when the checkout lacks it)."""
        if (self.checkout / "modules" / "json" / "json.hpp").is_file():
            return [f"-I{self.checkout}"]
        # model_loader.h includes "../modules/json/json.hpp": give it a shim that includes
        # a system nlohmann/json.hpp, and put the shim's RTNeural/ folder on the path first.
        system = find_system_json()
        if system is None:
            raise HarnessError(
                f"{self.checkout}: modules/json/json.hpp is missing (check out RTNeural's submodules) "
                "and no system nlohmann/json.hpp was found (e.g. apt-get install nlohmann-json3-dev)"
            )
        shim = self.workdir / "json-shim"
        (shim / "modules" / "json").mkdir(parents=True, exist_ok=True)
        (shim / "RTNeural").mkdir(exist_ok=True)
        for entry in (self.checkout / "RTNeural").iterdir():
            link = shim / "RTNeural" / entry.name
            if not link.exists() and (entry.is_dir() or entry.suffix == ".h"):
                link.symlink_to(entry, target_is_directory=entry.is_dir())
        (shim / "modules" / "json" / "json.hpp").write_text("#include <nlohmann/json.hpp>\n")
        return [f"-I{shim}", f"-I{system}"]

    def backend_flags(self, backend: str) -> list[str]:
        if backend not in BACKENDS:
            raise HarnessError(f"unknown RTNeural backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if backend == "eigen":
            eigen = self.checkout / "modules" / "Eigen"
            if not (eigen / "Eigen" / "Dense").is_file():
                raise HarnessError(f"{self.checkout}: modules/Eigen is missing; use the stl backend")
            return ["-DRTNEURAL_USE_EIGEN=1", f"-I{eigen}"]
        if backend == "xsimd":
            bundled = self.checkout / "modules" / "xsimd" / "include"
            folder = bundled if (bundled / "xsimd" / "xsimd.hpp").is_file() else find_system_xsimd()
            if folder is None:
                raise HarnessError(f"{self.checkout}: modules/xsimd is missing (check out RTNeural's submodules) "
                                   "and no system xsimd was found (e.g. apt-get install libxsimd-dev)")
            return ["-DRTNEURAL_USE_XSIMD=1", f"-I{folder}"]
        return []

    def compile(self, source: Path, binary: Path, backend: str, *, warnings_as_errors: bool = False,
                what: str = "the RTNeural check", objects: tuple[Path, ...] = ()) -> Path:
        """Compile `source` (C++17, -O2, float32, header-only RTNeural with `backend`) into `binary`,
        linked with `objects` (or into an object file when `binary` ends in ".o"); CompileError with
        the compiler's first error line when it fails."""
        command = [self.compiler, "-std=c++17", "-O2", "-DRTNEURAL_DEFAULT_ALIGNMENT=16",
                   *(["-Wall", "-Werror"] if warnings_as_errors else []),
                   *self.include_flags(), *self.backend_flags(backend),
                   *(["-c"] if binary.suffix == ".o" else []), str(source), *map(str, objects), "-o", str(binary)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise CompileError(f"{what} does not compile against {self.describe()}, {backend} backend: "
                               f"{first_error_line(result.stderr)}")
        return binary


class RTNeuralHarness:
    """The run-time parser's check program for one checkout and backend; build once, run many files."""

    def __init__(self, rtneural_dir: str | Path | None = None, *, backend: str = "stl", compiler: str | None = None,
                 toolchain: Toolchain | None = None):
        self._own_toolchain = toolchain is None
        self.toolchain = toolchain or Toolchain(rtneural_dir, compiler=compiler)
        self.toolchain.backend_flags(backend)
        self.backend = backend
        self.name = f"RTNeural run-time parser ({backend})"
        self.binary: Path | None = None

    @property
    def checkout(self) -> Path:
        return self.toolchain.checkout

    def close(self) -> None:
        if self._own_toolchain:
            self.toolchain.close()

    def __enter__(self) -> "RTNeuralHarness":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def build(self) -> Path:
        """Compile the program (once); returns the binary's path."""
        if self.binary is None:
            digest = hashlib.sha1(HARNESS_SOURCE.encode()).hexdigest()[:10]
            source = self.toolchain.workdir / f"rtneural_harness_{digest}.cpp"
            source.write_text(HARNESS_SOURCE)
            self.binary = self.toolchain.compile(source, self.toolchain.workdir / f"rtneural_harness_{self.backend}",
                                                 self.backend)
        return self.binary

    def outputs(self, json_path: str | Path, inputs: np.ndarray) -> np.ndarray:
        """Inputs [S, T, n_in] through the run-time parser's model, reset before each sequence:
        [S, T, n_out] float32."""
        binary = self.build()
        inputs = np.ascontiguousarray(inputs, dtype="<f4")
        if inputs.ndim != 3:
            raise ValueError("inputs must be [S, T, n_in]")
        sequences, steps, n_in = inputs.shape
        in_path = self.toolchain.workdir / "inputs.f32"
        out_path = self.toolchain.workdir / "outputs.f32"
        in_path.write_bytes(inputs.tobytes())
        out_path.unlink(missing_ok=True)
        result = subprocess.run(
            [str(binary), str(json_path), str(in_path), str(sequences * steps), str(steps), str(out_path)],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            reason = result.stderr.strip() or describe_exit(result.returncode)
            raise HarnessError(f"{json_path}: RTNeural run failed: {reason}")
        n_file, n_out = (int(v) for v in result.stdout.split())
        if n_file != n_in:
            raise HarnessError(f"{json_path}: RTNeural reads {n_file} inputs, the check fed {n_in}")
        return np.fromfile(out_path, dtype="<f4").reshape(sequences, steps, n_out)

    def run(self, json_path: str | Path, inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {self.name: self.outputs(json_path, inputs)}

    def notes(self, json_path: str | Path) -> list[str]:
        return []


def describe_exit(returncode: int) -> str:
    """"exit status 3", or "killed by SIGSEGV (a crash)" for a negative status."""
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}" + (" (a crash)" if name in ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE") else "")
    return f"exit status {returncode}"
