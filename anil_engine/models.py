"""The ANIL model: a trunk from the backbone registry and a linear head.

The trunk is the per-channel normalisation of the checkpoint's preprocessing
followed by the backbone (`anil_engine.backbones`: learn2learn's CNN4, or a
pretrained EfficientNet-Lite0), so the model takes images scaled to [0, 1].

A checkpoint of a pretrained backbone stores only the tensors that differ from the
base weights, plus the base weights' sha256 (`compact_state_dict`); loading builds
the base and lays the stored tensors over it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anil_engine.backbones import Backbone, get_backbone
from anil_engine.config import ModelConfig, Preprocessing
from anil_engine.errors import CheckpointError, ConfigError
from anil_engine.views import with_views


@contextlib.contextmanager
def batch_statistics(module: nn.Module) -> Iterator[None]:
    """Make every BatchNorm use the current batch's statistics without touching its running ones.

    This is learn2learn's test protocol ("transductive"). The running buffers are
    hidden for the duration (PyTorch then normalises with batch statistics even
    in eval mode) and put back afterwards, unchanged.
    """
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            saved.append((m, m.running_mean, m.running_var))
            m.running_mean = None
            m.running_var = None
    try:
        yield
    finally:
        for m, mean, var in saved:
            m.running_mean = mean
            m.running_var = var


def head_logits(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The linear head applied to trunk features: (n, num_features) -> logits (n, n_classes).

    The one place the head is applied: meta-training, adaptation, evaluation, the app and the ONNX export
    all call it, with the meta-learned head or an adapted one.
    """
    return F.linear(features, weight, bias)


class Normalize(nn.Module):
    """(x - mean) / std per channel; mean and std are buffers so they travel with the model."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_trunk(config: ModelConfig, preprocessing: Preprocessing) -> nn.Sequential:
    """Normalize + the registry's backbone; input (n, channels, size, size) in [0, 1] -> (n, num_features)."""
    return nn.Sequential(Normalize(preprocessing.mean, preprocessing.std), get_backbone(config.backbone).build(config))


class AnilModel(nn.Module):
    """Trunk `f_theta` and linear head `w`, split as ANIL needs it.

    Attributes:
        trunk: (n, channels, size, size) in [0, 1] -> features (n, num_features).
        head: Linear(num_features, ways).
    """

    def __init__(self, config: ModelConfig, preprocessing: Preprocessing) -> None:
        super().__init__()
        if config.channels != preprocessing.channels or config.input_size != preprocessing.size:
            raise ValueError(f"model {config} does not match preprocessing {preprocessing}")
        self.config = config
        self.preprocessing = preprocessing
        self.trunk = build_trunk(config, preprocessing)
        if get_backbone(config.backbone).pretrained is not None:
            self.trunk.eval()  # inductive BatchNorm: a pretrained trunk's running statistics are kept
        with torch.no_grad():
            was = self.trunk.training
            self.trunk.eval()
            probe = torch.zeros(1, config.channels, config.input_size, config.input_size)
            self.num_features = int(self.trunk(probe).shape[1])
            self.trunk.train(was)
        self.head = nn.Linear(self.num_features, config.ways)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, c, h, w) in [0, 1] -> (n, num_features)."""
        return self.trunk(x)

    def test_trunk(self) -> nn.Module:
        """The trunk as evaluation, the app and the ONNX export run it: averaged over the model's test-time
        views (`preprocessing.views`, `anil_engine.views`), or the trunk itself for 1 view. Training uses
        `trunk` / `forward_features`, never the views."""
        return with_views(self.trunk, self.preprocessing.size, self.preprocessing.views)

    def test_features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, c, h, w) in [0, 1] -> (n, num_features) through `test_trunk`."""
        return self.test_trunk()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, c, h, w) in [0, 1] -> logits (n, ways)."""
        return self.forward_head(self.forward_features(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(n, num_features) -> logits (n, ways) with the model's own (meta-learned) head."""
        return head_logits(features, self.head.weight, self.head.bias)

    @property
    def backbone(self) -> Backbone:
        return get_backbone(self.config.backbone)

    def model_dict(self) -> dict[str, Any]:
        """The checkpoint's `model` entry."""
        c = self.config
        return {
            "backbone": c.backbone,
            "hidden_size": c.hidden_size,
            "layers": c.layers,
            "channels": c.channels,
            "input_size": c.input_size,
            "ways": c.ways,
        }


