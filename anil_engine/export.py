"""ONNX export of the frozen trunk and of the adapted classifier, each verified on export.

Both graphs take float32 images (batch, channels, size, size) scaled to [0, 1];
per-channel normalisation is inside the graph. The batch axis is dynamic and
BatchNorm uses running statistics (eval mode), so every image is independent.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anil_engine import __version__
from anil_engine.checkpoint import atomic_write_bytes
from anil_engine.errors import ExportError
from anil_engine.models import AnilModel, head_logits
from anil_engine.runtime import cpu_session

TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportReport:
    path: str
    max_abs_diff: float
    samples: int


class _Classifier(nn.Module):
    """Trunk + adapted head + softmax: images -> probabilities (batch, n_classes)."""

    def __init__(self, trunk: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.trunk = trunk
        self.register_buffer("weight", weight.detach().cpu().clone())  # (n_classes, num_features)
        self.register_buffer("bias", bias.detach().cpu().clone())  # (n_classes,)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.softmax(head_logits(self.trunk(images), self.weight, self.bias), dim=1)


def _frozen_trunk(model: AnilModel) -> nn.Module:
    """A CPU, eval-mode, contiguous copy of the trunk with its test-time views (`AnilModel.test_trunk`; the
    caller's model is left untouched)."""
    return copy.deepcopy(model.test_trunk()).cpu().eval().to(memory_format=torch.contiguous_format)


def _to_onnx_bytes(module: nn.Module, example: torch.Tensor, output: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["images"],
            output_names=[output],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
            external_data=False,
        )
        return path.read_bytes()


def _verify(
    data: bytes, module: nn.Module, channels: int, size: int, path: Path, varied_batches: bool = False
) -> float:
    """onnx.checker, then onnxruntime vs torch on random and constant inputs; returns max |diff|."""
    import onnx

    try:
        onnx.checker.check_model(onnx.load_from_string(data))
    except Exception as exc:  # any checker complaint fails the export
        raise ExportError(f"{path}: the exported graph fails onnx.checker ({exc})") from exc
    session = cpu_session(data)
    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.rand(1, channels, size, size, generator=g),
        torch.rand(64, channels, size, size, generator=g),
        torch.zeros(3, channels, size, size),
        torch.ones(2, channels, size, size),
    ]
    if varied_batches:  # batch statistics need >= 2 images that are not all equal
        inputs = [torch.rand(n, channels, size, size, generator=g) for n in (2, 5, 64)]
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            expected = module(x).numpy()
            got = session.run(None, {"images": x.numpy()})[0]
            if not (np.isfinite(expected).all() and np.isfinite(got).all()):
                # max() would pass over a NaN difference: a broken model must never verify.
                raise ExportError(f"{path}: the model gives non-finite outputs (NaN or infinity); not exported")
            worst = max(worst, float(np.abs(expected - got).max()))
    if not worst <= TOLERANCE:
        raise ExportError(f"{path}: onnxruntime differs from torch by {worst:.2e} (> {TOLERANCE:.0e}); not exported")
    return worst


def _check_writable(path: Path) -> None:
    if path.exists() and path.is_dir():
        raise ExportError(f"{path}: is a folder; give a file name ending in .onnx")


def trunk_onnx_bytes(model: AnilModel, transductive: bool = False) -> bytes:
    """The verified trunk graph in memory (onnxruntime feature extraction in the app and in evaluation).

    Args:
        transductive: BatchNorm normalises with each batch's own statistics (learn2learn's
            test protocol) instead of the running ones; batches must hold >= 2 images.
    """
    from anil_engine.models import batch_statistics

    pre = model.preprocessing
    trunk = _frozen_trunk(model)
    with batch_statistics(trunk) if transductive else contextlib.nullcontext():
        data = _to_onnx_bytes(trunk, torch.rand(2, pre.channels, pre.size, pre.size), "features")
        data = _with_metadata(data, {"anil_studio.kind": "trunk", **_preprocessing_metadata(model)})
        _verify(data, trunk, pre.channels, pre.size, Path("<trunk in memory>"), varied_batches=transductive)
    return data


def trunk_cache_key(model: AnilModel, transductive: bool = False) -> str:
    """sha256 of what the trunk graph depends on: every trunk tensor, the preprocessing and the versions."""
    import hashlib

    import onnxruntime

    h = hashlib.sha256()
    h.update(json.dumps([__version__, str(torch.__version__), onnxruntime.__version__, transductive,
                         model.preprocessing.to_dict(), model.model_dict()]).encode())  # fmt: skip
    for name, tensor in model.trunk.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _trunk_cache_path(model: AnilModel, transductive: bool = False) -> Path:
    from anil_engine.datasets import cache_dir

    return cache_dir() / "onnx" / f"{trunk_cache_key(model, transductive)}.onnx"


def trunk_graph_cached(model: AnilModel) -> bool:
    """Whether `cached_trunk_onnx_bytes(model)` will read its graph from the cache rather than export it."""
    try:
        return _trunk_cache_path(model).is_file()
    except OSError:  # a cache folder that cannot be read (is_file raises PermissionError): it will be built
        return False


