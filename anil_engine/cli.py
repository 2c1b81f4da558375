"""`anil-studio` command line. Without a subcommand it opens the desktop app."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from anil_engine import __version__
from anil_engine.config import HEAD_INITS
from anil_engine.errors import AnilError

BUNDLED_MODELS = Path(__file__).resolve().parent.parent / "models"


def _drive(
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


def _sigterm_as_interrupt() -> None:
    """Treat SIGTERM (a scheduler or `kill` stopping the job) and SIGINT like Ctrl-C: the job saves its state."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    # A job started in the background by a non-interactive shell (`cmd &`, nohup) inherits SIGINT as
    # ignored, and Python then leaves it ignored: `kill -INT` must still stop it and save its state.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _data_root(args: argparse.Namespace, dataset: str) -> str:
    """The data root to read: `--data-root`, or where `--download` put the data set."""
    if not getattr(args, "download", False):
        return args.data_root
    from anil_engine.datasets.download import download

    print(f"downloading {dataset} into {args.data_root} ...", file=sys.stderr)
    return str(download(dataset, args.data_root))


def _add_task_args(p: argparse.ArgumentParser, ways: int, shots: int, query: int) -> None:
    p.add_argument("--ways", type=int, default=ways, help=f"classes per episode (default {ways})")
    p.add_argument("--shots", type=int, default=shots, help=f"support images per class (default {shots})")
    p.add_argument("--query", type=int, default=query, help=f"query images per class (default {query})")


def _add_data_args(p: argparse.ArgumentParser, required: bool, from_checkpoint: bool = False) -> None:
    p.add_argument(
        "--dataset",
        choices=("omniglot", "caltech-101", "cifar-fs", "fc100", "mini-imagenet", "folder"),
        default=None if not required or from_checkpoint else "omniglot",
        help="data set (folder: a folder of class folders; see README for each layout)"
        + (" (default: the checkpoint's)" if from_checkpoint else ""),
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
        choices=("vinyals", "lake"),
        default=None,
        help="Omniglot class split (default: vinyals, or the checkpoint's)",
    )


