"""EfficientNet-Lite0 as an ANIL trunk: the reference code's network, cut between stages for meta-training.

The network comes from `efficientnet-lite-pytorch` (the code its ImageNet weights were published with;
see `anil_engine.backbones` for why not timm). Imported only when such a trunk is built.
"""

from __future__ import annotations

import torch
from torch import nn

from anil_engine.errors import SETUP_FIX, ConfigError


class EfficientNetTrunk(nn.Module):
    """The reference EfficientNet-Lite without its classifier: (n, 3, s, s) normalised -> pooled (n, 1280).

    The same computation as the package's `extract_features` + average pool (eval mode: drop-connect is
    off), written out so that it can be cut between stages (`_split_lite0`).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n._swish(n._bn0(n._conv_stem(x)))
        for block in n._blocks:
            x = block(x)
        return n._avg_pooling(n._swish(n._bn1(n._conv_head(x)))).flatten(1)


class _Stages(nn.Module):
    """Stem (optional), some MBConv blocks and (optional) the 1x1 head conv + pool of an `EfficientNetTrunk`."""

    def __init__(self, net: nn.Module, stem: bool, blocks: list[nn.Module], head: bool) -> None:
        super().__init__()
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish) if stem else nn.Identity()
        self.blocks = nn.Sequential(*blocks)
        self.head = (
            nn.Sequential(net._conv_head, net._bn1, net._swish, net._avg_pooling, nn.Flatten()) if head else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(x) if self.head is not None else x


def _reference_lite0(size: int) -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ConfigError(
            f"the backbone 'efficientnet_lite0' needs efficientnet-lite-pytorch, which is not installed; {SETUP_FIX}"
        ) from exc
    # image_size: the TF "same" padding is static, computed for this input size (ONNX-friendly).
    net = EfficientNet.from_name("efficientnet-lite0", image_size=size)
    if not isinstance(net._swish, nn.ReLU6):  # never call its set_swish(): in the Lite code it installs Swish
        raise ConfigError("efficientnet-lite-pytorch built EfficientNet-Lite0 without ReLU6; reinstall version 0.1.0")
    return net


def stage_depths(net: nn.Module) -> list[int]:
    """Blocks per stage of the reference network (Lite0: 1, 2, 2, 3, 3, 4, 1)."""
    depths = [b.num_repeat for b in net._blocks_args]
    if sum(depths) != len(net._blocks):
        raise ConfigError(f"unexpected EfficientNet layout: {depths} blocks per stage, {len(net._blocks)} in all")
    return depths


def build_lite0(size: int, state: dict[str, torch.Tensor]) -> EfficientNetTrunk:
    """EfficientNet-Lite0 for `size` px inputs with the (sha256-checked) package weights `state`, no classifier."""
    net = _reference_lite0(size)
    net.load_state_dict(state, strict=True)
    del net._fc, net._dropout  # the ImageNet classifier is not part of the trunk
    return EfficientNetTrunk(net)


def split(trunk: EfficientNetTrunk, trainable: int) -> tuple[nn.Module, nn.Module]:
    """(frozen prefix, trainable suffix) with the last `trainable` stages in the suffix (-1: all, 0: none)."""
    net = trunk.net
    depths = stage_depths(net)
    if trainable < 0 or trainable >= len(depths):
        return nn.Identity(), trunk
    if trainable == 0:
        return trunk, nn.Identity()
    blocks = list(net._blocks)
    cut = sum(depths[: len(depths) - trainable])
    return _Stages(net, True, blocks[:cut], False), _Stages(net, False, blocks[cut:], True)
