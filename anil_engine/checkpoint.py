"""One explicit, versioned checkpoint format, saved atomically, loaded safely.

A checkpoint is a dict::

    format: "anil-studio-checkpoint"     version: FORMAT_VERSION
    kind: "anil" | "pretrained"
    model: {backbone, hidden_size, layers, channels, input_size, ways}   (version 1: no backbone = "cnn4")
    state_dict: trunk and head tensors; for a pretrained backbone only those that differ from
        its base weights, which `base_weights` names: {package, file, sha256} (version 2)
    fast_lr, adaptation_steps, head_init, flip: the test-time head adaptation
    preprocessing: {size, channels, mean, std}
    train_config: the TrainConfig as a dict (or {})
    dataset: {name, split_scheme}
    metrics: training metrics (best validation accuracy, iterations, seconds ...)
    test_results: list of evaluation results added by `anil-studio eval --record`
    resume: optimizer state, iteration and RNG states (resumable checkpoints only)
"""

from __future__ import annotations

import glob
import io
import os
import pickle
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from anil_engine.errors import CheckpointError, os_message

FORMAT = "anil-studio-checkpoint"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: no backbone (always CNN4), full state dict
REQUIRED_KEYS = ("format", "version", "kind", "model", "state_dict", "preprocessing")


def atomic_write_bytes(data: bytes, path: str | Path) -> None:
    """Write `data` to `path` through a temporary file and `os.replace`."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise CheckpointError(f"{path}: is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CheckpointError(os_message(exc, path, "cannot write there")) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(os_message(exc, path, "writing failed")) from exc


STALE_TMP_S = 600  # a temporary file of ours this old was left by a write that was killed


def remove_stale_temporaries(path: Path) -> None:
    """Remove `.NAME.XXXXXXXX.tmp` files beside `path` left by killed writes (ours only, only stale ones)."""
    now = time.time()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if re.fullmatch(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}\.tmp", tmp.name) is None:
            continue
        try:
            if now - tmp.stat().st_mtime > STALE_TMP_S and tmp.is_file():
                tmp.unlink()
        except OSError:
            pass  # another writer's, or not ours to remove: leave it


def check_writable(path: str | Path, what: str = "file") -> None:
    """Fail before any work when `path` cannot be written: its folder is missing, a file, or read-only."""
    path = Path(path).absolute()
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder; give a {what} name to write")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent  # missing folders are created when the file is written
    if not ancestor.is_dir():
        raise CheckpointError(f"{ancestor}: a file, not a folder; write the {what} elsewhere")
    if not os.access(ancestor, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise CheckpointError(f"{path}: cannot be written (permission denied); choose a writable place")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """`torch.save` to memory, then an atomic write."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> None:
    """Validate the structure and write atomically."""
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"refusing to save a checkpoint without {missing}")
    atomic_torch_save(ckpt, path)


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint with `weights_only=True`.

    Raises:
        CheckpointError: missing, truncated, foreign or wrong-version file; the
            message names the file, what is wrong and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError as exc:
        raise CheckpointError(os_message(exc, path, "cannot be read")) from exc
    except pickle.UnpicklingError as exc:
        # PyTorch's wording differs between releases ("... was not an allowed global", "unsupported GLOBAL ...").
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found:
            what = f" ({found.group(1)})"
            raise CheckpointError(
                f"{path}: holds a Python object{what} that is unsafe to load; it was refused and nothing in it ran. "
                "Only ANIL Studio checkpoints (tensors and plain values) are accepted"
            ) from exc
        raise CheckpointError(
            f"{path}: not a readable PyTorch file (corrupt pickle data); re-download or re-train it"
        ) from exc
    except Exception as exc:  # zip, EOF, OS and runtime errors all mean a damaged file
        raise CheckpointError(
            f"{path}: not a readable PyTorch file (truncated or corrupt: {type(exc).__name__}: {exc}); "
            "re-download or re-train it"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not an ANIL Studio checkpoint (no format marker '{FORMAT}'); "
            "train one with `anil-studio train` or pick a file from models/"
        )
    if ckpt.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path}: checkpoint format version {ckpt.get('version')!r}, this ANIL Studio reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}; use a matching ANIL Studio release"
        )
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}; the file is incomplete")
    check_finite(ckpt.get("state_dict", {}), path)
    return ckpt


def check_finite(state: dict[str, Any], path: str | Path) -> None:
    """Refuse weights with NaN or infinite values: they classify everything the same and silently."""
    for name, t in state.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(
                f"{path}: tensor {name} holds {bad} non-finite value(s) (NaN or infinity); the model is "
                "broken, use another checkpoint or train again"
            )


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
