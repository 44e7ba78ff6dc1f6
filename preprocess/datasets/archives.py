"""Archive entries checked before anything is written, then unpacked: zip by its name, tar otherwise.

    members, total_bytes, skipped = inspect_archive(archive, path)
    unpack(archive, path, members, into_folder)

Every entry is checked before the first is written: absolute paths, "..", links whose target
leaves the destination (or leads through another link), and special files (devices, pipes)
refuse the whole archive. Entries outside the archive's `member_root` are left out and named;
archive debris (__MACOSX, .DS_Store) is skipped silently. Hard links are installed as copies.
"""
from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from common.errors import KellyError
from preprocess.datasets.catalog import Archive
from preprocess.datasets.fetch import CHUNK

#: archive debris that is skipped silently when it lies outside an archive's member_root
_DEBRIS = {"__MACOSX", ".DS_Store"}


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
