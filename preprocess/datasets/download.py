"""Download, verify and unpack the datasets of `catalog` into the layouts the readers detect.

    install(subset, datasets_dir)        one subset: fetch, verify, unpack, rename into place
    download(["maestro", "groove"], datasets_dir)

How a download behaves:
  resumable   bytes go to <datasets>/.kelly-downloads/<file>.part; a rerun asks for the rest with an
              HTTP Range request (If-Range with the first response's ETag or Last-Modified, so a file
              changed on the server restarts). A server that ignores Range restarts from byte 0. A
              connection lost mid-file is retried (`retries`, resuming each time), then left for a rerun.
  verified    the md5/sha256 the table publishes is checked before anything is unpacked; a mismatch
              deletes the part file. Where none is published, the first download records the sha256 and
              size it computed in <datasets>/.kelly-checksums.json and later downloads must match it.
  safe        every archive entry is checked before the first is written: absolute paths, "..", links
              whose target leaves the destination, and special files refuse the whole archive.
  atomic      archives are unpacked into a hidden temporary folder beside the destination, which is
              renamed into place once complete; a kill leaves either no dataset or a complete one
              visible to the readers, and the next run removes the temporary folder.
  idempotent  the unpacked folder carries a record (.kelly-download.json: archives, checksums, file
              count and bytes); a rerun that finds it matching the disk says "present, verified".
  checked     free disk space is compared with archive + unpacked size before downloading (with the
              published or server-announced sizes) and again before unpacking (with the exact sizes).

Fetching is `fetch.py`, checking and unpacking the archives `archives.py`; only the standard library
does the work (urllib, hashlib, zipfile, tarfile), tqdm draws the bars.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from common.errors import KellyError
from common.files import check_output_dir, describe_os_error, make_dir
from common.locks import FolderLock
from preprocess.datasets import catalog
from preprocess.datasets.archives import inspect_archive, unpack
from preprocess.datasets.catalog import Archive, Subset, human_size
from preprocess.datasets.fetch import CHUNK, check_space, fetch, read_json, write_json_atomic

DOWNLOADS_DIR = ".kelly-downloads"          # part files and kept archives, under the datasets folder
CHECKSUMS_FILE = ".kelly-checksums.json"    # checksums computed for archives that publish none
RECORD_FILE = ".kelly-download.json"        # inside an unpacked destination: what was installed
LOCK_FILE = ".kelly-download.lock"
TEMP_PREFIX = ".kelly-tmp-"
OLD_PREFIX = ".kelly-old-"


# --- small helpers -----------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def download_lock(datasets_dir: Path) -> FolderLock:
    """One `kelly datasets download` at a time per datasets folder (released by the OS on kill)."""
    return FolderLock(datasets_dir, LOCK_FILE, writes="the datasets", what="--datasets-dir",
                      busy="another `kelly datasets download` is running here")


def remove_temporaries(folder: Path) -> int:
    """Remove the temporary and replaced folders an interrupted run left in `folder`; return how many."""
    removed = 0
    if not folder.is_dir():
        return 0
    for entry in folder.iterdir():
        if entry.name.startswith((TEMP_PREFIX, OLD_PREFIX)):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
            removed += 1
    return removed



# --- verifying ----------------------------------------------------------------------------------------

def file_digests(path: Path, *, progress: bool = True, label: str = "") -> dict:
    """{"size", "md5", "sha256"} of a file, read once."""
    from tqdm import tqdm

    md5, sha256 = hashlib.md5(), hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                                     desc=f"verify {label or path.name}", disable=not progress,
                                     file=sys.stderr, dynamic_ncols=True) as bar:
        for block in iter(lambda: f.read(CHUNK), b""):
            md5.update(block)
            sha256.update(block)
            bar.update(len(block))
    return {"size": size, "md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def verify(archive: Archive, path: Path, digests: dict, recorded: dict | None) -> str:
    """Compare a downloaded file with the published (or recorded) size and checksums.

    Returns a phrase for the log ("sha256 as published", ...). Raises KellyError on a mismatch.
    """
    if archive.size is not None and digests["size"] != archive.size:
        raise KellyError(f"{archive.file_name}: {digests['size']:,} bytes, the published size is {archive.size:,}")
    if archive.checksum_published:
        for kind in ("sha256", "md5"):
            expected = getattr(archive, kind)
            if expected and digests[kind] != expected.lower():
                raise KellyError(f"{archive.file_name}: {kind} is {digests[kind]}, expected {expected} "
                                 f"({archive.source_note or 'published'})")
        return " and ".join(k for k in ("sha256", "md5") if getattr(archive, k)) + " as published"
    if recorded is None:
        return "no checksum published: sha256 recorded"
    if (recorded.get("sha256"), recorded.get("size")) != (digests["sha256"], digests["size"]):
        raise KellyError(f"{archive.file_name}: sha256 {digests['sha256']} ({digests['size']:,} bytes) differs from "
                         f"the one recorded on {recorded.get('recorded', '?')} ({recorded.get('sha256')}, "
                         f"{recorded.get('size', 0):,} bytes): the file changed on the server; if that is expected, "
                         f"remove its entry from {CHECKSUMS_FILE}")
    return "sha256 as recorded at the first download"


# --- what is installed --------------------------------------------------------------------------------

def tree_size(root: Path) -> tuple[int, int]:
    """(files, bytes) under `root`, links counted as files of size 0, the install record left out."""
    files = size = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.name != RECORD_FILE or os.path.dirname(entry.path) != str(root):
                    files += 1
                    size += 0 if entry.is_symlink() else entry.stat(follow_symlinks=False).st_size
    return files, size


@dataclass
class Installed:
    """The state of a subset's destination. `state`: "absent", "verified", "changed", "foreign" (present,
    not downloaded by kelly) or "other" (another subset of the source is installed there)."""

    state: str
    dest: Path
    record: dict | None = None
    detail: str = ""


def installed(subset: Subset, datasets_dir: Path, table: dict[str, catalog.Source] | None = None) -> Installed:
    """What `subset`'s destination holds: checked against its install record (file count and bytes)."""
    dest = Path(datasets_dir) / subset.dest
    if not dest.is_dir():
        return Installed("absent", dest)
    record_path = dest / RECORD_FILE
    if not record_path.is_file():
        return Installed("foreign", dest, None, "present, not downloaded by kelly (not verified)")
    record = read_json(record_path, None)
    if record.get("subset") != subset.name:
        sources = table or catalog.sources()
        holder = next((s for s in sources[subset.source].subsets if s.name == record.get("subset")), None)
        if holder is None or subset.name not in holder.contains:
            return Installed("other", dest, record, f"holds {subset.source}/{record.get('subset')}")
    files, size = tree_size(dest)
    if (files, size) != (record.get("files"), record.get("bytes")):
        return Installed("changed", dest, record,
                         f"changed since it was downloaded: {files:,} files, {human_size(size)} on disk; "
                         f"{record.get('files', 0):,} files, {human_size(record.get('bytes'))} unpacked")
    via = f" (as part of {subset.source}/{record['subset']})" if record.get("subset") != subset.name else ""
    return Installed("verified", dest, record,
                     f"present, verified{via}: {files:,} files, {human_size(size)}, "
                     f"downloaded {record.get('installed', '?')}")


