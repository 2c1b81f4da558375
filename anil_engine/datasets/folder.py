"""A folder of class folders: the layout users have.

    ROOT/<class name>/<image files>

Used for support sets, labelled evaluation folders and meta-training on one's
own data. Files Pillow cannot read are skipped and reported by name.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from anil_engine.datasets.base import ImageTensorDataset
from anil_engine.errors import ConfigError, DataError
from anil_engine.images import load_images
from anil_engine.listing import read_folder

FOLDER_SPLIT_FRACTIONS = (0.64, 0.16, 0.20)


@dataclass
class FolderScan:
    """What a folder of class folders holds, before any image is decoded."""

    root: Path
    classes: dict[str, list[Path]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)  # every entry left out, and why


def scan_class_folders(root: str | Path) -> FolderScan:
    """List class folders (sorted) and their image files (sorted by name).

    Raises:
        DataError: root missing, or no class folder with images in it.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder. Expected a folder with one sub-folder of images per class.")
    contents = read_folder(root)  # the one walker: unreadable folders, links and non-images are named
    scan = FolderScan(root, dict(contents.classes), list(contents.messages))
    if not scan.classes:
        raise DataError(
            f"{root}: no class folders with images found. Expected {root}/<class name>/<image files> "
            "(PNG, JPEG, BMP, GIF, TIFF, WebP)."
        )
    return scan


def load_class_folders(
    root: str | Path, size: int, channels: int, classes: list[str] | None = None, crop: str = "none"
) -> tuple[ImageTensorDataset, list[str]]:
    """Decode a folder of class folders.

    Returns:
        (data set, one message per skipped file or empty class)
    """
    scan = scan_class_folders(root)
    names = list(scan.classes) if classes is None else classes
    images, labels, kept, messages = [], [], [], list(scan.messages)
    for name in names:
        arr, ok, skipped = load_images(scan.classes[name], size, channels, crop)
        messages.extend(skipped)
        if not ok:
            messages.append(f"{scan.root / name}: no readable image, class skipped")
            continue
        images.append(torch.from_numpy(arr))
        labels.extend([len(kept)] * len(ok))
        kept.append(name)
    if not kept:
        raise DataError(f"{root}: none of the images could be read: " + "; ".join(messages[:5]))
    data = ImageTensorDataset(torch.cat(images), torch.tensor(labels, dtype=torch.long), kept)
    return data, messages


def folder_split_classes(all_classes: list[str], split: str, seed: int = 0) -> list[str]:
    """Seeded class-disjoint split of a user folder: 64 / 16 / 20 % of the classes."""
    if split == "all":
        return list(all_classes)
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split must be train, val, test or all, got {split!r}")
    order = sorted(all_classes)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_train = max(1, round(n * FOLDER_SPLIT_FRACTIONS[0]))
    n_val = max(1, round(n * FOLDER_SPLIT_FRACTIONS[1]))
    cut = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    return sorted(cut[split])
