"""Check the generated headers in the real RTNeural: compile them with `-std=c++17 -Wall -Werror`
into one program per backend, load each JSON with its header's `load()` (RTNeural's compile-time
parser behind it) and with the run-time parser, run the same inputs through both, and time both.

The program is two translation units: the headers' (`-Wall -Werror`: what a plugin compiles) and
the run-time parser's (`RUNTIME_SOURCE`, plain -O2: RTNeural's own model_loader.h warns under
-Wall with GCC 12, a -Wpessimizing-move in `parseJson`, which no header of ours instantiates).
It includes each header by its path and picks the network by its namespace:

    kelly_compiled NAMESPACE MODEL.json INPUTS.f32 N_ROWS RESET_EVERY OUT_COMPILED.f32 OUT_RUNTIME.f32 REPEATS

INPUTS.f32 holds N_ROWS x n_in float32 values; reset() comes before every RESET_EVERY-th row on
both models. It prints "n_in n_out" and, per API, the seconds to load the file (wall, CPU) and the best
per-step time over REPEATS passes (wall and CPU nanoseconds): `TIMING_FIELDS`. A JSON that `load()` refuses is
the reason on stderr and exit status 65.

Shapes: `CompiledModels.run(json_path, inputs [S, T, n_in])` -> {"RTNeural ModelT (backend)":
[S, T, n_out], "RTNeural run-time parser (backend)": [S, T, n_out]}; `notes(json_path)` gives the
load and step times measured.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import numpy as np

from export.harness import HarnessError, Toolchain, describe_exit

#: passes over the inputs when timing the steps (the best is kept) ...
TIMING_REPEATS = 3
#: ... but no more steps than this in all (a 10 x 200-step run is timed once)
TIMING_STEPS = 1000

PROGRAM_HEAD = r"""// Loads exported networks with their kelly headers (compile-time API) and with RTNeural's
// run-time parser, runs the same inputs through both and times both.
"""

RUNTIME_SOURCE = r"""// RTNeural's run-time parser, for the compile-time check program (export/compiled.py).
#include <RTNeural/RTNeural.h>

#ifndef RTNEURAL_NAMESPACE
#define RTNEURAL_NAMESPACE RTNeural
#endif

#include <memory>
#include <string>

std::unique_ptr<RTNEURAL_NAMESPACE::Model<float>> kellyLoadRuntime(const std::string& text)
{
    return RTNEURAL_NAMESPACE::json_parser::parseJson<float>(nlohmann::json::parse(text), false);
}
"""

PROGRAM_BODY = r"""
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

std::unique_ptr<RTNEURAL_NAMESPACE::Model<float>> kellyLoadRuntime(const std::string& text);

