"""Model cards: every number on a card comes from `anil-studio card`, rerunnable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from anil_engine.checkpoint import atomic_write_bytes, check_writable, load_checkpoint, save_checkpoint
from anil_engine.config import (  # noqa: F401 - EVAL_QUERY re-exported
    EVAL_QUERY,
    LAKE_RUNS,
    WITHIN,
    CardRequest,
    EvalConfig,
    LakeRunsRequest,
    Preprocessing,
    TaskSpec,
)
from anil_engine.environment import machine_description
from anil_engine.errors import ConfigError

RESULT_KEYS = ("ways", "shots", "query", "bn", "accuracy", "ci95", "episodes", "seed", "split", "split_scheme",
               "dataset", "method", "trunk", "within", "views")  # fmt: skip
# (BatchNorm, method, random trunk, views: None = the model's) of each column: the two protocols, then the
# baselines. A model with test-time views gets its transductive column without them (per-episode batches
# through the trunk: 9 views would take about 5 h of a 2-core CPU for one card) and a column of the app's
# inductive protocol without them, so the card shows what the views add on the same episodes.
VARIANTS = (("inductive", "head", False, None), ("transductive", "head", False, None))
VIEWS_VARIANTS = (
    ("inductive", "head", False, None),
    ("transductive", "head", False, 1),
    ("inductive", "head", False, 1),
)
BASELINES = (("inductive", "head", True, None), ("inductive", "ncm", False, None))


SETTINGS_FORM = (
    "20x1,20x5 (WAYSxSHOTS; 20x1@alphabet: every episode's classes from one alphabet; lake-runs: Lake et al.'s 20 runs)"
)
# (BatchNorm, method) of the lake-runs row: the two protocols, then the baselines on the same runs.
LAKE_RUNS_VARIANTS = (("inductive", "head"), ("transductive", "head"), ("inductive", "ncm"), ("inductive", "mhd"))


def parse_settings(text: str) -> list[tuple[int, int, str | None]]:
    """ "20x1,5x5,20x1@alphabet,lake-runs" -> [(20, 1, None), (5, 5, None), (20, 1, "alphabet"),
    (20, 1, "lake-runs")]."""
    out: list[tuple[int, int, str | None]] = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        if part == LAKE_RUNS:
            out.append((20, 1, LAKE_RUNS))
            continue
        size, _, within = part.partition("@")
        try:
            ways, shots = (int(v) for v in size.split("x"))
        except ValueError as exc:
            raise ConfigError(f"settings must look like {SETTINGS_FORM}, got {text!r}") from exc
        if within and within not in WITHIN:
            raise ConfigError(f"settings: @{within} is not one of {', '.join('@' + w for w in WITHIN)}, got {text!r}")
        out.append((ways, shots, within or None))
    if not out:
        raise ConfigError(f"settings must look like {SETTINGS_FORM}, got {text!r}")
    return out


def write_card(request: CardRequest, evaluate: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """Evaluate every setting in both BatchNorm modes and write the card; with `request.write`, then also store
    the results (and `adaptation_steps`, `views`) in the checkpoint. The checkpoint is never changed otherwise, nor
    when the card cannot be written (checked before any evaluation).

    `evaluate(EvalRequest) -> result dict` runs one evaluation (the CLI's under a progress bar). With
    `request.baselines`, every setting is also measured (inductive, on the same episodes) with a random
    trunk and the same head adaptation, and with nearest-class-mean on the trained features.
    """
    check_writable(request.out, "card")
    recipe = Path(request.recipe_file).read_text(encoding="utf-8").strip() if request.recipe_file else request.recipe
    ckpt = load_checkpoint(request.checkpoint)
    if request.adaptation_steps is not None:
        # The head adaptation of eval, the app, classify and adapt; meta-training's inner loop stays recorded
        # in train_config.
        if request.adaptation_steps < 0:
            raise ConfigError(f"adaptation steps must be >= 0, got {request.adaptation_steps}")
        ckpt["adaptation_steps"] = request.adaptation_steps
    if request.views is not None:
        # Test-time views of eval, the app, classify and the export (checked against the model's channels now,
        # before an hour of measuring).
        ckpt["preprocessing"] = Preprocessing.from_dict({**ckpt["preprocessing"], "views": request.views}).to_dict()
    rows = _measure(request, ckpt, evaluate)
    results = [r for row in rows for r in row]
    lines = _card_header(request, ckpt, recipe) + _card_table(request, rows, _views(ckpt))
    lines += _card_reproduce(request, ckpt)
    atomic_write_bytes("\n".join(lines).encode(), request.out)
    if request.write:
        ckpt["test_results"] = [{k: r.get(k) for k in RESULT_KEYS} for r in results]
        save_checkpoint(ckpt, request.checkpoint)
    return results


def _measure(
    request: CardRequest, ckpt: dict[str, Any], evaluate: Callable[[Any], dict[str, Any]]
) -> list[list[dict[str, Any]]]:
    from anil_engine.evaluation import EvalRequest

    name = ckpt["dataset"].get("name", "omniglot")
    scheme = ckpt["dataset"].get("split_scheme", "vinyals")
    variants = VIEWS_VARIANTS if _views(ckpt) > 1 else VARIANTS
    rows = []
    for ways, shots, within in parse_settings(request.settings):
        if within == LAKE_RUNS:
            rows.append(_measure_lake_runs(request, name, scheme))
            continue
        row = []
        # Within an alphabet the nearest-class-mean baseline is always measured: it is the bar to compare with.
        baselines = BASELINES if request.baselines else BASELINES[1:] if within else ()
        for bn, method, random_trunk, views in variants + baselines:
            config = EvalConfig(TaskSpec(ways, shots, request.query), request.episodes, bn, request.seed,
                                adaptation_steps=request.adaptation_steps, method=method, within=within,
                                views=views or request.views)  # fmt: skip
            row.append(
                evaluate(
                    EvalRequest(
                        request.checkpoint,
                        request.data_root,
                        config,
                        name,
                        "test",
                        scheme,
                        request.device,
                        random_trunk,
                    )
                )
            )
        rows.append(row)
    return rows


def _views(ckpt: dict[str, Any]) -> int:
    """The test-time views the card measures (the checkpoint's, with `--views` already laid over them)."""
    return int(ckpt["preprocessing"].get("views", 1))


def _measure_lake_runs(request: CardRequest, name: str, scheme: str) -> list[dict[str, Any]]:
    """Lake et al.'s 20 runs in every `LAKE_RUNS_VARIANTS`, as card results (accuracy; "episodes": runs): one
    inductive evaluation with its baselines, one transductive."""
    from anil_engine.jobs import run_to_end
    from anil_engine.lake_evaluation import evaluate_lake_runs

    def measure(bn: str, baselines: bool) -> dict[str, Any]:
        lake = LakeRunsRequest(request.checkpoint, request.data_root, "head", bn, request.adaptation_steps,
                               device=request.device, baselines=baselines, views=request.views)  # fmt: skip
        return run_to_end(evaluate_lake_runs(lake))

    inductive, transductive = measure("inductive", True), measure("transductive", False)
    baselines = inductive["baselines"]
    ncm, mhd = baselines["nearest class mean (same trunk)"], baselines["Modified Hausdorff Distance (pixels)"]
    results = {("inductive", "head"): inductive, ("transductive", "head"): transductive,
               ("inductive", "ncm"): ncm, ("inductive", "mhd"): mhd}  # fmt: skip
    row = []
    for bn, method in LAKE_RUNS_VARIANTS:
        result = results[(bn, method)]
        row.append({"ways": 20, "shots": 1, "query": 1, "bn": bn, "accuracy": result["accuracy"],
                    "ci95": result["ci95"], "episodes": inductive["runs"], "seed": None, "split": "test",
                    "split_scheme": scheme, "dataset": name, "method": method, "trunk": "trained",
                    "within": LAKE_RUNS, "error": result["error"],
                    "views": None if method == "mhd" else inductive["views"]})  # fmt: skip
    return row


def _card_header(request: CardRequest, ckpt: dict[str, Any], recipe: str) -> list[str]:
    cfg, metrics, pre = ckpt.get("train_config", {}), ckpt.get("metrics", {}), ckpt["preprocessing"]
    name = ckpt["dataset"].get("name", "omniglot")
    scheme = ckpt["dataset"].get("split_scheme", "vinyals")
    # Where it was trained: recorded at training time; older checkpoints trained on a CPU were made here.
    machine = metrics.get("machine") or (
        machine_description() if metrics.get("device") == "cpu" else "machine not recorded"
    )
    final = (metrics.get("pretraining") or {}).get("train_splits", "train") != "train"
    return [
        f"# Model card: `{Path(request.checkpoint).name}`",
        "",
        f"- **Data set**: {name}, class split `{scheme}` ("
        + (
            "trunk pre-trained on `train` and `val`, so no validation; meta-trained on `train`"
            if final
            else "trained on `train`, best-by-validation on `val`"
        )
        + ", tested on `test`)",
        f"- **Model**: learn2learn CNN4 trunk, hidden size {ckpt['model']['hidden_size']}, "
        + ("" if ckpt["model"].get("layers", 4) == 4 else f"{ckpt['model']['layers']} conv blocks, ")
        + f"{ckpt['model']['channels']}x{pre['size']}x{pre['size']} input, linear head of "
        f"{ckpt['model']['ways']} ways",
        f"- **Preprocessing**: Pillow, EXIF transpose, {'grayscale' if pre['channels'] == 1 else 'RGB'}, "
        + ("crop to the square around the ink (`--crop ink`), " if pre.get("crop", "none") == "ink" else "")
        + f"Lanczos resize to {pre['size']}x{pre['size']}, scale to [0, 1], mean {pre['mean']}, std {pre['std']}",
        *(
            [
                f"- **Test-time views** (evaluation, the app and the export): every image's features averaged over "
                f"{pre['views']} shifted, turned and scaled copies of it (`anil_engine.views`)"
            ]
            if pre.get("views", 1) > 1
            else []
        ),
        f"- **Head adaptation** (test time and the app): {ckpt['adaptation_steps']} SGD steps at fast_lr "
        f"{ckpt['fast_lr']} (meta-training's inner loop: {cfg.get('adaptation_steps', '?')} steps)",
        f"- **Training**: {metrics.get('iterations', '?')} meta-iterations, "
        + (
            "the last kept (no validation)"
            if final
            else f"best validation accuracy {metrics.get('best_val_accuracy', '?')} % at iteration "
            f"{metrics.get('best_iteration', '?')}"
        )
        + f", {metrics.get('train_seconds', '?')} s of meta-training on {metrics.get('device', '?')} "
        f"({machine}), torch {metrics.get('torch', '?')}",
        *_pretraining_line(metrics.get("pretraining")),
        f"- **Training settings**: `{ {k: v for k, v in cfg.items() if k != 'data_root'} }`",
        "",
        "## Recipe",
        "",
        recipe or "Pure ANIL from a random initialisation.",
        "",
    ]


def _pretraining_line(record: dict[str, Any] | None) -> list[str]:
    """The starting trunk's pre-training (recorded by `train --init-from` a `pretrain` checkpoint), if any."""
    if not record:
        return []
    seconds = record.get("train_seconds")
    wall = f"{seconds:,.0f} s" if isinstance(seconds, int | float) else "? s"
    splits = record.get("train_splits", "train")
    return [
        f"- **Pre-training** (the starting trunk): {record.get('epochs', '?')} epochs on the {splits} classes, "
        f"{wall} on {record.get('device', '?')} ({record.get('machine') or 'machine not recorded'}), forward pass in "
        f"{record.get('compute', 'float32')}, torch {record.get('torch', '?')}"
    ]


def _protocol_columns(views: int) -> str:
    """The table's first columns: the app's protocol, learn2learn's, and for a model with test-time views the
    app's protocol without them."""
    if views == 1:
        return "| setting | inductive BN (the app's) | transductive BN (learn2learn's) |"
    return (f"| setting | inductive BN, {views} views (the app's) | transductive BN (learn2learn's), the image alone "
            "| inductive BN, the image alone |")  # fmt: skip


def _card_table(request: CardRequest, rows: list[list[dict[str, Any]]], views: int) -> list[str]:
    baselines = request.baselines
    lines = [
        f"## Test accuracy ({request.episodes} episodes, {request.query} query images per class, seed "
        f"{request.seed}, mean ± 95% CI)",
        "",
        _protocol_columns(views)
        + (
            " baseline: random trunk, same head adaptation | baseline: nearest class mean, trained trunk |"
            if baselines
            else ""
        ),
        "|---|---|---|" + ("---|" if views > 1 else "") + ("---|---|" if baselines else ""),
    ]
    for row in (r for r in rows if not r[0].get("within")):
        cells = " | ".join(f"{r['accuracy']:.2f} ± {r['ci95']:.2f}" for r in row)
        lines.append(f"| {row[0]['ways']}-way {row[0]['shots']}-shot | {cells} |")
    lines += _within_table([r for r in rows if r[0].get("within") not in (None, LAKE_RUNS)], baselines, views)
    lines += _lake_runs_table([r for r in rows if r[0].get("within") == LAKE_RUNS], views)
    lines += [
        "",
        "Inductive: eval-mode BatchNorm with running statistics, each image independent (what the app does).",
        "Transductive: BatchNorm uses each episode's batch statistics (learn2learn's test protocol).",
    ]
    if views > 1:
        lines.append(
            f"{views} views: every image's features averaged over {views} slightly shifted, turned and scaled copies "
            "of it (test-time views, `anil_engine.views`; what the app, `classify` and the export do with this "
            "model); the image alone: the same episodes without them (`eval --views 1`)."
        )
    if baselines:
        lines.append(
            "Baselines (inductive, the same episodes: same seed): a randomly initialised trunk (seeded by the "
            "episode seed, BatchNorm statistics from 1,024 training images) with the same head adaptation "
            "(`eval --random-trunk`), and nearest-class-mean classification on the trained features "
            "(`eval --method ncm`)" + (f", both with the model's {views} views." if views > 1 else ".")
        )
    return lines


def _within_table(rows: list[list[dict[str, Any]]], baselines: bool, views: int) -> list[str]:
    """Lake et al.'s one-shot protocol: every episode's classes are unrotated characters of one alphabet."""
    if not rows:
        return []
    lines = [
        "",
        "### Within one alphabet (Lake et al. 2015's one-shot protocol)",
        "",
        "Every episode's classes are unrotated characters of one alphabet of the test split (characters that "
        "look alike). Humans: 4.5 % error (95.5 % accuracy), Bayesian Program Learning: 3.3 % (96.7 %), on "
        "Lake et al.'s 20 runs x 20 queries of 20-way 1-shot; these rows use 1,000 seeded episodes.",
        "",
        _protocol_columns(views) + " baseline: nearest class mean, trained trunk |",
        "|---|---|---|---|" + ("---|" if views > 1 else ""),
    ]
    for row in rows:
        kept = [r for r in row if not (baselines and r.get("trunk") == "random")]
        cells = " | ".join(f"{r['accuracy']:.2f} ± {r['ci95']:.2f}" for r in kept)
        lines.append(f"| {row[0]['ways']}-way {row[0]['shots']}-shot within one {row[0]['within']} | {cells} |")
    return lines


def _lake_runs_table(rows: list[list[dict[str, Any]]], views: int) -> list[str]:
    """The runs humans and BPL were scored on: error in %, as Lake et al. report it."""
    if not rows:
        return []
    cells = " | ".join(f"{r['error']:.2f} ± {r['ci95']:.2f}" for r in rows[0])
    return [
        "",
        "### Lake et al.'s 20 runs (the runs humans and BPL were scored on)",
        "",
        "Lake et al.'s 20 fixed 20-way 1-shot runs (`anil-studio lake-runs`): each within one evaluation alphabet, "
        "the one support drawing and the query drawings of each character by different people, 20 queries per "
        "run (400 in all). **Error** in %, mean ± 95% CI over the 20 runs. Published on the same runs: humans "
        "4.5 %, Bayesian Program Learning 3.3 %, Lake's pixel baseline (Modified Hausdorff Distance) 38.8 %."
        + (
            f" The model's columns, transductive too, with its {views} test-time views (800 images in all)."
            if views > 1
            else ""
        ),
        "",
        "| error in % | inductive BN (the app's) | transductive BN | baseline: nearest class mean, trained trunk "
        "| baseline: Modified Hausdorff Distance (pixels) |",
        "|---|---|---|---|---|",
        f"| Lake et al.'s 20 runs | {cells} |",
    ]


def _card_reproduce(request: CardRequest, ckpt: dict[str, Any]) -> list[str]:
    r = request
    name = ckpt["dataset"].get("name", "omniglot")
    scheme = ckpt["dataset"].get("split_scheme", "vinyals")
    settings = parse_settings(r.settings)
    ways, shots, within = next((s for s in settings if s[2] != LAKE_RUNS), (20, 1, None))
    views = f" --views {r.views}" if r.views is not None else ""
    lake_runs = ["# Lake et al.'s 20 runs:"] if any(s[2] == LAKE_RUNS for s in settings) else []
    if lake_runs:
        lake_runs.append(f"anil-studio lake-runs --checkpoint {r.checkpoint} --data-root DATA --baselines{views}")
    return [
        "",
        "## Reproduce",
        "",
        "```",
        f"anil-studio card --checkpoint {r.checkpoint} --data-root DATA --settings {r.settings} "
        f"--episodes {r.episodes} --query {r.query} --seed {r.seed}{' --baselines' if r.baselines else ''}"
        f"{f' --adaptation-steps {r.adaptation_steps}' if r.adaptation_steps is not None else ''}"
        f"{views}{f' --recipe {r.recipe_file}' if r.recipe_file else ''}{' --write' if r.write else ''} --out {r.out}",
        "# one row:",
        f"anil-studio eval --checkpoint {r.checkpoint} --dataset {name} --split-scheme {scheme} --data-root DATA "
        f"--split test --ways {ways} --shots {shots} --query {r.query} --episodes {r.episodes} "
        f"--bn inductive --seed {r.seed}{f' --episodes-within {within}' if within else ''}{views} --json",
        *lake_runs,
        "```",
        "",
    ]
