"""`info` and `gui`: the machine, for bug reports, and the desktop app."""

from __future__ import annotations

import argparse
import importlib
import sys

from anil_engine.cli._common import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    gui = sub.add_parser("gui", help="open the desktop app (the default)")
    gui.add_argument("--checkpoint", help="model to open instead of the bundled default")
    gui.set_defaults(run=cmd_gui)
    i = sub.add_parser("info", help="versions, GPUs, the fused CPU kernel, bundled models (for bug reports)")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.add_argument("--no-build", action="store_true", help="do not build the fused CPU kernel to check it")
    i.set_defaults(run=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    from anil_engine.environment import environment_report

    rows = environment_report(build_kernel=not args.no_build)
    if args.json:
        emit_json(rows)
    else:
        width = max(len(k) for k in rows)
        for k, v in rows.items():
            print(f"{k:<{width}}  {v}")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        gui = importlib.import_module("app.main")
    except ImportError as exc:
        print(f"error: the desktop app cannot start ({exc}); install with the README's set-up command", file=sys.stderr)
        return 2
    return int(gui.main(checkpoint=getattr(args, "checkpoint", None)) or 0)
