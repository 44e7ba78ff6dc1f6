"""The cache at the datasets' real scale: N Lakh-like files preprocessed and trained on, projected to the full datasets.

    python bench/scale.py --n 3000 [--baseline-repo /path/to/other/checkout] [--device cpu] [--skip-training]

1. Builds N Lakh-like files: real multitrack pop and rock MIDI (the real-file corpus's
   multitrack_midi/ when it is there, else the sample data's Lakh songs), each copy with distinct
   content (a marker event naming the copy), 1.4 % made unreadable as in Lakh (cut short, or not
   MIDI at all), laid out as lmd_full/{first hex}/{md5}.mid.
2. Runs the preprocess job on them (`kelly preprocess lakh`, in a fresh interpreter) with 1 and with
   2 workers into empty caches; reports files/s (over the job's compute time and over the whole
   process), the peak resident memory of the whole process tree, and cache bytes per file.
3. Measures MAESTRO, Groove and DEAM from the sample data (per second of music or audio) and
   projects time and cache size for the full datasets: Lakh 176,581 files, MAESTRO 1,276
   performances (~200 h), Groove 1,150 performances (~13.6 h), DEAM 1,802 clips of 45 s.
4. Trains one epoch of each network on these caches, in memory and streamed (the memory budget set
   below the cache's size, so blocks are read while training), and reports samples/s. Torch runs
   on --threads threads (default 1: on a shared 2-core machine two intra-op threads make these
   small networks 5-20x slower, waiting for each other's core, which would swamp what is measured).

With --baseline-repo, steps 2-4 also run with that checkout's code (e.g. main before a change) on
the same files, side by side, with the ratios. Figures on a shared machine are noisy: `uptime` is
printed with them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.preprocess_job import run as run_preprocess_job  # noqa: E402
from bench.preprocess_job import run_sampled  # noqa: E402

REAL_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "real-corpus"
UNREADABLE_FRACTION = 0.014
FULL = {
    "lakh": {"files": 176_581},
    "maestro": {"files": 1_276, "seconds": 198.65 * 3600},     # maestro-v3.0.0.csv: sum of durations
    "groove": {"files": 1_150, "seconds": 13.58 * 3600},       # groove info.csv: sum of durations
    "deam": {"files": 1_802, "seconds": 1_802 * 45.0},
}
NETWORK_SOURCES = {"melody": "lakh", "harmony": "lakh", "emotion": "others", "dynamics": "others", "groove": "others"}


# --- the files -----------------------------------------------------------------------------------

def with_marker(data: bytes, text: str) -> bytes:
    """A standard MIDI file with a marker meta event (FF 06) at time 0 of its first track."""
    if data[:4] != b"MThd":
        raise ValueError("not a standard MIDI file")
    start = 8 + int.from_bytes(data[4:8], "big")                    # the first chunk after the header
    if data[start:start + 4] != b"MTrk":
        raise ValueError("no track chunk after the header")
    payload = text.encode("ascii")
    if len(payload) > 127:
        raise ValueError("marker text too long for a one-byte length")
    event = b"\x00\xff\x06" + bytes([len(payload)]) + payload
    length = int.from_bytes(data[start + 4:start + 8], "big") + len(event)
    return data[:start + 4] + length.to_bytes(4, "big") + event + data[start + 8:]


def unreadable(data: bytes, k: int) -> bytes:
    """A broken copy: cut short inside a track (even k), or bytes that are not MIDI at all (odd k)."""
    return data[: len(data) * 2 // 5] if k % 2 == 0 else b"RIFF" + hashlib.sha256(data).digest() * 8


def base_files(tmp: Path) -> tuple[list[bytes], str]:
    """The real multitrack files, or the sample data's Lakh songs when the corpus is absent."""
    folder = REAL_CORPUS / "multitrack_midi"
    paths = sorted(folder.rglob("*.mid")) if folder.is_dir() else []
    if paths:
        return [p.read_bytes() for p in paths], f"{len(paths)} real multitrack files from {folder}"
    from preprocess.sample_data.lakh import write_lakh

    write_lakh(tmp / "sample-lakh", 0, n_songs=12, n_matched=0, n_clean=0)
    paths = [p for p in sorted((tmp / "sample-lakh" / "lmd_full").rglob("*.mid")) if p.stat().st_size > 2000]
    return [p.read_bytes() for p in paths], f"{len(paths)} sample-data Lakh songs (no real corpus found)"


