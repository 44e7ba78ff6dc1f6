"""`kelly datasets list` and `kelly datasets download`: the official datasets, fetched and checked."""
from __future__ import annotations

import argparse
from pathlib import Path

from preprocess.datasets import catalog


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def add_parsers(subparsers) -> None:
    """Register `datasets list` and `datasets download` on the `kelly` command."""
    names = [s.name for s in catalog.SOURCES]
    d = subparsers.add_parser(
        "datasets", help="list, download and check the real datasets",
        description="The real datasets: what each one is, where it comes from and under which licence, what is "
                    "present under the datasets folder, and a downloader that resumes, verifies and unpacks "
                    "them into the layouts `kelly preprocess` reads.")
    sub = d.add_subparsers(dest="datasets_command", metavar="ACTION")
    sub.required = True
    catalog_help = (f"JSON file overriding the table's URLs, sizes and checksums (default: ${catalog.CATALOG_ENV}); "
                    "see preprocess/datasets/catalog.py")

    lst = sub.add_parser("list", help="what each dataset is, and what is present locally",
                         description="One entry per dataset and subset: what it is, its archives and their size, "
                                     "its licence, where it goes, and what the readers find there (layout, items, "
                                     "files its metadata lists that are missing).")
    lst.add_argument("--datasets-dir", type=Path, default=Path("datasets"),
                     help="the datasets folder (default: ./datasets)")
    lst.add_argument("--catalog", default=None, metavar="FILE", help=catalog_help)
    lst.set_defaults(func=list_command)

    dl = sub.add_parser(
        "download", help="download, verify and unpack datasets",
        description="Download the named datasets' archives (resuming partial downloads), check their published "
                    "checksums (or record one where none is published), and unpack them atomically into the "
                    "layouts `kelly preprocess` detects. Each dataset's licence is printed first. A dataset "
                    "already present and matching its download record is left alone.",
        epilog="Subsets: " + "; ".join(
            f"{s.name}: " + ", ".join(sub.name + ("*" if sub.default else "") for sub in s.subsets)
            for s in catalog.SOURCES if s.subsets) + " (* = fetched by default). The chord progressions have no "
            "public archive (see datasets/README.md for their JSON format).")
    dl.add_argument("names", nargs="+", choices=["all", *names], metavar="NAME",
                    help=f"{', '.join(names)}, or all")
    dl.add_argument("--datasets-dir", type=Path, default=Path("datasets"),
                    help="the datasets folder (default: ./datasets)")
    dl.add_argument("--subset", nargs="+", default=None, metavar="SUBSET",
                    help="fetch these subsets instead of the defaults, e.g. audio (MAESTRO or Groove with audio), "
                         "lmd_matched clean_midi, or maestro/audio")
    dl.add_argument("--mirror", default=None, metavar="BASE",
                    help="fetch each archive from BASE/<official file name> (checksums unchanged)")
    dl.add_argument("--catalog", default=None, metavar="FILE", help=catalog_help)
    dl.add_argument("--force", action="store_true",
                    help="download again and replace a destination that is present (changed, or not downloaded here)")
    dl.add_argument("--keep-archives", action="store_true",
                    help="keep the verified archives in <datasets>/.kelly-downloads/ after unpacking")
    dl.add_argument("--retries", type=_non_negative_int, default=3,
                    help="times a dropped connection is resumed before giving up (default: 3)")
    dl.add_argument("--timeout", type=_seconds, default=60.0, metavar="SECONDS",
                    help="network timeout per request and per read (default: 60)")
    dl.add_argument("--quiet", action="store_true", help="no progress bars")
    dl.set_defaults(func=download_command)


def download_command(args) -> int:
    from preprocess.datasets.download import download

    download(args.names, args.datasets_dir, subsets=args.subset, mirror=args.mirror, catalog_file=args.catalog,
             force=args.force, keep_archives=args.keep_archives, retries=args.retries, timeout=args.timeout,
             progress=not args.quiet)
    return 0


