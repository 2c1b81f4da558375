"""What every meta-training run shares: its progress item, its checkpoint dict, its preprocessing."""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anil_engine import __version__
from anil_engine.backbones import get_backbone
from anil_engine.checkpoint import FORMAT, FORMAT_VERSION, atomic_write_bytes, load_checkpoint, save_checkpoint
from anil_engine.config import Preprocessing, TrainConfig, dataset_preprocessing
from anil_engine.errors import ConfigError
from anil_engine.models import AnilModel, compact_state_dict, model_from_checkpoint
from anil_engine.tasks import class_groups

VAL_SEED = 1234


@dataclass(frozen=True)
class DataProgress:
    """Yielded while a run prepares its data (decoding images, computing the frozen trunk's outputs)."""

    stage: str  # plain words: "Computing the frozen trunk's outputs (train)"
    done: int
    total: int


@dataclass(frozen=True)
class TrainProgress:
    """Yielded after every meta-iteration, and once before the first of a new run (iteration 0: the starting
    point's validation; loss, accuracy and ETA are NaN there)."""

    iteration: int  # completed iterations
    iterations: int
    loss: float
    accuracy: float  # meta-train query accuracy, percent
    val_accuracy: float | None  # percent, on iterations that validated
    best_val_accuracy: float | None
    elapsed_s: float
    eta_s: float


def preprocessing_for(config: TrainConfig) -> Preprocessing:
    """The data set's preprocessing for a trunk trained from scratch; a pretrained trunk's own otherwise."""
    dataset = dataset_preprocessing(config.dataset, config.input_size)
    return replace(get_backbone(config.backbone).preprocessing(config.input_size, dataset), crop=config.crop)


def task_groups(config: TrainConfig, data: Any) -> list[list[int]] | None:
    """The class groups training tasks are drawn within (`config.within`), or None: the whole split."""
    return None if config.within is None else class_groups(data.class_names, config.within)


