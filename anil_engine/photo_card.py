"""Test-time choices measured on the validation split, and the model card of a model on a pretrained trunk.

Both work on features computed once per image (inductive BatchNorm: an image's features
do not depend on the others), so 1,000 episodes take seconds after one pass over the split.

- `tune`: every head start x fast_lr x steps x flip on `val`, 5-way 1-shot and 5-shot; the best
  mean of the two is written into the checkpoint (what `eval`, the app, `classify` and `adapt` use).
- `write_photo_card`: 5-way 1-shot / 5-shot on `test`, next to baselines on the same episodes: the
  pretrained trunk without meta-training (same head adaptation), nearest class mean on the same
  features, and a CNN4 model (its own adaptation).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from anil_engine.checkpoint import atomic_write_bytes, check_writable, load_checkpoint, save_checkpoint
from anil_engine.config import HEAD_INITS, EvalConfig, ModelConfig, Preprocessing, TaskSpec
from anil_engine.datasets import load_dataset
from anil_engine.errors import ConfigError
from anil_engine.evaluation import (
    HEAD_INIT_WORDS,
    EvalRequest,
    evaluate_checkpoint,
    evaluate_features,
    onnx_trunk_session,
    split_features,
)
from anil_engine.jobs import run_to_end
from anil_engine.meta.trainrun import VAL_SEED
from anil_engine.models import AnilModel, model_from_checkpoint

TUNE_GRID = {
    "head_init": HEAD_INITS,
    "fast_lr": (0.03, 0.1, 0.3),
    "adaptation_steps": (5, 20, 50),
    "flip": (False, True),
}
TUNE_SETTINGS = ((5, 1), (5, 5))
QUERY = 15


def _features(model: AnilModel, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, features of the mirror images), each (n, num_features)."""
    session = onnx_trunk_session(model)
    return run_to_end(split_features(model, images, False, session)), run_to_end(
        split_features(model, images, True, session)
    )


def _data(ckpt: dict[str, Any], data_root: str, split: str) -> Any:
    pre = Preprocessing.from_dict(ckpt["preprocessing"])
    ds = ckpt["dataset"]
    return load_dataset(ds.get("name", "caltech-101"), data_root, split, pre.size, pre.channels,
                        ds.get("split_scheme", "vinyals"), crop=pre.crop)  # fmt: skip


def _episodes(
    feats: tuple[torch.Tensor, torch.Tensor],
    labels: torch.Tensor,
    head: tuple[torch.Tensor, torch.Tensor],
    ways: int,
    shots: int,
    episodes: int,
    seed: int,
    choice: dict[str, Any],
    method: str = "head",
) -> dict[str, Any]:
    config = EvalConfig(TaskSpec(ways, shots, QUERY), episodes, "inductive", seed, choice["fast_lr"],
                        choice["adaptation_steps"], method, choice["head_init"], choice["flip"])  # fmt: skip
    gen = evaluate_features(feats[0], labels, config, head, choice["fast_lr"], choice["adaptation_steps"], feats[1])
    return run_to_end(gen)


