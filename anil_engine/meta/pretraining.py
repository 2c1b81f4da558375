"""Pre-training the trunk as a plain classifier over all training classes ("feature reuse").

ANIL only adapts the head, so its accuracy rests on the trunk's features. A trunk
first trained as an ordinary many-class classifier on the training classes, then
meta-trained with ANIL (`train --init-from`), reaches good features in far fewer
CPU hours than meta-training from scratch (see the reference table: pre-training
+ linear head beats meta-training from scratch on CIFAR-FS and FC100).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Generator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from anil_engine.backbones import get_backbone
from anil_engine.checkpoint import check_writable, load_checkpoint, save_checkpoint
from anil_engine.config import (  # noqa: F401 - PretrainConfig, CLASSIFIERS, RECIPE_FEATURE_NORM re-exported
    CLASSIFIERS,
    RECIPE_FEATURE_NORM,
    EvalConfig,
    ModelConfig,
    Preprocessing,
    PretrainConfig,
    TaskSpec,
    TrainConfig,
    dataset_preprocessing,
    resolve_device,
)
from anil_engine.datasets import load_dataset
from anil_engine.datasets.base import joined
from anil_engine.environment import machine_description
from anil_engine.errors import CheckpointError, ConfigError
from anil_engine.evaluation import evaluate
from anil_engine.jobs import run_to_end
from anil_engine.meta.training import train
from anil_engine.meta.trainrun import TrainProgress, make_checkpoint
from anil_engine.models import AnilModel
from anil_engine.tasks import class_groups, to_float

PROGRESS_STEPS = 20
SAVE_EVERY_S = 300.0  # a resumable state at least this often (and at every epoch's end)


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
class PretrainProgress:
    """Yielded every `PROGRESS_STEPS` optimizer steps and at the end of every epoch."""

    step: int
    steps: int
    epoch: int
    epochs: int
    loss: float
    accuracy: float  # training accuracy, percent
    # Validation 5-way 1-shot accuracy by nearest class mean (fewer ways if val has fewer classes), percent;
    # only on the items that end a validating epoch.
    val_accuracy: float | None
    elapsed_s: float


def random_affine(x: torch.Tensor, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Per-image small rotation (+-10 deg), scale (0.9-1.1) and shift (+-10 %); border pixels repeat.

    Args:
        x: (n, c, h, w) float.
        strength: every range times this (0.5: +-5 deg, 0.95-1.05, +-5 %).
    """
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(10 * strength)
    scale = (1 - 0.1 * strength) + (0.2 * strength) * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (0.2 * strength)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


ELASTIC_GRID = 4  # control points per side of the elastic displacement field


def random_elastic(x: torch.Tensor, amplitude: float, generator: torch.Generator) -> torch.Tensor:
    """Per-image smooth random displacement: a 4x4 grid of offsets up to `amplitude` (fraction of the image
    size), interpolated bicubically to every pixel, so strokes bend and change thickness a little.

    Args:
        x: (n, c, h, w) float.
    """
    n, _, h, w = x.shape
    coarse = (torch.rand(n, 2, ELASTIC_GRID, ELASTIC_GRID, generator=generator) * 2 - 1) * (2 * amplitude)
    offsets = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    identity = torch.eye(2, 3).expand(n, 2, 3)
    grid = F.affine_grid(identity, [n, 1, h, w], align_corners=False) + offsets
    return F.grid_sample(x, grid.to(x.device, x.dtype), padding_mode="border", align_corners=False)


def _class_group_ids(class_names: list[str]) -> torch.Tensor:
    """Each class's group for `PretrainConfig.within_loss`: Omniglot's alphabet at one rotation."""
    ids = torch.empty(len(class_names), dtype=torch.long)
    try:
        groups = class_groups(class_names, "rotated-alphabet")
    except ConfigError as exc:
        raise ConfigError(f"--within-loss: {exc}; leave --within-loss out for this data set") from None
    for g, members in enumerate(groups):
        ids[members] = g
    return ids


