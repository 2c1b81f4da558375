"""`anil-studio` command line, one module per group of commands. Without a subcommand it opens the app.

Each module's `register(sub)` adds its sub-parsers and sets `run` to the function that carries the
command out; defaults and choices come from `anil_engine.config`.
"""

from __future__ import annotations

import argparse
import os
import sys

from anil_engine import __version__
from anil_engine.cli import applying, evaluating, system, training
from anil_engine.cli._common import sigterm_as_interrupt
from anil_engine.cli.system import cmd_gui
from anil_engine.errors import AnilError, os_message

GROUPS = (system, training, evaluating, applying)
# What `anil-studio` exits with (tested; also in `--help` and docs/cli.md).
EXIT_CODES = {
    0: "done",
    2: "bad input or nothing to do: a file, folder, checkpoint or setting named in the message (argparse's "
    "usage errors too); `predict` with no image classified",
    130: "interrupted (Ctrl-C, SIGINT or SIGTERM, also when started in the background); training saved a "
    "resumable state first, other commands leave no partial file",
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
    code = _main(argv)
    leave_worker(code)  # a torchrun worker ends here, without the teardown that gloo can abort
    return code


def leave_worker(code: int) -> None:
    """End a torchrun worker now with `code`, its output flushed, skipping the interpreter's teardown.

    gloo's C++ threads can outlive `destroy_process_group` and abort that teardown ("terminate called without
    an active exception", SIGABRT), so that a rank whose run finished, saved and left the group still exits
    as failed: seen on rank 1 of the 2-process test run under the load of the parallel test suite
    (anil_engine/meta/distributed.py). Every file is written and closed by then. Does nothing outside
    torchrun or in a one-process job. Torch-free, as `predict` is.
    """
    if "RANK" not in os.environ or os.environ.get("WORLD_SIZE", "1") == "1":
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    run = getattr(args, "run", cmd_gui)
    _surrogate_safe_output()
    if run is not cmd_gui:  # every command stops on SIGINT or SIGTERM, in the background too (the app: on close)
        sigterm_as_interrupt()
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