def cached_trunk_onnx_bytes(model: AnilModel, transductive: bool = False) -> bytes:
    """`trunk_onnx_bytes`, kept on disk (cache folder /onnx/<key>.onnx) so a model exports once per machine.

    Exporting EfficientNet-Lite0 takes ~25 s on 2 cores; reading the cached graph takes milliseconds. A
    cached graph that fails to load is rebuilt; a cache folder that cannot be written only costs the time.
    """
    path = _trunk_cache_path(model, transductive)
    try:
        data = path.read_bytes()
        cpu_session(data)  # a damaged file is rebuilt
        return data
    except Exception:  # missing, unreadable or damaged: build it again
        pass
    data = trunk_onnx_bytes(model, transductive)
    try:
        atomic_write_bytes(data, path)
    except Exception:  # an unwritable cache only costs time
        pass
    return data


def warm_bundled_cache() -> list[str]:
    """Build the cached ONNX trunk of the app's default model now (set-up), not at the first start (~10 s)."""
    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.models import model_from_checkpoint
    from anil_engine.registry import bundled_models

    done = []
    for m in bundled_models()[:1]:
        cached_trunk_onnx_bytes(model_from_checkpoint(load_checkpoint(m.path), str(m.path)).eval())
        done.append(m.name)
    return done


def export_trunk(model: AnilModel, out: str | Path) -> ExportReport:
    """The frozen trunk: images (batch, c, h, w) in [0, 1] -> features (batch, num_features)."""
    out = Path(out)
    _check_writable(out)
    pre = model.preprocessing
    trunk = _frozen_trunk(model)
    data = _to_onnx_bytes(trunk, torch.rand(2, pre.channels, pre.size, pre.size), "features")
    data = _with_metadata(data, {"anil_studio.kind": "trunk", **_preprocessing_metadata(model)})
    diff = _verify(data, trunk, pre.channels, pre.size, out)
    _write(data, out)
    return ExportReport(str(out), diff, 4)


def export_classifier(
    model: AnilModel,
    weight: torch.Tensor,
    bias: torch.Tensor,
    class_names: list[str],
    out: str | Path,
    source_sha256: str = "",
) -> ExportReport:
    """Trunk + adapted head + softmax: images -> probabilities (batch, n_classes), with metadata."""
    out = Path(out)
    _check_writable(out)
    if weight.shape[0] != len(class_names):
        raise ExportError(f"{len(class_names)} class names for a head of {weight.shape[0]} outputs")
    pre = model.preprocessing
    module = _Classifier(_frozen_trunk(model), weight.cpu(), bias.cpu()).eval()
    data = _to_onnx_bytes(module, torch.rand(2, pre.channels, pre.size, pre.size), "probabilities")
    meta = {
        "anil_studio.kind": "classifier",
        "anil_studio.class_names": json.dumps(class_names),
        "anil_studio.source_checkpoint_sha256": source_sha256,
        **_preprocessing_metadata(model),
    }
    data = _with_metadata(data, meta)
    diff = _verify(data, module, pre.channels, pre.size, out)
    _write(data, out)
    return ExportReport(str(out), diff, 4)


def _preprocessing_metadata(model: AnilModel) -> dict[str, str]:
    pre = model.preprocessing
    framing = (
        "crop to the square around the ink (grey < 128 in 'L'; 10 % of its longer side plus 1 pixel of paper on "
        "every side, centred on the ink; white past the image's edges), "
        if pre.crop == "ink"
        else ""
    )
    return {
        "anil_studio.version": __version__,
        "anil_studio.crop": pre.crop,
        "anil_studio.views": str(pre.views),
        "anil_studio.input_size": str(pre.size),
        "anil_studio.channels": str(pre.channels),
        "anil_studio.mean": json.dumps(list(pre.mean)),
        "anil_studio.std": json.dumps(list(pre.std)),
        "anil_studio.preprocessing": (
            "Open with Pillow, apply EXIF orientation, convert to "
            + ("grayscale 'L'" if pre.channels == 1 else "'RGB'")
            + " (transparency composited on white), "
            + framing
            + "resize to "
            + f"{pre.size}x{pre.size} with Lanczos, float32 in [0, 1] (pixel / 255), layout NCHW. "
            + "Mean/std normalisation is inside the graph."
            + (
                f" The graph averages the features of {pre.views} shifted, turned and scaled copies of every image "
                "(test-time views, made inside the graph)."
                if pre.views > 1
                else ""
            )
        ),
    }


def _with_metadata(data: bytes, meta: dict[str, str]) -> bytes:
    import onnx

    proto = onnx.load_from_string(data)
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "anil-studio"
    proto.producer_version = __version__
    return proto.SerializeToString()


def _write(data: bytes, out: Path) -> None:
    try:
        atomic_write_bytes(data, out)
    except Exception as exc:  # CheckpointError from the shared writer; re-labelled
        raise ExportError(str(exc)) from exc