# --- one subset ---------------------------------------------------------------------------------------

def _obtain(archive: Archive, downloads: Path, datasets_dir: Path, *, retries: int, timeout: float, progress: bool,
            say: Callable[[str], None]) -> tuple[Path, dict]:
    """The verified archive file in `downloads` (downloaded or resumed as needed) and its digests
    (with "record": True when no checksum was published or recorded yet: `_record_checksum` keeps it
    once the archive has proved readable)."""
    final = downloads / archive.file_name
    part = downloads / f"{archive.file_name}.part"
    checksums_path = datasets_dir / CHECKSUMS_FILE
    recorded = None if archive.checksum_published else read_json(checksums_path, {}).get(archive.file_name)
    if final.is_file():           # kept from an earlier run (--keep-archives, or stopped before unpacking)
        digests = file_digests(final, progress=progress)
        try:
            how = verify(archive, final, digests, recorded)
        except KellyError as exc:
            final.unlink()
            say(f"  {archive.file_name}: the kept copy does not verify ({exc}); downloading it again")
        else:
            say(f"  {archive.file_name}: kept copy verified ({how})")
            digests["record"] = not archive.checksum_published and recorded is None
            return final, digests
    size_text = human_size(archive.display_size())
    say(f"  {archive.file_name} ({size_text}) from {archive.url}")
    fetch(archive.url, part, expected_size=archive.size, retries=retries, timeout=timeout, progress=progress,
          label=archive.file_name, say=say)
    digests = file_digests(part, progress=progress, label=archive.file_name)
    try:
        how = verify(archive, part, digests, recorded)
    except KellyError as exc:
        part.unlink(missing_ok=True)
        part.with_name(part.name + ".json").unlink(missing_ok=True)
        raise KellyError(f"{exc}; the download was deleted, run the command again to fetch it afresh") from None
    digests["record"] = not archive.checksum_published and recorded is None
    say(f"  {archive.file_name}: {digests['size']:,} bytes, {how}")
    os.replace(part, final)
    part.with_name(part.name + ".json").unlink(missing_ok=True)
    return final, digests


