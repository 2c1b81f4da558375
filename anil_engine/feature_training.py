"""ANIL meta-training from a pretrained trunk, with the frozen part's outputs computed once.

The article's step is unchanged (head-only inner loop, second order unless
`first_order`, Adam on the outer loop); what the outer loop updates is
`TrainConfig.trunk_train`: "none" (the head's initialisation only), "last:N" (the
last N stages of the trunk and the head) or "all". The trunk is split by its
backbone into a frozen prefix and a trainable suffix; the prefix's outputs for
every training and validation image are computed once (eval-mode BatchNorm, so
each image's output is its own), which makes CPU meta-training practical: a
meta-iteration runs only the suffix. BatchNorm stays in eval mode throughout
(inductive: the pretrained running statistics are kept).

The run folder, checkpoints, resume and `TrainProgress` are those of
`anil_engine.training.train`, which hands pretrained backbones to `train_pretrained`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anil_engine.batched import batched_meta_step
from anil_engine.cards import machine_description
from anil_engine.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from anil_engine.config import EvalConfig, ModelConfig, TrainConfig, resolve_device
from anil_engine.datasets import load_dataset
from anil_engine.datasets.base import ImageTensorDataset
from anil_engine.distributed import launched_by_torchrun
from anil_engine.errors import CheckpointError, ConfigError
from anil_engine.evaluation import evaluate_features, run_to_end
from anil_engine.models import AnilModel
from anil_engine.tasks import FastEpisodeSampler, labels_dataset, to_float
from anil_engine.trainrun import (
    VAL_SEED,
    DataProgress,
    TrainProgress,
    check_fresh,
    check_same_settings,
    make_checkpoint,
    preprocessing_for,
    run_result,
)

CACHE_BATCH = 64


def split_model(model: AnilModel, stages: int) -> tuple[nn.Module, nn.Module, list[nn.Parameter]]:
    """(frozen prefix, trainable suffix, the parameters the outer loop updates).

    `stages`: -1 all of the trunk, 0 none of it, k its last k stages (the head is always trained).
    prefix includes the input normalisation; suffix(prefix(x)) == model.forward_features(x).
    """
    if stages == 0:
        prefix, suffix = model.trunk, nn.Identity()
    elif stages < 0:
        prefix, suffix = nn.Identity(), model.trunk
    else:
        split = model.backbone.split
        if split is None:
            raise ConfigError(f"the {model.config.backbone} trunk cannot be trained in parts")
        front, back = split(model.trunk[1], stages)
        prefix, suffix = nn.Sequential(model.trunk[0], front), back
    trainable = [*suffix.parameters(), *model.head.parameters()]
    ids = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)
    return prefix, suffix, trainable


def frozen_outputs(
    prefix: nn.Module, data: ImageTensorDataset, stage: str, flip: bool = False
) -> Generator[DataProgress, None, torch.Tensor]:
    """prefix(image) for every image (eval mode, no graph); yields progress per batch.

    Returns:
        float32 (n, ...) on the CPU.
    """
    prefix.eval()
    out, n = [], len(data)
    with torch.no_grad():
        for i in range(0, n, CACHE_BATCH):
            x = data.images[i : i + CACHE_BATCH]
            if flip:
                x = x.flip(-1)
            out.append(prefix(to_float(x, "cpu").contiguous(memory_format=torch.channels_last)).contiguous())
            yield DataProgress(stage, min(i + CACHE_BATCH, n), n)
    return torch.cat(out)


def suffix_features(suffix: nn.Module, cached: torch.Tensor) -> torch.Tensor:
    """The trunk's features from cached prefix outputs, without a graph; (n, num_features)."""
    with torch.no_grad():
        return torch.cat([suffix(cached[i : i + 256]) for i in range(0, len(cached), 256)])


