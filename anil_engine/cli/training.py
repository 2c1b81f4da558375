"""`train` and `pretrain`: meta-training an ANIL model, and pre-training its trunk as a plain classifier."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anil_engine.cli._common import (
    add_data,
    add_device,
    add_head,
    add_quiet,
    add_task,
    config_default,
    data_root,
    drive,
    emit_json,
    from_args,
    option,
    warn,
)
from anil_engine.config import (
    CLASSIFIERS,
    CROPS,
    ENGINES,
    METHODS,
    PRECISIONS,
    PRETRAIN_COMPUTE,
    PRETRAIN_SPLITS,
    RECIPE_FEATURE_NORM,
    SAMPLERS,
    TRUNK_TRAIN_HELP,
    WITHIN,
    PretrainConfig,
    TaskSpec,
    TrainConfig,
    dataset_preprocessing,
    resolve_device,
)
from anil_engine.environment import slow_bfloat16_note


def register(sub: argparse._SubParsersAction) -> None:
    _add_train(sub.add_parser("train", help="meta-train an ANIL model"))
    _add_pretrain(sub.add_parser("pretrain", help="pre-train the trunk as a plain classifier on the training classes"))


def _add_trunk(p: argparse.ArgumentParser, d: type, backbone_note: str) -> None:
    """--hidden-size, --input-size and --backbone, shared by `train` and `pretrain`."""
    from anil_engine.backbones import BACKBONES

    option(p, d, "hidden_size", "CNN4 channels")
    option(p, d, "layers", "CNN4 conv blocks: 4 pool the image 16x in all, 5 pool it 32x (56 px inputs end at 1x1)")
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="input size in pixels (28 Omniglot, 84 folders; a pretrained backbone's own, e.g. 224)",
    )
    titles = "; ".join(f"{name}: {b.title}" for name, b in BACKBONES.items())
    option(p, d, "backbone", f"trunk ({titles}){backbone_note}", choices=tuple(BACKBONES))
    option(
        p,
        d,
        "crop",
        "how every image is framed before it is resized: none (the whole image) or ink (a square around its dark "
        "pixels, so a drawing fills the input whatever its size and place on the page); the checkpoint keeps it",
        choices=CROPS,
    )


def _add_train(t: argparse.ArgumentParser) -> None:
    add_data(t, required=True)
    d = TrainConfig
    add_task(t, TaskSpec(config_default(d, "ways"), config_default(d, "shots"), config_default(d, "query")))
    option(t, d, "meta_lr", "Adam learning rate of the outer loop")
    option(t, d, "fast_lr", "SGD step size of the head inner loop")
    option(t, d, "meta_batch_size", "tasks per meta-iteration")
    option(t, d, "adaptation_steps", "inner-loop steps")
    option(t, d, "iterations", "meta-iterations (0 with --init-from: the starting trunk itself, rescaled)")
    option(t, d, "first_order", "first-order ANIL (no second derivatives)")
    _add_trunk(t, d, "")
    option(
        t,
        d,
        "trunk_train",
        f"what of the trunk the outer loop updates: {TRUNK_TRAIN_HELP}; auto: all of a trunk trained from "
        "scratch, none of a pretrained one",
    )
    add_head(t, from_checkpoint=False)
    _add_within(t)
    option(t, d, "val_every", "validate every N iterations")
    option(t, d, "val_episodes", "validation episodes")
    option(t, d, "checkpoint_every", "save last.pt every N iterations")
    option(t, d, "init_from", "start the trunk from this checkpoint (e.g. a pretrain result)")
    t.add_argument(
        "--init-feature-norm",
        type=float,
        default=None,
        help=f"with --init-from: rescale the trunk so mean feature norm is this (0: off; default 0, or "
        f"{RECIPE_FEATURE_NORM:g} with --pretrain-epochs)",
    )
    t.add_argument(
        "--pretrain-epochs",
        type=int,
        default=0,
        help="first pre-train the trunk as a plain classifier for this many epochs (into OUT/pretrained.pt; "
        "`pretrain`'s other defaults), then meta-train from it: the bundled models' recipe as one command (0: off)",
    )
    option(
        t,
        d,
        "engine",
        "batched: all task heads adapted at once (fast, same gradients); reference: learn2learn's per-task "
        "MAML loop and Taskset sampler, as in the article",
        choices=ENGINES,
    )
    option(
        t,
        d,
        "sampler",
        "task sampler: the engine's own (auto: fast for batched, learn2learn for reference), the fast index "
        "sampler, or learn2learn's Taskset; the same sampler and seed give both engines the same tasks",
        choices=SAMPLERS,
    )
    option(
        t,
        d,
        "precision",
        "float type of meta-training; float64 is slower, there for checking the engines against each other "
        "with far smaller rounding errors",
        choices=PRECISIONS,
    )
    option(t, d, "seed", "random seed")
    add_device(t, config_default(d, "device"))
    t.add_argument("--out", required=True, help="run folder (last.pt, best.pt, metrics.jsonl)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    add_quiet(t)
    t.set_defaults(run=cmd_train)


def _add_within(t: argparse.ArgumentParser) -> None:
    t.add_argument(
        "--episodes-within",
        dest="within",
        choices=WITHIN,
        default=None,
        help="draw every training and validation task's classes from one group: alphabet = one Omniglot alphabet, "
        "unrotated characters, as `eval --episodes-within alphabet` tests; rotated-alphabet = one alphabet at one "
        "rotation (4 times the groups) (default: the whole split)",
    )
    t.add_argument(
        "--val-within",
        choices=WITHIN,
        default=None,
        help="validate (and keep best.pt) on tasks within one group while the training tasks stay the whole "
        "split's: choose by Lake's within-alphabet protocol without training on it (default: as --episodes-within)",
    )
    option(
        t,
        TrainConfig,
        "val_method",
        "how validation classifies: head = ANIL's head adaptation as the checkpoint will adapt; ncm = nearest "
        "class mean of the trunk's features (judges the trunk alone, whatever the head and its steps)",
        choices=METHODS,
    )


def _add_pretrain(p: argparse.ArgumentParser) -> None:
    add_data(p, required=True)
    d = PretrainConfig
    option(p, d, "epochs", "passes over the training images")
    option(p, d, "batch_size", "images per step")
    option(p, d, "lr", "Adam learning rate, cosine-decayed")
    option(p, d, "weight_decay", "weight decay")
    _add_trunk(p, d, "; a pretrained one is fine-tuned whole")
    option(p, d, "ways", "head size of the resulting checkpoint")
    option(
        p,
        d,
        "classifier",
        "pre-training classifier: linear (cross-entropy on logits) or cosine (scaled cosine similarity, 'Baseline++')",
        choices=CLASSIFIERS,
    )
    option(p, d, "cosine_scale", "logit scale of the cosine classifier")
    option(p, d, "label_smoothing", "label smoothing of the loss")
    option(
        p,
        d,
        "within_loss",
        "weight of a second loss over only the classes of each character's own alphabet and rotation (Omniglot)",
    )
    option(
        p,
        d,
        "mirror_classes",
        "drawings: every class's mirror image a class of its own (half of every batch mirrored); with Omniglot's "
        "rotations, each character under all 8 symmetries of the square",
    )
    option(p, d, "augment", "random affine (and mirror) augmentation")
    option(p, d, "elastic", "with augmentation: smooth random stroke displacement, at most this fraction of the image")
    option(p, d, "val_episodes", "5-way 1-shot validation episodes, 4 times a run")
    option(
        p,
        d,
        "compute",
        "float type of the forward pass: bfloat16 (autocast; weights and optimizer stay float32) took half the "
        "time on a 2-core AMD EPYC with AVX-512 BF16; without such instructions (an AVX2 EPYC) it took 6 times "
        "longer, and pretrain warns (benchmarks/pretrain_speed.py measures both)",
        choices=PRETRAIN_COMPUTE,
    )
    option(
        p,
        d,
        "train_splits",
        "the classes to learn: train, or train+val for a final model once its settings were chosen on val (the "
        "run then has no validation)",
        choices=PRETRAIN_SPLITS,
    )
    option(p, d, "seed", "random seed")
    add_device(p, config_default(d, "device"))
    p.add_argument(
        "--out",
        required=True,
        help="checkpoint file to write; while it runs, OUT_STEM.resume.pt beside it holds a resumable state",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue an interrupted pre-training of --out from its .resume.pt"
    )
    add_quiet(p)
    p.set_defaults(run=cmd_pretrain)


def _native_size(args: argparse.Namespace) -> int:
    """The input size without --input-size: a pretrained backbone's own, else the data set's."""
    from anil_engine.backbones import get_backbone

    backbone = get_backbone(args.backbone)
    return backbone.input_sizes[0] if backbone.pretrained is not None else dataset_preprocessing(args.dataset).size


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return from_args(
        TrainConfig,
        args,
        data_root=data_root(args, args.dataset),
        split_scheme=args.split_scheme or config_default(TrainConfig, "split_scheme"),
        input_size=args.input_size or _native_size(args),
        init_feature_norm=0.0 if args.pretrain_epochs > 0 else (args.init_feature_norm or 0.0),
    )


def _train_bars() -> tuple[Callable[[Any], tuple[str, int, int]], Callable[[Any], dict[str, Any]]]:
    """The progress bar's phase and numbers for pre-training, data loading and meta-training."""
    from anil_engine.meta.pretraining import PretrainProgress
    from anil_engine.meta.trainrun import DataProgress

    pretrain_postfix = pretrain_numbers()

    def phase(p: Any) -> tuple[str, int, int]:
        if isinstance(p, PretrainProgress):
            return "pretrain", p.steps, p.step
        if isinstance(p, DataProgress):
            return p.stage, p.total, p.done
        return "meta-train", p.iterations, p.iteration

    def postfix(p: Any) -> dict[str, Any]:
        if isinstance(p, PretrainProgress):
            return pretrain_postfix(p)
        if isinstance(p, DataProgress):
            return {}
        d = {} if p.iteration == 0 else {"loss": f"{p.loss:.3f}", "acc": f"{p.accuracy:.1f}"}
        if p.best_val_accuracy is not None:
            d["best_val"] = f"{p.best_val_accuracy:.2f}"
        return d

    return phase, postfix