def pretraining_loss(
    logits: torch.Tensor, y: torch.Tensor, config: PretrainConfig, group: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy over all classes, plus `config.within_loss` x the cross-entropy over only the classes of
    each image's own group (`group[c]`: class c's group id), whose other classes are its only negatives."""
    loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
    if group is None or config.within_loss == 0:
        return loss
    others = group[None, :] != group[y][:, None]
    return loss + config.within_loss * F.cross_entropy(logits.masked_fill(others, -math.inf), y)


def resume_path(out: str | Path) -> Path:
    """Where `pretrain(config, out)` keeps its resumable state while it runs: OUT_STEM.resume.pt beside OUT."""
    out = Path(out)
    return out.with_name(out.stem + ".resume.pt")


def _comparable(config: PretrainConfig) -> dict:
    """The settings a resumed run must share with the saved one (the device may change)."""
    return {k: v for k, v in config.__dict__.items() if k != "device"}


def _saved_state(config: PretrainConfig, out: Path, resume: bool) -> dict | None:
    """The resumable state of an earlier run of `out` (with `resume`); refuses to overwrite one without it."""
    state_path = resume_path(out)
    try:
        check_writable(out, "checkpoint")  # before the data are read, not after the first epoch
    except CheckpointError as exc:
        raise ConfigError(f"{exc} (--out)") from exc
    if not resume:
        if state_path.exists():
            raise ConfigError(
                f"{state_path}: an unfinished pre-training of {out.name}; pass --resume to continue it, or delete "
                "the file to start over"
            )
        return None
    if not state_path.is_file():
        raise CheckpointError(f"{state_path}: nothing to resume; start without --resume")
    saved = load_checkpoint(state_path)
    if "resume" not in saved or saved["resume"].get("pretrain_config") is None:
        raise CheckpointError(f"{state_path}: not a pre-training state; start without --resume")
    # A state saved before a setting existed has that setting's default.
    defaults = _comparable(PretrainConfig(config.dataset, config.data_root))
    if {**defaults, **saved["resume"]["pretrain_config"]} != _comparable(config):
        raise ConfigError(
            f"{state_path}: was pre-trained with other settings; resume with the same settings (only --device "
            "may change) or choose another --out"
        )
    return saved


class _Pretraining:
    """One pre-training run: the trunk with a classifier over the training classes, its schedule and position."""

    def __init__(self, config: PretrainConfig, out: Path) -> None:
        self.config, self.out, self.state_path = config, out, resume_path(out)
        self.device = device = resolve_device(config.device)
        own = dataset_preprocessing(config.dataset, config.input_size)
        pre = replace(get_backbone(config.backbone).preprocessing(config.input_size, own), crop=config.crop)
        channels = pre.channels
        self.mirror = own.channels == 3  # photos; characters are not mirror-symmetric, even in 3 channels
        if config.mirror_classes and self.mirror:
            raise ConfigError(
                "--mirror-classes: a mirrored photo shows the same object, so it cannot be a class of its own; photos "
                "are mirrored as the same class already (leave --mirror-classes out for this data set)"
            )
        if config.mirror_classes and config.within_loss > 0:
            raise ConfigError("--mirror-classes and --within-loss: choose one (their class groups do not combine)")
        torch.manual_seed(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        scheme = config.split_scheme
        self.train_data = load_dataset(
            config.dataset, config.data_root, "train", pre.size, channels, scheme, crop=pre.crop
        )
        self.val_data = load_dataset(config.dataset, config.data_root, "val", pre.size, channels, scheme, crop=pre.crop)
        # Trained on the validation classes too, the run has nothing to validate on.
        self.validates = config.train_splits == "train"
        if not self.validates:
            self.train_data = joined(self.train_data, self.val_data)
        # With mirror classes, class c's mirror image is class c + n_drawn.
        self.n_drawn = self.train_data.n_classes
        mc = ModelConfig(config.hidden_size, config.layers, channels, pre.size, config.ways, config.backbone)
        model = AnilModel(mc, pre)
        self.model = model.to(device, memory_format=torch.channels_last)
        n = self.n_drawn * (2 if config.mirror_classes else 1)
        if config.classifier == "cosine":
            classifier: nn.Module = CosineClassifier(model.num_features, n, config.cosine_scale)
        else:
            classifier = nn.Linear(model.num_features, n)
        self.classifier = classifier.to(device)
        self.group = _class_group_ids(self.train_data.class_names).to(device) if config.within_loss > 0 else None
        params = list(model.trunk.parameters()) + list(self.classifier.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.train_data) / config.batch_size)
        total_steps = config.epochs * self.steps_per_epoch
        # 10 % warm-up; at least 1.5 steps of it, since OneCycleLR divides by (warm-up steps - 1).
        warmup = min(0.75, max(0.1, 1.5 / total_steps))
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, config.lr, total_steps=total_steps, pct_start=warmup
        )
        # Where the run stands: the next step is `step_in_epoch` of `epoch` (1-based), over `order`.
        self.epoch, self.step_in_epoch = 1, 0
        self.order = torch.randperm(len(self.train_data), generator=self.gen)
        self.total_loss, self.correct, self.seen, self.val_acc, self.elapsed_before = 0.0, 0, 0, 0.0, 0.0
        self.dataset = {"name": config.dataset, "split_scheme": config.split_scheme, "train_split": config.train_splits}
        self.val_query = max(1, min(15, int(self.val_data.class_counts().min()) - 1))
        # A small folder may have fewer validation classes.
        self.val_ways = min(5, self.val_data.n_classes) if self.validates else 0
        self.val_every = math.ceil(config.epochs / 4)  # 4 validations: on 84x84 inputs one costs about an epoch

    def restore(self, saved: dict) -> None:
        r = saved["resume"]
        self.model.load_state_dict(saved["state_dict"])
        self.classifier.load_state_dict(r["classifier"])
        self.optimizer.load_state_dict(r["optimizer"])
        self.scheduler.load_state_dict(r["scheduler"])
        self.epoch, self.step_in_epoch, self.order = int(r["epoch"]), int(r["step_in_epoch"]), r["order"]
        self.total_loss, self.correct, self.seen = float(r["total_loss"]), int(r["correct"]), int(r["seen"])
        self.val_acc, self.elapsed_before = float(r["val_acc"]), float(r["elapsed_s"])
        self.gen.set_state(r["generator"])
        torch.set_rng_state(r["torch_rng"])

    def start_clock(self) -> None:
        self.start = time.perf_counter()
        # The random states at the last step boundary: a run stopped inside a step resumes from its start.
        self.rngs = (self.gen.get_state(), torch.get_rng_state())

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.start

    def metrics(self) -> dict:
        return {
            "epochs": self.config.epochs,
            "val_5w1s": self.val_acc if self.validates else None,
            "val_method": "ncm",
            "train_seconds": round(self.elapsed(), 1),
            "device": self.device,
            "machine": machine_description(self.device),
            "torch": str(torch.__version__),
            "pretrain_config": dict(self.config.__dict__),
        }

    def save_state(self) -> None:
        state = {
            "pretrain_config": _comparable(self.config),
            "classifier": {k: v.detach().cpu().clone() for k, v in self.classifier.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "order": self.order,
            "total_loss": self.total_loss,
            "correct": self.correct,
            "seen": self.seen,
            "val_acc": self.val_acc,
            "elapsed_s": self.elapsed(),
            "generator": self.rngs[0],
            "torch_rng": self.rngs[1],
        }
        ckpt = make_checkpoint(self.model, None, "pretrained", self.metrics(), self.dataset, state)
        save_checkpoint(ckpt, self.state_path)

    def progress(self, step: int, val: float | None) -> PretrainProgress:
        c = self.config
        return PretrainProgress(
            step, c.epochs * self.steps_per_epoch, self.epoch, c.epochs, self.total_loss / max(self.seen, 1),
            100 * self.correct / max(self.seen, 1), val, self.elapsed(),
        )  # fmt: skip

    def train_step(self) -> None:
        """One optimizer step on the next batch of the epoch's order (augmented, mirrored for photos; for
        drawings with `mirror_classes`, half mirrored as their mirror classes)."""
        c, device, gen = self.config, self.device, self.gen
        idx = self.order[self.step_in_epoch * c.batch_size : (self.step_in_epoch + 1) * c.batch_size]
        x = to_float(self.train_data.images[idx], device)
        y = self.train_data.labels[idx].to(device)
        if c.augment:
            x = random_affine(x, gen)
            if c.elastic > 0:
                x = random_elastic(x, c.elastic, gen)
            if self.mirror:  # photos: mirror half of them
                flip = (torch.rand(len(idx), generator=gen) < 0.5).to(device)
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if c.mirror_classes:  # drawings: half of the batch mirrored, each as its class's mirror class
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None].to(device), x.flip(3), x)
            y = torch.where(flip.to(device), y + self.n_drawn, y)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=c.compute == "bfloat16"):
            logits = self.classifier(self.model.trunk(x))
        self.step_on(pretraining_loss(logits.float(), y, c, self.group), logits, y)

    def step_on(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """The optimizer step on the batch's `loss`; the epoch's counters (`logits` against labels `y`) and the
        position move on."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.total_loss += float(loss.detach()) * len(y)
        self.correct += int((logits.argmax(1) == y).sum())
        self.seen += len(y)
        self.step_in_epoch += 1
        self.rngs = (self.gen.get_state(), torch.get_rng_state())

    def validate(self) -> float:
        task = TaskSpec(self.val_ways, 1, self.val_query)
        # Nearest class mean: it measures the features whatever their scale. The fresh head with 5 steps of
        # lr 0.1 depends on it (Omniglot, CNN4-32, 4 epochs: 58 % against 94 % on the same trunk).
        val_config = EvalConfig(task, self.config.val_episodes, "inductive", 1234, method="ncm")
        self.val_acc = run_to_end(evaluate(self.model, self.val_data, val_config, 0.1, 5, self.device))["accuracy"]
        return self.val_acc

    def run_epoch(self, save_every_s: float) -> Generator[PretrainProgress, None, None]:
        """The rest of the current epoch, a validation when due, and the next epoch's position saved."""
        c, steps = self.config, self.steps_per_epoch
        self.model.train()
        last_save = time.perf_counter()
        while self.step_in_epoch < steps:
            self.train_step()
            if self.step_in_epoch < steps:
                if time.perf_counter() - last_save >= save_every_s:
                    self.save_state()
                    last_save = time.perf_counter()
                if self.step_in_epoch % PROGRESS_STEPS == 0:
                    yield self.progress((self.epoch - 1) * steps + self.step_in_epoch, None)
        validating = (self.epoch % self.val_every == 0 or self.epoch == c.epochs) and self.val_ways >= 2
        report = self.progress(self.epoch * steps, self.validate() if validating else None)
        # The next epoch's position; saved now, it is where a resumed run starts.
        self.epoch, self.step_in_epoch, self.total_loss, self.correct, self.seen = self.epoch + 1, 0, 0.0, 0, 0
        if self.epoch <= c.epochs:
            self.order = torch.randperm(len(self.train_data), generator=self.gen)
            self.rngs = (self.gen.get_state(), torch.get_rng_state())
            self.save_state()
        yield report


