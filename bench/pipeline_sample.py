"""`kelly pipeline --sample` here against a baseline checkout, side by side.

Each run is a fresh process (`python -m kelly pipeline --sample --no-progress`, as a user runs it)
into its own empty folder; baseline and this tree alternate, so a machine shared with other work
slows both alike. Prints every run's wall time, the best (least disturbed) of each side, their
ratio, the load average before each run, and per stage (sample data, preprocess, training per network, evaluate,
export) the times read from the run's output. The README's bar: under a minute on 2 cores.

    python bench/pipeline_sample.py --baseline /path/to/other/checkout [--repeat 2] [--max-ratio 1.5]

The baseline is any checkout of this repository (e.g. `git archive <commit> | tar -x -C DIR`); it
runs with its own folder first on PYTHONPATH. Exits 1 when the ratio of the best runs is above
--max-ratio.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN_LINE = re.compile(r"^(\w+)\s+\d+\s+[\d.]+\s+\w+ [\d.]+\s+[\d.]+\s+([\d.]+)s$")


def run(tree: Path, output: Path) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kelly", "pipeline", "--sample", "--output", str(output),
                           "--no-progress"], cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{tree}: the pipeline failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def stages(stdout: str, output: Path) -> dict[str, float]:
    """Seconds per stage, from what the run printed and wrote."""
    import json

    out: dict[str, float] = {}
    marker = output / "datasets" / ".kelly-sample-data.json"
    if marker.is_file():
        out["sample data"] = json.loads(marker.read_text())["seconds"]
    found = re.search(r"preprocess: \d+ source\(s\) in ([\d.]+) s", stdout)
    if found:
        out["preprocess"] = float(found.group(1))
    for line in stdout.splitlines():
        match = TRAIN_LINE.match(line.strip())
        if match:
            out[f"train {match.group(1)}"] = float(match.group(2))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout to compare with")
    parser.add_argument("--repeat", type=int, default=2, help="runs per side (default: 2)")
    parser.add_argument("--max-ratio", type=float, default=1.5, help="fail above this ratio of best runs (default: 1.5)")
    args = parser.parse_args()
    sides = {"baseline": args.baseline.resolve(), "this tree": REPO}
    times: dict[str, list[float]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="kelly-bench-pipeline-") as tmp:
        for r in range(args.repeat):
            for name, tree in sides.items():
                load = os.getloadavg()[0]
                output = Path(tmp) / f"{name.replace(' ', '_')}_{r}"
                seconds, stdout = run(tree, output)
                times[name].append(seconds)
                detail = ", ".join(f"{k} {v:.1f}" for k, v in stages(stdout, output).items())
                print(f"{name:<10} run {r + 1}: {seconds:6.1f} s (load {load:.1f})  [{detail}]", flush=True)
    best = {name: min(values) for name, values in times.items()}
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = best["this tree"] / best["baseline"]
    print(f"best: baseline {best['baseline']:.1f} s, this tree {best['this tree']:.1f} s, ratio {ratio:.2f} "
          f"(limit {args.max_ratio}); medians {medians['baseline']:.1f} s and {medians['this tree']:.1f} s")
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
