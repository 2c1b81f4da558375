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
from anil_engine.errors import AnilError, os_message

GROUPS = (system, training, evaluating, applying)
# What `anil-studio` exits with (tested; also in `--help` and docs/cli.md).
EXIT_CODES = {
    0: "done",
    2: "bad input or nothing to do: a file, folder, checkpoint or setting named in the message (argparse's "
    "usage errors too); `predict` with no image classified",
    130: "interrupted (Ctrl-C, SIGINT or SIGTERM); training saved a resumable state first",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anil-studio",
        description="Few-shot image classification with ANIL. Without a subcommand, opens the desktop app.",
        epilog="exit status: " + "; ".join(f"{code} {words}" for code, words in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"anil-studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def _surrogate_safe_output() -> None:
    """File names that are not valid UTF-8 (Latin-1 bytes, say) print as the bytes they are, never a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="surrogateescape")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = getattr(args, "run", cmd_gui)
    _surrogate_safe_output()
    try:
        return run(args)
    except AnilError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the engine did not expect to fail: named, never a traceback
        print(f"error: {os_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