def train_pretrained(
    config: TrainConfig, out_dir: str | Path, resume: bool = False
) -> Generator[TrainProgress | DataProgress, None, dict]:
    """Meta-train ANIL on a pretrained trunk; yields `DataProgress` while caching, then `TrainProgress`.

    Returns:
        {"out", "last", "best", "iterations", "best_val_accuracy", "train_seconds"}
    """
    out = Path(out_dir)
    device = resolve_device(config.device)
    if launched_by_torchrun() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "meta-training from a pretrained trunk runs in one process (its cached features fit one machine's "
            "memory and a CPU meta-iteration takes about a second); start it without torchrun"
        )
    if device != "cpu":
        raise ConfigError("meta-training from a pretrained trunk runs on the CPU (its cached features live there)")
    if config.precision != "float32":
        raise ConfigError("meta-training from a pretrained trunk is float32 only")
    last_path, best_path = out / "last.pt", out / "best.pt"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; give a folder for the run")
    if resume:
        if not last_path.is_file():
            raise CheckpointError(f"{last_path}: nothing to resume; start without --resume")
        last = load_checkpoint(last_path)
        saved = TrainConfig.from_dict(last["train_config"])
        check_same_settings(saved, config, last_path)
    else:
        check_fresh(out, last_path)

    torch.manual_seed(config.seed)
    pre = preprocessing_for(config)
    yield DataProgress("Reading the training images", 0, 1)
    train_data = load_dataset(config.dataset, config.data_root, "train", pre.size, pre.channels, config.split_scheme)
    yield DataProgress("Reading the validation images", 0, 1)
    val_data = load_dataset(config.dataset, config.data_root, "val", pre.size, pre.channels, config.split_scheme)
    model = AnilModel(ModelConfig(channels=pre.channels, input_size=pre.size, ways=config.ways,
                                  backbone=config.backbone), pre)  # fmt: skip
    nn.init.zeros_(model.head.weight)  # no meta-learned head yet: every class equal
    nn.init.zeros_(model.head.bias)
    model.eval()  # inductive BatchNorm throughout
    stages = config.trunk_stages
    prefix, suffix, params = split_model(model, stages)
    train_x = yield from frozen_outputs(prefix, train_data, "Computing the frozen trunk's outputs (training images)")
    val_x = yield from frozen_outputs(prefix, val_data, "Computing the frozen trunk's outputs (validation images)")
    val_flip = None
    if config.flip:
        val_flip = yield from frozen_outputs(prefix, val_data, "Computing the frozen trunk's outputs (mirrored)", True)

    sampler = FastEpisodeSampler(labels_dataset(train_data.labels), config.task, config.seed)
    optimizer = torch.optim.Adam(params, lr=config.meta_lr)
    start_iteration, best_val, elapsed_before = 0, None, 0.0
    if resume:
        result = model.load_state_dict(last["state_dict"], strict=False)
        if result.unexpected_keys:
            raise CheckpointError(f"{last_path}: tensors {result.unexpected_keys[:3]} do not fit this model")
        optimizer.load_state_dict(last["resume"]["optimizer"])
        sampler.set_state(last["resume"]["sampler"])
        torch.set_rng_state(last["resume"]["torch_rng"])
        start_iteration = int(last["resume"]["iteration"])
        best_val = last["metrics"].get("best_val_accuracy")
        elapsed_before = float(last["metrics"].get("train_seconds", 0.0))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(json.dumps(config.to_dict(), indent=2).encode(), out / "config.json")
    dataset_info = {"name": config.dataset, "split_scheme": config.split_scheme, "train_split": "train"}
    machine = machine_description(device)
    iteration = start_iteration
    t0 = time.perf_counter()

    def metrics() -> dict[str, Any]:
        return {
            "iterations": iteration,
            "best_val_accuracy": best_val,
            "train_seconds": round(elapsed_before + time.perf_counter() - t0, 1),
            "device": device,
            "processes": 1,
            "torch": str(torch.__version__),
            "machine": machine,
            "trunk_train": config.trunk_train,
        }

    def save_last() -> None:
        state = {
            "optimizer": optimizer.state_dict(),
            "iteration": iteration,
            "world_size": 1,
            "sampler": sampler.state(),
            "torch_rng": torch.get_rng_state(),
        }
        save_checkpoint(make_checkpoint(model, config, "anil", metrics(), dataset_info, state), last_path)

    def validate() -> tuple[float, float]:
        nonlocal best_val
        feats = suffix_features(suffix, val_x)
        flipped = suffix_features(suffix, val_flip) if val_flip is not None else None
        ev = EvalConfig(config.task, config.val_episodes, "inductive", VAL_SEED, head_init=config.head_init,
                        flip=config.flip)  # fmt: skip
        head = (model.head.weight, model.head.bias)
        gen = evaluate_features(feats, val_data.labels, ev, head, config.fast_lr, config.adaptation_steps, flipped)
        val = run_to_end(gen)
        if best_val is None or val["accuracy"] > best_val:
            best_val = val["accuracy"]
            best = {**metrics(), "best_iteration": iteration}
            save_checkpoint(make_checkpoint(model, config, "anil", best, dataset_info), best_path)
        return val["accuracy"], val["ci95"]

    completed = False
    log = open(out / "metrics.jsonl", "a")
    try:
        if start_iteration == 0:
            acc, ci = validate()  # the pretrained trunk with no meta-training: the baseline to beat
            log.write(json.dumps({"iteration": 0, "val_accuracy": acc, "val_ci95": ci}) + "\n")
            log.flush()
            nan = float("nan")
            yield TrainProgress(0, config.iterations, nan, nan, acc, best_val, time.perf_counter() - t0, nan)
        t = config.task
        while iteration < config.iterations:
            suffix.train(False)  # BatchNorm stays inductive; there is no dropout in the suffix's forward
            tasks = []
            for _ in range(config.meta_batch_size):
                idx, y = sampler.sample_indices()
                tasks.append((train_x[idx], y))
            optimizer.zero_grad(set_to_none=True)
            step = batched_meta_step(
                suffix, model.head, tasks, config.fast_lr, config.adaptation_steps, t.shots, t.query, config.first_order
            )
            optimizer.step()
            iteration += 1
            record: dict[str, Any] = {"iteration": iteration, "loss": round(step.loss, 5),
                                      "accuracy": round(100 * step.accuracy, 3)}  # fmt: skip
            val_acc = None
            if iteration % config.val_every == 0 or iteration == config.iterations:
                val_acc, record["val_ci95"] = validate()
                record["val_accuracy"] = val_acc
            if iteration % config.checkpoint_every == 0:
                save_last()
            elapsed = time.perf_counter() - t0
            record["seconds"] = round(elapsed_before + elapsed, 2)
            log.write(json.dumps(record) + "\n")
            log.flush()
            per_iter = elapsed / max(1, iteration - start_iteration)
            yield TrainProgress(iteration, config.iterations, step.loss, 100 * step.accuracy, val_acc, best_val,
                                elapsed_before + elapsed, per_iter * (config.iterations - iteration))  # fmt: skip
        completed = True
    finally:
        save_last()
        log.close()
    if completed and not best_path.exists():
        save_checkpoint(make_checkpoint(model, config, "anil", metrics(), dataset_info), best_path)
    return run_result(out, iteration, best_val, metrics()["train_seconds"])