def _add_backbone_args(p: argparse.ArgumentParser) -> None:
    from anil_engine.backbones import BACKBONES
    from anil_engine.config import TRUNK_TRAIN_HELP, TrainConfig

    d = TrainConfig.__dataclass_fields__
    titles = "; ".join(f"{name}: {b.title}" for name, b in BACKBONES.items())
    p.add_argument("--backbone", choices=tuple(BACKBONES), default=d["backbone"].default, help=f"trunk ({titles})")
    p.add_argument(
        "--trunk-train",
        default=d["trunk_train"].default,
        help=f"what of the trunk the outer loop updates: {TRUNK_TRAIN_HELP}; auto: all of a trunk trained from "
        "scratch, none of a pretrained one (%(default)s)",
    )
    p.add_argument(
        "--head-init",
        choices=HEAD_INITS,
        default=d["head_init"].default,
        help="test-time head start: the meta-learned rows, zero, or the support prototypes (%(default)s)",
    )
    p.add_argument("--flip", action="store_true", help="add mirrored support images at test time")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anil-studio",
        description=("Few-shot image classification with ANIL. Without a subcommand, opens the desktop app."),
    )
    parser.add_argument("--version", action="version", version=f"anil-studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    gui = sub.add_parser("gui", help="open the desktop app (the default)")
    gui.add_argument("--checkpoint", help="model to open instead of the bundled default")

    t = sub.add_parser("train", help="meta-train an ANIL model")
    _add_data_args(t, required=True)
    _add_task_args(t, 5, 5, 5)
    t.add_argument("--meta-lr", type=float, default=0.001, help="Adam learning rate of the outer loop (0.001)")
    t.add_argument("--fast-lr", type=float, default=0.1, help="SGD step size of the head inner loop (0.1)")
    t.add_argument("--meta-batch-size", type=int, default=32, help="tasks per meta-iteration (32)")
    t.add_argument("--adaptation-steps", type=int, default=5, help="inner-loop steps (5)")
    t.add_argument("--iterations", type=int, default=1000, help="meta-iterations (1000)")
    t.add_argument("--first-order", action="store_true", help="first-order ANIL (no second derivatives)")
    t.add_argument("--hidden-size", type=int, default=64, help="CNN4 channels (64)")
    t.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="input size in pixels (28 Omniglot, 84 folders; a pretrained backbone's own, e.g. 224)",
    )
    _add_backbone_args(t)
    t.add_argument("--val-every", type=int, default=100, help="validate every N iterations (100)")
    t.add_argument("--val-episodes", type=int, default=200, help="validation episodes (200)")
    t.add_argument("--checkpoint-every", type=int, default=100, help="save last.pt every N iterations (100)")
    t.add_argument("--init-from", default="", help="start the trunk from this checkpoint (e.g. a pretrain result)")
    t.add_argument(
        "--init-feature-norm",
        type=float,
        default=None,
        help="with --init-from: rescale the trunk so mean feature norm is this (0: off; default 0, or 16 with "
        "--pretrain-epochs)",
    )
    t.add_argument(
        "--pretrain-epochs",
        type=int,
        default=0,
        help="first pre-train the trunk as a plain classifier for this many epochs (into OUT/pretrained.pt; "
        "`pretrain`'s other defaults), then meta-train from it: the bundled models' recipe as one command (0: off)",
    )
    t.add_argument(
        "--engine",
        choices=("batched", "reference"),
        default="batched",
        help="batched: all task heads adapted at once (fast, same gradients); "
        "reference: learn2learn's per-task MAML loop and Taskset sampler, as in the article (batched)",
    )
    t.add_argument(
        "--sampler",
        choices=("auto", "fast", "learn2learn"),
        default="auto",
        help="task sampler: the engine's own (auto: fast for batched, learn2learn for reference), the fast index "
        "sampler, or learn2learn's Taskset; the same sampler and seed give both engines the same tasks (auto)",
    )
    t.add_argument(
        "--precision",
        choices=("float32", "float64"),
        default="float32",
        help="float type of meta-training; float64 is slower, there for checking the engines against "
        "each other with far smaller rounding errors (float32)",
    )
    t.add_argument("--seed", type=int, default=42, help="random seed (42)")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device (auto)")
    t.add_argument("--out", required=True, help="run folder (last.pt, best.pt, metrics.jsonl)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("pretrain", help="pre-train the trunk as a plain classifier on the training classes")
    _add_data_args(p, required=True)
    p.add_argument("--epochs", type=int, default=20, help="passes over the training images (20)")
    p.add_argument("--batch-size", type=int, default=256, help="images per step (256)")
    p.add_argument("--lr", type=float, default=0.002, help="Adam learning rate, cosine-decayed (0.002)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay (5e-4)")
    p.add_argument("--hidden-size", type=int, default=64, help="CNN4 channels (64)")
    p.add_argument("--input-size", type=int, default=None, help="input size in pixels")
    p.add_argument("--ways", type=int, default=20, help="head size of the resulting checkpoint (20)")
    p.add_argument(
        "--classifier",
        choices=("linear", "cosine"),
        default="linear",
        help="pre-training classifier: linear (cross-entropy on logits) or cosine (scaled cosine similarity, "
        "'Baseline++') (linear)",
    )
    p.add_argument("--cosine-scale", type=float, default=10.0, help="logit scale of the cosine classifier (10)")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing of the loss (0)")
    p.add_argument("--no-augment", action="store_true", help="no random affine (and mirror) augmentation")
    p.add_argument(
        "--val-episodes", type=int, default=200, help="5-way 1-shot validation episodes, 4 times a run (200)"
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (42)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device (auto)")
    p.add_argument(
        "--out",
        required=True,
        help="checkpoint file to write; while it runs, OUT_STEM.resume.pt beside it holds a resumable state",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue an interrupted pre-training of --out from its .resume.pt"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="evaluate a checkpoint on N-way K-shot test episodes")
    e.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    _add_data_args(e, required=True, from_checkpoint=True)
    e.add_argument("--split", default="test", choices=("train", "val", "test", "all"), help="split (test)")
    _add_task_args(e, 5, 5, 15)
    e.add_argument("--episodes", type=int, default=1000, help="test episodes (1000)")
    e.add_argument(
        "--bn",
        choices=("inductive", "transductive"),
        default="inductive",
        help="BatchNorm statistics: running (inductive, the app's) or per-batch (learn2learn's)",
    )
    e.add_argument("--fast-lr", type=float, default=None, help="inner-loop step size (the checkpoint's)")
    e.add_argument("--adaptation-steps", type=int, default=None, help="inner-loop steps (the checkpoint's)")
    e.add_argument("--seed", type=int, default=0, help="episode seed (0)")
    e.add_argument(
        "--method",
        choices=("head", "ncm"),
        default="head",
        help="head: ANIL head adaptation; ncm: nearest class mean of the support features (baseline) (head)",
    )
    e.add_argument(
        "--random-trunk",
        action="store_true",
        help="baseline: a randomly initialised trunk (seeded, BatchNorm statistics from training images)",
    )
    e.add_argument("--head-init", choices=HEAD_INITS, default=None, help="head start (the checkpoint's)")
    e.add_argument(
        "--flip", action=argparse.BooleanOptionalAction, default=None, help="mirrored support images (the checkpoint's)"
    )
    e.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device (auto)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--quiet", action="store_true", help="no progress bar")

    x = sub.add_parser("export", help="export the frozen trunk of a checkpoint to ONNX (verified)")
    x.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    x.add_argument("--out", required=True, help="ONNX file to write")

    a = sub.add_parser("adapt", help="adapt the head to a support folder and export the classifier to ONNX")
    a.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    a.add_argument("--support", required=True, help="support folder or .zip: one sub-folder of images per class")
    a.add_argument("--out", required=True, help="ONNX file to write")
    a.add_argument("--fast-lr", type=float, default=None, help="head step size (the checkpoint's)")
    a.add_argument("--adaptation-steps", type=int, default=None, help="head steps (the checkpoint's)")
    a.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="device (cpu)")
    a.add_argument("--quiet", action="store_true", help="no progress bar (shown after 1 s)")

    k = sub.add_parser("classify", help="the app's flow in a terminal: adapt to a support folder, classify, evaluate")
    k.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    k.add_argument("--support", required=True, help="support folder or .zip: one sub-folder of images per class")
    k.add_argument("images", nargs="*", help="image files, folders or .zip archives to classify")
    k.add_argument("--leave-one-out", action="store_true", help="also report leave-one-out accuracy on the support")
    k.add_argument("--labelled", default=None, help="also evaluate on a labelled folder (or .zip) of class folders")
    k.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="device (cpu)")
    k.add_argument("--quiet", action="store_true", help="no progress bars (shown after 1 s)")
    k.add_argument("--csv", default=None, help="also write the predictions as CSV (the app's Export results)")

    r = sub.add_parser("predict", help="classify images with an exported classifier (no torch needed)")
    r.add_argument("--model", required=True, help="classifier .onnx from `adapt` or the app")
    r.add_argument("images", nargs="+", help="image files or folders")
    r.add_argument("--json", action="store_true", help="print a JSON list")

    i = sub.add_parser("info", help="versions, GPUs, the fused CPU kernel, bundled models (for bug reports)")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.add_argument("--no-build", action="store_true", help="do not build the fused CPU kernel to check it")

    c = sub.add_parser("card", help="evaluate a checkpoint in every standard setting and write its model card")
    c.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    c.add_argument("--data-root", required=True, help="folder holding the checkpoint's data set")
    c.add_argument("--settings", default="20x1,20x5,5x1,5x5", help="WAYSxSHOTS list (20x1,20x5,5x1,5x5)")
    c.add_argument("--episodes", type=int, default=1000, help="test episodes per setting (1000)")
    c.add_argument("--seed", type=int, default=0, help="episode seed (0)")
    c.add_argument("--query", type=int, default=15, help="query images per class (15)")
    c.add_argument("--recipe", default="", help="recipe for the card: markdown text, or a file holding it")
    c.add_argument(
        "--adaptation-steps",
        type=int,
        default=None,
        help="set the checkpoint's head-adaptation steps (test time and the app) before evaluating; "
        "meta-training's inner loop is unchanged (the checkpoint's value)",
    )
    c.add_argument(
        "--baselines",
        action="store_true",
        help="also measure, on the same episodes (inductive), a random trunk with the same head adaptation and "
        "nearest-class-mean on the trained features",
    )
    c.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device (auto)")
    c.add_argument(
        "--photo",
        action="store_true",
        help="the card of a model on a pretrained trunk: plain words first; baselines on the same episodes "
        "(the trunk without meta-training, nearest class mean, and --compare)",
    )
    c.add_argument("--compare", default="", help="with --photo: a CNN4 checkpoint measured on the same episodes")
    c.add_argument("--out", required=True, help="markdown file to write")

    tu = sub.add_parser(
        "tune", help="measure the test-time head adaptation choices on the validation split and keep the best"
    )
    tu.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    tu.add_argument("--data-root", required=True, help="folder holding the checkpoint's data set")
    tu.add_argument("--episodes", type=int, default=300, help="validation episodes per choice and setting (300)")
    tu.add_argument("--write", action="store_true", help="record the best choice in the checkpoint")
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from anil_engine.backbones import get_backbone
    from anil_engine.config import TrainConfig
    from anil_engine.datasets import DEFAULT_PREPROCESSING
    from anil_engine.pretraining import (
        PRETRAINED,
        RECIPE_FEATURE_NORM,
        PretrainProgress,
        pretrain_then_train,
        resume_path,
    )
    from anil_engine.training import train
    from anil_engine.trainrun import DataProgress

    backbone = get_backbone(args.backbone)
    native = backbone.input_sizes[0] if backbone.pretrained is not None else DEFAULT_PREPROCESSING[args.dataset][0]
    size = args.input_size or native
    config = TrainConfig(
        backbone=args.backbone,
        trunk_train=args.trunk_train,
        head_init=args.head_init,
        flip=args.flip,
        dataset=args.dataset,
        data_root=_data_root(args, args.dataset),
        split_scheme=args.split_scheme or "vinyals",
        ways=args.ways,
        shots=args.shots,
        query=args.query,
        meta_lr=args.meta_lr,
        fast_lr=args.fast_lr,
        meta_batch_size=args.meta_batch_size,
        adaptation_steps=args.adaptation_steps,
        iterations=args.iterations,
        first_order=args.first_order,
        seed=args.seed,
        device=args.device,
        hidden_size=args.hidden_size,
        input_size=size,
        val_every=args.val_every,
        val_episodes=args.val_episodes,
        checkpoint_every=args.checkpoint_every,
        init_from=args.init_from,
        init_feature_norm=0.0 if args.pretrain_epochs > 0 else (args.init_feature_norm or 0.0),
        engine=args.engine,
        sampler=args.sampler,
        precision=args.precision,
    )
    import os

    # Under torchrun every process runs this command; rank 0 alone shows progress and prints the result.
    main_rank = os.environ.get("RANK", "0") == "0"
    pretraining = args.pretrain_epochs > 0
    if pretraining:
        norm = RECIPE_FEATURE_NORM if args.init_feature_norm is None else args.init_feature_norm
        gen = pretrain_then_train(config, args.pretrain_epochs, args.out, args.resume, norm)
    else:
        gen = train(config, args.out, resume=args.resume)
    _sigterm_as_interrupt()

    def phase(p: Any) -> tuple[str, int, int]:
        if isinstance(p, PretrainProgress):
            return "pretrain", p.steps, p.step
        if isinstance(p, DataProgress):
            return p.stage, p.total, p.done
        return "meta-train", p.iterations, p.iteration

    pretrain_postfix = _pretrain_postfix()

    def postfix(p: Any) -> dict[str, Any]:
        if isinstance(p, PretrainProgress):
            return pretrain_postfix(p)
        if isinstance(p, DataProgress):
            return {}
        d = {} if p.iteration == 0 else {"loss": f"{p.loss:.3f}", "acc": f"{p.accuracy:.1f}"}
        if p.best_val_accuracy is not None:
            d["best_val"] = f"{p.best_val_accuracy:.2f}"
        return d

    try:
        result = _drive(gen, args.quiet or not main_rank, phase, postfix)
    except KeyboardInterrupt:
        if main_rank:
            saved = Path(args.out) / "last.pt"
            if pretraining and not saved.exists():
                saved = resume_path(Path(args.out) / PRETRAINED)
            print(f"\ninterrupted: saved {saved}; continue with the same command plus --resume", file=sys.stderr)
        return 130
    if main_rank:
        print(json.dumps(result))
    return 0


def _pretrain_postfix() -> Callable[[Any], dict[str, Any]]:
    """The pre-training bar's numbers; the last validation accuracy stays shown."""
    val: dict[str, str] = {}

    def postfix(p: Any) -> dict[str, Any]:
        if p.val_accuracy is not None:
            val["val_ncm"] = f"{p.val_accuracy:.1f}"
        return {"epoch": p.epoch, "loss": f"{p.loss:.3f}", "acc": f"{p.accuracy:.1f}", **val}

    return postfix


def cmd_pretrain(args: argparse.Namespace) -> int:
    from anil_engine.datasets import DEFAULT_PREPROCESSING
    from anil_engine.pretraining import PretrainConfig, pretrain, resume_path

    size = args.input_size or DEFAULT_PREPROCESSING[args.dataset][0]
    config = PretrainConfig(
        dataset=args.dataset,
        data_root=_data_root(args, args.dataset),
        split_scheme=args.split_scheme or "vinyals",
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        hidden_size=args.hidden_size,
        input_size=size,
        ways=args.ways,
        seed=args.seed,
        device=args.device,
        augment=not args.no_augment,
        classifier=args.classifier,
        cosine_scale=args.cosine_scale,
        label_smoothing=args.label_smoothing,
        val_episodes=args.val_episodes,
    )
    _sigterm_as_interrupt()
    gen = pretrain(config, args.out, resume=args.resume)
    try:
        result = _drive(gen, args.quiet, lambda p: ("pretrain", p.steps, p.step), _pretrain_postfix())
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: saved {resume_path(args.out)}; continue with the same command plus --resume",
            file=sys.stderr,
        )
        return 130
    print(json.dumps(result))
    return 0


