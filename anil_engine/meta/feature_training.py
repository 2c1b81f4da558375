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
`anil_engine.meta.training.train`, which hands pretrained backbones to `train_pretrained`.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anil_engine.config import ModelConfig, TrainConfig, resolve_device
from anil_engine.datasets.base import ImageTensorDataset
from anil_engine.errors import CheckpointError, ConfigError
from anil_engine.evaluation import evaluate_features
from anil_engine.jobs import run_to_end
from anil_engine.meta.batched import batched_meta_step
from anil_engine.meta.distributed import launched_by_torchrun
from anil_engine.meta.trainrun import (
    VAL_SEED,
    DataProgress,
    RunBook,
    TrainProgress,
    check_fresh,
    preprocessing_for,
    read_splits,
    resumable,
    start_from,
    task_groups,
)
from anil_engine.models import AnilModel
from anil_engine.tasks import FastEpisodeSampler, labels_dataset, to_float

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


def _check_runnable(config: TrainConfig, out: Path, device: str) -> None:
    if launched_by_torchrun() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "meta-training from a pretrained trunk runs in one process (its cached features fit one machine's "
            "memory and a CPU meta-iteration takes about a second); start it without torchrun"
        )
    if device != "cpu":
        raise ConfigError("meta-training from a pretrained trunk runs on the CPU (its cached features live there)")
    if config.precision != "float32":
        raise ConfigError("meta-training from a pretrained trunk is float32 only")


class _FeatureRun(RunBook):
    """Meta-training of the trainable suffix of a pretrained trunk (and the head) on cached prefix outputs."""

    def build(self, train_data: Any, last: dict[str, Any] | None) -> None:
        config = self.config
        pre = preprocessing_for(config)
        self.model = model = AnilModel(ModelConfig(channels=pre.channels, input_size=pre.size, ways=config.ways,
                                                   backbone=config.backbone), pre)  # fmt: skip
        nn.init.zeros_(model.head.weight)  # no meta-learned head yet: every class equal
        nn.init.zeros_(model.head.bias)
        if config.init_from and last is None:  # e.g. the trunk fine-tuned by `pretrain --backbone`
            start_from(model, config.init_from)
        model.eval()  # inductive BatchNorm throughout
        self.prefix, self.suffix, params = split_model(model, config.trunk_stages)
        self.sampler = FastEpisodeSampler(
            labels_dataset(train_data.labels), config.task, config.seed, groups=task_groups(config, train_data)
        )
        self.optimizer = torch.optim.Adam(params, lr=config.meta_lr)
        self.extra_metrics["trunk_train"] = config.trunk_train
        if last is not None:
            result = model.load_state_dict(last["state_dict"], strict=False)
            if result.unexpected_keys:
                raise CheckpointError(f"{self.last_path}: tensors {result.unexpected_keys[:3]} do not fit this model")
            self.optimizer.load_state_dict(last["resume"]["optimizer"])
            self.sampler.set_state(last["resume"]["sampler"])
            torch.set_rng_state(last["resume"]["torch_rng"])
            self.restore_counters(last)

    def cache(self, train_data: Any, val_data: Any) -> Generator[DataProgress, None, None]:
        """The frozen prefix's outputs of every training and validation image (and mirrored, with flip)."""
        self.train_x = yield from frozen_outputs(self.prefix, train_data, "Computing the frozen trunk's outputs "
                                                 "(training images)")  # fmt: skip
        self.val_x = yield from frozen_outputs(self.prefix, val_data, "Computing the frozen trunk's outputs "
                                               "(validation images)")  # fmt: skip
        self.val_flip = None
        if self.config.flip:
            self.val_flip = yield from frozen_outputs(
                self.prefix, val_data, "Computing the frozen trunk's outputs (mirrored)", True
            )
        self.val_labels, self.val_class_names = val_data.labels, val_data.class_names

    def save(self) -> None:
        state = {"optimizer": self.optimizer.state_dict(), "world_size": 1, "sampler": self.sampler.state(),
                 "torch_rng": torch.get_rng_state()}  # fmt: skip
        self.save_last(state)

    def validate(self) -> tuple[float, float]:
        config = self.config
        feats = suffix_features(self.suffix, self.val_x)
        flipped = suffix_features(self.suffix, self.val_flip) if self.val_flip is not None else None
        head = (self.model.head.weight, self.model.head.bias)
        gen = evaluate_features(feats, self.val_labels, config.validation(VAL_SEED), head, config.fast_lr,
                                config.adaptation_steps, flipped, class_names=self.val_class_names)  # fmt: skip
        return self.keep_if_best(run_to_end(gen))

    def step(self) -> TrainProgress:
        config, t = self.config, self.config.task
        self.suffix.train(False)  # BatchNorm stays inductive; there is no dropout in the suffix's forward
        tasks = []
        for _ in range(config.meta_batch_size):
            idx, y = self.sampler.sample_indices()
            tasks.append((self.train_x[idx], y))
        self.optimizer.zero_grad(set_to_none=True)
        result = batched_meta_step(self.suffix, self.model.head, tasks, config.fast_lr, config.adaptation_steps,
                                   t.shots, t.query, config.first_order, head_start=config.head_start)  # fmt: skip
        self.optimizer.step()
        self.iteration += 1
        record: dict[str, Any] = {}
        val_acc = None
        validate_now, save_now = self.due()
        if validate_now:
            val_acc, record["val_ci95"] = self.validate()
            record["val_accuracy"] = val_acc
        if save_now:
            self.save()
        return self.progress(result.loss, result.accuracy, record, val_acc)


def train_pretrained(
    config: TrainConfig, out_dir: str | Path, resume: bool = False
) -> Generator[TrainProgress | DataProgress, None, dict]:
    """Meta-train ANIL on a pretrained trunk; yields `DataProgress` while caching, then `TrainProgress`.

    Returns:
        {"out", "last", "best", "iterations", "best_val_accuracy", "train_seconds"}
    """
    out = Path(out_dir)
    device = resolve_device(config.device)
    _check_runnable(config, out, device)
    run = _FeatureRun(config, out, device)
    last = resumable(config, run.last_path) if resume else None
    if last is None:
        check_fresh(out, run.last_path)
    train_data, val_data = yield from read_splits(config)
    run.build(train_data, last)
    yield from run.cache(train_data, val_data)
    run.open_files()
    completed = False
    try:
        if run.start_iteration == 0 and run.validates:
            yield run.starting_point(*run.validate())  # the pretrained trunk with no meta-training: the baseline
        while run.iteration < config.iterations:
            yield run.step()
        completed = True
    finally:
        run.save()
        run.close()
    if completed and not run.best_path.exists():
        run.save_best()
    return run.result()