def _record_checksum(datasets_dir: Path, archive: Archive, digests: dict) -> None:
    """Keep the sha256 and size of an archive that publishes no checksum, for later downloads to match."""
    path = datasets_dir / CHECKSUMS_FILE
    records = read_json(path, {})
    records[archive.file_name] = {"url": archive.url, "size": digests["size"], "sha256": digests["sha256"],
                                  "md5": digests["md5"], "recorded": _now()}
    write_json_atomic(path, records)


def install(subset: Subset, datasets_dir: Path, source: catalog.Source, *, table=None, force: bool = False,
            keep_archives: bool = False, retries: int = 3, timeout: float = 60.0, progress: bool = True,
            say: Callable[[str], None] = print) -> Installed:
    """Fetch, verify and unpack `subset` into datasets_dir/subset.dest; return what is installed."""
    datasets_dir = Path(datasets_dir)
    state = installed(subset, datasets_dir, table)
    if state.state == "verified" and not force:
        say(f"{subset.key}: {state.detail} in {state.dest}")
        return state
    if state.state == "foreign" and not force:
        say(f"{subset.key}: {state.dest} is {state.detail}; left as it is (--force replaces it)")
        return state
    if state.state == "changed" and not force:
        raise KellyError(f"{subset.key}: {state.dest} {state.detail}; --force downloads it again and replaces it")
    replaces_contained = state.state == "other" and state.record.get("subset") in subset.contains
    if state.state == "other" and not force and not replaces_contained:
        raise KellyError(f"{subset.key}: {state.dest} {state.detail}; --force replaces it")

    dest = state.dest
    downloads = datasets_dir / DOWNLOADS_DIR
    downloads.mkdir(parents=True, exist_ok=True)
    say(f"{subset.key}: {source.title}; {subset.title}")
    say(f"  licence: {source.licence}" + (f" (see {source.homepage})" if source.homepage else ""))
    pending = [a for a in subset.archives if not (downloads / a.file_name).is_file()]
    archive_bytes = sum(a.display_size() or 0 for a in pending)
    partial = sum((downloads / f"{a.file_name}.part").stat().st_size for a in pending
                  if (downloads / f"{a.file_name}.part").is_file())
    unpacked = subset.extracted_size if subset.extracted_size is not None else \
        sum(a.display_size() or 0 for a in subset.archives)
    check_space(datasets_dir, max(archive_bytes - partial, 0) + unpacked,
                f"{subset.key} ({human_size(archive_bytes)} of archives, "
                f"{'about ' if subset.extracted_size else 'at least '}{human_size(unpacked)} unpacked)")

    obtained = [(a, *_obtain(a, downloads, datasets_dir, retries=retries, timeout=timeout, progress=progress, say=say))
                for a in subset.archives]
    plans = []
    for archive, path, digests in obtained:
        try:
            members, total, skipped = inspect_archive(archive, path)
        except KellyError as exc:
            path.unlink(missing_ok=True)
            raise KellyError(f"{exc}; the download was deleted") from None
        if digests.pop("record"):
            _record_checksum(datasets_dir, archive, digests)
        if skipped:
            say(f"  {archive.file_name}: {len(skipped):,} entries outside {archive.member_root}/ left out "
                f"(e.g. {skipped[0]})")
        plans.append((archive, path, digests, members, total))
    dest.parent.mkdir(parents=True, exist_ok=True)
    check_space(dest.parent, sum(p[4] for p in plans), f"unpacking {subset.key}")

    temp = dest.parent / f"{TEMP_PREFIX}{dest.name}-{secrets.token_hex(4)}"
    temp.mkdir()
    try:
        for archive, path, _, members, _ in plans:
            unpack(archive, path, members, temp, progress=progress)
        files, size = tree_size(temp)
        record = {
            "source": subset.source, "subset": subset.name, "layout": subset.layout, "installed": _now(),
            "files": files, "bytes": size,
            "archives": [{"file": a.file_name, "url": a.url, "size": d["size"], "md5": d["md5"],
                          "sha256": d["sha256"], "checksum": "published" if a.checksum_published else "recorded"}
                         for a, _, d, _, _ in plans],
        }
        write_json_atomic(temp / RECORD_FILE, record)
        if dest.exists() or dest.is_symlink():
            old = dest.parent / f"{OLD_PREFIX}{dest.name}-{secrets.token_hex(4)}"
            os.rename(dest, old)
            os.rename(temp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temp, dest)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    if not keep_archives:
        for _, path, *_ in plans:
            path.unlink(missing_ok=True)
    say(f"  unpacked {files:,} files ({human_size(size)}) into {dest} (layout {subset.layout})")
    return Installed("verified", dest, record, "installed")