def run_eval(
    checkpoint: str,
    data_root: str,
    dataset: str | None,
    split: str,
    split_scheme: str | None,
    ways: int,
    shots: int,
    query: int,
    episodes: int,
    bn: str,
    seed: int,
    fast_lr: float | None,
    steps: int | None,
    device: str,
    quiet: bool,
    method: str = "head",
    random_trunk: bool = False,
    head_init: str | None = None,
    flip: bool | None = None,
) -> dict[str, Any]:
    """`anil_engine.evaluation.evaluate_checkpoint` under a progress bar; returns its result dict."""
    from anil_engine.config import EvalConfig, TaskSpec
    from anil_engine.evaluation import evaluate_checkpoint

    config = EvalConfig(TaskSpec(ways, shots, query), episodes, bn, seed, fast_lr, steps, method, head_init, flip)
    gen = evaluate_checkpoint(checkpoint, data_root, config, dataset, split, split_scheme, device, random_trunk)
    desc = f"eval {ways}w{shots}s {bn}"
    return _drive(gen, quiet, lambda p: (desc, episodes, p.episode), lambda p: {"acc": f"{p.accuracy:.2f}"})


def cmd_eval(args: argparse.Namespace) -> int:
    data_root = args.data_root
    if args.download:
        from anil_engine.checkpoint import load_checkpoint

        name = args.dataset or load_checkpoint(args.checkpoint)["dataset"].get("name", "omniglot")
        data_root = _data_root(args, name)
    result = run_eval(
        args.checkpoint,
        data_root,
        args.dataset,
        args.split,
        args.split_scheme,
        args.ways,
        args.shots,
        args.query,
        args.episodes,
        args.bn,
        args.seed,
        args.fast_lr,
        args.adaptation_steps,
        args.device,
        args.quiet or args.json,
        args.method,
        args.random_trunk,
        args.head_init,
        args.flip,
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['ways']}-way {result['shots']}-shot, {result['bn']} BatchNorm, {result['episodes']} "
            f"episodes: {result['accuracy']:.2f} ± {result['ci95']:.2f} %"
        )
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from anil_engine.photo_card import tune

    def say(line: str) -> None:
        print(line, file=sys.stderr)

    best = tune(args.checkpoint, args.data_root, args.episodes, args.write, say=say)
    print(json.dumps(best))
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from anil_engine.cards import parse_settings, write_card

    if args.photo:
        from anil_engine.photo_card import write_photo_card

        settings = parse_settings(args.settings)
        write_photo_card(args.checkpoint, args.data_root, args.out, settings, args.episodes, args.seed,
                         args.compare, args.recipe)  # fmt: skip
        print(f"wrote {args.out}")
        return 0

    write_card(
        args.checkpoint,
        args.data_root,
        args.settings,
        args.episodes,
        args.seed,
        args.recipe,
        args.device,
        args.out,
        run_eval,
        args.baselines,
        args.adaptation_steps,
        args.query,
    )
    print(f"wrote {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.export import export_trunk
    from anil_engine.models import model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(args.checkpoint), args.checkpoint)
    report = export_trunk(model, args.out)
    print(json.dumps({"out": report.path, "max_abs_diff": report.max_abs_diff}))
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from anil_engine.checkpoint import file_sha256, load_checkpoint
    from anil_engine.classifier import FewShotClassifier
    from anil_engine.config import resolve_device
    from anil_engine.datasets.folder import scan_class_folders
    from anil_engine.export import export_classifier
    from anil_engine.models import model_from_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt, args.checkpoint)
    device = resolve_device(args.device)
    clf = FewShotClassifier.for_checkpoint(ckpt, model, device, fast_lr=args.fast_lr, steps=args.adaptation_steps)
    scan = scan_class_folders(_folder_or_zip(args.support, args.quiet))
    for p in scan.ignored:
        print(f"warning: {p}: not an image file, skipped", file=sys.stderr)
    result = _images_job(clf.iter_adapt(list(scan.classes.items())), args.quiet)
    for m in result.skipped:
        print(f"warning: {m}", file=sys.stderr)
    report = export_classifier(model, clf.weight, clf.bias, clf.class_names, args.out, file_sha256(args.checkpoint))
    print(
        json.dumps(
            {
                "out": report.path,
                "classes": clf.class_names,
                "images": result.n_images,
                "max_abs_diff": report.max_abs_diff,
            }
        )
    )
    return 0


