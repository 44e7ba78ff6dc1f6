"""`kelly export` and `kelly verify`.

    kelly export --checkpoint-dir runs/checkpoints --output models/ [--models emotion melody ...]
    kelly verify models/*.json [--check-specs] [--checkpoint-dir DIR] [--rtneural-dir PATH]
                 [--rtneural-backend stl eigen xsimd] [--tolerance 1e-6]

`export` writes one RTNeural JSON per network (the plugin's file names) and its C++ header
(`emotionrecognizer.h`, export.header), and verifies each against its checkpoint; `verify` checks
files already written. Results go to stdout, faults to stderr (one line each, naming the file,
the layer and the fault); both exit 1 when a file fails and 2 on a usage error (a missing or
empty folder, a bad setting), which is found before any heavy work starts: `export` checks its
output folder and that every checkpoint it needs is there before it loads PyTorch, and removes
the temporaries a killed export left.
"""
from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

from common.errors import KellyError
from export.plugin import EXPORTED, PLUGIN_NETWORKS
from export.report import TOLERANCE

NETWORK_KEYS = EXPORTED
BACKENDS = ("stl", "eigen", "xsimd")


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1 (exclusive)")
    return value


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write trained networks as RTNeural JSON and C++ headers, and verify them",
        description="Write one RTNeural JSON per network (emotionrecognizer.json, ...) from the best "
                    "checkpoints, with the input standardisation folded into the first layer and a "
                    "metadata block, and beside each a C++ header (emotionrecognizer.h) with the "
                    "network's RTNeural::ModelT type, its I/O contract and a loader; then verify each "
                    "file against its checkpoint.",
    )
    p.add_argument("--checkpoint-dir", type=Path, required=True,
                   help="folder with <classname>_best.pt (or a training output folder with checkpoints/)")
    p.add_argument("--output", type=Path, default=Path("models"), help="folder for the JSON files (default: models/)")
    p.add_argument("--models", nargs="+", choices=NETWORK_KEYS, default=list(NETWORK_KEYS), metavar="NETWORK",
                   help=f"networks to export (default: all of {', '.join(NETWORK_KEYS)})")
    p.add_argument("--which", choices=("best", "latest"), default="best", help="checkpoint to export (default: best)")
    p.set_defaults(func=run_export)

    p = subparsers.add_parser(
        "verify",
        help="check RTNeural JSON files: structure, the plugin's spec, numbers against PyTorch",
        description="Check exported RTNeural JSON files as RTNeural's parser reads them; with "
                    "--check-specs against the plugin's five network shapes; with --checkpoint-dir "
                    "numerically against the PyTorch checkpoints; with --rtneural-dir through the real "
                    "RTNeural library (a checkout; needs a C++ compiler): its run-time parser and the "
                    "compile-time types of the header beside each file. Results on stdout, faults on stderr.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.json")
    p.add_argument("--check-specs", action="store_true", help="compare layers, sizes, activations and parameter counts with the plugin's")
    p.add_argument("--checkpoint-dir", type=Path, help="compare outputs with these PyTorch checkpoints (<classname>_best.pt)")
    p.add_argument("--which", choices=("best", "latest"), default="best", help="checkpoint to compare with (default: best)")
    p.add_argument("--rtneural-dir", type=Path,
                   help="an RTNeural checkout: compile the headers and a check program against it and run "
                        "the files through RTNeural's run-time parser and the headers' compile-time types")
    p.add_argument("--rtneural-backend", nargs="+", choices=BACKENDS, metavar="BACKEND",
                   help="RTNeural backends for --rtneural-dir: stl, eigen (modules/Eigen), xsimd "
                        "(modules/xsimd or a system xsimd); default: every one the checkout provides")
    p.add_argument("--tolerance", type=_tolerance, default=TOLERANCE,
                   help=f"max |difference| accepted on any output value (default: {TOLERANCE:g}; loosen it "
                        "only to look at a file that fails, never for a file the plugin ships)")
    p.set_defaults(func=run_verify)


