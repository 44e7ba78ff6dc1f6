"""`kelly`: the command line over every stage.

Each stage registers its own subcommands (`<stage>/cli.py: add_parsers`); their handlers import
the heavy libraries they need when they run, so `kelly --help` and `kelly train` start fast.
A `KellyError` becomes one line on stderr naming the file and the fault, and exit code 2.
"""
from __future__ import annotations

import argparse
import sys

from common.errors import KellyError


def build_parser() -> argparse.ArgumentParser:
    from export import cli as export_cli
    from kelly import label, pipeline
    from preprocess import cli as preprocess_cli
    from preprocess.datasets import cli as datasets_cli
    from train import cli as train_cli

    parser = argparse.ArgumentParser(
        prog="kelly",
        description="kelly-ml: datasets -> feature cache -> five trained networks -> RTNeural JSON.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    datasets_cli.add_parsers(sub)        # datasets list, datasets download
    preprocess_cli.add_parsers(sub)      # sample-data, preprocess
    train_cli.add_parsers(sub)           # train, evaluate
    export_cli.add_parsers(sub)          # export, verify
    label.add_parsers(sub)               # label
    pipeline.add_parsers(sub)            # pipeline
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "use_synthetic", False):      # kelly train --use-synthetic: the sample cache first
            from kelly.pipeline import make_sample_cache

            args.cache_dir = make_sample_cache(args.output / "synthetic", progress=not args.no_progress)
        return int(args.func(args) or 0)
    except KellyError as exc:
        print(f"kelly {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:       # Ctrl-C, or a stop signal a stage turned into one (exit_code)
        print(f"kelly {args.command}: {exc or 'interrupted'}", file=sys.stderr)
        return getattr(exc, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
