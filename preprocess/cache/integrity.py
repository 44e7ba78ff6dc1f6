"""Whether a shard file on disk is still the one the manifest recorded when it was written.

    state = inspect_shard(cache_dir, record)                   # record: manifest.ShardRecord
    state.problem            # None, or what is wrong, in words ("missing", "truncated: ...")
    state = inspect_shard(cache_dir, record, verify="always")  # the content digest compared too

The manifest records each shard's size, content digest (`digests.file_hash`, BLAKE2b-128 of its
bytes) and modification time as written. The cheap check, which every preprocess run makes on
the shards of the sources it covers and the reader makes before it opens a shard, costs one
``stat`` and an 8-byte read: the file exists, its size is the recorded one, and it starts with
HDF5's signature. A file whose modification time differs from the recorded one was written to
since (or copied without keeping times): its digest is then computed and compared as well, which
catches bytes overwritten in place. `verify="always"` (``kelly preprocess --check``) compares
every digest, for damage that leaves size and time alone (a failing disk).

A damaged shard is never repaired in place: the preprocess job drops it from the manifest and
computes its items again (`writer.check_shards`); `repair_command` is the command that does so,
which the reader's errors name.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from preprocess.cache.digests import file_hash
from preprocess.cache.records import ShardRecord

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: meta key (+ source) of the datasets folder a source was last read from, for `repair_command`
DATASETS_DIR_KEY = "datasets-dir:"
VERIFY_MODES = ("never", "changed", "always")


@dataclass(frozen=True)
class ShardState:
    """What `inspect_shard` found.

    problem: None when the file matches its record, else what is wrong. changed: its mtime is not
    the recorded one (or none was recorded). digest, mtime_ns: the file's, when its digest was
    computed (to record them once verified).
    """

    problem: str | None
    changed: bool = False
    digest: str | None = None
    mtime_ns: int | None = None


def inspect_shard(cache_dir: str | Path, record: ShardRecord, *, verify: str = "changed") -> ShardState:
    """Compare the shard file of `record` with what the manifest recorded when it was written.

    verify: when to compute the content digest: "never" (a changed mtime is only reported as
    `changed`), "changed" (when the mtime differs from the recorded one, or none was recorded),
    "always". A record without a digest (written before digests were) is checked for size only.
    """
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, got {verify!r}")
    path = Path(cache_dir) / record.name
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ShardState("missing")
    except OSError as exc:
        return ShardState(f"cannot be read ({exc.strerror or exc})")
    if not path.is_file():
        return ShardState("is not a file")
    if st.st_size != record.bytes:
        return ShardState(f"{st.st_size:,} bytes, {record.bytes:,} when written (truncated or overwritten)")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(HDF5_SIGNATURE))
    except OSError as exc:
        return ShardState(f"cannot be read ({exc.strerror or exc})")
    if head != HDF5_SIGNATURE:
        return ShardState("not an HDF5 file any more (its first bytes were overwritten)")
    changed = record.mtime_ns is None or st.st_mtime_ns != record.mtime_ns
    if verify == "never" or (verify == "changed" and not changed):
        return ShardState(None, changed)
    try:
        digest = file_hash(path)
    except OSError as exc:
        return ShardState(f"cannot be read ({exc.strerror or exc})", changed)
    if record.digest is not None and digest != record.digest:
        return ShardState("its content changed since it was written (the digest differs from the recorded one)",
                          changed, digest, st.st_mtime_ns)
    return ShardState(None, changed, digest, st.st_mtime_ns)


def repair_command(cache_dir: str | Path, source: str, datasets_dir: str | Path | None = None) -> str:
    """The command that drops a source's damaged shards and computes their items again (quoted for
    a POSIX shell); datasets_dir: where the source was read from (default: the command's own)."""
    parts = ["kelly", "preprocess", source, "--check"]
    if datasets_dir is not None:
        parts += ["--datasets-dir", str(datasets_dir)]
    parts += ["--cache-dir", str(cache_dir)]
    return " ".join(shlex.quote(p) for p in parts)
