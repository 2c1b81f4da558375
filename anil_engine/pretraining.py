"""Pre-training the trunk as a plain classifier over all training classes ("feature reuse").

ANIL only adapts the head, so its accuracy rests on the trunk's features. A trunk
first trained as an ordinary many-class classifier on the training classes, then
meta-trained with ANIL (`train --init-from`), reaches good features in far fewer
CPU hours than meta-training from scratch (see the reference table: pre-training
+ linear head beats meta-training from scratch on CIFAR-FS and FC100).
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from anil_engine.cards import machine_description
from anil_engine.checkpoint import save_checkpoint
from anil_engine.config import EvalConfig, ModelConfig, Preprocessing, TaskSpec, resolve_device
from anil_engine.datasets import DEFAULT_PREPROCESSING, load_dataset
from anil_engine.errors import ConfigError
from anil_engine.evaluation import evaluate, run_to_end
from anil_engine.models import AnilModel
from anil_engine.tasks import to_float
from anil_engine.training import make_checkpoint

PROGRESS_STEPS = 20
CLASSIFIERS = ("linear", "cosine")


class CosineClassifier(nn.Module):
    """logits = scale * cos(feature, class row): the "Baseline++" pre-training classifier.

    It trains the trunk for small within-class spread in direction, which the
    few-shot head (or a nearest class mean) then profits from.
    """

    def __init__(self, num_features: int, n_classes: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, num_features) * num_features**-0.5)
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.normalize(features, dim=1), F.normalize(self.weight, dim=1))


@dataclass(frozen=True)
class PretrainConfig:
    """Plain supervised pre-training of the trunk on the training split."""

    dataset: str
    data_root: str
    split_scheme: str = "vinyals"
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.002
    weight_decay: float = 5e-4
    hidden_size: int = 64
    input_size: int = 28
    ways: int = 20
    seed: int = 42
    device: str = "auto"
    augment: bool = True
    classifier: str = "linear"  # or "cosine": scaled cosine similarity to each class's weight row
    cosine_scale: float = 10.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise ConfigError(f"classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not self.cosine_scale > 0:
            raise ConfigError(f"cosine_scale must be > 0, got {self.cosine_scale!r}")
        for name in ("epochs", "batch_size", "lr", "hidden_size", "input_size"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")


@dataclass(frozen=True)
class PretrainProgress:
    """Yielded every `PROGRESS_STEPS` optimizer steps and at the end of every epoch."""

    step: int
    steps: int
    epoch: int
    epochs: int
    loss: float
    accuracy: float  # training accuracy, percent
    val_accuracy: float | None  # val 5-way 1-shot, percent (at validating epoch ends)
    elapsed_s: float


def random_affine(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-image small rotation (+-10 deg), scale (0.9-1.1) and shift (+-10 %); border pixels repeat.

    Args:
        x: (n, c, h, w) float.
    """
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(10)
    scale = 0.9 + 0.2 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 0.2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def pretrain(config: PretrainConfig, out: str | Path) -> Generator[PretrainProgress, None, dict]:
    """Train trunk + Linear(num_features, n_train_classes); save the trunk with a fresh `ways` head."""
    device = resolve_device(config.device)
    _size, channels, mean, std = DEFAULT_PREPROCESSING[config.dataset]
    pre = Preprocessing(config.input_size, channels, mean, std)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    train_data = load_dataset(config.dataset, config.data_root, "train", pre.size, channels, config.split_scheme)
    val_data = load_dataset(config.dataset, config.data_root, "val", pre.size, channels, config.split_scheme)
    model = AnilModel(ModelConfig(config.hidden_size, 4, channels, pre.size, config.ways), pre)
    model = model.to(device, memory_format=torch.channels_last)
    if config.classifier == "cosine":
        classifier: nn.Module = CosineClassifier(model.num_features, train_data.n_classes, config.cosine_scale)
    else:
        classifier = nn.Linear(model.num_features, train_data.n_classes)
    classifier = classifier.to(device)
    params = list(model.trunk.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.1
    )
    start = time.perf_counter()
    val_acc = 0.0
    val_query = max(1, min(15, int(val_data.class_counts().min()) - 1))
    val_every = math.ceil(config.epochs / 4)  # 4 validations: on 84x84 inputs one costs about an epoch
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(train_data), generator=gen)
        total_loss, correct, seen = 0.0, 0, 0
        for i in range(steps_per_epoch):
            idx = order[i * config.batch_size : (i + 1) * config.batch_size]
            x = to_float(train_data.images[idx], device)
            y = train_data.labels[idx].to(device)
            if config.augment:
                x = random_affine(x, gen)
                if channels == 3:  # photos: mirror half of them (characters are not mirror-symmetric)
                    flip = (torch.rand(len(idx), generator=gen) < 0.5).to(device)
                    x = torch.where(flip[:, None, None, None], x.flip(3), x)
            x = x.contiguous(memory_format=torch.channels_last)
            logits = classifier(model.trunk(x))
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            step = (epoch - 1) * steps_per_epoch + i + 1
            if (i + 1) % PROGRESS_STEPS == 0 and i + 1 < steps_per_epoch:
                yield PretrainProgress(
                    step,
                    config.epochs * steps_per_epoch,
                    epoch,
                    config.epochs,
                    total_loss / seen,
                    100 * correct / seen,
                    None,
                    time.perf_counter() - start,
                )
        validating = epoch % val_every == 0 or epoch == config.epochs
        if validating:
            val = evaluate(
                model, val_data, EvalConfig(TaskSpec(5, 1, val_query), 200, "inductive", 1234), 0.1, 5, device
            )
            val_acc = run_to_end(val)["accuracy"]
        yield PretrainProgress(
            epoch * steps_per_epoch,
            config.epochs * steps_per_epoch,
            epoch,
            config.epochs,
            total_loss / seen,
            100 * correct / seen,
            val_acc if validating else None,
            time.perf_counter() - start,
        )
    model = model.to(memory_format=torch.contiguous_format)

    metrics = {
        "epochs": config.epochs,
        "val_5w1s": val_acc,
        "train_seconds": round(time.perf_counter() - start, 1),
        "device": device,
        "machine": machine_description(device),
        "torch": str(torch.__version__),
        "pretrain_config": dict(config.__dict__),
    }
    dataset = {"name": config.dataset, "split_scheme": config.split_scheme, "train_split": "train"}
    save_checkpoint(make_checkpoint(model, None, "pretrained", metrics, dataset), out)
    return {"out": str(out), **{k: metrics[k] for k in ("val_5w1s", "train_seconds")}}