def build_lakh_like(root: Path, n: int, bases: list[bytes]) -> dict:
    """N files under root/lmd_full/{hex}/{md5}.mid, copy i of base i % len(bases), each with its own
    marker; round(1.4 % of N) of them, spread evenly, unreadable."""
    broken_count = round(n * UNREADABLE_FRACTION)
    broken = {int(k * n / broken_count) for k in range(broken_count)} if broken_count else set()
    total = 0
    for i in range(n):
        data = with_marker(bases[i % len(bases)], f"kelly scale copy {i}")
        if i in broken:
            data = unreadable(data, i)
        md5 = hashlib.md5(data).hexdigest()
        path = root / "lmd_full" / md5[0] / f"{md5}.mid"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        total += len(data)
    return {"files": n, "unreadable": len(broken), "bytes": total}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def shard_bytes(cache: Path, source: str) -> int:
    return sum(p.stat().st_size for p in (cache / source).glob("shard-*.h5"))


# --- preprocessing -------------------------------------------------------------------------------

def preprocess_runs(datasets: Path, work: Path, repo: Path, label: str, n: int) -> dict:
    """`preprocess lakh` with 1 and 2 workers into empty caches; rates, peak memory, bytes per file."""
    out = {}
    for workers in (1, 2):
        cache = work / f"cache-{label}-{workers}"
        shutil.rmtree(cache, ignore_errors=True)
        r = run_preprocess_job(datasets, cache, workers, "lakh", repo=repo)
        lakh = r["sources"]["lakh"]
        out[workers] = {
            "rate": lakh["computed"] / lakh["seconds"], "rate_wall": lakh["computed"] / r["wall"],
            "wall": r["wall"], "seconds": lakh["seconds"], "peak_rss": r["peak_rss"], "done": lakh["done"],
            "failed": lakh["failed"], "cache_bytes": folder_bytes(cache), "shard_bytes": shard_bytes(cache, "lakh"),
            "cache": cache,
        }
        out[workers]["bytes_per_file"] = out[workers]["cache_bytes"] / n
        out[workers]["bytes_per_done"] = out[workers]["shard_bytes"] / max(1, lakh["done"])
        if workers == 1:
            shutil.rmtree(cache)        # keep the 2-worker cache (for training), not both
    return out


def material_seconds(cache: Path, source: str, repo: Path) -> float:
    """Seconds of music (MIDI) or audio in a source's done items, read from their files."""
    script = (
        "import json, sys\n"
        "from preprocess.cache.manifest import Manifest\n"
        "with Manifest.open(sys.argv[1]) as m:\n"
        "    paths = [r.source_path for r in m.served([sys.argv[2]])]\n"
        "if sys.argv[2] == 'deam':\n"
        "    import soundfile\n"
        "    total = sum(soundfile.info(p).duration for p in paths)\n"
        "else:\n"
        "    from preprocess.features.midi import load_notes\n"
        "    total = sum(load_notes(p).duration for p in paths)\n"
        "print(json.dumps(total))\n")
    done = subprocess.run([sys.executable, "-c", script, str(cache), source], cwd=repo, capture_output=True,
                          text=True, check=True, env=dict(os.environ, PYTHONPATH=str(repo)))
    return float(done.stdout.strip().splitlines()[-1])


def other_sources(datasets: Path, work: Path, repo: Path, label: str) -> dict:
    """MAESTRO, Groove and DEAM of the sample data preprocessed with 2 workers: per source the job's
    seconds and cache bytes per second of material, the basis of the projections."""
    cache = work / f"cache-{label}-others"
    shutil.rmtree(cache, ignore_errors=True)
    out = {"cache": cache}
    for source in ("maestro", "groove", "deam"):
        r = run_preprocess_job(datasets, cache, 2, source, repo=repo)["sources"][source]
        seconds = material_seconds(cache, source, repo)
        out[source] = {"done": r["done"], "job_seconds": r["seconds"], "material_seconds": seconds,
                       "shard_bytes": shard_bytes(cache, source)}
    return out