def make_checkpoint(
    model: AnilModel,
    config: TrainConfig | None,
    kind: str,
    metrics: dict[str, Any],
    dataset: dict[str, Any],
    resume: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a checkpoint dict (see `anil_engine.checkpoint`)."""
    state_dict, base_weights = compact_state_dict(model)
    ckpt = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": kind,
        "anil_studio_version": __version__,
        "model": model.model_dict(),
        "state_dict": state_dict,
        "preprocessing": model.preprocessing.to_dict(),
        "train_config": config.to_dict() if config else {},
        "fast_lr": config.fast_lr if config else 0.1,
        "adaptation_steps": config.adaptation_steps if config else 5,
        "trained_task": {"ways": config.ways, "shots": config.shots, "query": config.query} if config else {},
        "dataset": dataset,
        "metrics": metrics,
        "test_results": [],
        "head_init": config.head_init if config else "meta",
        "flip": config.flip if config else False,
    }
    if base_weights is not None:
        ckpt["base_weights"] = base_weights
    if resume is not None:
        ckpt["resume"] = resume
    return ckpt


PRETRAINING_KEYS = ("epochs", "train_seconds", "device", "machine", "torch", "val_5w1s")


def pretraining_record(init_from: str) -> dict[str, Any] | None:
    """What made a run's starting trunk, for its checkpoints and card: a `pretrain` checkpoint's epochs, wall
    time, machine and float type, or the record an ANIL checkpoint started from one carries (None if neither)."""
    if not init_from:
        return None
    ckpt = load_checkpoint(init_from)
    metrics = ckpt.get("metrics") or {}
    if ckpt.get("kind") != "pretrained":
        return metrics.get("pretraining")
    config = metrics.get("pretrain_config") or {}
    # Older checkpoints predate these settings and had their defaults.
    chosen = {"compute": config.get("compute", "float32"), "train_splits": config.get("train_splits", "train")}
    return {**{k: metrics.get(k) for k in PRETRAINING_KEYS}, **chosen}


def check_same_settings(saved: TrainConfig, config: TrainConfig, last_path: Path) -> None:
    """A run resumes only with its own settings (the number of iterations and the device may change)."""
    if {**saved.to_dict(), "iterations": 0, "device": ""} != {**config.to_dict(), "iterations": 0, "device": ""}:
        raise ConfigError(
            f"{last_path}: was trained with other settings; resume with the same settings "
            "(only --iterations and --device may change) or use a new --out folder"
        )


def check_run_folder(out: Path) -> None:
    """Before any data is read: the run folder is a folder (or can be made one) and can be written."""
    from anil_engine.checkpoint import check_writable
    from anil_engine.errors import CheckpointError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; give a folder for the run (--out)")
    try:
        check_writable(out / "last.pt", "run folder")
    except CheckpointError as exc:
        raise ConfigError(f"{exc} (--out)") from exc


def check_fresh(out: Path, last_path: Path) -> None:
    """A new run never overwrites another's last.pt."""
    check_run_folder(out)
    if last_path.exists():
        raise ConfigError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose a new --out")


def resumable(config: TrainConfig, last_path: Path) -> dict[str, Any]:
    """A run's last.pt, checked to continue this run with the same settings."""
    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.errors import CheckpointError

    check_run_folder(last_path.parent)
    if not last_path.is_file():
        raise CheckpointError(f"{last_path}: nothing to resume; start without --resume")
    last = load_checkpoint(last_path)
    # Runs from before the batched engine existed used learn2learn's loop.
    check_same_settings(TrainConfig.from_dict({"engine": "reference", **last["train_config"]}), config, last_path)
    return last


def read_splits(config: TrainConfig) -> Generator[DataProgress, None, tuple[Any, Any]]:
    """Seed the run, then read its training and validation images (saying so: it can take a minute)."""
    from anil_engine.datasets import load_dataset

    torch.manual_seed(config.seed)
    pre = preprocessing_for(config)
    data = []
    for split, words in (("train", "training"), ("val", "validation")):
        yield DataProgress(f"Reading the {words} images", 0, 1)
        data.append(
            load_dataset(
                config.dataset, config.data_root, split, pre.size, pre.channels, config.split_scheme, crop=pre.crop
            )
        )
    return data[0], data[1]


def run_result(out: Path, iteration: int, best_val: float | None, train_seconds: float) -> dict[str, Any]:
    """What a meta-training run returns: its folder, checkpoints, length and best validation accuracy."""
    return {
        "out": str(out),
        "last": str(out / "last.pt"),
        "best": str(out / "best.pt"),
        "iterations": iteration,
        "best_val_accuracy": best_val,
        "train_seconds": train_seconds,
    }


class RunBook:
    """The bookkeeping every meta-training loop shares: counters, the JSONL log, last/best checkpoints.

    A loop sets `model` before saving; `write_files` is False on the ranks of a distributed run that do
    not write (rank 0 alone logs and saves).
    """

    def __init__(self, config: TrainConfig, out: Path, device: str, processes: int = 1) -> None:
        from anil_engine.environment import machine_description

        self.config, self.out, self.device, self.processes = config, out, device, processes
        self.last_path, self.best_path = out / "last.pt", out / "best.pt"
        self.iteration = self.start_iteration = 0
        self.best_val: float | None = None
        self.elapsed_before = 0.0
        self.machine = machine_description(device)
        self.dataset_info = {"name": config.dataset, "split_scheme": config.split_scheme, "train_split": "train"}
        self.extra_metrics: dict[str, Any] = {}
        pretraining = pretraining_record(config.init_from)
        if pretraining is not None:
            self.extra_metrics["pretraining"] = pretraining
        # A starting trunk that learnt the validation classes (`pretrain --train-splits train+val`, a final
        # model) leaves nothing to validate on: the run keeps its last point.
        self.validates = (pretraining or {}).get("train_splits", "train") == "train"
        self.model: AnilModel | None = None
        self.log = None
        self.t0 = time.perf_counter()

    def restore_counters(self, last: dict[str, Any]) -> None:
        self.iteration = self.start_iteration = int(last["resume"]["iteration"])
        self.best_val = last["metrics"].get("best_val_accuracy")
        self.elapsed_before = float(last["metrics"].get("train_seconds", 0.0))

    def open_files(self) -> None:
        """The run folder, its config.json and metrics.jsonl (appended to on resume); starts the clock."""
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(json.dumps(self.config.to_dict(), indent=2).encode(), self.out / "config.json")
        self.log = open(self.out / "metrics.jsonl", "a")
        self.t0 = time.perf_counter()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def write(self, record: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()

    def metrics(self) -> dict[str, Any]:
        return {
            "iterations": self.iteration,
            "best_val_accuracy": self.best_val,
            "train_seconds": round(self.elapsed_before + time.perf_counter() - self.t0, 1),
            "device": self.device,
            "processes": self.processes,
            "torch": str(torch.__version__),
            "machine": self.machine,
            **self.extra_metrics,
        }

    def save_last(self, resume_state: dict[str, Any]) -> None:
        state = {"iteration": self.iteration, **resume_state}
        save_checkpoint(make_checkpoint(self.model, self.config, "anil", self.metrics(), self.dataset_info, state),
                        self.last_path)  # fmt: skip

    def save_best(self, metrics: dict[str, Any] | None = None) -> None:
        metrics = metrics or self.metrics()
        save_checkpoint(make_checkpoint(self.model, self.config, "anil", metrics, self.dataset_info), self.best_path)

    def keep_if_best(self, val: dict[str, Any]) -> tuple[float, float]:
        """Record a validation result; a new best is saved as best.pt. Returns (accuracy, ci95)."""
        if self.best_val is None or val["accuracy"] > self.best_val:
            self.best_val = val["accuracy"]
            self.save_best({**self.metrics(), "best_iteration": self.iteration})
        return val["accuracy"], val["ci95"]

    def starting_point(self, acc: float, ci: float) -> TrainProgress:
        """Log and report the starting point's validation (iteration 0)."""
        self.write({"iteration": 0, "val_accuracy": acc, "val_ci95": ci})
        nan = float("nan")
        return TrainProgress(
            0, self.config.iterations, nan, nan, acc, self.best_val, time.perf_counter() - self.t0, nan
        )

    def due(self) -> tuple[bool, bool]:
        """After an iteration: (validate now, save last.pt now)."""
        c, i = self.config, self.iteration
        return self.validates and (i % c.val_every == 0 or i == c.iterations), i % c.checkpoint_every == 0

    def progress(self, loss: float, accuracy: float, record: dict[str, Any], val_acc: float | None) -> TrainProgress:
        """Log an iteration's record (loss, accuracy, validation) and report it with the time left."""
        elapsed = time.perf_counter() - self.t0
        record = {"iteration": self.iteration, "loss": round(loss, 5), "accuracy": round(100 * accuracy, 3), **record}
        record["seconds"] = round(self.elapsed_before + elapsed, 2)
        self.write(record)
        left = elapsed / max(1, self.iteration - self.start_iteration) * (self.config.iterations - self.iteration)
        return TrainProgress(self.iteration, self.config.iterations, loss, 100 * accuracy, val_acc, self.best_val,
                             self.elapsed_before + elapsed, left)  # fmt: skip

    def result(self) -> dict[str, Any]:
        return run_result(self.out, self.iteration, self.best_val, self.metrics()["train_seconds"])


def start_from(model: AnilModel, path: str) -> None:
    """Load the trunk of checkpoint `path` (`train --init-from`, e.g. a `pretrain` result) into `model`.

    The head comes along when `path` is a meta-trained model of the same size; otherwise it starts at zero (all
    classes equal) and meta-training learns its initialisation from there.

    Raises:
        ConfigError: the checkpoint's trunk is another backbone, size, channel count or width.
    """
    ckpt = load_checkpoint(path)
    source = model_from_checkpoint(ckpt, path)
    mc, sc = model.config, source.config

    def trunk(c: Any) -> tuple:
        cnn4 = get_backbone(c.backbone).pretrained is None  # width and blocks: CNN4's only
        return c.backbone, c.hidden_size if cnn4 else None, c.layers if cnn4 else None, c.channels, c.input_size

    if trunk(sc) != trunk(mc):
        raise ConfigError(
            f"{path}: its trunk ({sc.backbone}, hidden {sc.hidden_size}, {sc.layers} layers, channels {sc.channels}, "
            f"input {sc.input_size}) does not match this run ({mc.backbone}, hidden {mc.hidden_size}, {mc.layers} "
            f"layers, channels {mc.channels}, input {mc.input_size}); choose the same --backbone, --hidden-size, "
            "--layers and --input-size"
        )
    if source.preprocessing.crop != model.preprocessing.crop:
        raise ConfigError(
            f"{path}: its trunk saw its images with --crop {source.preprocessing.crop}, this run would show them "
            f"with --crop {model.preprocessing.crop}; choose --crop {source.preprocessing.crop} (in the app's training "
            f"dialog: {'tick' if source.preprocessing.crop == 'ink' else 'untick'} 'crop every image to its ink')"
        )
    model.trunk.load_state_dict(source.trunk.state_dict())
    if ckpt["kind"] == "anil" and sc.ways == mc.ways:
        model.head.load_state_dict(source.head.state_dict())
    else:
        nn.init.zeros_(model.head.weight)
        nn.init.zeros_(model.head.bias)