def list_command(args) -> int:
    from common.errors import KellyError

    for folder in (args.datasets_dir, *args.datasets_dir.parents):     # a file where a folder should be
        if folder.exists():
            if not folder.is_dir():
                fault = "is a file" if folder == args.datasets_dir else f"cannot exist: {folder} is a file"
                raise KellyError(f"{args.datasets_dir}: {fault}, not a folder (--datasets-dir)")
            break
    table = catalog.load(args.catalog)
    print(report(args.datasets_dir, table))
    return 0


def found(datasets_dir: Path, name: str) -> list[str]:
    """What the readers find for source `name`: its layout, root and item count, the files its
    metadata lists that are missing, and the files under its folder that are not used, by why (one
    line each)."""
    from preprocess.datasets import READERS, locate
    from preprocess.datasets.base import missing_lines, unused_lines
    from common.errors import KellyError

    if not datasets_dir.is_dir():
        return ["nothing: the datasets folder does not exist"]
    if name not in READERS:
        return [f"not read by `kelly preprocess` in this version (no {name} reader)"]
    try:
        root, layout = locate(datasets_dir, name)
    except KellyError:
        return ["nothing"]
    where = f"{layout} at {root}"
    if name == "lakh":       # no listing to compare with; counting avoids hashing clean_midi's files
        return [f"{where}: {_lakh_survey(root, layout)}"]
    try:
        result = READERS[name].load(root, layout)
    except KellyError as exc:
        return [f"{where}: unreadable: {exc}"]
    return [f"{where}: {len(result.items):,} items", *missing_lines(result.missing_summary()),
            *unused_lines(result.unused_summary())]


def _lakh_survey(root: Path, layout: str) -> str:
    """"12,345 MIDI files; 3 other entries (2 links that lead nowhere, ...)" for a Lakh layout, without
    reading a file (the duplicates among the MIDI files are found when the source is read)."""
    from preprocess.datasets.base import MIDI_EXTENSIONS
    from preprocess.datasets.lakh import layout_dir
    from preprocess.datasets.tree import Survey

    survey = Survey.of(layout_dir(root, layout), MIDI_EXTENSIONS)
    midi = len(survey.with_extension(MIDI_EXTENSIONS))
    reasons: dict[str, int] = {}
    for _, reason in survey.odd:
        reasons[reason] = reasons.get(reason, 0) + 1
    others = len(survey.files) - midi
    if others:
        reasons["not a MIDI file"] = others
    text = f"{midi:,} MIDI files"
    if reasons:
        text += "; not used: " + ", ".join(f"{n:,} {why}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    return text


def _published(archive: catalog.Archive) -> str:
    if not archive.checksum_published:
        return ""
    return f", {'sha256' if archive.sha256 else 'md5'} published"


def report(datasets_dir: Path, table: dict[str, catalog.Source]) -> str:
    """The text of `kelly datasets list`."""
    from preprocess.datasets.download import installed
    from common.errors import KellyError

    datasets_dir = Path(datasets_dir)
    lines = [f"datasets for {datasets_dir}/ (licences differ and several are non-commercial: read them before use)"]
    for source in table.values():
        lines += ["", f"{source.name}: {source.title}", f"  licence: {source.licence}"]
        if source.homepage:
            lines.append(f"  home:    {source.homepage}")
        found_lines = found(datasets_dir, source.name)
        lines.append(f"  found:   {found_lines[0]}")
        lines += [f"           {line}" for line in found_lines[1:]]
        if not source.subsets:
            lines.append(f"  download: none; {source.no_archive}")
        for subset in source.subsets:
            archives = ", ".join(f"{a.file_name} ({catalog.human_size(a.display_size())}{_published(a)})"
                                 for a in subset.archives)
            try:
                state = installed(subset, datasets_dir, table)
                status = "absent" if state.state == "absent" else state.detail
            except KellyError as exc:          # a damaged download record: say so, list the rest
                status = str(exc)
            lines.append(f"  {subset.key}{' (default)' if subset.default else ''}: {subset.title}")
            lines.append(f"           {archives}")
            lines.append(f"           -> {datasets_dir / subset.dest}/ ({subset.layout}): {status}")
    return "\n".join(lines)