def projections(lakh: dict, others: dict, n: int) -> dict:
    """Time (2 workers) and cache size of the full datasets."""
    out = {"lakh": {"hours": FULL["lakh"]["files"] / lakh["rate"] / 3600,
                    "gb": lakh["cache_bytes"] / n * FULL["lakh"]["files"] / 1e9}}
    for source in ("maestro", "groove", "deam"):
        o = others[source]
        per_second = FULL[source]["seconds"] / o["material_seconds"]
        out[source] = {"hours": o["job_seconds"] * per_second / 3600, "gb": o["shard_bytes"] * per_second / 1e9}
    return out


# --- training ------------------------------------------------------------------------------------

TRAIN = (
    "import json, sys, tempfile, time, torch\n"
    "torch.set_num_threads(int(sys.argv[6]))\n"
    "from train.config import NetworkConfig\n"
    "from train.data import from_cache\n"
    "from train.loop import train_network\n"
    "cache, key, budget, device, batch = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], int(sys.argv[5])\n"
    "t = time.perf_counter()\n"
    "data = from_cache(cache, key, memory_budget_mb=budget)\n"
    "prepared = time.perf_counter() - t\n"
    "config = NetworkConfig(epochs=1, batch_size=batch, device=device, early_stopping_patience=0)\n"
    "with tempfile.TemporaryDirectory() as out:\n"
    "    r = train_network(key, data, config, output=out, progress=False, write_history=False)\n"
    "print(json.dumps({'samples': r.samples, 'train_seconds': r.train_seconds, 'epoch_seconds': r.seconds,\n"
    "                  'prepare_seconds': prepared, 'in_memory': data.in_memory, 'threads': torch.get_num_threads()}))\n"
)
IN_MEMORY_MB, STREAMED_MB = 1e6, 0.001


def train_epoch(cache: Path, key: str, budget_mb: float, repo: Path, device: str, batch: int, threads: int) -> dict:
    """One epoch of one network in a fresh interpreter: samples/s of its training batches."""
    stdout, wall, peak = run_sampled([sys.executable, "-c", TRAIN, str(cache), key, str(budget_mb), device, str(batch),
                                      str(threads)], cwd=repo, env=dict(os.environ, PYTHONPATH=str(repo)))
    r = json.loads(stdout.strip().splitlines()[-1])
    return {**r, "rate": r["samples"] / r["train_seconds"], "wall": wall, "peak_rss": peak}


def training(caches: dict[str, Path], repo: Path, device: str, batch: int, networks: list[str], threads: int) -> dict:
    out = {}
    for key in networks:
        cache = caches[NETWORK_SOURCES[key]]
        memory = train_epoch(cache, key, IN_MEMORY_MB, repo, device, batch, threads)
        streamed = train_epoch(cache, key, STREAMED_MB, repo, device, batch, threads)
        out[key] = {"memory": memory, "streamed": streamed, "ratio": streamed["rate"] / memory["rate"]}
        print(f"    {key:<9} in memory {memory['rate']:>9.0f}/s ({memory['samples']} samples, in_memory="
              f"{memory['in_memory']}, {mb(memory['peak_rss'])}), streamed {streamed['rate']:>9.0f}/s (in_memory="
              f"{streamed['in_memory']}, {mb(streamed['peak_rss'])}): {out[key]['ratio']:.2f}x", flush=True)
    return out


# --- the report ----------------------------------------------------------------------------------

def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