namespace
{
using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point start)
{
    return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Timing
{
    double wallNs = 1e300;
    double cpuNs = 1e300;
};

template <typename Step>
Timing timeSteps(Step step, long nRows, long resetEvery, int repeats)
{
    Timing best;
    for(int r = 0; r < repeats; ++r)
    {
        const auto wall = Clock::now();
        const auto cpu = std::clock();
        for(long row = 0; row < nRows; ++row)
            step(row, row % resetEvery == 0);
        const double wallNs = seconds(wall) * 1e9 / (double)nRows;
        const double cpuNs = (double)(std::clock() - cpu) / CLOCKS_PER_SEC * 1e9 / (double)nRows;
        best.wallNs = wallNs < best.wallNs ? wallNs : best.wallNs;
        best.cpuNs = cpuNs < best.cpuNs ? cpuNs : best.cpuNs;
    }
    return best;
}

bool writeFloats(const char* path, const std::vector<float>& values)
{
    std::ofstream out(path, std::ofstream::binary);
    out.write(reinterpret_cast<const char*>(values.data()), (std::streamsize)(values.size() * sizeof(float)));
    return (bool)out;
}

template <typename Model, int nIn, int nOut, typename Load>
int check(Load load, char** argv)
{
    const char* jsonPath = argv[2];
    const long nRows = std::strtol(argv[4], nullptr, 10);
    const long resetEvery = std::strtol(argv[5], nullptr, 10);
    const int repeats = (int)std::strtol(argv[8], nullptr, 10);
    if(nRows < 1 || resetEvery < 1 || repeats < 1)
    {
        std::cerr << "N_ROWS, RESET_EVERY and REPEATS must be positive\n";
        return 64;
    }
    std::string text;
    {
        std::ifstream in(jsonPath, std::ifstream::binary);
        if(!in)
        {
            std::cerr << "cannot open " << jsonPath << "\n";
            return 65;
        }
        std::ostringstream buffer;
        buffer << in.rdbuf();
        text = buffer.str();
    }

    auto compiled = std::make_unique<Model>();
    std::string error;
    auto start = Clock::now();
    auto startCpu = std::clock();
    std::istringstream compiledStream(text);
    if(!load(*compiled, compiledStream, &error))
    {
        std::cerr << "the header's load() refuses " << jsonPath << ": " << error << "\n";
        return 65;
    }
    const double compiledLoad = seconds(start);
    const double compiledLoadCpu = (double)(std::clock() - startCpu) / CLOCKS_PER_SEC;

    start = Clock::now();
    startCpu = std::clock();
    std::unique_ptr<RTNEURAL_NAMESPACE::Model<float>> runtime;
    try
    {
        runtime = kellyLoadRuntime(text);
    }
    catch(const std::exception& e)
    {
        std::cerr << "RTNeural's run-time parser could not load " << jsonPath << ": " << e.what() << "\n";
        return 65;
    }
    const double runtimeLoad = seconds(start);
    const double runtimeLoadCpu = (double)(std::clock() - startCpu) / CLOCKS_PER_SEC;
    if(!runtime || runtime->layers.empty())
    {
        std::cerr << "RTNeural's run-time parser gives no model for " << jsonPath << "\n";
        return 65;
    }
    for(const auto* layer : runtime->layers)
        if(layer == nullptr)
        {
            std::cerr << "RTNeural's run-time parser built a null layer for " << jsonPath << "\n";
            return 65;
        }
    if(runtime->layers.front()->in_size != nIn || runtime->layers.back()->out_size != nOut)
    {
        std::cerr << "RTNeural's run-time parser gives another model for " << jsonPath << "\n";
        return 65;
    }

    std::vector<float> inputs((size_t)nRows * nIn);
    {
        std::ifstream in(argv[3], std::ifstream::binary);
        in.read(reinterpret_cast<char*>(inputs.data()), (std::streamsize)(inputs.size() * sizeof(float)));
        if(!in)
        {
            std::cerr << argv[3] << " holds fewer than " << nRows << " x " << nIn << " float32 values\n";
            return 66;
        }
    }
    std::vector<float> compiledOut((size_t)nRows * nOut), runtimeOut((size_t)nRows * nOut);
    alignas(64) float step[nIn];

    const auto compiledTiming = timeSteps([&](long row, bool reset)
        {
            if(reset)
                compiled->reset();
            std::memcpy(step, inputs.data() + (size_t)row * nIn, sizeof(step));
            compiled->forward(step);
            std::memcpy(compiledOut.data() + (size_t)row * nOut, compiled->getOutputs(), nOut * sizeof(float)); },
        nRows, resetEvery, repeats);
    const auto runtimeTiming = timeSteps([&](long row, bool reset)
        {
            if(reset)
                runtime->reset();
            std::memcpy(step, inputs.data() + (size_t)row * nIn, sizeof(step));
            runtime->forward(step);
            std::memcpy(runtimeOut.data() + (size_t)row * nOut, runtime->getOutputs(), nOut * sizeof(float)); },
        nRows, resetEvery, repeats);

    if(!writeFloats(argv[6], compiledOut) || !writeFloats(argv[7], runtimeOut))
    {
        std::cerr << "cannot write the outputs\n";
        return 73;
    }
    std::cout << nIn << " " << nOut << " " << compiledLoad << " " << compiledLoadCpu << " " << compiledTiming.wallNs
              << " " << compiledTiming.cpuNs << " " << runtimeLoad << " " << runtimeLoadCpu << " " << runtimeTiming.wallNs
              << " " << runtimeTiming.cpuNs << "\n";
    return 0;
}
} // namespace

