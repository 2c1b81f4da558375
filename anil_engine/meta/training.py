"""ANIL meta-training as a generator job: validation, best/last checkpoints, JSONL log, resume.

Run folder layout::

    OUT/config.json      the TrainConfig
    OUT/metrics.jsonl    one line per iteration (and per validation)
    OUT/last.pt          resumable checkpoint (model, optimizer, iteration, RNG)
    OUT/best.pt          best-by-validation checkpoint (no optimizer state)
"""

from __future__ import annotations

import copy
from collections.abc import Generator
from pathlib import Path
from typing import Any

import torch

from anil_engine.backbones import get_backbone
from anil_engine.config import ModelConfig, Preprocessing, TrainConfig, resolve_device
from anil_engine.errors import ConfigError
from anil_engine.evaluation import evaluate
from anil_engine.jobs import run_to_end
from anil_engine.meta.distributed import (
    average_buffers,
    broadcast_model,
    combine_gradients,
    gather,
    init_from_env,
    rank_seed,
    shutdown,
    task_shares,
)
from anil_engine.meta.engines import MetaEngine
from anil_engine.meta.feature_training import train_pretrained
from anil_engine.meta.trainrun import (
    VAL_SEED,
    RunBook,
    TrainProgress,
    check_fresh,
    preprocessing_for,
    read_splits,
    resumable,
    start_from,
    task_groups,
)
from anil_engine.models import AnilModel, rescale_features
from anil_engine.tasks import to_float


def initial_model(config: TrainConfig, preprocessing: Preprocessing) -> AnilModel:
    mc = ModelConfig(config.hidden_size, config.layers, preprocessing.channels, config.input_size, config.ways)
    model = AnilModel(mc, preprocessing)
    if config.init_from:
        start_from(model, config.init_from)
    return model


def _resumable(config: TrainConfig, ctx: Any, last_path: Path) -> dict[str, Any]:
    """The run's last.pt, checked to continue this run (same settings, same number of processes)."""
    last = resumable(config, last_path)
    saved_world = int(last["resume"].get("world_size", 1))
    if saved_world != ctx.world_size:
        raise ConfigError(
            f"{last_path}: was trained with {saved_world} process(es), this is {ctx.world_size}; resume with "
            f"the same number (torchrun --nproc-per-node x --nnodes = {saved_world}) so that every task "
            "sampler continues where it stopped"
        )
    return last