def cmd_train(args: argparse.Namespace) -> int:
    from anil_engine.meta.pretraining import PRETRAINED, pretrain_then_train, resume_path
    from anil_engine.meta.training import train

    config = _train_config(args)
    # Under torchrun every process runs this command; rank 0 alone shows progress and prints the result.
    main_rank = os.environ.get("RANK", "0") == "0"
    pretraining = args.pretrain_epochs > 0
    if pretraining:
        norm = RECIPE_FEATURE_NORM if args.init_feature_norm is None else args.init_feature_norm
        gen = pretrain_then_train(config, args.pretrain_epochs, args.out, args.resume, norm)
    else:
        gen = train(config, args.out, resume=args.resume)
    try:
        result = drive(gen, args.quiet or not main_rank, *_train_bars())
    except KeyboardInterrupt:
        if main_rank:
            saved = Path(args.out) / "last.pt"
            if pretraining and not saved.exists():
                saved = resume_path(Path(args.out) / PRETRAINED)
            print(f"\ninterrupted: saved {saved}; continue with the same command plus --resume", file=sys.stderr)
        return 130
    if main_rank:
        emit_json(result)
    return 0


def pretrain_numbers() -> Callable[[Any], dict[str, Any]]:
    """The pre-training bar's numbers; the last validation accuracy stays shown."""
    val: dict[str, str] = {}

    def postfix(p: Any) -> dict[str, Any]:
        if p.val_accuracy is not None:
            val["val_ncm"] = f"{p.val_accuracy:.1f}"
        return {"epoch": p.epoch, "loss": f"{p.loss:.3f}", "acc": f"{p.accuracy:.1f}", **val}

    return postfix


def cmd_pretrain(args: argparse.Namespace) -> int:
    from anil_engine.meta.pretraining import pretrain, resume_path

    config = from_args(
        PretrainConfig,
        args,
        data_root=data_root(args, args.dataset),
        split_scheme=args.split_scheme or config_default(PretrainConfig, "split_scheme"),
        input_size=args.input_size or _native_size(args),
    )
    note = slow_bfloat16_note(resolve_device(config.device)) if config.compute == "bfloat16" else None
    if note:
        warn([note])
    gen = pretrain(config, args.out, resume=args.resume)
    try:
        result = drive(gen, args.quiet, lambda p: ("pretrain", p.steps, p.step), pretrain_numbers())
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: saved {resume_path(args.out)}; continue with the same command plus --resume",
            file=sys.stderr,
        )
        return 130
    emit_json(result)
    return 0
