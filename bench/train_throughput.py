"""Trainer throughput against a bare PyTorch loop, and the time from `kelly train` to its first batch.

    python bench/train_throughput.py --cache-dir cache [--device cpu] [--epochs 3] [--batch-size 64]

Part 1, for each of the five networks, on the same tensors already in memory and the same batch
size (the cache's rows, repeated until an epoch holds --min-epoch-samples samples): samples per
second of `train.loop.train_network` (its training batches: forward, loss, backward, clipping,
Adam, running loss and metric, NaN checks; progress bars off) and of a bare loop doing the same math
(forward, loss, backward, clipping, Adam; nothing else). The ratio trainer / bare should be >= 0.85.
Each side gets one untimed warm-up epoch, then both are timed over the same number of epochs
(at least --min-samples samples), alternately, --repeats times; each side's best run counts.

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
from train.metrics import batch_loss  # noqa: E402
from train.models import build  # noqa: E402


def bare_loop(key: str, samples: train_data.Samples, batch_size: int, epochs: int, device, grad_clip: float,
              seed: int = 0) -> tuple[int, float]:
    """(samples trained, seconds) of the plainest loop doing the same math over the same tensors:
    forward, loss, backward, gradient clipping (as configured), Adam; no metric, checks or progress."""
    torch.manual_seed(seed)
    model = build(key).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    seen, started = 0, None
    for epoch in range(epochs + 1):                        # epoch 0 warms up, untimed
        if epoch == 1:
            _sync(device)
            started = time.perf_counter()
        for positions in train_data.batch_order(len(samples), batch_size, generator):
            x, y, mask = samples.batch(positions.to(device))
            loss, _ = batch_loss(key, model, x, y, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            seen += len(positions) if epoch else 0
    _sync(device)
    return seen, time.perf_counter() - started


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


def trainer(key: str, data: train_data.NetworkData, config: NetworkConfig, output: Path) -> tuple[int, float]:
    """(samples, seconds) of train_network's training batches, after a one-epoch warm-up run."""
    train_network(key, data, replace(config, epochs=1), output=output / "warmup", progress=False, write_history=False)
    result = train_network(key, data, config, output=output / "timed", progress=False, write_history=False)
    return result.samples, result.train_seconds


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
    found = re.search(r"first batch ([0-9.]+) s after the process started", text)
    return (float(found.group(1)) if found else None), wall, text


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=REPO / "cache")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3, help="least timed epochs per side (default: 3)")
    parser.add_argument("--min-samples", type=int, default=20_000,
                        help="more epochs until each timed run sees this many samples (default: 20000)")
    parser.add_argument("--min-epoch-samples", type=int, default=5_000,
                        help="repeat the cache's rows until an epoch has this many samples (default: 5000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side, the best counts (default: 3)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", nargs="+", default=list(spec.NETWORKS))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--skip-first-batch", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    config = NetworkConfig(epochs=args.epochs, batch_size=args.batch_size, device=str(device.type),
                           early_stopping_patience=0)
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"best of {args.repeats} runs per side, cache {args.cache_dir}")
    print(f"{'network':<18} {'samples/epoch':>13} {'epochs':>7} {'trainer/s':>11} {'bare/s':>11} {'ratio':>7}")
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            data = tiled_data(args.cache_dir, key, config.sequence_length, args.min_epoch_samples)
            samples = next(data.blocks(train_data.TRAIN, device))
            epochs = max(args.epochs, math.ceil(args.min_samples / len(samples)))
            timed = replace(config, epochs=epochs)
            best_trainer = best_bare = 0.0
            for repeat in range(args.repeats):            # alternate the two; keep each one's best
                n, t = trainer(key, data, timed, Path(tmp) / f"{key}-{repeat}")
                best_trainer = max(best_trainer, n / t)
                n, t = bare_loop(key, samples, args.batch_size, epochs, device, config.grad_clip)
                best_bare = max(best_bare, n / t)
            ratios[key] = best_trainer / best_bare
            print(f"{NETWORK_NAMES[key]:<18} {len(samples):>13} {epochs:>7} {best_trainer:>11.0f} "
                  f"{best_bare:>11.0f} {ratios[key]:>7.2f}", flush=True)
    print(f"lowest ratio {min(ratios.values()):.2f} (target >= 0.85)")
    if not args.skip_first_batch:
        first, wall, text = first_batch_seconds(args.cache_dir, args.device)
        if first is None:
            print(f"`kelly train` did not report its first batch (whole command {wall:.2f} s):\n{text[-2000:]}")
            return 1
        print(f"`kelly train`: first batch {first:.2f} s after the process started (target < 3 s); "
              f"whole command with one step and its checkpoint {wall:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
