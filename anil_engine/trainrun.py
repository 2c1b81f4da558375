"""What every meta-training run shares: its progress item, its checkpoint dict, its preprocessing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anil_engine import __version__
from anil_engine.backbones import get_backbone
from anil_engine.checkpoint import FORMAT, FORMAT_VERSION
from anil_engine.config import Preprocessing, TrainConfig
from anil_engine.datasets import DEFAULT_PREPROCESSING
from anil_engine.errors import ConfigError
from anil_engine.models import AnilModel, compact_state_dict

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
    _size, channels, mean, std = DEFAULT_PREPROCESSING[config.dataset]
    dataset = Preprocessing(config.input_size, channels, mean, std)
    return get_backbone(config.backbone).preprocessing(config.input_size, dataset)


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


def check_same_settings(saved: TrainConfig, config: TrainConfig, last_path: Path) -> None:
    """A run resumes only with its own settings (the number of iterations and the device may change)."""
    if {**saved.to_dict(), "iterations": 0, "device": ""} != {**config.to_dict(), "iterations": 0, "device": ""}:
        raise ConfigError(
            f"{last_path}: was trained with other settings; resume with the same settings "
            "(only --iterations and --device may change) or use a new --out folder"
        )


def check_fresh(out: Path, last_path: Path) -> None:
    """A new run never overwrites another's last.pt."""
    if last_path.exists():
        raise ConfigError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose a new --out")


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
