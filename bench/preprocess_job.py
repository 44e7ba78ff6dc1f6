"""`preprocess all` on the sample data: 2 workers against 1, and a rerun over unchanged files.

Writes the sample datasets (make_sample_data) into a temporary folder, then runs, each in a fresh
Python process as `kelly preprocess` would (so interpreter start-up, imports and worker start-up
are counted, as a user pays them):

    (a) preprocess all with 1 worker, and with 2 workers, into empty caches: the speed-up;
    (b) preprocess all again over the unchanged data and cache: its time against the first run.

Both the process's wall time and the job's own time (summary["seconds"]) are printed, and the
per-source times, because DEAM's audio dominates and each fresh worker pays ~1-2 s of librosa
imports on its first clip. Targets: speed-up >= 1.7, rerun <= 5 % of the first run.

    python bench/preprocess_job.py [--datasets DIR | --scale K] [--repeat 1] [--min-speedup 1.7] [--max-rerun 0.05]

--scale K writes K times the sample's DEAM clips, MAESTRO pieces and Lakh songs with the same
writers (the default sample is K = 1), to see the ratios on more than a few seconds of work.

Exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RUN = (
    "import json, sys\n"
    "from preprocess.job import run_preprocess\n"
    "s = run_preprocess(sys.argv[4], datasets_dir=sys.argv[1], cache_dir=sys.argv[2], workers=int(sys.argv[3]), progress=False)\n"
    "print(json.dumps({'seconds': s['seconds'], 'sources': {k: {'seconds': v['seconds'], 'computed': v['computed'],"
    " 'done': v['done'], 'failed': v['failed'], 'read_seconds': v['read_seconds']} for k, v in s['sources'].items()}}))\n"
)
STARTUP = (
    "import time\n"
    "t = time.perf_counter()\n"
    "import joblib\n"
    "def warm(_):\n"
    "    import preprocess.extract, preprocess.features.audio, preprocess.features.midi\n"
    "    from preprocess.features.audio import mel_filterbank\n"
    "    mel_filterbank()\n"
    "list(joblib.Parallel(n_jobs=2)(joblib.delayed(warm)(i) for i in range(2)))\n"
    "print(time.perf_counter() - t)\n"
)


THROUGHPUT = (
    "import json, sys, time\n"
    "from preprocess.datasets import available_sources, load_source\n"
    "from preprocess.extract import extract_item\n"
    "from preprocess.parallel import isolated_map\n"
    "items = [i for s in available_sources(sys.argv[1]) for i in load_source(sys.argv[1], s).items]\n"
    "t = time.perf_counter()\n"
    "times = [time.perf_counter() - t for _ in isolated_map(extract_item, items, workers=int(sys.argv[2]), file_timeout=120)]\n"
    "print(json.dumps({'first': times[0], 'last': times[-1], 'n': len(times)}))\n"
)


def throughput(datasets: Path, workers: int) -> dict:
    """Items per second once the first result is back (worker start-up excluded), every source's items."""
    done = subprocess.run([sys.executable, "-c", THROUGHPUT, str(datasets), str(workers)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    return {**r, "rate": (r["n"] - 1) / (r["last"] - r["first"])}


def worker_startup() -> float:
    """Seconds to start 2 loky workers and import the feature code in them (librosa's filterbank included)."""
    done = subprocess.run([sys.executable, "-c", STARTUP], cwd=REPO, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants now (psutil when installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        total = 0
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo, page = 0, [pid], os.sysconf("SC_PAGE_SIZE")
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
        except OSError:
            pass
        todo += children.get(current, [])
    return total


def run_sampled(args: list[str], *, cwd: Path = REPO, env: dict | None = None, interval: float = 0.05):
    """Run a command, sampling the resident memory of its whole process tree every `interval` s.

    Returns (stdout, wall seconds, peak tree RSS in bytes); a non-zero exit raises CalledProcessError.
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(interval)
        wall = time.perf_counter() - started
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, args, stdout, stderr)
    return stdout, wall, peak


def run(datasets: Path, cache: Path, workers: int, source: str = "all", *, repo: Path = REPO) -> dict:
    """One `preprocess <source>` (what `kelly preprocess` runs) in a fresh interpreter, with the code of
    `repo`: {"wall": s, "peak_rss": bytes of the process tree, "seconds": job s, "sources": {...}}."""
    env = dict(os.environ, PYTHONPATH=str(repo))
    stdout, wall, peak = run_sampled([sys.executable, "-c", RUN, str(datasets), str(cache), str(workers), source],
                                     cwd=repo, env=env)
    return {"wall": wall, "peak_rss": peak, **json.loads(stdout.strip().splitlines()[-1])}


def write_datasets(root: Path, scale: int) -> None:
    """The sample data (scale 1), or its DEAM, MAESTRO and Lakh parts with `scale` times the items."""
    started = time.perf_counter()
    if scale == 1:
        from preprocess.sample_data import make_sample_data

        made = make_sample_data(root)
        print(f"sample data: {made['counts']} in {made['seconds']:.1f} s")
        return
    from preprocess.sample_data import SIZES
    from preprocess.sample_data.deam import write_deam
    from preprocess.sample_data.lakh import write_lakh
    from preprocess.sample_data.maestro import write_maestro

    full = SIZES["full"]
    counts = {
        "deam": write_deam(root, 0, n_clips=scale * full["deam"]["n_clips"],
                           n_full_songs=full["deam"]["n_full_songs"]).count,
        "maestro": write_maestro(root, 0, n_pieces=scale * full["maestro"]["n_pieces"]).count,
        "lakh": write_lakh(root, 0, **{**full["lakh"], "n_songs": scale * full["lakh"]["n_songs"]}).count,
    }
    print(f"sample data x{scale} (DEAM, MAESTRO, Lakh): {counts} in {time.perf_counter() - started:.1f} s")


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["wall"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=None, help="use these datasets instead of fresh sample data")
    parser.add_argument("--scale", type=int, default=1,
                        help="K times the sample's DEAM clips, MAESTRO pieces and Lakh songs (default: 1, the sample)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration, best kept (default: 1)")
    parser.add_argument("--min-speedup", type=float, default=1.7)
    parser.add_argument("--max-rerun", type=float, default=0.05)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="kelly-bench-") as tmp:
        tmp = Path(tmp)
        datasets = args.datasets
        if datasets is None:
            datasets = tmp / "datasets"
            write_datasets(datasets, args.scale)
        one, two, rerun = [], [], []
        for k in range(args.repeat):
            one.append(run(datasets, tmp / f"cache-1-{k}", 1))
            two.append(run(datasets, tmp / f"cache-2-{k}", 2))
            rerun.append(run(datasets, tmp / f"cache-2-{k}", 2))
        one, two, rerun = best(one), best(two), best(rerun)
        startup = worker_startup()
        steady = {w: throughput(datasets, w) for w in (1, 2)}

    print(f"\n{'run':<34} {'wall s':>8} {'job s':>8}   per source (s from its first task to its last result)")
    for name, r in (("(a) 1 worker, empty cache", one), ("(a) 2 workers, empty cache", two),
                    ("(b) 2 workers, rerun, unchanged", rerun)):
        per = ", ".join(f"{k} {v['seconds']:.2f}" for k, v in r["sources"].items())
        print(f"{name:<34} {r['wall']:>8.2f} {r['seconds']:>8.2f}   {per}")
    reading = sum(v["read_seconds"] for v in rerun["sources"].values())
    print(f"\nof the rerun's job time, {reading:.2f} s is the dataset readers listing files and parsing label "
          f"files (pandas' import included); the cache's own work is the rest")
    print(f"starting 2 loky workers and importing the feature code in them: {startup:.2f} s "
          f"(paid once per run; the sample data is small enough for it to matter)")
    print(f"steady state (after the first result): 1 worker {steady[1]['rate']:.1f} items/s, "
          f"2 workers {steady[2]['rate']:.1f} items/s = {steady[2]['rate'] / steady[1]['rate']:.2f}x; "
          f"first result after {steady[1]['first']:.2f} s / {steady[2]['first']:.2f} s")
    speedup_wall, speedup_job = one["wall"] / two["wall"], one["seconds"] / two["seconds"]
    rerun_wall, rerun_job = rerun["wall"] / two["wall"], rerun["seconds"] / two["seconds"]
    print(f"\n(a) speed-up, 2 workers vs 1:   {speedup_wall:.2f}x wall, {speedup_job:.2f}x job   "
          f"(target >= {args.min_speedup})")
    print(f"(b) rerun / first run:          {100 * rerun_wall:.1f} % wall, {100 * rerun_job:.1f} % job   "
          f"(target <= {100 * args.max_rerun:.0f} %); without reading the datasets "
          f"{100 * (rerun['seconds'] - reading) / two['seconds']:.1f} %")
    recomputed = sum(v["computed"] for v in rerun["sources"].values())
    print(f"    items recomputed by the rerun: {recomputed}")
    ok = speedup_job >= args.min_speedup and rerun_job <= args.max_rerun and recomputed == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
