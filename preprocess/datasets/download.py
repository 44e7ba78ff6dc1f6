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

Only the standard library does the work (urllib, hashlib, zipfile, tarfile); tqdm draws the bars.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import secrets
import shutil
import socket
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from http.client import HTTPException
from pathlib import Path
from typing import Callable

from common.errors import KellyError
from common.locks import FolderLock
from preprocess.datasets import catalog
from preprocess.datasets.catalog import Archive, Subset, human_size

DOWNLOADS_DIR = ".kelly-downloads"          # part files and kept archives, under the datasets folder
CHECKSUMS_FILE = ".kelly-checksums.json"    # checksums computed for archives that publish none
RECORD_FILE = ".kelly-download.json"        # inside an unpacked destination: what was installed
LOCK_FILE = ".kelly-download.lock"
TEMP_PREFIX = ".kelly-tmp-"
OLD_PREFIX = ".kelly-old-"
CHUNK = 1 << 20
USER_AGENT = "kelly-ml dataset downloader (python urllib)"
#: archive debris that is skipped silently when it lies outside an archive's member_root
_DEBRIS = {"__MACOSX", ".DS_Store"}


# --- small helpers -----------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KellyError(f"{path}: not readable JSON ({exc}); delete it to start afresh") from None


def check_space(folder: Path, needed: int, what: str) -> None:
    """KellyError when the file system holding `folder` has fewer than `needed` bytes free."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise KellyError(f"{folder}: not enough disk space for {what}: needs {human_size(needed)}, "
                         f"{human_size(free)} free")


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


# --- fetching ----------------------------------------------------------------------------------------

class _Interrupted(Exception):
    """The transfer stopped before the end; the part file keeps what arrived."""


def _describe_url_error(url: str, exc: urllib.error.URLError) -> str:
    reason = exc.reason
    host = urllib.request.urlparse(url).netloc
    if isinstance(reason, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(reason, socket.gaierror):
        why = "host name not found (no network?)"
    elif isinstance(reason, (TimeoutError, socket.timeout)):
        why = "timed out"
    else:
        why = str(reason)
    return f"cannot reach {host} for {url}: {why}"


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) from "bytes 100-199/200" or "bytes */200"."""
    match = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value or "")
    if not match:
        return None, None
    first = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return first, total


def _fetch_once(url: str, part: Path, state_path: Path, *, expected_size: int | None, timeout: float,
                progress: bool, label: str, say: Callable[[str], None]) -> None:
    """One HTTP request: continue `part` from its current size (Range) or start it again."""
    from tqdm import tqdm

    state = _read_json(state_path, {})
    have = part.stat().st_size if part.exists() else 0
    if have and state.get("url") != url:
        say(f"  {label}: the partial download came from another address; starting again")
        have = 0
    if expected_size is not None and have > expected_size:
        say(f"  {label}: the partial download is longer than the published size; starting again")
        have = 0
    if expected_size is not None and have == expected_size:
        return
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = state.get("etag") or state.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:            # nothing after `have`: complete, or the server's file shrank
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total == have:
                return
            part.unlink(missing_ok=True)
            raise _Interrupted("the server's file is shorter than the partial download; starting again") from None
        if exc.code >= 500 or exc.code == 429:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from None
        raise KellyError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)) and have:
            raise _Interrupted("timed out") from None
        raise KellyError(_describe_url_error(url, exc)) from None
    except ValueError as exc:               # not a URL urllib can open
        raise KellyError(f"{url!r}: {exc}") from None
    except (TimeoutError, socket.timeout):
        raise _Interrupted("timed out") from None
    except (ConnectionError, HTTPException) as exc:
        raise _Interrupted(f"{type(exc).__name__}: {exc}") from None

    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if response.status == 206:
            first, total = _content_range(response.headers.get("Content-Range"))
            if first != have:
                part.unlink(missing_ok=True)
                raise _Interrupted(f"asked for bytes from {have:,}, the server sent them from {first}; starting again")
            mode = "ab"
        else:
            if have:
                say(f"  {label}: the server does not resume downloads (or the file changed); starting again")
            have, mode = 0, "wb"
            total = length
        if total is None and length is not None:
            total = have + length
        if expected_size is not None and total is not None and total != expected_size:
            raise KellyError(f"{url}: the server offers {total:,} bytes, the published size is {expected_size:,}")
        remaining = (total - have) if total is not None else None
        if remaining:
            check_space(part.parent, remaining, f"the rest of {part.name[:-5]}")
        _write_json_atomic(state_path, {"url": url, "etag": response.headers.get("ETag"),
                                        "last_modified": response.headers.get("Last-Modified"), "total": total})
        got = 0
        with open(part, mode) as out, tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                                           desc=label, disable=not progress, file=sys.stderr,
                                           dynamic_ncols=True, miniters=1) as bar:
            try:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    got += len(block)
                    bar.update(len(block))
            except (TimeoutError, socket.timeout):
                raise _Interrupted("timed out") from None
            except (ConnectionError, HTTPException, OSError) as exc:
                raise _Interrupted(f"{type(exc).__name__}: {exc}") from None
        if remaining is not None and got < remaining:
            raise _Interrupted(f"the connection closed after {have + got:,} of {total:,} bytes")


