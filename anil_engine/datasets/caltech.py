"""Caltech-101 (Fei-Fei, Fergus & Perona 2004) with the project's class-disjoint split.

Reads `101_ObjectCategories/<class>/*.jpg` from a folder or from
`101_ObjectCategories.zip`; the data root may be the folder that holds either,
or the `101_ObjectCategories` folder itself. The split (shipped in
`splits/caltech101/`) is 64 / 16 / 20 of the 100 object classes, without
`BACKGROUND_Google` and `Faces_easy` (the same photos as `Faces`), shuffled with
`random.Random(20261126)` over the sorted class names.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from anil_engine.datasets.base import ImageTensorDataset
from anil_engine.errors import ConfigError, DataError
from anil_engine.images import is_image_path, prepare_image

SPLITS_DIR = Path(__file__).parent / "splits" / "caltech101"
FOLDER = "101_ObjectCategories"


def split_classes(split: str) -> list[str]:
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split must be train, val or test, got {split!r}")
    return (SPLITS_DIR / f"{split}.txt").read_text().split()


def _decode(data: bytes, name: str, size: int, channels: int, crop: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return prepare_image(im, size, channels, crop)
    except Exception as exc:  # any decoder failure means a bad file
        raise DataError(f"{name}: cannot decode the image ({exc}); the Caltech-101 copy is damaged") from exc


def load_caltech101(
    root: str | Path, split: str, size: int = 84, channels: int = 3, crop: str = "none"
) -> ImageTensorDataset:
    """Load one split into memory; images uint8 (n, channels, size, size), classes in split-file order."""
    root = Path(root)
    classes = split_classes(split)
    files: dict[str, list[tuple[str, bytes | Path]]] = {c: [] for c in classes}
    folder = root if root.name == FOLDER and root.is_dir() else root / FOLDER
    archive = root / f"{FOLDER}.zip"
    if folder.is_dir():
        for c in classes:
            paths = sorted(p for p in (folder / c).glob("*") if p.is_file() and is_image_path(p))
            files[c] = [(str(p), p) for p in paths]
    elif archive.is_file():
        with zipfile.ZipFile(archive) as z:
            for name in sorted(z.namelist()):
                parts = name.split("/")
                if len(parts) == 3 and parts[1] in files and is_image_path(Path(parts[2])):
                    files[parts[1]].append((f"{archive}:{name}", z.read(name)))
    else:
        raise DataError(
            f"{root}: no Caltech-101 found. Expected {FOLDER}/<class>/image_NNNN.jpg or {FOLDER}.zip there; "
            "pass --data-root pointing at the folder that holds it"
        )
    empty = [c for c in classes if not files[c]]
    if empty:
        raise DataError(f"{root}: Caltech-101 classes {empty[:5]} have no images; the copy is incomplete")
    images, labels = [], []
    for label, c in enumerate(classes):
        for name, src in files[c]:
            data = src.read_bytes() if isinstance(src, Path) else src
            images.append(_decode(data, name, size, channels, crop))
            labels.append(label)
    return ImageTensorDataset(torch.from_numpy(np.stack(images)), torch.tensor(labels), classes)
