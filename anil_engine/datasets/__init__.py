"""Data set loaders behind one entry point, `load_dataset`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from anil_engine.config import DATASETS  # noqa: F401 - the names load_dataset takes
from anil_engine.datasets.base import ImageTensorDataset
from anil_engine.errors import ConfigError


def cache_dir() -> Path:
    """Where decoded data sets are cached: $ANIL_STUDIO_CACHE or ~/.cache/anil-studio."""
    return Path(os.environ.get("ANIL_STUDIO_CACHE", Path.home() / ".cache" / "anil-studio"))


def _fingerprint(root: Path) -> str:
    """Cheap identity of a data root: names, sizes and mtimes of its top-level entries."""
    parts = []
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        st = p.stat()
        parts.append(f"{p.name}:{st.st_size}:{int(st.st_mtime)}")
    return "|".join(parts)


def load_dataset(
    name: str,
    root: str | Path,
    split: str,
    size: int,
    channels: int = 1,
    split_scheme: str = "vinyals",
    use_cache: bool = True,
    crop: str = "none",
) -> ImageTensorDataset:
    """Load a split of a named data set into memory.

    Args:
        name: one of DATASETS ("folder" is a folder of class folders).
        root: the data root (see each loader for the expected layout).
        split: "train", "val" or "test" ("all" for folders).
        size: input size in pixels (square).
        channels: 1 or 3 (Omniglot's grey drawings repeat in all 3 for a trunk that takes colour).
        split_scheme: Omniglot class split, "vinyals" or "lake".
        use_cache: keep decoded tensors in `cache_dir()` keyed by root contents.
        crop: how each image is framed before resizing (`config.CROPS`; "ink": around its drawing).
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; choose one of {DATASETS}")
    root = Path(root).expanduser().resolve()
    framing = "" if crop == "none" else f"|crop={crop}"  # the uncropped entries keep their keys
    key = f"{name}|{root}|{split}|{size}|{channels}|{split_scheme}{framing}|{_fingerprint(root)}|v1"
    path = cache_dir() / "datasets" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".pt")
    if use_cache and path.is_file():
        try:
            d = torch.load(path, weights_only=True)
            return ImageTensorDataset(d["images"], d["labels"], list(d["class_names"]))
        except Exception:  # a broken cache entry is rebuilt below
            pass
    data = _load_uncached(name, root, split, size, channels, split_scheme, crop)
    if use_cache:
        from anil_engine.checkpoint import atomic_torch_save

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_torch_save({"images": data.images, "labels": data.labels, "class_names": data.class_names}, path)
        except OSError:
            pass  # caching is an optimisation; an unwritable cache must not stop the job
    return data


def _load_uncached(
    name: str, root: Path, split: str, size: int, channels: int, scheme: str, crop: str
) -> ImageTensorDataset:
    if name == "omniglot":
        from anil_engine.datasets.omniglot import load_omniglot

        return load_omniglot(root, scheme, split, size, channels, crop)
    if name in ("cifar-fs", "fc100"):
        from anil_engine.datasets.benchmarks import load_cifar

        return load_cifar(name.replace("-", "_"), root, split, size, channels, crop)
    if name == "mini-imagenet":
        from anil_engine.datasets.benchmarks import load_mini_imagenet

        return load_mini_imagenet(root, split, size, channels, crop)
    if name == "caltech-101":
        from anil_engine.datasets.caltech import load_caltech101

        return load_caltech101(root, split, size, channels, crop)
    from anil_engine.datasets.folder import folder_split_classes, load_class_folders, scan_class_folders

    classes = folder_split_classes(list(scan_class_folders(root).classes), split)
    data, _messages = load_class_folders(root, size, channels, classes, crop)
    return data
