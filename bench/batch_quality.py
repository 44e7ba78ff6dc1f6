"""Held-out quality per second of training: batch sizes (with their learning rates) and, for the LSTM
networks, the state carried through pieces against chunks from zero, and the chunk length.

    python bench/batch_quality.py --cache-dir cache [--budget 20] [--models harmony dynamics groove]
    python bench/batch_quality.py --cache-dir cache --lstm [--budget 60]
    python bench/batch_quality.py --make-large DIR        # then --cache-dir DIR/cache

--make-large writes the sample data's MIDI sources at ten times their size (2,000 Lakh-like songs,
1,000 MAESTRO-like performances, Groove 30 rounds, 1,500 chord progressions; seed 1) under DIR/datasets
and preprocesses them into DIR/cache (about a minute on 2 cores): a cache whose rows a network
does not see again within a second, closer to the full datasets, where one epoch never repeats a row.

Each candidate trains the network on the cache from the same seed until `--budget` CPU seconds
(time.process_time, so a loaded machine still compares fairly) have gone, on one thread; after each
epoch the validation loss is recorded with the CPU time so far. Printed per candidate: epochs, CPU
seconds per epoch, the best validation loss within 1/8, 1/4, 1/2 of the budget and within all of it.
On a small cache the early marks matter: there a network sees its few rows again and again and
overfits within a few epochs, which a full-scale epoch (millions of rows) never does.
With --lstm, the LSTM networks are trained with the state carried (lanes walking whole pieces) or
reset at every chunk, at several chunk lengths, and their held-out split is evaluated as
`kelly evaluate` does: stateful over whole pieces and with the state reset every 16 windows.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from train import data as train_data  # noqa: E402
from train.config import NETWORK_NAMES, NetworkConfig  # noqa: E402
from train.loop import train_network  # noqa: E402

#: (batch size, learning rate): the old default, then the batch grown with the rate kept, scaled by sqrt and linearly
DENSE_CANDIDATES = [(64, 1e-3), (256, 2e-3), (256, 4e-3), (1024, 2e-3), (1024, 4e-3), (1024, 8e-3), (1024, 1.6e-2)]
#: (carry the state, chunk length, batch)
LSTM_CANDIDATES = [(False, 16, 64), (True, 16, 64), (True, 32, 64), (True, 64, 32), (False, 32, 64)]


class Budget(Exception):
    pass


def run(key: str, data, config: NetworkConfig, budget: float, output: Path) -> list[tuple[float, float]]:
    """[(CPU seconds since the start, validation loss)] per epoch until the budget is spent."""
    started = time.process_time()
    curve = []

    def record(row):
        curve.append((time.process_time() - started, row["val_loss"]))
        if curve[-1][0] >= budget:
            raise Budget

    try:
        train_network(key, data, config, output=output, progress=False, write_history=False, on_epoch_end=record)
    except Budget:
        pass
    return curve


def best_within(curve, seconds: float) -> float:
    values = [loss for t, loss in curve if t <= seconds]
    return min(values) if values else float("nan")


def dense(args) -> None:
    marks = [args.budget * f for f in (1 / 8, 1 / 4, 1 / 2, 1)]
    print(f"{'network':<18} {'batch':>6} {'lr':>8} {'epochs':>7} {'CPU s/epoch':>12}   best validation loss within "
          + " ".join(f"{m:>7.2f} s" for m in marks))
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            data = train_data.from_cache(args.cache_dir, key)
            for batch, lr in DENSE_CANDIDATES:
                config = NetworkConfig(epochs=100_000, batch_size=batch, learning_rate=lr, device="cpu",
                                       early_stopping_patience=0, threads=1)
                curve = run(key, data, config, args.budget, Path(tmp) / f"{key}-{batch}-{lr}")
                per_epoch = curve[-1][0] / len(curve)
                print(f"{NETWORK_NAMES[key]:<18} {batch:>6} {lr:>8.4g} {len(curve):>7} {per_epoch:>12.3f}   "
                      f"{'':>27}" + " ".join(f"{best_within(curve, m):>9.5f}" for m in marks), flush=True)


def lstm(args) -> None:
    from train.evaluate import RESET_EVERY, network_metrics, predict, PRIMARY

    print(f"{'network':<18} {'state':>7} {'chunk':>6} {'batch':>6} {'epochs':>7} {'CPU s/epoch':>12} "
          f"{'best val':>9} {'held-out whole piece':>21} {f'reset every {RESET_EVERY}':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            held_out = None
            for carry, length, batch in LSTM_CANDIDATES:
                data = train_data.from_cache(args.cache_dir, key, sequence_length=length)
                if held_out is None:
                    split = train_data.TEST if data.counts["test"] else train_data.VALIDATION
                    held_out = data.rows(split)
                config = NetworkConfig(epochs=100_000, batch_size=batch, device="cpu", early_stopping_patience=0,
                                       threads=1, sequence_length=length, carry_state=carry)
                out = Path(tmp) / f"{key}-{carry}-{length}"
                curve = run(key, data, config, args.budget, out)
                from train.checkpoints import load_network

                model, _ = load_network(out / "checkpoints" / f"{NETWORK_NAMES[key].lower()}_best.pt")
                primary = PRIMARY[key][0]
                whole = network_metrics(key, predict(model, held_out), held_out)[primary]
                chunks = network_metrics(key, predict(model, held_out, reset_every=RESET_EVERY), held_out)[primary]
                print(f"{NETWORK_NAMES[key]:<18} {'carried' if carry else 'reset':>7} {length:>6} {batch:>6} "
                      f"{len(curve):>7} {curve[-1][0] / len(curve):>12.3f} {best_within(curve, args.budget):>9.5f} "
                      f"{primary + ' ' + format(whole, '.5f'):>21} {chunks:>15.5f}", flush=True)


def make_large(folder: Path) -> Path:
    """--make-large: the sample MIDI sources at ten times their size, preprocessed; the cache's path."""
    from preprocess.sample_data.groove import write_groove
    from preprocess.sample_data.harmony import write_chord_progressions
    from preprocess.sample_data.lakh import write_lakh
    from preprocess.sample_data.maestro import write_maestro

    datasets, cache = folder / "datasets", folder / "cache"
    datasets.mkdir(parents=True, exist_ok=True)
    write_lakh(datasets, 1, n_songs=2000, n_matched=12, n_clean=5)
    write_maestro(datasets, 1, n_pieces=1000)
    write_groove(datasets, 1, rounds=30)
    write_chord_progressions(datasets / "harmony" / "chord_progressions.json", 1, n=1500)
    import subprocess

    subprocess.run([sys.executable, "-m", "kelly", "preprocess", "all", "--datasets-dir", str(datasets),
                    "--cache-dir", str(cache), "--quiet"], check=True, cwd=REPO)
    return cache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=REPO / "cache")
    parser.add_argument("--budget", type=float, default=20.0, help="CPU seconds per candidate (default: 20)")
    parser.add_argument("--lstm", action="store_true", help="the LSTM networks' state and chunk length")
    parser.add_argument("--models", nargs="+")
    parser.add_argument("--candidates", nargs="+", metavar="BATCH:LR",
                        help="dense candidates instead of DENSE_CANDIDATES, e.g. 512:0.002 1024:0.004")
    parser.add_argument("--make-large", type=Path, metavar="DIR", help="write the large cache (docstring) and stop")
    args = parser.parse_args(argv)
    if args.make_large:
        print(f"large cache: {make_large(args.make_large)}")
        return 0
    torch.set_num_threads(1)
    if args.candidates:
        DENSE_CANDIDATES[:] = [(int(b), float(lr)) for b, lr in (c.split(":") for c in args.candidates)]
    args.models = args.models or (["emotion", "melody"] if args.lstm else ["harmony", "dynamics", "groove"])
    print(f"cache {args.cache_dir}, {args.budget:g} CPU seconds per candidate, 1 thread")
    (lstm if args.lstm else dense)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
