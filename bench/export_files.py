"""Exported files: their size and how long they take to read, float32 text beside 17-digit doubles;
with an RTNeural checkout, the load and step times of the compile-time API beside the run-time's.

    python bench/export_files.py --checkpoint-dir runs/sample/checkpoints
    python bench/export_files.py --checkpoint-dir runs/sample/checkpoints --rtneural-dir /tmp/RTNeural

Each network of the checkpoint folder is exported as `kelly export` does (float32 shortest text,
with its header), and the same document is written again with every weight as the 17-digit
double of its float32 (what kelly-ml wrote before; the same numbers, bit for bit, once read as
float32). Per file: size in bytes, Python's `json.loads` (CPU and wall seconds, best of 3), and
with `--rtneural-dir` RTNeural's own load times (the header's `load()` with `ModelT::parseJson`,
and the run-time `json_parser::parseJson`) and per-step times of both APIs on 200 single steps
and, for the LSTM networks, 10 sequences of 200 steps (CPU time; `export.compiled`). Timings are
noisy on a shared machine: compare ratios within one run, side by side.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best_of(call, repeats: int = 3) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the fastest of `repeats` calls."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        call()
        best = min(best, (time.process_time() - cpu, time.perf_counter() - wall))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint-dir", type=Path, required=True)
    parser.add_argument("--rtneural-dir", type=Path)
    parser.add_argument("--backend", nargs="+", default=["stl"], choices=("stl", "eigen", "xsimd"))
    args = parser.parse_args(argv)

    from export.cli import export_networks
    from export.numbers import plugin_runs
    from export.plugin import EXPORTED
    from export.verify import load_model
    from train.outputs import existing_checkpoint

    keys = [key for key in EXPORTED if existing_checkpoint(args.checkpoint_dir, key)]
    work = Path(tempfile.mkdtemp(prefix="kelly-bench-export-"))
    try:
        shortest, doubles = work / "float32-text", work / "doubles"
        doubles.mkdir()
        results = export_networks(args.checkpoint_dir, shortest, keys)
        for path, _ in results:
            document = json.loads(path.read_text())
            for layer in document["layers"]:          # each weight as the double equal to its float32
                layer["weights"] = [np.asarray(w, dtype=np.float32).astype(np.float64).tolist() for w in layer["weights"]]
            (doubles / path.name).write_text(json.dumps(document, allow_nan=False, separators=(",", ":")))
            shutil.copy(path.with_suffix(".h"), doubles / path.with_suffix(".h").name)
        print(f"{'file':<24} {'17-digit bytes':>14} {'float32 bytes':>13} {'ratio':>6}   "
              f"json.loads CPU s (wall): 17-digit -> float32")
        totals = [0, 0]
        for path, _ in results:
            old, new = (doubles / path.name).read_text(), path.read_text()
            totals[0] += len(old)
            totals[1] += len(new)
            (old_cpu, old_wall), (new_cpu, new_wall) = best_of(lambda: json.loads(old)), best_of(lambda: json.loads(new))
            print(f"{path.name:<24} {len(old):>14,} {len(new):>13,} {len(new) / len(old):>6.3f}   "
                  f"{old_cpu:.3f} ({old_wall:.3f}) -> {new_cpu:.3f} ({new_wall:.3f})")
        print(f"{'all':<24} {totals[0]:>14,} {totals[1]:>13,} {totals[1] / totals[0]:>6.3f}")
        if args.rtneural_dir is None:
            return 0

        from export.compiled import CompiledModels
        from export.harness import Toolchain
        from export.numbers import as_sequences

        toolchain = Toolchain(args.rtneural_dir)
        try:
            for backend in args.backend:
                print(f"\n{toolchain.describe()}, {backend} backend (CPU time)")
                print(f"{'file':<24} {'run':<24} {'RTNeural load s: run-time, ModelT':<36} "
                      f"{'us/step: run-time, ModelT':<28} ratio")
                # one program (the headers are the same in both folders): it loads either file
                program = CompiledModels(toolchain, backend, {p: p.with_suffix(".h") for p, _ in results})
                program.namespaces.update({doubles / p.name: program.namespaces[p] for p, _ in results})
                programs = {doubles: program, shortest: program}
                for path, _ in results:
                    model = load_model(args.checkpoint_dir, json.loads(path.read_text())["metadata"]["network"])
                    for name, (inputs, stateful) in plugin_runs(model, 0).items():
                        loads = []
                        for folder, program in programs.items():
                            program.run(folder / path.name, as_sequences(inputs, stateful))
                            loads.append(program.measured[folder / path.name])
                        m = loads[1]
                        print(f"{path.name:<24} {name:<24} "
                              f"17-digit {loads[0]['runtime_load_cpu_s']:.3f}, {loads[0]['compiled_load_cpu_s']:.3f}; "
                              f"float32 {m['runtime_load_cpu_s']:.3f}, {m['compiled_load_cpu_s']:.3f}   "
                              f"{m['runtime_step_cpu_ns'] / 1e3:8.1f}, {m['compiled_step_cpu_ns'] / 1e3:8.1f}   "
                              f"{m['runtime_step_cpu_ns'] / m['compiled_step_cpu_ns']:.2f}")
        finally:
            toolchain.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