def fetch(url: str, part: Path, *, expected_size: int | None = None, retries: int = 3, timeout: float = 60.0,
          progress: bool = True, label: str = "", say: Callable[[str], None] = print) -> Path:
    """Download `url` into `part`, continuing what `part` already holds; return `part` when complete.

    A transfer cut short is retried up to `retries` times (each resuming where it stopped); after that
    the part file is kept and KellyError says how far it got, so that a rerun resumes.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    state_path = part.with_name(part.name + ".json")
    label = label or part.name[:-5]
    attempt = 0
    while True:
        try:
            _fetch_once(url, part, state_path, expected_size=expected_size, timeout=timeout, progress=progress,
                        label=label, say=say)
            return part
        except _Interrupted as exc:
            attempt += 1
            have = part.stat().st_size if part.exists() else 0
            if attempt > retries:
                raise KellyError(f"{url}: download interrupted ({exc}); {have:,} bytes kept in {part}: "
                                 "run the command again to resume") from None
            wait = min(2 ** (attempt - 1), 30)
            say(f"  {label}: {exc}; retrying in {wait} s from byte {have:,}")
            time.sleep(wait)


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


# --- archive members ---------------------------------------------------------------------------------

@dataclass
class Member:
    """One archive entry to install: `path` relative to the destination, `kind` file/dir/symlink/hardlink."""

    index: int
    name: str                 # as written in the archive
    path: str                 # where it goes, relative to the destination ("" for the destination itself)
    kind: str
    size: int = 0
    link: str = ""            # symlink: target as written; hardlink: the destination path of its target
    mtime: float | None = None


def _clean_name(name: str, archive_name: str) -> list[str]:
    """The parts of an archive entry name, refusing absolute paths and "..": KellyError naming the entry."""
    text = name.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text) or "\x00" in text:
        raise KellyError(f"{archive_name}: entry {name!r} is an absolute path; refusing to unpack this archive")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise KellyError(f"{archive_name}: entry {name!r} escapes the destination (\"..\"); "
                         "refusing to unpack this archive")
    return parts


def _placed(parts: list[str], archive: Archive) -> str | None:
    """The destination-relative path of an entry, or None when it lies outside `archive.member_root`."""
    root = [p for p in archive.member_root.split("/") if p]
    if parts[: len(root)] != root:
        return None
    rest = parts[len(root):]
    into = [p for p in archive.into.split("/") if p]
    return "/".join(into + rest)


def _check_link(member: Member, archive_name: str, files: dict[str, Member]) -> None:
    """A link must name a regular file that this archive installs (so it cannot leave the destination
    nor lead through another link)."""
    if member.kind == "symlink":
        if member.link.startswith("/") or re.match(r"^[A-Za-z]:", member.link):
            target = None
        else:
            target = posixpath.normpath(posixpath.join(posixpath.dirname(member.path), member.link))
    else:
        target = member.link
    if target is None or target == ".." or target.startswith("../") or target not in files:
        raise KellyError(f"{archive_name}: entry {member.name!r} is a link to {member.link!r}, outside what the "
                         "archive installs; refusing to unpack this archive")


def _inspect_members(archive: Archive, path: Path, entries) -> tuple[list[Member], int, list[str]]:
    """Check every entry; return (members to install in archive order, bytes they occupy, skipped names)."""
    members: list[Member] = []
    skipped: list[str] = []
    files: dict[str, Member] = {}
    placed_any = False
    for index, (name, kind, size, link, mtime) in enumerate(entries):
        parts = _clean_name(name, archive.file_name)
        if kind == "special":
            raise KellyError(f"{archive.file_name}: entry {name!r} is a device or pipe; "
                             "refusing to unpack this archive")
        if kind == "hardlink":
            link_parts = _clean_name(link, archive.file_name)
            link = _placed(link_parts, archive) or "../outside"
        if parts and parts[0] in _DEBRIS:
            continue
        placed = _placed(parts, archive)
        if placed is None:
            skipped.append(name)
            continue
        placed_any = placed_any or bool(placed) or kind == "dir"
        if not placed:
            continue
        member = Member(index, name, placed, kind, size, link, mtime)
        if kind in ("symlink", "hardlink"):
            _check_link(member, archive.file_name, files)
            if kind == "hardlink":          # installed as a copy of its target
                member.size = files[member.link].size
        if kind == "file":
            files[placed] = member
        members.append(member)
    if not placed_any:
        raise KellyError(f"{archive.file_name}: holds nothing under {archive.member_root!r}/ "
                         f"(found e.g. {', '.join(n for n, *_ in list(entries)[:3]) or 'no entries'}); "
                         "not the expected archive")
    total = sum(m.size for m in members if m.kind in ("file", "hardlink"))
    return members, total, skipped


def _zip_entries(zf: zipfile.ZipFile):
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if info.is_dir():
            kind, link = "dir", ""
        elif stat.S_ISLNK(mode):
            kind, link = "symlink", zf.read(info).decode("utf-8", "surrogateescape")
        elif mode and not stat.S_ISREG(mode) and stat.S_IFMT(mode):
            kind, link = "special", ""
        else:
            kind, link = "file", ""
        mtime = time.mktime(info.date_time + (0, 0, -1)) if info.date_time[0] >= 1980 else None
        yield info.filename, kind, info.file_size, link, mtime


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.isdir():
        return "dir"
    if info.isreg():
        return "file"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "special"


def _tar_entries(path: Path):
    with tarfile.open(path, "r|*") as tf:
        for info in tf:
            yield info.name, _tar_kind(info), info.size if info.isreg() else 0, info.linkname, float(info.mtime)


def _is_zip(archive: Archive) -> bool:
    return archive.file_name.lower().endswith(".zip")


def inspect_archive(archive: Archive, path: Path) -> tuple[list[Member], int, list[str]]:
    """Read an archive's entries (zip by its name, else tar with any compression) and check each one,
    before anything is written."""
    try:
        if _is_zip(archive):
            with zipfile.ZipFile(path) as zf:
                return _inspect_members(archive, path, list(_zip_entries(zf)))
        return _inspect_members(archive, path, list(_tar_entries(path)))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, RuntimeError, ValueError) as exc:
        raise KellyError(f"{path}: not a readable {'zip' if _is_zip(archive) else 'tar'} archive ({exc})") from None


def _guarded(root: Path, relative: str) -> Path:
    """root/relative, after checking that its folder really lies inside `root` (links included)."""
    target = root / relative
    parent = os.path.realpath(target.parent)
    if parent != os.path.realpath(root) and not parent.startswith(os.path.realpath(root) + os.sep):
        raise KellyError(f"{relative}: would be written outside {root}; refusing")
    return target


def _write_member(root: Path, member: Member, stream) -> None:
    """Write one member under `root` (`stream` is its data for a file)."""
    if member.kind == "dir":
        _guarded(root, member.path + "/x").parent.mkdir(parents=True, exist_ok=True)
        return
    target = _guarded(root, member.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        target.unlink()
    if member.kind == "symlink":
        os.symlink(member.link, target)
        return
    if member.kind == "hardlink":
        shutil.copyfile(_guarded(root, member.link), target)
    else:
        with open(target, "wb") as out:
            shutil.copyfileobj(stream, out, CHUNK)
    if member.mtime is not None:
        os.utime(target, (member.mtime, member.mtime))


def unpack(archive: Archive, path: Path, members: list[Member], root: Path, *, progress: bool = True) -> None:
    """Write `members` (from `inspect_archive`) of the archive at `path` under `root`."""
    by_index = {m.index: m for m in members}
    total = sum(m.size for m in members)
    try:
        _unpack(archive, path, by_index, root, total, progress)
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError, RuntimeError) as exc:
        raise KellyError(f"{path}: cannot unpack into {root}: {exc}") from None


def _unpack(archive: Archive, path: Path, by_index: dict[int, Member], root: Path, total: int, progress: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"unpack {archive.file_name}",
              disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
        if _is_zip(archive):
            with zipfile.ZipFile(path) as zf:
                for index, info in enumerate(zf.infolist()):
                    member = by_index.get(index)
                    if member is None:
                        continue
                    if member.kind == "file":
                        with zf.open(info) as stream:
                            _write_member(root, member, stream)
                    else:
                        _write_member(root, member, None)
                    bar.update(member.size)
            return
        with tarfile.open(path, "r|*") as tf:
            for index, info in enumerate(tf):
                member = by_index.get(index)
                if member is None:
                    continue
                if member.kind == "file":
                    stream = tf.extractfile(info)
                    _write_member(root, member, stream)
                else:
                    _write_member(root, member, None)
                bar.update(member.size)


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
    record = _read_json(record_path, None)
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
    recorded = None if archive.checksum_published else _read_json(checksums_path, {}).get(archive.file_name)
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
    records = _read_json(path, {})
    records[archive.file_name] = {"url": archive.url, "size": digests["size"], "sha256": digests["sha256"],
                                  "md5": digests["md5"], "recorded": _now()}
    _write_json_atomic(path, records)


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
        _write_json_atomic(temp / RECORD_FILE, record)
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
    table = catalog.sources(catalog.read_overrides(catalog_file))
    if names == ["all"]:
        names = [name for name, source in table.items() if source.subsets]
    chosen = catalog.select(table, names, subsets)
    datasets_dir = Path(datasets_dir)
    if datasets_dir.exists() and not datasets_dir.is_dir():
        raise KellyError(f"{datasets_dir}: exists and is not a folder")
    datasets_dir.mkdir(parents=True, exist_ok=True)
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
