"""`kelly export` and `kelly verify`.

    kelly export --checkpoint-dir runs/checkpoints --output models/ [--models emotion melody ...]
    kelly verify models/*.json [--check-specs] [--checkpoint-dir DIR] [--rtneural-dir PATH]

`export` writes one RTNeural JSON per network (the plugin's file names) and verifies each against
its checkpoint; `verify` checks files already written. Both exit 1 when a file fails, with a
report naming the file, the layer and the fault. `export` checks that its output folder can be
written before it loads anything, and removes the temporaries a killed export left there.
"""
from __future__ import annotations

import argparse
import glob
from pathlib import Path

from common.errors import KellyError
from preprocess.features.spec import NETWORKS
from train.config import NETWORK_NAMES

NETWORK_KEYS = tuple(NETWORKS)


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write trained networks as RTNeural JSON and verify them",
        description="Write one RTNeural JSON per network (emotionrecognizer.json, ...) from the best "
                    "checkpoints, with the input standardisation folded into the first layer and a "
                    "metadata block; then verify each file against its checkpoint.",
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
                    "RTNeural library (a checkout; needs a C++ compiler).",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.json")
    p.add_argument("--check-specs", action="store_true", help="compare layers, sizes, activations and parameter counts with the plugin's")
    p.add_argument("--checkpoint-dir", type=Path, help="compare outputs with these PyTorch checkpoints (<classname>_best.pt)")
    p.add_argument("--which", choices=("best", "latest"), default="best", help="checkpoint to compare with (default: best)")
    p.add_argument("--rtneural-dir", type=Path, help="an RTNeural checkout: compile a check program and run the files through it")
    p.add_argument("--rtneural-backend", choices=("stl", "eigen"), default="stl",
                   help="RTNeural backend for --rtneural-dir (default: stl)")
    p.set_defaults(func=run_verify)


def export_networks(checkpoint_dir: str | Path, output: str | Path, keys=NETWORK_KEYS, *, which: str = "best"):
    """Export and verify each network; returns [(json path, Report)]."""
    from export.metadata import build_metadata
    from export.rtneural import file_name, model_to_rtneural, write_json
    from export.verify import verify_file
    from common.files import check_output_dir, remove_stale_temporaries
    from train.checkpoints import load_network
    from train.outputs import find_checkpoint

    check_output_dir(output, "--output")
    # temporaries of a killed export: this version's, and the "<name>.json.tmp" of earlier ones
    names = [file_name(name) for name in NETWORK_NAMES.values()]
    remove_stale_temporaries(output, targets=names, also=[f"{glob.escape(name)}.tmp" for name in names])
    results = []
    for key in keys:
        checkpoint_path = find_checkpoint(checkpoint_dir, key, which)
        model, checkpoint = load_network(checkpoint_path)
        document = {"metadata": build_metadata(model, checkpoint, checkpoint_path=checkpoint_path)}
        document.update(model_to_rtneural(model))
        path = write_json(document, Path(output) / file_name(model.name))
        results.append((path, verify_file(path, check_specs=True, checkpoint=model)))
    return results


def run_export(args: argparse.Namespace) -> int:
    if not args.checkpoint_dir.is_dir():
        raise KellyError(f"{args.checkpoint_dir}: checkpoint folder not found")
    results = export_networks(args.checkpoint_dir, args.output, args.models, which=args.which)
    for path, report in results:
        print(report.format())
    failed = [path for path, report in results if not report.ok]
    print(f"exported {len(results)} network(s) to {args.output}; {len(results) - len(failed)} verified"
          + (f", {len(failed)} FAILED" if failed else ""))
    return 1 if failed else 0


def run_verify(args: argparse.Namespace) -> int:
    from export.verify import verify_file

    if args.checkpoint_dir is not None and not args.checkpoint_dir.is_dir():
        raise KellyError(f"{args.checkpoint_dir}: checkpoint folder not found")
    harness = None
    if args.rtneural_dir is not None:
        from export.harness import RTNeuralHarness

        harness = RTNeuralHarness(args.rtneural_dir, backend=args.rtneural_backend)
    try:
        reports = [
            verify_file(path, check_specs=args.check_specs, checkpoint=args.checkpoint_dir,
                        harness=harness, which=args.which)
            for path in args.files
        ]
    finally:
        if harness is not None:
            harness.close()
    for report in reports:
        print(report.format())
    failed = sum(not report.ok for report in reports)
    print(f"{len(reports) - failed} of {len(reports)} file(s) passed" + (f"; {failed} FAILED" if failed else ""))
    return 1 if failed else 0
