"""The ANIL model: learn2learn's CNN4 trunk and a linear head.

The trunk is `learn2learn.vision.models.CNN4Backbone` (4 x [conv3x3 -> BatchNorm ->
ReLU -> maxpool 2x2], flattened), preceded by the per-channel normalisation of
the checkpoint's preprocessing, so the model takes images scaled to [0, 1].
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from anil_engine.config import ModelConfig, Preprocessing
from anil_engine.errors import CheckpointError


class Normalize(nn.Module):
    """(x - mean) / std per channel; mean and std are buffers so they travel with the model."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_trunk(config: ModelConfig, preprocessing: Preprocessing) -> nn.Sequential:
    """Normalize + CNN4Backbone; input (n, channels, size, size) in [0, 1] -> (n, num_features)."""
    from anil_engine._l2l import learn2learn

    l2l = learn2learn()
    backbone = l2l.vision.models.CNN4Backbone(
        hidden_size=config.hidden_size, layers=config.layers, channels=config.channels, max_pool=True
    )
    return nn.Sequential(Normalize(preprocessing.mean, preprocessing.std), backbone)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, c, h, w) in [0, 1] -> logits (n, ways)."""
        return self.head(self.trunk(x))

    def reset_head(self, n_classes: int) -> None:
        """Replace the head by a fresh Linear(num_features, n_classes)."""
        device = self.head.weight.device
        self.head = nn.Linear(self.num_features, n_classes).to(device)


def model_from_checkpoint(ckpt: dict[str, Any], path: str = "checkpoint") -> AnilModel:
    """Rebuild the model of a loaded checkpoint dict (see `checkpoint.load_checkpoint`)."""
    try:
        config = ModelConfig(**ckpt["model"])
        pre = Preprocessing.from_dict(ckpt["preprocessing"])
        model = AnilModel(config, pre)
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the weights do not fit the model it describes ({exc})") from exc
    return model


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