def pretrain(
    config: PretrainConfig, out: str | Path, resume: bool = False, save_every_s: float = SAVE_EVERY_S
) -> Generator[PretrainProgress, None, dict]:
    """Train trunk + Linear(num_features, n_train_classes); save the trunk with a fresh `ways` head to `out`.

    While it runs, `resume_path(out)` holds a resumable state (weights, classifier, optimizer, schedule,
    position in the epoch, random states), written at every epoch's end, every `save_every_s` seconds,
    and when the job stops early (generator closed, Ctrl-C, an error). `resume=True` continues from it
    exactly where it stopped; the state file is removed once `out` is written.
    """
    out = Path(out)
    saved = _saved_state(config, out, resume)
    run = _Pretraining(config, out)
    if saved is not None:
        run.restore(saved)
    run.start_clock()
    run.save_state()  # also finds out now, not after the first epoch, whether OUT's folder is writable
    completed = False
    try:
        while run.epoch <= config.epochs:
            yield from run.run_epoch(save_every_s)
        save_checkpoint(make_checkpoint(run.model, None, "pretrained", run.metrics(), run.dataset), out)
        completed = True
    finally:
        if not completed:  # closed (cancel), Ctrl-C or an error: keep the work done so far
            run.save_state()
    run.state_path.unlink(missing_ok=True)
    return {"out": str(out), "val_5w1s": run.metrics()["val_5w1s"], "train_seconds": round(run.elapsed(), 1)}


