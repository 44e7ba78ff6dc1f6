"""Time one step of each of the five networks beside the plugin's 10 ms budget.

    python bench/inference.py                       # freshly initialised networks
    python bench/inference.py --models models/      # exported JSON files (NumPy reference only)
    python bench/inference.py --runs 5000 --threads 1

Each network runs one time step per call, as the plugin calls it (LSTM state carried between
calls), through the NumPy reference of RTNeural's forward pass (`export.reference`) and through
PyTorch for comparison. Figures are the median of `--runs` calls after a warm-up, in microseconds,
on one thread. They bound what the C++ plugin spends: RTNeural's compiled loops are faster than
either, but the per-call overhead here is Python's.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

BUDGET_US = 10_000.0          # the plugin's per-block budget for all five networks


def median_call_us(call, runs: int, warmup: int = 50) -> float:
    """Median wall time of `call()` in microseconds."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000.0


def _us(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"


def load_networks(models_dir: Path | None):
    """[(name, parameter count, ReferenceModel, torch model or None)] in the plugin's order."""
    import torch

    from export.reference import ReferenceModel
    from export.rtneural import file_name, model_to_rtneural
    from train.models import NETWORKS, count_parameters

    networks = []
    for key, cls in NETWORKS.items():
        torch.manual_seed(0)
        model = cls().eval()
        if models_dir is not None:
            path = models_dir / file_name(model.name)
            if not path.is_file():
                sys.exit(f"{path}: not found")
            networks.append((model.name, count_parameters(model), ReferenceModel.load(path), None))
        else:
            reference = ReferenceModel.from_document(model_to_rtneural(model))
            networks.append((model.name, count_parameters(model), reference, model))
    return networks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, help="folder of exported JSON files (default: fresh networks)")
    parser.add_argument("--runs", type=int, default=2000, help="timed calls per network (default 2000)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, like an audio thread)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, params, reference, model in load_networks(args.models):
        x = rng.standard_normal(reference.in_size).astype(np.float32)
        reference.reset()
        reference_us = median_call_us(lambda: reference.forward(x), args.runs)
        torch_us = float("nan")
        if model is not None:
            xt = torch.from_numpy(x)[None]
            state = {"value": None}

            def torch_step():
                if model.is_recurrent:
                    _, state["value"] = model(xt, state["value"], return_state=True)
                else:
                    model(xt)

            with torch.no_grad():
                torch_us = median_call_us(torch_step, args.runs)
        rows.append((name, params, reference_us, torch_us))

    print(f"one step per network, median of {args.runs} calls, {args.threads} torch thread(s); budget {BUDGET_US:,.0f} us")
    print(f"{'network':<20}{'params':>10}{'numpy ref (us)':>17}{'pytorch (us)':>15}{'% budget (ref)':>17}")
    for name, params, reference_us, torch_us in rows:
        print(f"{name:<20}{params:>10,}{reference_us:>17.1f}{_us(torch_us):>15}{100 * reference_us / BUDGET_US:>16.2f}%")
    total_ref = sum(r[2] for r in rows)
    total_torch = sum(r[3] for r in rows)
    print(f"{'all five':<20}{sum(r[1] for r in rows):>10,}{total_ref:>17.1f}{_us(total_torch):>15}"
          f"{100 * total_ref / BUDGET_US:>16.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