def checkpoint_choice(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The test-time head adaptation a checkpoint records."""
    return {
        "head_init": ckpt.get("head_init", "meta"),
        "fast_lr": float(ckpt["fast_lr"]),
        "adaptation_steps": int(ckpt["adaptation_steps"]),
        "flip": bool(ckpt.get("flip", False)),
    }


def tune(
    checkpoint: str, data_root: str, episodes: int = 300, write: bool = False, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure every test-time choice on the validation split; returns (and with `write` records) the best.

    The score of a choice is the mean of its 5-way 1-shot and 5-shot validation accuracies
    (`episodes` each, seed `VAL_SEED`: the episodes meta-training validated on).
    """
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, checkpoint)
    data = _data(ckpt, data_root, "val")
    feats = _features(model, data.images)
    head = (model.head.weight, model.head.bias)
    rows = []
    for values in itertools.product(*TUNE_GRID.values()):
        choice = dict(zip(TUNE_GRID, values, strict=True))
        accs = [_episodes(feats, data.labels, head, w, s, episodes, VAL_SEED, choice)["accuracy"]
                for w, s in TUNE_SETTINGS]  # fmt: skip
        rows.append((sum(accs) / len(accs), accs, choice))
        say(f"{choice}: 5-way 1-shot {accs[0]:.2f} %, 5-shot {accs[1]:.2f} %")
    score, accs, best = max(rows, key=lambda r: r[0])
    say(f"best on val: {best} (5-way 1-shot {accs[0]:.2f} %, 5-shot {accs[1]:.2f} %)")
    if write:
        ckpt.update(best)
        ckpt["tuning"] = {"split": "val", "episodes": episodes, "seed": VAL_SEED, "score": round(score, 3),
                          "settings": [f"{w}x{s}" for w, s in TUNE_SETTINGS], "grid": {k: list(v) for k, v in
                          TUNE_GRID.items()}}  # fmt: skip
        save_checkpoint(ckpt, checkpoint)
    return {**best, "val_accuracy_1shot": accs[0], "val_accuracy_5shot": accs[1]}


def _base_model(model: AnilModel) -> AnilModel:
    """The same backbone with its pretrained weights and a zero head: ANIL without meta-training."""
    c = model.config
    base = AnilModel(ModelConfig(c.hidden_size, c.layers, c.channels, c.input_size, c.ways, c.backbone),
                     Preprocessing.from_dict(model.preprocessing.to_dict()))  # fmt: skip
    torch.nn.init.zeros_(base.head.weight)
    torch.nn.init.zeros_(base.head.bias)
    return base.eval()


@dataclass
class _Measured:
    """A photo model's test results next to its baselines, on the same episodes."""

    rows: list[dict[str, Any]]  # per setting: {"ways", "shots", "model", "no_meta_training", "ncm"[, "cnn4"]}
    results: list[dict[str, Any]]  # every result, flattened, with its "variant"
    same_trunk: bool  # the model's trunk is the pretrained one unchanged
    head_is_zero: bool
    choice: dict[str, Any]  # the checkpoint's head adaptation


def _measure(ckpt: dict[str, Any], model: AnilModel, data_root: str, settings: list[tuple[int, int]],
             episodes: int, seed: int, compare: str) -> _Measured:  # fmt: skip
    data = _data(ckpt, data_root, "test")
    feats = _features(model, data.images)
    base = _base_model(model)
    same_trunk = all(torch.equal(a, b) for a, b in zip(model.trunk.state_dict().values(),
                                                      base.trunk.state_dict().values(), strict=True))  # fmt: skip
    base_feats = feats if same_trunk else _features(base, data.images)
    choice = checkpoint_choice(ckpt)
    head = (model.head.weight, model.head.bias)
    zero = (base.head.weight, base.head.bias)
    rows, results = [], []
    for ways, shots in settings:
        ours = _episodes(feats, data.labels, head, ways, shots, episodes, seed, choice)
        plain = _episodes(base_feats, data.labels, zero, ways, shots, episodes, seed, choice)
        ncm = _episodes(feats, data.labels, head, ways, shots, episodes, seed, {**choice, "flip": False}, "ncm")
        row = {"ways": ways, "shots": shots, "model": ours, "no_meta_training": plain, "ncm": ncm}
        if compare:
            config = EvalConfig(TaskSpec(ways, shots, QUERY), episodes, "inductive", seed)
            row["cnn4"] = run_to_end(evaluate_checkpoint(EvalRequest(compare, data_root, config, device="cpu")))
        rows.append(row)
        for key, r in row.items():
            if isinstance(r, dict):
                results.append({**{k: r[k] for k in ("ways", "shots", "query", "accuracy", "ci95", "episodes",
                                "seed", "method")}, "bn": "inductive", "split": "test", "variant": key})  # fmt: skip
    return _Measured(rows, results, same_trunk, not any(head[0].flatten().tolist()), choice)


