"""`anil-studio` command line, one module per group of commands. Without a subcommand it opens the app.

Each module's `register(sub)` adds its sub-parsers and sets `run` to the function that carries the
command out; defaults and choices come from `anil_engine.config`.
"""

from __future__ import annotations

import argparse
import sys

from anil_engine import __version__
from anil_engine.cli import applying, evaluating, system, training
from anil_engine.cli.system import cmd_gui
from anil_engine.errors import AnilError

GROUPS = (system, training, evaluating, applying)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anil-studio",
        description="Few-shot image classification with ANIL. Without a subcommand, opens the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"anil-studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = getattr(args, "run", cmd_gui)
    try:
        return run(args)
    except AnilError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
