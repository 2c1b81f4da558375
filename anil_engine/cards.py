"""Model cards: every number on a card comes from `anil-studio card`, rerunnable."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anil_engine.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from anil_engine.errors import ConfigError

EVAL_QUERY = 15


def parse_settings(text: str) -> list[tuple[int, int]]:
    """ "20x1,5x5" -> [(20, 1), (5, 5)]."""
    try:
        out = [tuple(int(v) for v in part.lower().split("x")) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ConfigError(f"settings must look like 20x1,20x5 (WAYSxSHOTS), got {text!r}") from exc
    if not out or any(len(s) != 2 for s in out):
        raise ConfigError(f"settings must look like 20x1,20x5 (WAYSxSHOTS), got {text!r}")
    return out  # type: ignore[return-value]


def machine_description(device: str = "cpu") -> str:
    """ "<CPU model>, <n> cores, <OS>", preceded by the GPU's name when `device` is a CUDA device."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    host = f"{cpu}, {os.cpu_count()} cores, {platform.system()}"
    if str(device).startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(torch.device(device))}; host {host}"
    return host


def write_card(
    checkpoint: str,
    data_root: str,
    settings: str,
    episodes: int,
    seed: int,
    recipe: str,
    device: str,
    out: str,
    run_eval: Callable[..., dict[str, Any]],
    baselines: bool = False,
    adaptation_steps: int | None = None,
    query: int = EVAL_QUERY,
) -> list[dict[str, Any]]:
    """Evaluate every setting in both BatchNorm modes, store results in the checkpoint, write the card.

    With `baselines`, every setting is also measured (inductive, on the same episodes) with a
    random trunk and the same head adaptation, and with nearest-class-mean on the trained features.
    """
    recipe_file = recipe if recipe and "\n" not in recipe and Path(recipe).is_file() else ""
    if recipe_file:
        recipe = Path(recipe_file).read_text(encoding="utf-8").strip()
    ckpt = load_checkpoint(checkpoint)
    if adaptation_steps is not None:
        # The checkpoint's head adaptation (used by eval, the app, classify and adapt); meta-training's inner
        # loop stays recorded in train_config. Written first, so the evaluations below use it.
        if adaptation_steps < 0:
            raise ConfigError(f"adaptation steps must be >= 0, got {adaptation_steps}")
        ckpt["adaptation_steps"] = adaptation_steps
        save_checkpoint(ckpt, checkpoint)
    name = ckpt["dataset"].get("name", "omniglot")
    scheme = ckpt["dataset"].get("split_scheme", "vinyals")
    results, rows = [], []
    variants = [("inductive", "head", False), ("transductive", "head", False)]
    if baselines:
        variants += [("inductive", "head", True), ("inductive", "ncm", False)]
    for ways, shots in parse_settings(settings):
        row = []
        for bn, method, random_trunk in variants:
            r = run_eval(
                checkpoint,
                data_root,
                name,
                "test",
                scheme,
                ways,
                shots,
                query,
                episodes,
                bn,
                seed,
                None,
                None,
                device,
                True,
                method,
                random_trunk,
            )
            results.append(r)
            row.append(r)
        rows.append(row)
    ckpt["test_results"] = [
        {
            k: r[k]
            for k in (
                "ways",
                "shots",
                "query",
                "bn",
                "accuracy",
                "ci95",
                "episodes",
                "seed",
                "split",
                "split_scheme",
                "dataset",
                "method",
                "trunk",
            )
        }
        for r in results
    ]
    save_checkpoint(ckpt, checkpoint)

    cfg, metrics, pre = ckpt.get("train_config", {}), ckpt.get("metrics", {}), ckpt["preprocessing"]
    # Where it was trained: recorded at training time; older checkpoints trained on a CPU were made here.
    machine = metrics.get("machine") or (
        machine_description() if metrics.get("device") == "cpu" else "machine not recorded"
    )
    lines = [
        f"# Model card: `{Path(checkpoint).name}`",
        "",
        f"- **Data set**: {name}, class split `{scheme}` (trained on `train`, best-by-validation on `val`, "
        "tested on `test`)",
        f"- **Model**: learn2learn CNN4 trunk, hidden size {ckpt['model']['hidden_size']}, "
        f"{ckpt['model']['channels']}x{pre['size']}x{pre['size']} input, linear head of "
        f"{ckpt['model']['ways']} ways",
        f"- **Preprocessing**: Pillow, EXIF transpose, {'grayscale' if pre['channels'] == 1 else 'RGB'}, "
        f"Lanczos resize to {pre['size']}x{pre['size']}, scale to [0, 1], mean {pre['mean']}, std {pre['std']}",
        f"- **Head adaptation** (test time and the app): {ckpt['adaptation_steps']} SGD steps at fast_lr "
        f"{ckpt['fast_lr']} (meta-training's inner loop: {cfg.get('adaptation_steps', '?')} steps)",
        f"- **Training**: {metrics.get('iterations', '?')} meta-iterations, best validation accuracy "
        f"{metrics.get('best_val_accuracy', '?')} % at iteration {metrics.get('best_iteration', '?')}, "
        f"{metrics.get('train_seconds', '?')} s of meta-training on {metrics.get('device', '?')} "
        f"({machine}), torch {metrics.get('torch', '?')}",
        f"- **Training settings**: `{ {k: v for k, v in cfg.items() if k != 'data_root'} }`",
        "",
        "## Recipe",
        "",
        recipe or "Pure ANIL from a random initialisation.",
        "",
        f"## Test accuracy ({episodes} episodes, {query} query images per class, seed {seed}, mean ± 95% CI)",
        "",
        "| setting | inductive BN (the app's) | transductive BN (learn2learn's) |"
        + (
            " baseline: random trunk, same head adaptation | baseline: nearest class mean, trained trunk |"
            if baselines
            else ""
        ),
        "|---|---|---|" + ("---|---|" if baselines else ""),
    ]
    for row in rows:
        cells = " | ".join(f"{r['accuracy']:.2f} ± {r['ci95']:.2f}" for r in row)
        lines.append(f"| {row[0]['ways']}-way {row[0]['shots']}-shot | {cells} |")
    lines += [
        "",
        "Inductive: eval-mode BatchNorm with running statistics, each image independent (what the app does).",
        "Transductive: BatchNorm uses each episode's batch statistics (learn2learn's test protocol).",
    ]
    if baselines:
        lines += [
            "Baselines (inductive, the same episodes: same seed): a randomly initialised trunk (seeded by the "
            "episode seed, BatchNorm statistics from 1,024 training images) with the same head adaptation "
            "(`eval --random-trunk`), and nearest-class-mean classification on the trained features "
            "(`eval --method ncm`).",
        ]
    lines += [
        "",
        "## Reproduce",
        "",
        "```",
        f"anil-studio card --checkpoint {checkpoint} --data-root DATA --settings {settings} "
        f"--episodes {episodes} --query {query} --seed {seed}{' --baselines' if baselines else ''}"
        f"{f' --adaptation-steps {adaptation_steps}' if adaptation_steps is not None else ''}"
        f"{f' --recipe {recipe_file}' if recipe_file else ''} --out {out}",
    ]
    a = results[0]
    lines += [
        "# one row:",
        f"anil-studio eval --checkpoint {checkpoint} --dataset {name} --split-scheme {scheme} --data-root DATA "
        f"--split test --ways {a['ways']} --shots {a['shots']} --query {query} --episodes {episodes} "
        f"--bn inductive --seed {seed} --json",
        "```",
        "",
    ]
    atomic_write_bytes("\n".join(lines).encode(), out)
    return results