def write_photo_card(
    checkpoint: str,
    data_root: str,
    out: str,
    settings: list[tuple[int, int]],
    episodes: int = 1000,
    seed: int = 0,
    compare: str = "",
    recipe: str = "",
    write: bool = False,
) -> list[dict[str, Any]]:
    """Evaluate on `test` next to the baselines (same episodes) and write the card (plain words first); with
    `write`, then store the model's results in the checkpoint (never otherwise, nor when the card fails)."""
    check_writable(out, "card")
    recipe_file = recipe if recipe and "\n" not in recipe and Path(recipe).is_file() else ""
    if recipe_file:
        recipe = Path(recipe_file).read_text(encoding="utf-8").strip()
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, checkpoint).eval()
    if model.backbone.pretrained is None:
        raise ConfigError(f"{checkpoint}: not on a pretrained trunk; use `anil-studio card` without --photo")
    m = _measure(ckpt, model, data_root, settings, episodes, seed, compare)
    lines = _plain_words(checkpoint, ckpt, m) + _research_detail(ckpt, model, m)
    lines += _photo_table(m, episodes, seed, compare)
    spec_settings = ",".join(f"{w}x{s}" for w, s in settings)
    lines += [
        "",
        "## Recipe",
        "",
        recipe or "(not recorded)",
        "",
        "## Reproduce",
        "",
        "```",
        f"anil-studio card --photo --checkpoint {checkpoint} --data-root DATA --settings {spec_settings} "
        f"--episodes {episodes} --seed {seed}"
        + (f" --compare {compare}" if compare else "")
        + (f" --recipe {recipe_file}" if recipe_file else "")
        + (" --write" if write else "")
        + f" --out {out}",
        "# one number:",
        f"anil-studio eval --checkpoint {checkpoint} --data-root DATA --split test --ways 5 --shots 5 "
        f"--query {QUERY} --episodes {episodes} --bn inductive --seed {seed} --json",
        "```",
        "",
    ]
    atomic_write_bytes("\n".join(lines).encode(), out)
    if write:
        ckpt["test_results"] = [r for r in m.results if r["variant"] == "model"]
        save_checkpoint(ckpt, checkpoint)
    return m.results


def _plain_words(checkpoint: str, ckpt: dict[str, Any], m: _Measured) -> list[str]:
    pre, rows = ckpt["preprocessing"], m.rows
    five = next((r for r in rows if r["ways"] == 5 and r["shots"] == 5), rows[-1])
    one = next((r for r in rows if r["ways"] == 5 and r["shots"] == 1), rows[0])
    return [
        f"# {Path(checkpoint).stem}: photos of everyday things",
        "",
        "**What it is for.** Sorting your own photos into a few categories you choose (kinds of birds, "
        "flowers, products, tools ...). Its eyes were trained on 1.28 million everyday photos (ImageNet); "
        "ANIL Studio only learns how to tell *your* categories apart, in a fraction of a second.",
        "",
        f"**How many photos to give it.** 5 photos of each category is plenty: with 5 new categories it "
        f"named {five['model']['accuracy']:.0f} % of new test photos right. With a single photo per category it "
        f"still got {one['model']['accuracy']:.0f} % right. More photos, and photos that vary (angle, light, "
        "background), help most when categories look alike.",
        "",
        "**Good to know.** It sees the whole photo squeezed to a square of "
        f"{pre['size']} x {pre['size']} pixels, in colour. It is not made for drawings, handwriting, "
        "microscope or medical images, or for telling apart things that differ only in tiny details.",
        "",
    ]


