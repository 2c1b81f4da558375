"""ANIL meta-training as a generator job: validation, best/last checkpoints, JSONL log, resume.

Run folder layout::

    OUT/config.json      the TrainConfig
    OUT/metrics.jsonl    one line per iteration (and per validation)
    OUT/last.pt          resumable checkpoint (model, optimizer, iteration, RNG)
    OUT/best.pt          best-by-validation checkpoint (no optimizer state)
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anil_engine.backbones import get_backbone
from anil_engine.cards import machine_description
from anil_engine.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from anil_engine.config import EvalConfig, ModelConfig, Preprocessing, TrainConfig, resolve_device
from anil_engine.datasets import load_dataset
from anil_engine.distributed import (
    average_buffers,
    broadcast_model,
    combine_gradients,
    gather,
    init_from_env,
    rank_seed,
    shutdown,
    task_shares,
)
from anil_engine.engines import MetaEngine
from anil_engine.errors import CheckpointError, ConfigError
from anil_engine.evaluation import evaluate, run_to_end
from anil_engine.feature_training import train_pretrained
from anil_engine.models import AnilModel, model_from_checkpoint, rescale_features
from anil_engine.tasks import to_float
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


def initial_model(config: TrainConfig, preprocessing: Preprocessing) -> AnilModel:
    mc = ModelConfig(config.hidden_size, 4, preprocessing.channels, config.input_size, config.ways)
    model = AnilModel(mc, preprocessing)
    if config.init_from:
        ckpt = load_checkpoint(config.init_from)
        source = model_from_checkpoint(ckpt, config.init_from)
        if (source.config.hidden_size, source.config.channels, source.config.input_size) != (
            mc.hidden_size,
            mc.channels,
            mc.input_size,
        ):
            raise ConfigError(
                f"{config.init_from}: trunk {source.config} does not match this run "
                f"(hidden {mc.hidden_size}, channels {mc.channels}, input {mc.input_size})"
            )
        model.trunk.load_state_dict(source.trunk.state_dict())
        if ckpt["kind"] == "anil" and source.config.ways == mc.ways:
            model.head.load_state_dict(source.head.state_dict())
        else:
            # A pre-trained trunk comes without a meta-learned head: start from zero (all classes
            # equal); meta-training learns the head's initialisation from there.
            nn.init.zeros_(model.head.weight)
            nn.init.zeros_(model.head.bias)
    return model


def train(config: TrainConfig, out_dir: str | Path, resume: bool = False) -> Generator[TrainProgress, None, dict]:
    """Meta-train ANIL; yields `TrainProgress`, returns a summary dict.

    Closing the generator (or Ctrl-C inside it) saves `last.pt`, from which
    `train(..., resume=True)` continues with the same optimizer state, iteration
    and random state.

    Under `torchrun` (see `anil_engine.distributed`) every process runs this
    generator on its share of each meta-batch; rank 0 alone validates and writes.
    """
    if get_backbone(config.backbone).pretrained is not None:
        return (yield from train_pretrained(config, out_dir, resume))
    out = Path(out_dir)
    ctx, device = init_from_env(resolve_device(config.device))
    shares = task_shares(config.meta_batch_size, ctx.world_size)
    pre = preprocessing_for(config)
    last_path, best_path = out / "last.pt", out / "best.pt"
    start_iteration, best_val, elapsed_before = 0, None, 0.0
    if resume:
        if not last_path.is_file():
            raise CheckpointError(f"{last_path}: nothing to resume; start without --resume")
        last = load_checkpoint(last_path)
        # Runs from before the batched engine existed used learn2learn's loop.
        saved = TrainConfig.from_dict({"engine": "reference", **last["train_config"]})
        saved_world = int(last["resume"].get("world_size", 1))
        if saved_world != ctx.world_size:
            raise ConfigError(
                f"{last_path}: was trained with {saved_world} process(es), this is {ctx.world_size}; resume with "
                f"the same number (torchrun --nproc-per-node x --nnodes = {saved_world}) so that every task "
                "sampler continues where it stopped"
            )
        check_same_settings(saved, config, last_path)
    else:
        check_fresh(out, last_path)

    torch.manual_seed(config.seed)
    # Decoding a data set can take a minute or more (the first time, before it is cached): say what is going on.
    yield DataProgress("Reading the training images", 0, 1)
    train_data = load_dataset(config.dataset, config.data_root, "train", pre.size, pre.channels, config.split_scheme)
    yield DataProgress("Reading the validation images", 0, 1)
    val_data = load_dataset(config.dataset, config.data_root, "val", pre.size, pre.channels, config.split_scheme)
    model = initial_model(config, pre)
    if config.init_feature_norm and not resume:
        g = torch.Generator().manual_seed(config.seed)
        sample = train_data.images[torch.randperm(len(train_data), generator=g)[:512]]
        rescale_features(model, to_float(sample, "cpu"), config.init_feature_norm)
    model.to(getattr(torch, config.precision))
    engine = MetaEngine(
        config.engine,
        model,
        train_data,
        config.task,
        rank_seed(config.seed, ctx.rank),
        device,
        config.fast_lr,
        config.adaptation_steps,
        config.first_order,
        config.sampler,
    )
    sampler = engine.sampler
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    if resume:
        model.load_state_dict(last["state_dict"])
        optimizer.load_state_dict(last["resume"]["optimizer"])
        r = last["resume"]
        try:
            sampler.set_state(r["samplers"][ctx.rank] if "samplers" in r else r["sampler"])
        except ConfigError as e:
            raise ConfigError(f"{last_path}: {e}") from e
        torch.set_rng_state(r["torch_rngs"][ctx.rank] if "torch_rngs" in r else r["torch_rng"])
        start_iteration = int(last["resume"]["iteration"])
        best_val = last["metrics"].get("best_val_accuracy")
        elapsed_before = float(last["metrics"].get("train_seconds", 0.0))
    broadcast_model(ctx, model)
    params = list(model.parameters())
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(json.dumps(config.to_dict(), indent=2).encode(), out / "config.json")
        log = open(out / "metrics.jsonl", "a")
    dataset_info = {"name": config.dataset, "split_scheme": config.split_scheme, "train_split": "train"}
    iteration = start_iteration
    # Every rank's (sampler state, torch RNG state) before the next iteration, for last.pt.
    states = gather(ctx, (sampler.state(), torch.get_rng_state()))
    t0 = time.perf_counter()

    machine = machine_description(device)

    def metrics() -> dict[str, Any]:
        return {
            "iterations": iteration,
            "best_val_accuracy": best_val,
            "train_seconds": round(elapsed_before + time.perf_counter() - t0, 1),
            "device": device,
            "processes": ctx.world_size,
            "torch": str(torch.__version__),
            "machine": machine,
        }

    def save_last() -> None:
        resume_state = {
            "optimizer": optimizer.state_dict(),
            "iteration": iteration,
            "world_size": ctx.world_size,
            "samplers": [state for state, _ in states],
            "torch_rngs": [rng for _, rng in states],
        }
        save_checkpoint(make_checkpoint(model, config, "anil", metrics(), dataset_info, resume_state), last_path)

    def validate() -> tuple[float, float]:
        """Inductive validation; keeps best.pt. Returns (accuracy, ci95) in percent."""
        nonlocal best_val
        # Evaluation (and its ONNX trunk) works in float32; a float64 run validates a float32 copy.
        eval_model = model if config.precision == "float32" else copy.deepcopy(model).float()
        val = run_to_end(
            evaluate(
                eval_model,
                val_data,
                EvalConfig(config.task, config.val_episodes, "inductive", VAL_SEED),
                config.fast_lr,
                config.adaptation_steps,
                device,
            )
        )
        model.to(memory_format=engine.memory_format)  # evaluation may have changed it; keep runs reproducible
        if best_val is None or val["accuracy"] > best_val:
            best_val = val["accuracy"]
            best_metrics = {**metrics(), "best_iteration": iteration}
            save_checkpoint(make_checkpoint(model, config, "anil", best_metrics, dataset_info), best_path)
        return val["accuracy"], val["ci95"]

    completed = False
    try:
        if start_iteration == 0 and ctx.is_main:
            # The starting point is a candidate too (and the baseline meta-training must beat).
            acc, ci = validate()
            log.write(json.dumps({"iteration": 0, "val_accuracy": acc, "val_ci95": ci}) + "\n")
            log.flush()
            nan = float("nan")
            yield TrainProgress(0, config.iterations, nan, nan, acc, best_val, time.perf_counter() - t0, nan)
        while iteration < config.iterations:
            model.train()
            tasks = engine.sample(shares[ctx.rank])
            optimizer.zero_grad(set_to_none=True)
            step = engine.step(tasks)
            loss, accuracy = combine_gradients(
                ctx, params, shares[ctx.rank], config.meta_batch_size, step.loss, step.accuracy
            )
            optimizer.step()
            average_buffers(ctx, model)
            iteration += 1
            states = gather(ctx, (sampler.state(), torch.get_rng_state()))
            record: dict[str, Any] = {
                "iteration": iteration,
                "loss": round(loss, 5),
                "accuracy": round(100 * accuracy, 3),
            }
            val_acc = None
            if ctx.is_main and (iteration % config.val_every == 0 or iteration == config.iterations):
                val_acc, record["val_ci95"] = validate()
                record["val_accuracy"] = val_acc
            if ctx.is_main and iteration % config.checkpoint_every == 0:
                save_last()
            elapsed = time.perf_counter() - t0
            record["seconds"] = round(elapsed_before + elapsed, 2)
            if ctx.is_main:
                log.write(json.dumps(record) + "\n")
                log.flush()
            per_iter = elapsed / max(1, iteration - start_iteration)
            yield TrainProgress(
                iteration,
                config.iterations,
                loss,
                100 * accuracy,
                val_acc,
                best_val,
                elapsed_before + elapsed,
                per_iter * (config.iterations - iteration),
            )
        completed = True
    finally:
        # Runs on completion, on generator close (cancel) and on Ctrl-C: nothing is lost.
        if ctx.is_main:
            save_last()
            log.close()
        shutdown(ctx, synchronize=completed)
    if completed and ctx.is_main and not best_path.exists():
        save_checkpoint(make_checkpoint(model, config, "anil", metrics(), dataset_info), best_path)
    return run_result(out, iteration, best_val, metrics()["train_seconds"])
