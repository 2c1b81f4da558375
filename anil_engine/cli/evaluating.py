"""`eval`, `tune` and `card`: measuring a checkpoint on few-shot episodes, and writing its model card."""

from __future__ import annotations

import argparse
import sys
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
)
from anil_engine.config import BN_MODES, METHODS, VIEW_COUNTS, WITHIN, CardRequest, EvalConfig, LakeRunsRequest
from anil_engine.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    _add_eval(sub.add_parser("eval", help="evaluate a checkpoint on N-way K-shot test episodes"))
    _add_card(sub.add_parser("card", help="evaluate a checkpoint in every standard setting and write its model card"))
    tu = sub.add_parser(
        "tune", help="measure the test-time head adaptation choices on the validation split and keep the best"
    )
    tu.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    tu.add_argument("--data-root", required=True, help="folder holding the checkpoint's data set")
    tu.add_argument(
        "--episodes", type=int, default=300, help="validation episodes per choice and setting (%(default)s)"
    )
    tu.add_argument("--write", action="store_true", help="record the best choice in the checkpoint")
    tu.set_defaults(run=cmd_tune)
    _add_lake_runs(
        sub.add_parser(
            "lake-runs",
            help="Lake et al.'s 20 one-shot runs (20-way 1-shot within one alphabet): error next to humans' 4.5 %%",
        )
    )


def _add_bn_method(p: argparse.ArgumentParser, cls: type, per_batch: str) -> None:
    """--bn and --method with the defaults of config `cls`; `per_batch`: whose statistics transductive uses."""
    p.add_argument(
        "--bn",
        choices=BN_MODES,
        default=config_default(cls, "bn"),
        help=f"BatchNorm statistics: running (inductive, the app's) or {per_batch} (%(default)s)",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default=config_default(cls, "method"),
        help="head: ANIL head adaptation; ncm: nearest class mean of the support features (baseline) (%(default)s)",
    )


def _add_views(p: argparse.ArgumentParser, stored: str = "") -> None:
    p.add_argument(
        "--views",
        type=int,
        choices=VIEW_COUNTS,
        default=None,
        help="test-time views: average every image's features over this many shifted, turned and scaled copies "
        f"of it (drawings only; 1: the image alone){stored} (default: the checkpoint's)",
    )