class _MetaRun(RunBook):
    """One meta-training run of a trunk trained from scratch: model, engine and optimizer between iterations."""

    def __init__(self, config: TrainConfig, out: Path, ctx: Any, device: str) -> None:
        super().__init__(config, out, device, ctx.world_size)
        self.ctx = ctx
        self.shares = task_shares(config.meta_batch_size, ctx.world_size)

    def build(self, train_data: Any, last: dict[str, Any] | None) -> None:
        """Model (initial, or last.pt's), engine and optimizer; every rank starts from rank 0's model."""
        config, ctx = self.config, self.ctx
        self.model = model = initial_model(config, preprocessing_for(config))
        if config.init_feature_norm and last is None:
            g = torch.Generator().manual_seed(config.seed)
            sample = train_data.images[torch.randperm(len(train_data), generator=g)[:512]]
            rescale_features(model, to_float(sample, "cpu"), config.init_feature_norm)
        model.to(getattr(torch, config.precision))
        self.engine = MetaEngine(config.engine, model, train_data, config.task, rank_seed(config.seed, ctx.rank),
                                 self.device, config.fast_lr, config.adaptation_steps, config.first_order,
                                 config.sampler, task_groups(config, train_data), config.head_start)  # fmt: skip
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
        if last is not None:
            self._restore(last)
        broadcast_model(ctx, model)
        self.params = list(model.parameters())
        if ctx.is_main:
            self.open_files()
        # Every rank's (sampler state, torch RNG state) before the next iteration, for last.pt.
        self.states = gather(ctx, (self.engine.sampler.state(), torch.get_rng_state()))

    def _restore(self, last: dict[str, Any]) -> None:
        r, rank = last["resume"], self.ctx.rank
        self.model.load_state_dict(last["state_dict"])
        self.optimizer.load_state_dict(r["optimizer"])
        try:
            self.engine.sampler.set_state(r["samplers"][rank] if "samplers" in r else r["sampler"])
        except ConfigError as e:
            raise ConfigError(f"{self.last_path}: {e}") from e
        torch.set_rng_state(r["torch_rngs"][rank] if "torch_rngs" in r else r["torch_rng"])
        self.restore_counters(last)

    def save(self) -> None:
        self.save_last(
            {
                "optimizer": self.optimizer.state_dict(),
                "world_size": self.ctx.world_size,
                "samplers": [state for state, _ in self.states],
                "torch_rngs": [rng for _, rng in self.states],
            }
        )

    def validate(self, val_data: Any) -> tuple[float, float]:
        """Inductive validation; keeps best.pt. Returns (accuracy, ci95) in percent."""
        config, model = self.config, self.model
        # Evaluation (and its ONNX trunk) works in float32; a float64 run validates a float32 copy.
        eval_model = model if config.precision == "float32" else copy.deepcopy(model).float()
        val = run_to_end(
            evaluate(
                eval_model, val_data, config.validation(VAL_SEED), config.fast_lr, config.adaptation_steps, self.device
            )  # fmt: skip
        )
        model.to(memory_format=self.engine.memory_format)  # evaluation may have changed it; keep runs reproducible
        return self.keep_if_best(val)

    def step(self, val_data: Any) -> TrainProgress:
        """One meta-iteration on every rank's share of the meta-batch; validates and saves on schedule."""
        config, ctx = self.config, self.ctx
        self.model.train()
        tasks = self.engine.sample(self.shares[ctx.rank])
        self.optimizer.zero_grad(set_to_none=True)
        result = self.engine.step(tasks)
        loss, accuracy = combine_gradients(
            ctx, self.params, self.shares[ctx.rank], config.meta_batch_size, result.loss, result.accuracy
        )
        self.optimizer.step()
        average_buffers(ctx, self.model)
        self.iteration += 1
        self.states = gather(ctx, (self.engine.sampler.state(), torch.get_rng_state()))
        record: dict[str, Any] = {}
        val_acc = None
        validate_now, save_now = self.due()
        if ctx.is_main and validate_now:
            val_acc, record["val_ci95"] = self.validate(val_data)
            record["val_accuracy"] = val_acc
        if ctx.is_main and save_now:
            self.save()
        return self.progress(loss, accuracy, record, val_acc)


def train(config: TrainConfig, out_dir: str | Path, resume: bool = False) -> Generator[TrainProgress, None, dict]:
    """Meta-train ANIL; yields `TrainProgress`, returns a summary dict.

    Closing the generator (or Ctrl-C inside it) saves `last.pt`, from which
    `train(..., resume=True)` continues with the same optimizer state, iteration
    and random state.

    Under `torchrun` (see `anil_engine.meta.distributed`) every process runs this
    generator on its share of each meta-batch; rank 0 alone validates and writes.
    """
    if get_backbone(config.backbone).pretrained is not None:
        return (yield from train_pretrained(config, out_dir, resume))
    out = Path(out_dir)
    ctx, device = init_from_env(resolve_device(config.device))
    run = _MetaRun(config, out, ctx, device)
    last = _resumable(config, ctx, run.last_path) if resume else None
    if last is None:
        check_fresh(out, run.last_path)
    train_data, val_data = yield from read_splits(config)
    run.build(train_data, last)
    completed = False
    try:
        if run.start_iteration == 0 and ctx.is_main and run.validates:
            # The starting point is a candidate too (and the baseline meta-training must beat).
            yield run.starting_point(*run.validate(val_data))
        while run.iteration < config.iterations:
            yield run.step(val_data)
        completed = True
    finally:
        # Runs on completion, on generator close (cancel) and on Ctrl-C: nothing is lost.
        if ctx.is_main:
            run.save()
            run.close()
        shutdown(ctx, synchronize=completed)
    if completed and ctx.is_main and not run.best_path.exists():
        run.save_best()
    return run.result()