def _folder_or_zip(path: str, quiet: bool) -> str:
    """A zip archive of images is unpacked once (in the cache folder) and stands for its folder."""
    if not path.lower().endswith(".zip") or not Path(path).is_file():
        return path
    from anil_engine.archives import unpack_images
    from anil_engine.datasets import cache_dir

    return str(_images_job(unpack_images(path, cache_dir() / "unpacked"), quiet))


def _images_job(gen: Generator[Any, None, Any], quiet: bool) -> Any:
    """A classifier generator (adapt, classify, evaluate) under a bar of images, shown after 1 s."""
    return _drive(gen, quiet, lambda p: (p.stage, p.total, p.done), lambda p: {}, delay=1.0)


def cmd_classify(args: argparse.Namespace) -> int:
    from pathlib import Path as _Path

    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.classifier import FewShotClassifier
    from anil_engine.config import resolve_device
    from anil_engine.datasets.folder import scan_class_folders
    from anil_engine.models import model_from_checkpoint
    from anil_engine.runtime import expand_images

    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt, args.checkpoint)
    clf = FewShotClassifier.for_checkpoint(ckpt, model, resolve_device(args.device))
    support = scan_class_folders(_folder_or_zip(args.support, args.quiet))
    adapted = _images_job(clf.iter_adapt(list(support.classes.items())), args.quiet)
    messages = list(adapted.skipped)
    paths = expand_images([_Path(_folder_or_zip(p, args.quiet)) for p in args.images], messages)
    predictions, skipped = _images_job(clf.iter_predict(paths), args.quiet) if paths else ([], [])
    messages.extend(skipped)
    out: dict[str, Any] = {
        "classes": adapted.class_names,
        "head_init": adapted.head_init,
        "predictions": [
            {"path": p.path, "label": p.label, "confidence": p.confidence, "probabilities": p.probabilities}
            for p in predictions
        ],
    }
    reports = []
    if args.leave_one_out:
        reports.append(("leave_one_out", _images_job(clf.iter_leave_one_out(), args.quiet)))
    if args.labelled:
        labelled = _folder_or_zip(args.labelled, args.quiet)
        reports.append(("labelled", _images_job(clf.iter_evaluate_folder(labelled), args.quiet)))
    for name, r in reports:
        messages.extend(r.skipped)
        out[name] = {"accuracy": r.accuracy, "per_class": r.per_class, "confusion": r.confusion, "images": r.n_images}
        if name == "labelled":
            out[name]["mistakes"] = [
                {"path": p.path, "true": truth, "predicted": p.label, "confidence": p.confidence}
                for p, truth in r.mistakes
            ]
    for m in messages:
        print(f"warning: {m}", file=sys.stderr)
    if args.csv:
        from anil_engine.checkpoint import atomic_write_bytes
        from anil_engine.classifier import predictions_csv

        atomic_write_bytes(predictions_csv(predictions).encode(), args.csv)
    print(json.dumps(out))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from anil_engine.environment import environment_report

    rows = environment_report(build_kernel=not args.no_build)
    if args.json:
        print(json.dumps(rows))
    else:
        width = max(len(k) for k in rows)
        for k, v in rows.items():
            print(f"{k:<{width}}  {v}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from anil_engine.runtime import OnnxClassifier

    clf = OnnxClassifier(args.model)
    results, skipped = clf.predict(args.images)
    for m in skipped:
        print(f"warning: {m}", file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_dict() for r in results]))
    else:
        for r in results:
            print(f"{r.path}\t{r.label}\t{r.confidence:.4f}")
    return 0 if results else 2


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        gui = importlib.import_module("app.main")
    except ImportError as exc:
        print(f"error: the desktop app cannot start ({exc}); install with the README's set-up command", file=sys.stderr)
        return 2
    return int(gui.main(checkpoint=getattr(args, "checkpoint", None)) or 0)


COMMANDS = {
    "train": cmd_train,
    "pretrain": cmd_pretrain,
    "eval": cmd_eval,
    "card": cmd_card,
    "tune": cmd_tune,
    "export": cmd_export,
    "adapt": cmd_adapt,
    "predict": cmd_predict,
    "info": cmd_info,
    "classify": cmd_classify,
    "gui": cmd_gui,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = COMMANDS[args.command or "gui"]
    try:
        return command(args)
    except AnilError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
