"""What every command shares: progress bars, signals, data and device arguments, options read from configs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from anil_engine.config import DATASETS, DEVICES, HEAD_INITS, SPLIT_SCHEMES, TaskSpec, TrainConfig, field_defaults


def config_default(cls: type, name: str) -> Any:
    """The default of field `name` of config dataclass `cls` (the one place defaults are written)."""
    return field_defaults(cls)[name]


def option(p: argparse.ArgumentParser, cls: type, name: str, help: str, flag: str | None = None, **kw: Any) -> None:
    """`--name` with the default (and, for booleans, the action) of config field `cls.name`; help shows it."""
    value = config_default(cls, name)
    flag = flag or "--" + name.replace("_", "-")
    if isinstance(value, bool):
        p.add_argument(
            flag, dest=name, action=argparse.BooleanOptionalAction, default=value, help=f"{help} (%(default)s)"
        )
    else:
        kw.setdefault("type", type(value))
        p.add_argument(flag, dest=name, default=value, help=f"{help} (%(default)s)", **kw)


def from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """A config dataclass from the parsed options named like its fields, then `overrides`."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {n: getattr(args, n) for n in names if hasattr(args, n)}
    return cls(**{**values, **overrides})


def add_device(p: argparse.ArgumentParser, default: str = "auto") -> None:
    p.add_argument("--device", choices=DEVICES, default=default, help="device (%(default)s)")


def add_quiet(p: argparse.ArgumentParser, what: str = "no progress bar") -> None:
    p.add_argument("--quiet", action="store_true", help=what)


def add_task(p: argparse.ArgumentParser, task: TaskSpec) -> None:
    p.add_argument("--ways", type=int, default=task.ways, help="classes per episode (%(default)s)")
    p.add_argument("--shots", type=int, default=task.shots, help="support images per class (%(default)s)")
    p.add_argument("--query", type=int, default=task.query, help="query images per class (%(default)s)")


def add_data(p: argparse.ArgumentParser, required: bool, from_checkpoint: bool = False) -> None:
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None if not required or from_checkpoint else config_default(TrainConfig, "dataset"),
        help="data set (folder: a folder of class folders; docs/data.md has each layout)"
        + (" (default: the checkpoint's)" if from_checkpoint else " (%(default)s)"),
    )
    p.add_argument("--data-root", required=required, help="folder holding the data set")
    p.add_argument(
        "--download",
        action="store_true",
        help="first download the data set into --data-root with torchvision's or learn2learn's downloader "
        "(needs network access to their servers)",
    )
    p.add_argument(
        "--split-scheme",
        choices=SPLIT_SCHEMES,
        default=None,
        help=f"Omniglot class split (default: {config_default(TrainConfig, 'split_scheme')}, or the checkpoint's)",
    )


def add_head(p: argparse.ArgumentParser, from_checkpoint: bool) -> None:
    """Test-time head adaptation options; with `from_checkpoint` every default is the checkpoint's."""
    if from_checkpoint:
        p.add_argument("--fast-lr", type=float, default=None, help="head step size (the checkpoint's)")
        p.add_argument("--adaptation-steps", type=int, default=None, help="head steps (the checkpoint's)")
        p.add_argument("--head-init", choices=HEAD_INITS, default=None, help="head start (the checkpoint's)")
        p.add_argument(
            "--flip",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="mirrored support images (the checkpoint's)",
        )
        return
    option(
        p,
        TrainConfig,
        "head_init",
        "test-time head start: the meta-learned rows, zero, or the support prototypes (proto: meta-training "
        "starts every task's head from its prototypes too, Proto-MAML)",
        choices=HEAD_INITS,
    )
    option(p, TrainConfig, "flip", "add mirrored support images at test time")


def data_root(args: argparse.Namespace, dataset: str) -> str:
    """The data root to read: `--data-root`, or where `--download` put the data set."""
    if not getattr(args, "download", False):
        return args.data_root
    from anil_engine.datasets.download import download

    print(f"downloading {dataset} into {args.data_root} ...", file=sys.stderr)
    return str(download(dataset, args.data_root))


def drive(
    gen: Generator[Any, None, Any],
    quiet: bool,
    phase: Callable[[Any], tuple[str, int, int]],
    postfix: Callable[[Any], dict[str, Any]],
    delay: float = 0.0,
) -> Any:
    """Run a job generator under a tqdm bar; Ctrl-C closes it (the job saves its state).

    `phase(item)`: (what is running, its length, how far it is); a new name starts a new bar.
    `delay`: seconds before a bar appears (short jobs print none).
    """
    from tqdm import tqdm

    bar, desc = None, None
    try:
        while True:
            try:
                item = next(gen)
            except StopIteration as stop:
                return stop.value
            name, total, done = phase(item)
            if name != desc:
                if bar is not None:
                    bar.close()
                bar = tqdm(total=total, desc=name, disable=quiet, dynamic_ncols=True, file=sys.stderr, delay=delay)
                desc = name
            bar.update(done - bar.n)
            bar.set_postfix(postfix(item), refresh=False)
    except KeyboardInterrupt:
        gen.close()
        raise
    finally:
        if bar is not None:
            bar.close()


def images_job(gen: Generator[Any, None, Any], quiet: bool) -> Any:
    """A classifier generator (adapt, classify, evaluate) under a bar of images, shown after 1 s."""
    return drive(gen, quiet, lambda p: (p.stage, p.total, p.done), lambda p: {}, delay=1.0)


def folder_or_zip(path: str, quiet: bool) -> str:
    """A zip archive of images is unpacked once (in the cache folder) and stands for its folder."""
    if not path.lower().endswith(".zip") or not Path(path).is_file():
        return path
    from anil_engine.archives import unpack_images
    from anil_engine.datasets import cache_dir

    return str(images_job(unpack_images(path, cache_dir() / "unpacked"), quiet))


def sigterm_as_interrupt() -> None:
    """Treat SIGTERM (a scheduler or `kill` stopping the job) and SIGINT like Ctrl-C: the job saves its state.
    Every command but the app's (`anil_engine.cli._main`)."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    # A job started in the background by a non-interactive shell (`cmd &`, nohup) inherits SIGINT as
    # ignored, and Python then leaves it ignored: `kill -INT` must still stop it and save its state.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def warn(messages: list[str]) -> None:
    for m in messages:
        print(f"warning: {m}", file=sys.stderr)


def _finite(obj: Any, found: list[str], where: str = "") -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        found.append(where or "value")
        return None
    if isinstance(obj, dict):
        return {k: _finite(v, found, f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v, found, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def emit_json(obj: Any) -> None:
    """Print one JSON document; never NaN or Infinity (not JSON): such numbers print as null, with a warning."""
    found: list[str] = []
    clean = _finite(obj, found)
    if found:
        warn([f"non-finite number(s) printed as null: {', '.join(found[:5])}; the model or data is broken"])
    print(json.dumps(clean, allow_nan=False))
