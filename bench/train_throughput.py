"""Trainer throughput against a bare PyTorch loop, projected to full-scale epochs, for 1 and N threads;
and the time from `kelly train` to its first batch.

    python bench/train_throughput.py --cache-dir cache [--threads 1 2] [--load 2] [--pairs 3]

Part 1, for each of the five networks at its default batch size (train.config.resolve, e.g.
NETWORK_DEFAULTS; --batch-size overrides it), on the same tensors already in memory (the cache's
rows, repeated until an epoch holds --min-epoch-samples samples): rows per CPU-second
(time.process_time of this process, so that a loaded machine still gives a usable ratio) and per
wall-second of `train.loop.train_network`'s training batches (forward, loss, backward, clipping,
Adam, running loss and metric, NaN checks, the carried LSTM state; progress bars off) and of a bare
loop doing the same math (forward, loss, backward, clipping, Adam; nothing else). Trainer and bare
run alternately, --pairs times; the ratio printed is the median of the pairs' ratios (target
>= 0.95). The projected full-scale epoch is FULL_SCALE_ROWS / (trainer rows per CPU-second) on one
core. Rows are windows: an LSTM sequence counts its real steps.
With --load K, K busy processes spin beside the measurement (a shared machine), for comparing
1 against 2 threads quiet and loaded.

Part 2: `kelly train --max-steps 1` is launched as a subprocess on the cache; the trainer prints
when its first optimizer step finished, counted from its process start (target: < 3 s).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from preprocess.features import spec  # noqa: E402
from train import data as train_data  # noqa: E402
from train.config import NETWORK_NAMES, NetworkConfig  # noqa: E402
from train.loop import resolve_device, train_network  # noqa: E402
from train.models import build  # noqa: E402


#: training rows (windows) per epoch at the datasets' full size (Lakh 176,581 files, MAESTRO ~200 h,
#: Groove ~13.6 h, DEAM 1,802 x 45 s), as bench/scale.py projects them from its Lakh-like files and
#: the sample data per second of music (measured on cf70fab, the training split)
FULL_SCALE_ROWS = {"emotion": 114_500, "melody": 28_800_000, "harmony": 15_200_000, "dynamics": 216_000,
                   "groove": 18_400}


def bare_loop(key: str, samples: train_data.Samples, config: NetworkConfig, epochs: int, device,
              seed: int = 0) -> tuple[int, float, float]:
    """(rows trained, CPU seconds, wall seconds) of the plainest loop doing the same math over the
    same tensors: forward, loss, backward, gradient clipping (as configured), Adam; for the LSTM
    networks with the state carried as configured; no metric, checks or progress."""
    from train.loop import carried, detached
    from train.metrics import loss_sum

    torch.manual_seed(seed)
    model = build(key).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    carry = config.carry_state and samples.index is not None
    seen, started = 0, None
    for epoch in range(epochs + 1):                        # epoch 0 warms up, untimed
        if epoch == 1:
            _sync(device)
            started = time.process_time(), time.perf_counter()
        state = None
        for x, y, mask, reset, count in samples.steps(config.batch_size, generator, carry_state=carry):
            total, _, state = loss_sum(key, model, x, y, mask, carried(state, reset))
            optimizer.zero_grad(set_to_none=True)
            (total / count).backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            state = detached(state) if carry else None
            seen += int(count) if epoch else 0
    _sync(device)
    return seen, time.process_time() - started[0], time.perf_counter() - started[1]


def tiled_data(cache_dir: Path, key: str, sequence_length: int, min_epoch_samples: int) -> train_data.NetworkData:
    """The network's cache rows, repeated (each copy as new items) until an epoch has at least
    `min_epoch_samples` training samples: a small cache's epochs are a handful of batches, where
    the per-epoch work (validation, checkpoints) would swamp the per-batch cost being measured."""
    import numpy as np

    from preprocess.cache import reader
    from preprocess.cache.rows import ItemTable

    rows = reader.load_network(cache_dir, key)
    once = train_data.from_rows(rows, key, sequence_length=sequence_length).counts["train"]
    copies = max(1, math.ceil(min_epoch_samples / once))
    table, items = rows.items, len(rows.items)
    tiled_table = ItemTable(
        item_ids=[f"{c}:{i}" for c in range(copies) for i in table.item_ids], sources=table.sources * copies,
        split=np.tile(table.split, copies), valence=np.tile(table.valence, copies),
        arousal=np.tile(table.arousal, copies), label_source=np.tile(table.label_source, copies),
        embedding=np.tile(table.embedding, (copies, 1)))
    tiled = train_data.Rows.concat([replace(rows, item=rows.item + c * items, items=tiled_table) for c in range(copies)])
    return train_data.from_rows(tiled, key, sequence_length=sequence_length)


def trainer(key: str, data: train_data.NetworkData, config: NetworkConfig, output: Path) -> tuple[int, float, float]:
    """(rows, CPU seconds, wall seconds) of train_network's training batches, after a one-epoch warm-up run."""
    train_network(key, data, replace(config, epochs=1), output=output / "warmup", progress=False, write_history=False)
    result = train_network(key, data, config, output=output / "timed", progress=False, write_history=False)
    return data.counts["train_windows"] * len(result.history), result.train_cpu_seconds, result.train_seconds