def _add_eval(e: argparse.ArgumentParser) -> None:
    d = EvalConfig
    e.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    add_data(e, required=True, from_checkpoint=True)
    e.add_argument("--split", default="test", choices=("train", "val", "test", "all"), help="split (%(default)s)")
    add_task(e, config_default(d, "task"))
    e.add_argument("--episodes", type=int, default=config_default(d, "episodes"), help="test episodes (%(default)s)")
    _add_bn_method(e, d, "per-batch (learn2learn's)")
    add_head(e, from_checkpoint=True)
    e.add_argument("--seed", type=int, default=config_default(d, "seed"), help="episode seed (%(default)s)")
    e.add_argument(
        "--episodes-within",
        choices=WITHIN,
        default=config_default(d, "within"),
        help="draw every episode's classes from one group: alphabet = one Omniglot alphabet, unrotated characters "
        "(Lake et al.'s one-shot protocol; with --split-scheme lake the test set is the 20 evaluation alphabets); "
        "rotated-alphabet = one alphabet at one rotation "
        "(default: the whole split)",
    )
    e.add_argument(
        "--random-trunk",
        action="store_true",
        help="baseline: a randomly initialised trunk (seeded, BatchNorm statistics from training images)",
    )
    _add_views(e)
    add_device(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    add_quiet(e)
    e.set_defaults(run=cmd_eval)


def _add_card(c: argparse.ArgumentParser) -> None:
    c.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    c.add_argument("--data-root", required=True, help="folder holding the checkpoint's data set")
    c.add_argument(
        "--settings",
        default=config_default(CardRequest, "settings"),
        help="WAYSxSHOTS list; 20x1@alphabet: episodes within one alphabet (%(default)s)",
    )
    c.add_argument(
        "--episodes",
        type=int,
        default=config_default(CardRequest, "episodes"),
        help="test episodes per setting (%(default)s)",
    )
    c.add_argument("--seed", type=int, default=config_default(CardRequest, "seed"), help="episode seed (%(default)s)")
    c.add_argument(
        "--query", type=int, default=config_default(CardRequest, "query"), help="query images per class (%(default)s)"
    )
    c.add_argument("--recipe", default="", help="recipe for the card: markdown text, or a file holding it")
    c.add_argument(
        "--adaptation-steps",
        type=int,
        default=None,
        help="head-adaptation steps to evaluate with (test time and the app; with --write also stored in the "
        "checkpoint); meta-training's inner loop is unchanged (the checkpoint's value)",
    )
    _add_views(c, "; with --write also stored in the checkpoint, so the app, classify and export use them")
    c.add_argument(
        "--write",
        action="store_true",
        help="also store the results (and --adaptation-steps, --views) in the checkpoint, once the card is written; "
        "without it the checkpoint is not changed",
    )
    c.add_argument(
        "--baselines",
        action="store_true",
        help="also measure, on the same episodes (inductive), a random trunk with the same head adaptation and "
        "nearest-class-mean on the trained features",
    )
    add_device(c)
    c.add_argument(
        "--photo",
        action="store_true",
        help="the card of a model on a pretrained trunk: plain words first; baselines on the same episodes "
        "(the trunk without meta-training, nearest class mean, and --compare)",
    )
    c.add_argument("--compare", default="", help="with --photo: a CNN4 checkpoint measured on the same episodes")
    c.add_argument("--out", required=True, help="markdown file to write")
    add_quiet(c, "no progress bars (one per measured row and BatchNorm mode; a card can take an hour on a CPU)")
    c.set_defaults(run=cmd_card)


def _add_lake_runs(r: argparse.ArgumentParser) -> None:
    r.add_argument("--checkpoint", required=True, help="checkpoint file (.pt) of a lake-split Omniglot model")
    r.add_argument("--data-root", required=True, help="folder holding Omniglot: the runs' drawings are read from it")
    _add_bn_method(r, LakeRunsRequest, "each run's 40 images'")
    r.add_argument("--adaptation-steps", type=int, default=None, help="head steps (the checkpoint's)")
    r.add_argument("--fast-lr", type=float, default=None, help="head step size (the checkpoint's)")
    r.add_argument(
        "--baselines",
        action="store_true",
        help="also, on the same runs: the nearest class mean of the same trunk, and Lake's pixel baseline "
        "(Modified Hausdorff Distance; published 38.8 %%)",
    )
    r.add_argument(
        "--redraws",
        type=int,
        default=config_default(LakeRunsRequest, "redraws"),
        help="also measure each run's characters with this many random pairs of other drawers (one for the "
        "support, one for the queries, as Lake's runs pair them): the runs without Lake's choice of drawers "
        "(%(default)s)",
    )
    r.add_argument(
        "--seed", type=int, default=config_default(LakeRunsRequest, "seed"), help="of the redraws (%(default)s)"
    )
    _add_views(r)
    add_device(r)
    r.add_argument("--json", action="store_true", help="print one JSON object")
    add_quiet(r)
    r.set_defaults(run=cmd_lake_runs)


def cmd_lake_runs(args: argparse.Namespace) -> int:
    from anil_engine.lake_evaluation import evaluate_lake_runs

    request = LakeRunsRequest(args.checkpoint, args.data_root, args.method, args.bn, args.adaptation_steps,
                              args.fast_lr, args.device, args.baselines, redraws=args.redraws,
                              seed=args.seed, views=args.views)  # fmt: skip
    desc = f"Lake's runs {args.bn}" + (" + baselines" if args.baselines else "")
    result = drive(evaluate_lake_runs(request), args.quiet or args.json,
                   lambda p: (desc, p.episodes, p.episode), lambda p: {"acc": f"{p.accuracy:.1f}"})  # fmt: skip
    if args.json:
        emit_json(result)
        return 0
    how = f"head adaptation, {result['adaptation_steps']} steps" if args.method == "head" else "nearest class mean"
    print(f"Lake et al.'s {result['runs']} one-shot runs (20-way 1-shot within one alphabet, {result['queries']} "
          f"queries), {args.bn} BatchNorm, {how}:")  # fmt: skip
    print(f"  error {result['error']:.2f} ± {result['ci95']:.2f} % (accuracy {result['accuracy']:.2f} %)")
    print("  per run: " + " ".join(f"{e:g}" for e in result["errors"]))
    if args.baselines:
        same = "; ".join(f"{k} {v['error']:.2f} ± {v['ci95']:.2f} %" for k, v in result["baselines"].items())
        print(f"  on the same runs: {same}")
    if "redrawn" in result:
        redrawn = result["redrawn"]
        names = {"head": "head adaptation", "ncm": "nearest class mean", "mhd": "Modified Hausdorff Distance"}
        same = "; ".join(f"{names[k]} {v['error']:.2f} ± {v['ci95']:.2f} %" for k, v in redrawn.items() if k in names)
        print(f"  the runs' characters with other drawers ({redrawn['draws']} random pairs per run, seed "
              f"{redrawn['seed']}): {same}")  # fmt: skip
    print("  published: " + ", ".join(f"{k} {v} %" for k, v in result["published"].items()))
    return 0


def run_eval(request: Any, quiet: bool) -> dict[str, Any]:
    """`anil_engine.evaluation.evaluate_checkpoint(request)` under a progress bar; returns its result dict."""
    from anil_engine.evaluation import evaluate_checkpoint

    cfg = request.config
    within = f"@{cfg.within}" if cfg.within else ""
    method = " nearest class mean" if cfg.method == "ncm" else ""
    trunk = " random trunk" if request.random_trunk else ""
    desc = f"eval {cfg.task.ways}w{cfg.task.shots}s{within} {cfg.bn}{method}{trunk}"
    gen = evaluate_checkpoint(request)
    return drive(gen, quiet, lambda p: (desc, cfg.episodes, p.episode), lambda p: {"acc": f"{p.accuracy:.2f}"})


def cmd_eval(args: argparse.Namespace) -> int:
    from anil_engine.config import TaskSpec
    from anil_engine.evaluation import EvalRequest

    root = args.data_root
    if args.download:
        from anil_engine.checkpoint import load_checkpoint

        name = args.dataset or load_checkpoint(args.checkpoint)["dataset"].get("name", "omniglot")
        root = data_root(args, name)
    config = EvalConfig(
        TaskSpec(args.ways, args.shots, args.query),
        args.episodes,
        args.bn,
        args.seed,
        args.fast_lr,
        args.adaptation_steps,
        args.method,
        args.head_init,
        args.flip,
        args.episodes_within,
        args.views,
    )
    request = EvalRequest(
        args.checkpoint, root, config, args.dataset, args.split, args.split_scheme, args.device, args.random_trunk
    )
    result = run_eval(request, args.quiet or args.json)
    if args.json:
        emit_json(result)
    else:
        within = f" within one {result['within']}" if result.get("within") else ""
        print(
            f"{result['ways']}-way {result['shots']}-shot{within}, {result['bn']} BatchNorm, {result['episodes']} "
            f"episodes: {result['accuracy']:.2f} ± {result['ci95']:.2f} %"
        )
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from anil_engine.photo_card import tune

    def say(line: str) -> None:
        print(line, file=sys.stderr)

    best = tune(args.checkpoint, args.data_root, args.episodes, args.write, say=say)
    emit_json(best)
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from anil_engine.cards import parse_settings, write_card

    if args.photo:
        from anil_engine.photo_card import write_photo_card

        settings = [(ways, shots) for ways, shots, within in parse_settings(args.settings) if within is None]
        if len(settings) < len(parse_settings(args.settings)):
            raise ConfigError("card --photo: @alphabet and lake-runs settings are for Omniglot cards; remove them")
        if args.views is not None:
            raise ConfigError("card --photo: --views is for drawings (1-channel models), not photos; remove it")
        write_photo_card(args.checkpoint, args.data_root, args.out, settings, args.episodes, args.seed,
                         args.compare, args.recipe, args.write)  # fmt: skip
        print(f"wrote {args.out}")
        return 0
    request = CardRequest(
        args.checkpoint,
        args.data_root,
        args.out,
        args.settings,
        args.episodes,
        args.seed,
        args.query,
        args.recipe,
        args.device,
        args.baselines,
        args.adaptation_steps,
        args.views,
        args.write,
    )
    write_card(request, lambda r: run_eval(r, quiet=args.quiet))
    print(f"wrote {args.out}")
    return 0