TRUNK_PREFIX = "trunk.1."  # the backbone's keys inside AnilModel.state_dict() (trunk.0 is Normalize)


def compact_state_dict(model: AnilModel) -> tuple[dict[str, torch.Tensor], dict[str, str] | None]:
    """(state dict to store, base weights record or None).

    For a pretrained backbone, tensors equal to the base weights are left out
    (ANIL with a frozen trunk stores ~1,300 head numbers instead of 17 MB).
    """
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    spec = model.backbone
    if spec.pretrained is None:
        return state, None
    base = spec.base_state(TRUNK_PREFIX)
    kept = {k: v for k, v in state.items() if k not in base or not torch.equal(v, base[k].to(v.dtype))}
    return kept, spec.pretrained.to_dict()


def model_from_checkpoint(ckpt: dict[str, Any], path: str = "checkpoint") -> AnilModel:
    """Rebuild the model of a loaded checkpoint dict (see `checkpoint.load_checkpoint`).

    Raises:
        CheckpointError: the weights do not fit, or the checkpoint was built on other base weights.
    """
    try:
        config = ModelConfig(**ckpt["model"])
        pre = Preprocessing.from_dict(ckpt["preprocessing"])
        spec = get_backbone(config.backbone)
        base = ckpt.get("base_weights")
        if base is not None:
            if spec.pretrained is None or base.get("sha256") != spec.pretrained.sha256:
                raise CheckpointError(
                    f"{path}: was built on base weights {base.get('package')} (sha256 "
                    f"{str(base.get('sha256'))[:16]}...), which this ANIL Studio does not have; use a matching release"
                )
        model = AnilModel(config, pre)
        if base is None:
            model.load_state_dict(ckpt["state_dict"])
        else:
            result = model.load_state_dict(ckpt["state_dict"], strict=False)
            stray = [k for k in result.missing_keys if not k.startswith(TRUNK_PREFIX)]
            if result.unexpected_keys or stray:
                raise RuntimeError(f"unexpected {result.unexpected_keys}, missing {stray}")
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    except (TypeError, KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the weights do not fit the model it describes ({exc})") from exc
    return model


def model_with_views(model: AnilModel, views: int | None, path: str = "") -> AnilModel:
    """`model` itself for None or its own views, else a shallow copy (the same weights) with `views` test-time
    views: evaluating another number of views leaves the caller's model as it was.

    Raises:
        ConfigError: views the model cannot take (a colour model), naming `path` (its checkpoint) when given.
    """
    if views is None or views == model.preprocessing.views:
        return model
    try:
        preprocessing = dataclasses.replace(model.preprocessing, views=views)  # checks views and channels
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from exc
    other = copy.copy(model)
    other.preprocessing = preprocessing
    return other


def calibrate_batchnorm(model: AnilModel, images: torch.Tensor, batch_size: int = 256) -> None:
    """Set every BatchNorm's running statistics to the exact mean/variance over `images`.

    Used for a randomly initialised trunk (whose running statistics are
    meaningless) before inductive evaluation.

    Args:
        images: float (n, c, h, w) in [0, 1].
    """
    bns = [m for m in model.trunk.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    with torch.no_grad():
        for i in range(0, images.shape[0], batch_size):
            model.trunk(images[i : i + batch_size])
    for m, (momentum, training) in zip(bns, saved, strict=True):
        m.momentum = momentum
        m.train(training)


def rescale_features(model: AnilModel, images: torch.Tensor, target_norm: float) -> float:
    """Scale the trunk's output so the mean feature norm over `images` is `target_norm`.

    The last block is BatchNorm -> ReLU -> max-pool, all positively homogeneous,
    so multiplying that BatchNorm's weight and bias by s multiplies every feature
    by exactly s. A pre-trained trunk's features can be large (norm ~40 here),
    which makes the head's inner loop at the article's fast_lr diverge; this
    brings them into a range where it is stable.

    Args:
        images: float (n, c, h, w) in [0, 1], e.g. a batch of training images.

    Returns:
        The scale factor applied.
    """
    bns = [m for m in model.trunk.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was = model.training
    model.eval()
    with torch.no_grad():
        norm = float(model.forward_features(images).norm(dim=1).mean())
        scale = target_norm / norm
        bns[-1].weight.mul_(scale)
        bns[-1].bias.mul_(scale)
    model.train(was)
    return scale