def busy(seconds: float) -> None:
    """Spin one core (the load of another user's job)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def first_batch_seconds(cache_dir: Path, device: str) -> tuple[float | None, float, str]:
    """(first batch after process start as the trainer reports it, wall time of the whole command, output)."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "kelly", "train", "--cache-dir", str(cache_dir), "-o", out,
                   "--models", "emotion", "--max-steps", "1", "--epochs", "1", "--no-progress", "--no-plots",
                   "--no-history", "--device", device]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
        wall = time.perf_counter() - started
    text = done.stdout + done.stderr
    found = re.search(r"first batch [0-9.]+ s into the run \(([0-9.]+) s after the process started\)", text)
    return (float(found.group(1)) if found else None), wall, text


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    import multiprocessing
    import statistics

    from train.config import resolve

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=REPO / "cache")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2, help="least timed epochs per side (default: 2)")
    parser.add_argument("--min-samples", type=int, default=20_000,
                        help="more epochs until each timed run sees this many samples (default: 20000)")
    parser.add_argument("--min-epoch-samples", type=int, default=5_000,
                        help="repeat the cache's rows until an epoch has this many samples (default: 5000)")
    parser.add_argument("--pairs", type=int, default=3, help="trainer/bare pairs, the median ratio counts (default: 3)")
    parser.add_argument("--batch-size", type=int, help="instead of each network's default")
    parser.add_argument("--models", nargs="+", default=list(spec.NETWORKS))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads to measure (default: 1 2)")
    parser.add_argument("--load", type=int, default=0, help="busy processes beside the measurement (default: 0)")
    parser.add_argument("--skip-first-batch", action="store_true")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    spinners = [multiprocessing.Process(target=busy, args=(24 * 3600,), daemon=True) for _ in range(args.load)]
    for spinner in spinners:
        spinner.start()
    print(f"device {device}, {args.pairs} trainer/bare pairs, cache {args.cache_dir}, {args.load} busy processes, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'network':<18} {'threads':>7} {'batch':>6} {'rows/epoch':>10} {'trainer rows/CPU-s':>19} "
          f"{'trainer rows/s':>15} {'bare rows/CPU-s':>16} {'ratio':>6} {'full-scale rows':>16} {'epoch, 1 core':>14}")
    ratios = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for key in args.models:
                overrides = {"device": str(device.type), "early_stopping_patience": 0}
                if args.batch_size:
                    overrides["batch_size"] = args.batch_size
                base = resolve(key, None, overrides)
                data = tiled_data(args.cache_dir, key, base.sequence_length, args.min_epoch_samples)
                samples = next(data.blocks(train_data.TRAIN, device))
                epochs = max(args.epochs, math.ceil(args.min_samples / data.counts["train_windows"]))
                for threads in args.threads:
                    config = replace(base, epochs=epochs, threads=threads)
                    torch.set_num_threads(threads)
                    pairs, cpu_rates, wall_rates = [], [], []
                    for pair in range(args.pairs):
                        n, cpu, wall = trainer(key, data, config, Path(tmp) / f"{key}-{threads}-{pair}")
                        torch.set_num_threads(threads)
                        m, bare_cpu, _ = bare_loop(key, samples, config, epochs, device)
                        pairs.append((n / cpu) / (m / bare_cpu))
                        cpu_rates.append(n / cpu)
                        wall_rates.append(n / wall)
                    ratio = statistics.median(pairs)
                    ratios[key, threads] = ratio
                    rate = statistics.median(cpu_rates)
                    full = FULL_SCALE_ROWS[key]
                    print(f"{NETWORK_NAMES[key]:<18} {threads:>7} {config.batch_size:>6} "
                          f"{data.counts['train_windows']:>10} {rate:>19.0f} {statistics.median(wall_rates):>15.0f} "
                          f"{rate / ratio:>16.0f} {ratio:>6.2f} {full:>16,} {_duration(full / rate):>14}", flush=True)
    finally:
        for spinner in spinners:
            spinner.terminate()
    print(f"lowest trainer/bare ratio {min(ratios.values()):.2f} (target >= 0.95)")
    if not args.skip_first_batch:
        first, wall, text = first_batch_seconds(args.cache_dir, args.device)
        if first is None:
            print(f"`kelly train` did not report its first batch (whole command {wall:.2f} s):\n{text[-2000:]}")
            return 1
        print(f"`kelly train`: first batch {first:.2f} s after the process started (target < 3 s); "
              f"whole command with one step and its checkpoint {wall:.2f} s")
    return 0


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


if __name__ == "__main__":
    sys.exit(main())
