"""What the self-checking cache costs: the digest recorded when a shard is written, the cheap check
every run makes, the digests `--check` compares, and the reader's check before it opens a shard.

Writes shards of melody-like rows (Lakh's: one item embedding each, 128 uint8 targets per row) into
a temporary folder and times, in this process, CPU (time.process_time) and wall side by side:

    (a) write_shard of a shard of about --megabytes MB, alone and with the digest of the file as
        written (the writer's cost per shard, against the write itself);
    (b) the cheap check (stat + 8-byte read) of --shards shards, per shard;
    (c) the digest of every shard (`kelly preprocess --check`), against reading the same shards
        whole with h5py (what training does);
    (d) load_network over those shards as written, and after their mtimes changed (the reader then
        compares each digest once), against the same load with no check at all.

    python bench/shard_checks.py [--megabytes 64] [--shards 200] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from preprocess.cache import integrity, reader  # noqa: E402
from preprocess.cache.digests import file_hash  # noqa: E402
from preprocess.cache.manifest import DoneEntry, Manifest  # noqa: E402
from preprocess.cache.shards import ItemResult, shard_name, write_shard  # noqa: E402
from preprocess.features import spec  # noqa: E402


def timed(func, repeat: int) -> tuple[float, float]:
    """Best (wall, cpu) seconds of `repeat` calls."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        func()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def melody_items(megabytes: float, items: int, seed: int) -> list[ItemResult]:
    rng = np.random.default_rng(seed)
    rows = max(1, int(megabytes * 2**20 / 128 / items))
    out = []
    for i in range(items):
        targets = rng.integers(0, 256, size=(rows, 128), dtype=np.uint8)
        out.append(ItemResult(source="lakh", item_id=f"{seed}-{i}", split="train", content_hash=f"{i:032x}",
                              label_source="proxy", valence=0.1, arousal=0.2, source_path=f"lakh/{i}.mid",
                              samples={"melody": {"targets": targets, "window": np.arange(rows)}},
                              embedding=rng.normal(size=spec.EMBEDDING_SIZE).astype(np.float32)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=64.0)
    parser.add_argument("--shards", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        big = melody_items(args.megabytes, 16, seed=0)
        write = timed(lambda: write_shard(cache, "lakh/shard-9999.h5", big, spec.FEATURE_VERSION), args.repeat)
        digest = timed(lambda: file_hash(cache / "lakh/shard-9999.h5"), args.repeat)
        size = (cache / "lakh/shard-9999.h5").stat().st_size / 2**20
        print(f"(a) one {size:.1f} MB shard: write {write[0] * 1e3:.0f} ms wall / {write[1] * 1e3:.0f} ms cpu; "
              f"its digest {digest[0] * 1e3:.0f} / {digest[1] * 1e3:.0f} ms: "
              f"x{(write[0] + digest[0]) / write[0]:.3f} wall, x{(write[1] + digest[1]) / max(write[1], 1e-9):.3f} cpu")
        (cache / "lakh/shard-9999.h5").unlink()

        per_shard = max(0.05, 32.0 / args.shards)          # about 32 MB in all
        with Manifest.open(cache, create=True) as manifest:
            for number in range(1, args.shards + 1):
                name = shard_name("lakh", number)
                results = melody_items(per_shard, 2, seed=number)
                nbytes = write_shard(cache, name, results, spec.FEATURE_VERSION)
                manifest.commit_shard(name, "lakh", [
                    DoneEntry(r.source, r.item_id, r.content_hash, "", r.split, r.label_source, r.valence,
                              r.arousal, r.source_path, i, r.rows()) for i, r in enumerate(results)],
                    nbytes, file_hash(cache / name), os.stat(cache / name).st_mtime_ns)
            records = list(manifest.shards().values())
        total = sum(r.bytes for r in records) / 2**20
        cheap = timed(lambda: [integrity.inspect_shard(cache, r, verify="changed") for r in records], args.repeat)
        print(f"(b) cheap check of {len(records)} shards: {cheap[0] / len(records) * 1e6:.0f} us wall, "
              f"{cheap[1] / len(records) * 1e6:.0f} us cpu per shard")

        import h5py

        def read_all():
            for r in records:
                with h5py.File(cache / r.name, "r") as h5:
                    h5["melody/targets"][()]
                    h5["items/embedding"][()]

        full = timed(lambda: [integrity.inspect_shard(cache, r, verify="always") for r in records], args.repeat)
        whole = timed(read_all, args.repeat)
        print(f"(c) {total:.1f} MB in {len(records)} shards: every digest {full[0] * 1e3:.0f} ms wall / "
              f"{full[1] * 1e3:.0f} ms cpu ({total / full[0]:.0f} MB/s), against reading them with h5py "
              f"{whole[0] * 1e3:.0f} / {whole[1] * 1e3:.0f} ms: x{full[0] / whole[0]:.2f} wall")

        as_written = timed(lambda: reader.load_network(cache, "melody"), args.repeat)
        inspect = integrity.inspect_shard
        integrity_off = lambda cache_dir, record, **_: integrity.ShardState(None)   # noqa: E731
        reader.inspect_shard = integrity_off
        unchecked = timed(lambda: reader.load_network(cache, "melody"), args.repeat)
        reader.inspect_shard = inspect
        for r in records:
            os.utime(cache / r.name, ns=(time.time_ns(), time.time_ns()))
        touched = timed(lambda: reader.load_network(cache, "melody"), args.repeat)
        print(f"(d) load_network(melody): unchecked {unchecked[0] * 1e3:.0f} ms wall / {unchecked[1] * 1e3:.0f} ms cpu; "
              f"checked as written {as_written[0] * 1e3:.0f} / {as_written[1] * 1e3:.0f} ms "
              f"(x{as_written[0] / unchecked[0]:.3f} wall); every mtime changed {touched[0] * 1e3:.0f} / "
              f"{touched[1] * 1e3:.0f} ms (x{touched[0] / unchecked[0]:.2f} wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