def report(n: int, results: dict[str, dict]) -> None:
    labels = list(results)
    print(f"\n=== N = {n:,} Lakh-like files ===")
    print(f"{'':<40}" + "".join(f"{label:>22}" for label in labels) + ("   ratio" if len(labels) == 2 else ""))

    def row(name: str, values: list[float], fmt: str, ratio: bool = True) -> None:
        line = f"{name:<40}" + "".join(f"{format(v, fmt):>22}" for v in values)
        if len(values) == 2 and ratio and values[1]:
            line += f"   {values[0] / values[1]:.2f}"
        print(line)

    if all("preprocess" in r for r in results.values()):
        pre = {label: r["preprocess"] for label, r in results.items()}
        for w in (1, 2):
            row(f"files/s, {w} worker(s) (job compute)", [pre[l][w]["rate"] for l in labels], ",.1f")
            row(f"files/s, {w} worker(s) (whole process)", [pre[l][w]["rate_wall"] for l in labels], ",.1f")
            row(f"peak RSS of the tree, {w} worker(s), MB", [pre[l][w]["peak_rss"] / 2**20 for l in labels], ",.0f")
        row("speed-up 2 workers / 1", [pre[l][2]["rate"] / pre[l][1]["rate"] for l in labels], ".2f")
        row("cache KB per file (all files)", [pre[l][2]["cache_bytes"] / n / 1e3 for l in labels], ",.1f")
        row("shard KB per done file", [pre[l][2]["bytes_per_done"] / 1e3 for l in labels], ",.1f")
        row("done / failed", [pre[l][2]["done"] for l in labels], ",d", ratio=False)
        print("projections for the full datasets (2 workers here; time, cache size):")
        for source in ("lakh", "maestro", "groove", "deam"):
            values = [results[l]["projection"][source] for l in labels]
            print(f"  {source:<38}" + "".join(f"{v['hours'] * 60:>10.1f} min {v['gb']:>6.2f} GB" for v in values))
    if any("training" in r for r in results.values()):
        print("training, one epoch, samples/s (in memory | streamed | streamed / in memory):")
        for key in next(r["training"] for r in results.values() if "training" in r):
            cells = []
            for label in labels:
                t = results[label].get("training", {}).get(key)
                cells.append("-" if t is None else
                             f"{t['memory']['rate']:,.0f} | {t['streamed']['rate']:,.0f} | {t['ratio']:.2f}")
            print(f"  {key:<38}" + "".join(f"{c:>30}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="Lakh-like files (default 3000)")
    parser.add_argument("--baseline-repo", type=Path, default=None,
                        help="another checkout whose code runs the same steps side by side (e.g. main)")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one, removed)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--networks", nargs="+", default=list(NETWORK_SOURCES))
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training (default 1)")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--training-only", action="store_true",
                        help="train on the caches a previous run left in --work (steps 1-3 skipped)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    repos = {"this code": REPO}
    if args.baseline_repo is not None:
        repos["baseline"] = args.baseline_repo.resolve()
    work = args.work or Path(tempfile.mkdtemp(prefix="kelly-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"load before: {load()}")
        results: dict[str, dict] = {label: {} for label in repos}
        if args.training_only:
            if args.work is None:
                parser.error("--training-only needs the --work folder of an earlier run")
        else:
            started = time.perf_counter()
            bases, described = base_files(work)
            datasets = work / "datasets"
            shutil.rmtree(datasets, ignore_errors=True)
            built = build_lakh_like(datasets, args.n, bases)
            print(f"{args.n:,} Lakh-like files from {described}: {built['unreadable']} unreadable, "
                  f"{mb(built['bytes'])} of MIDI, in {time.perf_counter() - started:.1f} s")
            others_data = work / "others"
            if not others_data.is_dir():
                from preprocess.sample_data import make_sample_data

                make_sample_data(others_data)
            for label, repo in repos.items():
                print(f"[{label}: {repo}] preprocess lakh with 1 and 2 workers ...", flush=True)
                pre = preprocess_runs(datasets, work, repo, label.replace(" ", "-"), args.n)
                print(f"[{label}] maestro, groove, deam of the sample data ...", flush=True)
                others = other_sources(others_data, work, repo, label.replace(" ", "-"))
                results[label] = {"preprocess": pre, "others": others,
                                  "projection": projections(pre[2], others, args.n)}
                print(f"load: {load()}")
        if not args.skip_training:
            for label, repo in repos.items():
                print(f"[{label}] one epoch per network, in memory and streamed, {args.threads} torch thread(s) ...",
                      flush=True)
                tag = label.replace(" ", "-")
                caches = {"lakh": work / f"cache-{tag}-2", "others": work / f"cache-{tag}-others"}
                results[label]["training"] = training(caches, repo, args.device, args.batch_size, args.networks,
                                                      args.threads)
                print(f"load: {load()}")
        report(args.n, results)
        print(f"load after: {load()}")
        if args.json is not None:
            args.json.write_text(json.dumps(results, indent=1, default=str))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