def _research_detail(ckpt: dict[str, Any], model: AnilModel, m: _Measured) -> list[str]:
    from anil_engine.environment import machine_description

    spec, choice = model.backbone, m.choice
    pretrained, metrics, cfg = spec.pretrained, ckpt.get("metrics", {}), ckpt.get("train_config", {})
    pre = ckpt["preprocessing"]
    meta_helped = all(r["model"]["accuracy"] > r["no_meta_training"]["accuracy"] for r in m.rows)
    return [
        "## Research detail",
        "",
        f"- **Trunk**: {spec.title}; ImageNet-1k weights from the `{pretrained.package}` package "
        f"(`{pretrained.file}`, sha256 `{pretrained.sha256[:16]}...`, licence {pretrained.licence}); "
        "architecture timm `tf_efficientnet_lite0`; features: global average pool, "
        f"{model.num_features} numbers per image; inductive (eval-mode) BatchNorm throughout.",
        f"- **Meta-training**: ANIL on the Caltech-101 train classes (project split, 64 classes), "
        f"{cfg.get('ways', '?')}-way {cfg.get('shots', '?')}-shot tasks, meta-batch {cfg.get('meta_batch_size', '?')}, "
        f"inner loop {cfg.get('adaptation_steps', '?')} steps at {cfg.get('fast_lr', '?')} "
        f"({'first' if cfg.get('first_order') else 'second'} order), outer loop Adam at {cfg.get('meta_lr', '?')} "
        f"on the head and the trunk part `{cfg.get('trunk_train', '?')}`, {cfg.get('iterations', '?')} iterations "
        f"on {metrics.get('machine') or machine_description()}; this checkpoint is the run's best-by-validation "
        f"point, iteration {metrics.get('best_iteration', '?')} ({metrics.get('best_val_accuracy', '?')} % on "
        f"{cfg.get('val_episodes', '?')} val episodes).",
        "- **Did meta-training help?** "
        + (
            "Yes: above the same trunk without meta-training in every setting below."
            if meta_helped
            else "No, not measurably. "
            + (
                "Its best-by-validation point was its start, so this model is the pretrained trunk itself and "
                "the first two columns below are the same model (the recipe lists what was tried). "
                if m.same_trunk and m.head_is_zero
                else "The pretrained trunk without meta-training is as good or better in at least one setting below. "
            )
            + "This agrees with Chen et al.'s Meta-Baseline: meta-training on top of a pretrained trunk adds little "
            "or nothing at 5-shot."
        ),
        f"- **Head adaptation** (test time and the app, chosen on the validation split by `anil-studio tune`): "
        f"start {HEAD_INIT_WORDS[choice['head_init']]}, {choice['adaptation_steps']} SGD steps at fast_lr "
        f"{choice['fast_lr']}, mirrored support images {'added' if choice['flip'] else 'not added'}.",
        f"- **Preprocessing**: Pillow, EXIF transpose, RGB, Lanczos resize to {pre['size']}x{pre['size']} "
        "(whole photo, not cropped), [0, 1], then (255 x - 127) / 128 (the TF-Lite weights' own).",
        "- **Caveat**: the trunk was pre-trained on ImageNet, and many Caltech-101 classes (e.g. airplanes, "
        "camera, dalmatian, pizza, umbrella) are ImageNet classes or close to them, so these numbers are "
        "**not** a measure of novel-domain performance. The project's reference notes report 96-98 % at "
        "5-way 5-shot for frozen features of this trunk on bird and flower photos outside both (not re-measured "
        "here).",
        "",
    ]


def _photo_table(m: _Measured, episodes: int, seed: int, compare: str) -> list[str]:
    lines = [
        f"## Test accuracy (Caltech-101 test classes, {episodes} episodes, {QUERY} query photos per class, "
        f"seed {seed}, inductive, mean ± 95 % CI)",
        "",
        "| setting | this model | pretrained trunk, no meta-training (same head adaptation) | "
        "nearest class mean, same features |" + (" CNN4 model (`" + Path(compare).name + "`) |" if compare else ""),
        "|---|---|---|---|" + ("---|" if compare else ""),
    ]
    for r in m.rows:
        cells = [r[k] for k in ("model", "no_meta_training", "ncm", "cnn4") if k in r]
        lines.append(f"| {r['ways']}-way {r['shots']}-shot | "
                     + " | ".join(f"{c['accuracy']:.2f} ± {c['ci95']:.2f}" for c in cells) + " |")  # fmt: skip
    lines += ["", "All columns use the same episodes (same seed, same sampler, same images)."]
    return lines