PRETRAINED = "pretrained.pt"


def pretrain_config_for(config: TrainConfig, epochs: int) -> PretrainConfig:
    """Pre-training settings matching a meta-training run: its data, trunk, head size, seed and device."""
    return PretrainConfig(
        dataset=config.dataset,
        data_root=config.data_root,
        split_scheme=config.split_scheme,
        epochs=epochs,
        hidden_size=config.hidden_size,
        layers=config.layers,
        input_size=config.input_size,
        crop=config.crop,
        backbone=config.backbone,
        ways=config.ways,
        seed=config.seed,
        device=config.device,
        val_episodes=config.val_episodes,
    )


def pretrain_then_train(
    config: TrainConfig,
    pretrain_epochs: int,
    out_dir: str | Path,
    resume: bool = False,
    feature_norm: float = RECIPE_FEATURE_NORM,
) -> Generator[PretrainProgress | TrainProgress, None, dict]:
    """The bundled models' recipe as one job: pre-train the trunk into OUT/pretrained.pt, then meta-train in OUT.

    Meta-training starts from the pre-trained trunk rescaled to mean feature norm
    `feature_norm` (0: not rescaled; a pretrained backbone's never is). Yields `PretrainProgress`, then `TrainProgress`;
    returns `train`'s summary. Stopped anywhere, `resume=True` continues: the pre-training
    from OUT/pretrained.resume.pt, or the meta-training from OUT/last.pt.
    """
    if config.init_from:
        raise ConfigError("pre-training makes the starting trunk: leave 'start trunk from' (--init-from) empty")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "pre-training runs in one process: run `anil-studio pretrain` first, then `torchrun ... train --init-from`"
        )
    if get_backbone(config.backbone).pretrained is not None:
        feature_norm = 0.0  # its last activation (ReLU6) saturates: scaling the last BatchNorm is not exact
    out = Path(out_dir)
    pre_path = out / PRETRAINED
    pre_config = pretrain_config_for(config, pretrain_epochs)
    config = replace(config, init_from=str(pre_path), init_feature_norm=feature_norm)
    started = [p for p in (pre_path, resume_path(pre_path), out / "last.pt") if p.exists()]
    if not resume and started:
        raise ConfigError(f"{out}: already holds a run ({started[0].name}); resume it or choose a new run folder")
    if resume and not started:
        raise CheckpointError(f"{out}: nothing to resume; start without resume")
    if resume and (out / "last.pt").exists() and not pre_path.is_file():
        raise ConfigError(f"{out}: its meta-training did not start from {PRETRAINED}; resume it without pre-training")
    if not pre_path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        yield from pretrain(pre_config, pre_path, resume=resume_path(pre_path).is_file())
    return (yield from train(config, out, resume=(out / "last.pt").is_file()))