def download(names: list[str], datasets_dir: Path | str, *, subsets: list[str] | None = None,
             mirror: str | None = None, catalog_file: str | Path | None = None, force: bool = False,
             keep_archives: bool = False, retries: int = 3, timeout: float = 60.0, progress: bool = True,
             say: Callable[[str], None] = print) -> list[Installed]:
    """Install the default subsets of `names` (or `subsets`) under `datasets_dir`, one after the other."""
    table = catalog.load(catalog_file)
    if names == ["all"]:
        names = [name for name, source in table.items() if source.subsets]
    chosen = catalog.select(table, names, subsets)
    datasets_dir = Path(datasets_dir)
    check_output_dir(datasets_dir, "--datasets-dir")       # a file on the way, a read-only folder: one line
    make_dir(datasets_dir, "--datasets-dir")
    try:
        return _download_all(chosen, datasets_dir, table, mirror=mirror, force=force, keep_archives=keep_archives,
                             retries=retries, timeout=timeout, progress=progress, say=say)
    except OSError as exc:                  # the disk filled up, a folder turned read-only, ... while writing
        where = exc.filename or datasets_dir
        raise KellyError(f"{where}: cannot write the download: {describe_os_error(exc)}") from None


def _download_all(chosen: list[Subset], datasets_dir: Path, table: dict, *, mirror, force, keep_archives, retries,
                  timeout, progress, say) -> list[Installed]:
    results = []
    with download_lock(datasets_dir):
        for folder in {datasets_dir, *((datasets_dir / s.dest).parent for s in chosen)}:
            remove_temporaries(folder)
        for subset in chosen:
            if mirror:
                subset = replace(subset, archives=tuple(catalog.with_mirror(a, mirror) for a in subset.archives))
            results.append(install(subset, datasets_dir, table[subset.source], table=table, force=force,
                                   keep_archives=keep_archives, retries=retries, timeout=timeout,
                                   progress=progress, say=say))
        downloads = datasets_dir / DOWNLOADS_DIR
        if downloads.is_dir() and not any(downloads.iterdir()):
            downloads.rmdir()
    return results