def checkpoints_to_export(checkpoint_dir: str | Path, keys, which: str = "best") -> dict[str, Path]:
    """key -> the checkpoint file to export, found without loading anything; KellyError naming the
    folder when it is not one or holds no checkpoint of a network asked for."""
    from train.outputs import find_checkpoint

    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "checkpoint folder not found"
        raise KellyError(f"{folder}: {what} (--checkpoint-dir)")
    return {key: find_checkpoint(folder, key, which) for key in keys}


def export_networks(checkpoint_dir: str | Path, output: str | Path, keys=NETWORK_KEYS, *, which: str = "best"):
    """Export and verify each network: JSON and header; returns [(json path, Report)]."""
    from common.files import check_output_dir, remove_stale_temporaries
    from export.header import header_name, write_header
    from export.rtneural import file_name

    check_output_dir(output, "--output")
    paths = checkpoints_to_export(checkpoint_dir, keys, which)

    from export.metadata import build_metadata
    from export.rtneural import model_to_rtneural, write_json
    from export.verify import load_checked_network, verify_file

    # temporaries of a killed export: this version's, and the "<name>.json.tmp" of earlier ones
    names = [file_name(name) for name in PLUGIN_NETWORKS] + [header_name(name) for name in PLUGIN_NETWORKS]
    remove_stale_temporaries(output, targets=names, also=[f"{glob.escape(name)}.tmp" for name in names])
    results = []
    for key, checkpoint_path in paths.items():
        model, checkpoint = load_checked_network(checkpoint_path, key)
        document = {"metadata": build_metadata(model, checkpoint, checkpoint_path=checkpoint_path)}
        document.update(model_to_rtneural(model))
        path = write_json(document, Path(output) / file_name(model.name))
        write_header(document, path)
        results.append((path, verify_file(path, check_specs=True, checkpoint=model)))
    return results


def print_reports(reports) -> int:
    """Each report's summary on stdout and its faults on stderr; the number that failed."""
    for report in reports:
        print(report.summary())
        for line in report.fault_lines():
            print(line, file=sys.stderr)
    return sum(not report.ok for report in reports)


def run_export(args: argparse.Namespace) -> int:
    results = export_networks(args.checkpoint_dir, args.output, args.models, which=args.which)
    failed = print_reports([report for _, report in results])
    print(f"exported {len(results)} network(s) with their C++ headers to {args.output}; "
          f"{len(results) - failed} verified" + (f", {failed} FAILED" if failed else ""))
    return 1 if failed else 0


def run_verify(args: argparse.Namespace) -> int:
    from export.verify import verify_file

    missing = [path for path in args.files if not path.is_file()]
    if missing:
        raise KellyError(f"{missing[0]}: no such file" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if args.checkpoint_dir is not None and not args.checkpoint_dir.is_dir():
        raise KellyError(f"{args.checkpoint_dir}: checkpoint folder not found (--checkpoint-dir)")
    with _real_library(args) as runners_for:
        reports = [
            verify_file(path, check_specs=args.check_specs, checkpoint=args.checkpoint_dir,
                        runners=runners_for(path), which=args.which, tolerance=args.tolerance)
            for path in args.files
        ]
    failed = print_reports(reports)
    print(f"{len(reports) - failed} of {len(reports)} file(s) passed" + (f"; {failed} FAILED" if failed else ""))
    return 1 if failed else 0


def _real_library(args: argparse.Namespace):
    """A context giving `runners_for(path)`: the real RTNeural runners for one file (none without
    --rtneural-dir). A checkout that cannot be used is a usage error (KellyError); a missing
    compiler is one line saying so on stderr, and every other check still runs."""
    from export.real_library import RealLibrary

    return RealLibrary.open(args.rtneural_dir, args.rtneural_backend, args.files)