int main(int argc, char** argv)
{
    if(argc != 9)
    {
        std::cerr << "usage: " << argv[0] << " NAMESPACE MODEL.json INPUTS.f32 N_ROWS RESET_EVERY OUT_COMPILED.f32 OUT_RUNTIME.f32 REPEATS\n";
        return 64;
    }
    const std::string network = argv[1];
@DISPATCH@
    std::cerr << "no header for network " << network << " in this program\n";
    return 64;
}
"""

DISPATCH = """    if(network == "{ns}")
        return check<kelly::{ns}::Model, kelly::{ns}::inputSize, kelly::{ns}::outputSize>([](kelly::{ns}::Model& model, std::istream& json, std::string* error)
            {{ return kelly::{ns}::load(model, json, error); }}, argv);"""

#: what the program prints after "n_in n_out": load seconds and per-step nanoseconds, wall and CPU
TIMING_FIELDS = ("compiled_load_s", "compiled_load_cpu_s", "compiled_step_wall_ns", "compiled_step_cpu_ns",
                 "runtime_load_s", "runtime_load_cpu_s", "runtime_step_wall_ns", "runtime_step_cpu_ns")

NAMESPACE = re.compile(r"^namespace kelly\s*\{\s*namespace (?!rtneural_detail\b)(\w+)\s*\{", re.MULTILINE)


def header_namespace(header: Path) -> str:
    """The network's namespace in a generated header (`kelly::<namespace>`); HarnessError when
    the file does not look like one."""
    try:
        text = header.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{header}: cannot read the header ({exc})") from None
    match = NAMESPACE.search(text)
    if match is None:
        raise HarnessError(f"{header}: not a header written by kelly export (no namespace kelly::<network>)")
    return match.group(1)


def program_source(headers: dict[str, Path]) -> str:
    """The check program for headers {namespace: path} (one per network)."""
    includes = "".join(f'#include "{path}"\n' for path in headers.values())
    dispatch = "\n".join(DISPATCH.format(ns=ns) for ns in headers)
    return PROGRAM_HEAD + includes + PROGRAM_BODY.replace("@DISPATCH@", dispatch)


class CompiledModels:
    """The headers of some exported files, compiled with -Wall -Werror against one backend."""

    def __init__(self, toolchain: Toolchain, backend: str, headers: dict[Path, Path]):
        """headers: JSON path -> its header; at most one header per network namespace."""
        self.toolchain = toolchain
        self.backend = backend
        self.compiled_name = f"RTNeural ModelT ({backend})"
        self.runtime_name = f"RTNeural run-time parser ({backend})"
        self.namespaces = {Path(json): header_namespace(Path(header)) for json, header in headers.items()}
        by_namespace = {ns: Path(headers[json]).resolve() for json, ns in self.namespaces.items()}
        if len(by_namespace) != len(set(map(str, by_namespace.values()))):
            raise ValueError("one header per network namespace")
        self.headers = by_namespace
        self.binary: Path | None = None
        self.timings: dict[Path, str] = {}
        #: the last run's figures per file (TIMING_FIELDS)
        self.measured: dict[Path, dict[str, float]] = {}

    def build(self) -> Path:
        """Compile the program once; CompileError with the compiler's first error line."""
        if self.binary is None:
            source_text = program_source(self.headers)
            digest = hashlib.sha1(source_text.encode()).hexdigest()[:10]
            source = self.toolchain.workdir / f"kelly_compiled_{digest}.cpp"
            source.write_text(source_text)
            names = ", ".join(path.name for path in self.headers.values())
            work = self.toolchain.workdir
            runtime = work / f"kelly_runtime_{self.backend}.o"
            if not runtime.is_file():
                (work / "kelly_runtime.cpp").write_text(RUNTIME_SOURCE)
                self.toolchain.compile(work / "kelly_runtime.cpp", runtime, self.backend,
                                       what="the run-time parser's part of the check")
            self.binary = self.toolchain.compile(source, work / f"kelly_compiled_{digest}_{self.backend}",
                                                 self.backend, warnings_as_errors=True, objects=(runtime,),
                                                 what=f"{names} (with -std=c++17 -Wall -Werror)")
        return self.binary

    def run(self, json_path: str | Path, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Inputs [S, T, n_in] through the header's Model and the run-time parser's model, reset
        before each sequence: {API name: [S, T, n_out] float32}."""
        binary = self.build()
        json_path = Path(json_path)
        namespace = self.namespaces[json_path]
        inputs = np.ascontiguousarray(inputs, dtype="<f4")
        sequences, steps, n_in = inputs.shape
        work = self.toolchain.workdir
        in_path, compiled_path, runtime_path = work / "inputs.f32", work / "compiled.f32", work / "runtime.f32"
        in_path.write_bytes(inputs.tobytes())
        repeats = max(1, min(TIMING_REPEATS, TIMING_STEPS // (sequences * steps)))
        result = subprocess.run(
            [str(binary), namespace, str(json_path), str(in_path), str(sequences * steps), str(steps),
             str(compiled_path), str(runtime_path), str(repeats)],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise HarnessError(f"{json_path}: {result.stderr.strip() or describe_exit(result.returncode)}")
        fields = result.stdout.split()
        n_file, n_out = int(fields[0]), int(fields[1])
        if n_file != n_in:
            raise HarnessError(f"{json_path}: the header's Model reads {n_file} inputs, the check fed {n_in}")
        values = dict(zip(TIMING_FIELDS, map(float, fields[2:12])))
        self.measured[json_path] = values
        kind = "single steps" if steps == 1 else f"{steps}-step sequences"
        self.timings[json_path] = self.timings.get(json_path, "") + (
            f"{self.backend}, {kind}: ModelT {values['compiled_step_cpu_ns'] / 1e3:.1f} us/step (load "
            f"{values['compiled_load_cpu_s']:.3f} s), run-time parser {values['runtime_step_cpu_ns'] / 1e3:.1f} us/step "
            f"(load {values['runtime_load_cpu_s']:.3f} s), ratio "
            f"{values['runtime_step_cpu_ns'] / max(values['compiled_step_cpu_ns'], 1e-9):.2f} "
            f"(CPU time, best of {repeats});")
        shape = (sequences, steps, n_out)
        return {self.compiled_name: np.fromfile(compiled_path, dtype="<f4").reshape(shape),
                self.runtime_name: np.fromfile(runtime_path, dtype="<f4").reshape(shape)}

    def notes(self, json_path: str | Path) -> list[str]:
        text = self.timings.pop(Path(json_path), "")
        return [f"timed: {part.strip()}" for part in text.split(";") if part.strip()]
