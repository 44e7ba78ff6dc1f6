"""Check an exported JSON with the real RTNeural: compile a small C++ program against a user's
RTNeural checkout, load the file with `RTNeural::json_parser::parseJson<float>` (the loader the
plugin uses) and run inputs through it, as independent single steps or as a stateful sequence.

RTNeural is header-only for this use: the program includes `RTNeural/RTNeural.h`, which includes
`modules/json/json.hpp` (nlohmann/json, vendored in RTNeural's repository). Where a checkout
lacks that file, a system copy (`nlohmann/json.hpp`, e.g. Debian's nlohmann-json3-dev) is used.
Backends: "stl" (no define: RTNeural's plain C++ implementation) or "eigen"
(RTNEURAL_USE_EIGEN=1 with `modules/Eigen`, RTNeural's CMake default).

Shapes: `RTNeuralHarness.run(json_path, inputs [N, n_in], stateful=...)` -> [N, n_out] float32.
Errors (no compiler, no checkout, a failed build or run) raise `HarnessError` with the reason.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from common.errors import KellyError

BACKENDS = ("stl", "eigen")

#: the C++ program; usage: harness MODEL.json INPUTS.f32 N_ROWS steps|sequence OUTPUTS.f32
HARNESS_SOURCE = r"""// Runs inputs through an RTNeural model loaded by RTNeural's own JSON parser, as the plugin does.
//
//   rtneural_harness MODEL.json INPUTS.f32 N_ROWS MODE OUTPUTS.f32
//
// INPUTS.f32 holds N_ROWS x n_in little-endian float32 values, row after row. MODE is "steps"
// (reset() before every row: independent single steps) or "sequence" (reset() once, then one
// forward() per row: a stateful sequence). OUTPUTS.f32 receives N_ROWS x n_out float32 values.
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
        std::cerr << "usage: " << argv[0] << " MODEL.json INPUTS.f32 N_ROWS steps|sequence OUTPUTS.f32\n";
        return 64;
    }
    const std::string mode = argv[4];
    if(mode != "steps" && mode != "sequence")
    {
        std::cerr << "mode must be 'steps' or 'sequence', not '" << mode << "'\n";
        return 64;
    }
    const long nRows = std::strtol(argv[3], nullptr, 10);

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
    model->reset();
    for(long row = 0; row < nRows; ++row)
    {
        if(mode == "steps")
            model->reset();
        model->forward(inputs.data() + (size_t)row * (size_t)nIn);
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


class HarnessError(KellyError):
    """The RTNeural check could not run: no compiler, no checkout, a failed build or a failed run."""


def find_compiler() -> str:
    """$CXX, else g++, clang++ or c++ on PATH."""
    candidates = [os.environ.get("CXX"), "g++", "clang++", "c++"]
    for name in candidates:
        if name and shutil.which(name):
            return shutil.which(name)
    raise HarnessError("no C++ compiler found (looked for $CXX, g++, clang++, c++): install one to check against RTNeural")


def find_checkout(rtneural_dir: str | Path) -> Path:
    """The root of an RTNeural checkout: the folder holding `RTNeural/RTNeural.h`.
    Accepts the root itself or its inner `RTNeural/` folder."""
    path = Path(rtneural_dir).expanduser().resolve()
    if (path / "RTNeural" / "RTNeural.h").is_file():
        return path
    if (path / "RTNeural.h").is_file() and (path / "model_loader.h").is_file():
        return path.parent
    raise HarnessError(f"{path}: not an RTNeural checkout (no RTNeural/RTNeural.h in it)")


def find_system_json() -> Path | None:
    """An include folder holding `nlohmann/json.hpp`, or None."""
    for folder in SYSTEM_INCLUDE_DIRS:
        if (folder / "nlohmann" / "json.hpp").is_file():
            return folder
    return None


class RTNeuralHarness:
    """The compiled program for one checkout and backend; build once, run many files."""

    def __init__(self, rtneural_dir: str | Path, *, backend: str = "stl", compiler: str | None = None):
        if backend not in BACKENDS:
            raise HarnessError(f"unknown RTNeural backend {backend!r}; choose from {BACKENDS}")
        self.checkout = find_checkout(rtneural_dir)
        self.backend = backend
        self.compiler = compiler or find_compiler()
        self._workdir = tempfile.TemporaryDirectory(prefix="kelly-rtneural-")
        self.workdir = Path(self._workdir.name)
        self.binary: Path | None = None

    def close(self) -> None:
        self._workdir.cleanup()

    def __enter__(self) -> "RTNeuralHarness":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def compile_command(self, source: Path, binary: Path) -> list[str]:
        """The compiler command line (header-only RTNeural, float32, chosen backend)."""
        command = [self.compiler, "-std=c++17", "-O2", "-DRTNEURAL_DEFAULT_ALIGNMENT=16",
                   "-DRTNEURAL_NAMESPACE=RTNeural", f"-I{self.checkout}"]
        if not (self.checkout / "modules" / "json" / "json.hpp").is_file():
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
            for header in (self.checkout / "RTNeural").glob("*.h"):
                link = shim / "RTNeural" / header.name
                if not link.exists():
                    link.symlink_to(header)
            for folder in (self.checkout / "RTNeural").iterdir():
                link = shim / "RTNeural" / folder.name
                if folder.is_dir() and not link.exists():
                    link.symlink_to(folder, target_is_directory=True)
            (shim / "modules" / "json" / "json.hpp").write_text("#include <nlohmann/json.hpp>\n")
            command[-1] = f"-I{shim}"
            command.append(f"-I{system}")
        if self.backend == "eigen":
            eigen = self.checkout / "modules" / "Eigen"
            if not (eigen / "Eigen" / "Dense").is_file():
                raise HarnessError(f"{self.checkout}: modules/Eigen is missing; use the stl backend")
            command += ["-DRTNEURAL_USE_EIGEN=1", f"-I{eigen}"]
        return command + [str(source), "-o", str(binary)]

    def build(self) -> Path:
        """Compile the program (once); returns the binary's path."""
        if self.binary is not None:
            return self.binary
        digest = hashlib.sha1(HARNESS_SOURCE.encode()).hexdigest()[:10]
        source = self.workdir / f"rtneural_harness_{digest}.cpp"
        source.write_text(HARNESS_SOURCE)
        binary = self.workdir / f"rtneural_harness_{self.backend}"
        command = self.compile_command(source, binary)
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            raise HarnessError(f"compiling the RTNeural check against {self.checkout} failed:\n{' '.join(command)}\n{tail}")
        self.binary = binary
        return binary

    def run(self, json_path: str | Path, inputs: np.ndarray, *, stateful: bool) -> np.ndarray:
        """Run inputs [N, n_in] through RTNeural: a stateful N-step sequence (reset once) or
        N independent single steps (reset before each). Returns [N, n_out] float32."""
        binary = self.build()
        inputs = np.ascontiguousarray(inputs, dtype="<f4")
        if inputs.ndim != 2:
            raise ValueError("inputs must be [N, n_in]")
        in_path = self.workdir / "inputs.f32"
        out_path = self.workdir / "outputs.f32"
        in_path.write_bytes(inputs.tobytes())
        out_path.unlink(missing_ok=True)
        mode = "sequence" if stateful else "steps"
        result = subprocess.run(
            [str(binary), str(json_path), str(in_path), str(len(inputs)), mode, str(out_path)],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            reason = result.stderr.strip() or f"exit status {result.returncode}"
            raise HarnessError(f"{json_path}: RTNeural run failed: {reason}")
        n_in, n_out = (int(v) for v in result.stdout.split())
        if n_in != inputs.shape[1]:
            raise HarnessError(f"{json_path}: RTNeural reads {n_in} inputs, the check fed {inputs.shape[1]}")
        return np.fromfile(out_path, dtype="<f4").reshape(len(inputs), n_out)
