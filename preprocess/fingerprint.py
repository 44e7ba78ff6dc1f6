"""Sources unchanged since the last complete run: not read again.

Reading a source parses its label files and imports pandas: most of an unchanged rerun's time. A
source's fingerprint is a digest of everything its reader and the extraction see (every file's
relative path, size and mtime under the source's root, and the settings); the last complete run of
each source stores it in the manifest, with what the reader found. A rerun whose fingerprint is the
same skips the source and reports it from the stored summary.

    fingerprints = {name: source_fingerprint(datasets_dir, name, settings) for name in sources}
    unchanged = unchanged_sources(cache_dir, fingerprints)      # name -> stored reader summary
    forget_fingerprint(manifest, name)                          # before a source's run starts
    remember_fingerprint(manifest, name, fingerprints[name], summary)   # once it is complete
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from common.errors import KellyError
from preprocess.cache.integrity import inspect_shard
from preprocess.cache.layout import SHARD_FORMAT
from preprocess.cache.manifest import MANIFEST_NAME, Manifest

FINGERPRINT_KEY = "source-fingerprint:"


def source_fingerprint(datasets_dir: Path, source: str, settings: dict) -> str | None:
    """A digest of everything a source's reader and extraction see: the relative path, size and
    mtime of every file under the source's root, and the settings. None when no root is found."""
    from preprocess.datasets import locate
    from preprocess.datasets.tree import walk_tree

    try:
        root, found_layout = locate(datasets_dir, source, settings["layout"])
    except KellyError:
        return None
    digest = hashlib.sha1(json.dumps([source, found_layout, str(Path(root).resolve()), settings],
                                     sort_keys=True).encode("utf-8"))

    # the readers' own walk: each folder once (a link loop is named, not followed), hidden entries named
    for relative, absolute, reason in walk_tree(root):
        if reason is None:
            st = os.stat(absolute)
            line = f"{relative}\0{st.st_size}\0{st.st_mtime_ns}\n"
        else:
            line = f"{relative}\0{reason}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def unchanged_sources(cache_dir: Path, fingerprints: dict[str, str | None]) -> dict[str, dict]:
    """The sources whose fingerprint equals the one the last complete run of each stored, and whose
    shards pass the cheap check untouched (`integrity.inspect_shard`: present, the size and mtime
    recorded): a source with a damaged or rewritten shard is read again, so that the run can compute
    the items of the shards it drops."""
    if not fingerprints or not (cache_dir / MANIFEST_NAME).is_file():
        return {}
    with Manifest.open(cache_dir) as manifest:
        if manifest.cache_format() not in (None, SHARD_FORMAT):
            return {}                   # another layout: the whole cache is rebuilt
        stored = {name: manifest.get_meta(FINGERPRINT_KEY + name) for name in fingerprints}
        intact = {name: _shards_untouched(cache_dir, manifest, name) for name in fingerprints if stored[name]}
    out = {}
    for name, fingerprint in fingerprints.items():
        info = json.loads(stored[name]) if stored[name] else None
        if fingerprint is not None and info is not None and info["fingerprint"] == fingerprint and intact[name]:
            out[name] = info
    return out


def _shards_untouched(cache_dir: Path, manifest: Manifest, source: str) -> bool:
    for record in manifest.shards(source).values():
        state = inspect_shard(cache_dir, record, verify="never")
        if state.problem is not None or state.changed:
            return False
    return True


def forget_fingerprint(manifest: Manifest, source: str) -> None:
    """The source is being recomputed: until it is complete, a rerun reads it again."""
    manifest.set_meta(FINGERPRINT_KEY + source, None)


def remember_fingerprint(manifest: Manifest, source: str, fingerprint: str | None, summary: dict) -> None:
    """The source is complete: store its fingerprint and what its reader found (from `summary`)."""
    manifest.set_meta(FINGERPRINT_KEY + source, json.dumps({
        "fingerprint": fingerprint, "layout": summary["layout"], "root": summary["root"],
        "items": summary["items"], "duplicates": summary["duplicates"],
        "reader_counts": summary["reader_counts"], "missing": summary["missing"],
        "unused": summary.get("unused", {})}))


def unchanged_source_summary(info: dict, status_counts: dict[str, int]) -> dict:
    """The per-source summary of a source skipped because nothing changed since its last complete run."""
    return {"layout": info["layout"], "root": info["root"], "items": info["items"], "limited": False,
            "already_done": status_counts.get("done", 0), "failed_before": status_counts.get("failed", 0),
            "computed": 0, "done": 0, "failed": 0, "split_changes": 0, "removed": 0,
            "duplicates": info["duplicates"], "shards_written": 0, "samples": {}, "failures": [],
            "reader_counts": info["reader_counts"], "reader_notes": [], "missing": info.get("missing", {}),
            "unused": info.get("unused", {}),
            "seconds": 0.0, "read_seconds": 0.0, "unchanged": True}
