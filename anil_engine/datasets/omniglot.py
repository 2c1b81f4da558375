"""Omniglot (Lake et al. 2015) with the few-shot conventions of MAML and ANIL.

Reads either the original folder layout (as torchvision and learn2learn store it)::

    ROOT/images_background/<alphabet>/<characterNN>/*.png
    ROOT/images_evaluation/<alphabet>/<characterNN>/*.png

or the two arrays `images_background.npz` / `images_evaluation.npz` (keys `images`,
bool (n_chars, 20, 105, 105), True = white paper). Every character is resized
to `size` x `size` and, as in MAML/ANIL, its 90/180/270 degree rotations are
added as extra classes.

Class splits:
    vinyals: Vinyals et al. (2016) split, files shipped in `splits/omniglot_vinyals`
        (1028 / 172 / 423 characters, each with 4 rotations).
    lake: Lake's background alphabets for training, evaluation alphabets for test.
        Validation is carved out of the background set: the alphabets at sorted
        positions 5, 11, 17, 23, 29 (every 6th of the 30) form `val`.
    lake-fold0 ... lake-fold4: the same, validating on the alphabets at positions
        K, K + 6, ...: with `lake` (fold 5), every background alphabet is validated on once.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from anil_engine.config import LAKE_FOLDS, SPLIT_SCHEMES
from anil_engine.datasets.base import ImageTensorDataset
from anil_engine.errors import ConfigError, DataError
from anil_engine.images import prepare_image

SPLITS_DIR = Path(__file__).parent / "splits"
SETS = ("background", "evaluation")
ROTATIONS = (0, 90, 180, 270)


def characters_table() -> list[dict[str, str]]:
    with open(SPLITS_DIR / "omniglot_characters.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def wanted_characters(scheme: str, split: str) -> list[tuple[str, str, str]]:
    """(set, alphabet, characterNN) of every character in a split, in a fixed order."""
    if scheme not in SPLIT_SCHEMES:
        raise ConfigError(f"Omniglot split scheme must be one of {SPLIT_SCHEMES}, got {scheme!r}")
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split must be train, val or test, got {split!r}")
    table = characters_table()
    if scheme == "vinyals":
        lines = (SPLITS_DIR / "omniglot_vinyals" / f"{split}.txt").read_text().split()
        chars = sorted({tuple(line.split("/")[:2]) for line in lines})
        set_of = {(r["alphabet"], r["character"]): r["set"] for r in table}
        return [(set_of[c], c[0], c[1]) for c in chars]
    background = sorted({r["alphabet"] for r in table if r["set"] == "background"})
    fold = LAKE_FOLDS - 1 if scheme == "lake" else int(scheme.removeprefix("lake-fold"))
    val_alphabets = {background[i] for i in range(fold, len(background), LAKE_FOLDS)}
    rows = []
    for r in table:
        if split == "test" and r["set"] == "evaluation":
            rows.append(r)
        elif split != "test" and r["set"] == "background":
            if (r["alphabet"] in val_alphabets) == (split == "val"):
                rows.append(r)
    return sorted((r["set"], r["alphabet"], r["character"]) for r in rows)


def _npz_reader(root: Path) -> Callable[[str, str, str], list[np.ndarray]] | None:
    files = {s: root / f"images_{s}.npz" for s in SETS}
    if not all(f.is_file() for f in files.values()):
        return None
    index = {(r["set"], r["alphabet"], r["character"]): int(r["array_index"]) for r in characters_table()}
    cache: dict[str, np.ndarray] = {}

    def read(set_name: str, alphabet: str, character: str) -> list[np.ndarray]:
        if set_name not in cache:
            try:
                cache[set_name] = np.load(files[set_name])["images"]
            except Exception as exc:  # any numpy/zip failure means a bad file
                raise DataError(f"{files[set_name]}: cannot read the Omniglot array ({exc}); re-copy it") from exc
        drawings = cache[set_name][index[(set_name, alphabet, character)]]
        return [np.where(d, 255, 0).astype(np.uint8) for d in drawings]

    return read


def _folder_reader(root: Path) -> Callable[[str, str, str], list[np.ndarray]] | None:
    if not all((root / f"images_{s}").is_dir() for s in SETS):
        return None

    def read(set_name: str, alphabet: str, character: str) -> list[np.ndarray]:
        folder = root / f"images_{set_name}" / alphabet / character
        files = sorted(folder.glob("*.png"))
        if not files:
            raise DataError(f"{folder}: no PNG drawings found; the Omniglot copy is incomplete")
        out = []
        for f in files:
            with Image.open(f) as im:
                out.append(np.asarray(im.convert("L"), dtype=np.uint8))
        return out

    return read


def drawings_reader(root: str | Path) -> Callable[[str, str, str], list[np.ndarray]]:
    """`read(set, alphabet, characterNN)`: one character's drawings, uint8 (105, 105) each, 255 = paper, in
    drawer order; from the two arrays or the PNG folders under `root`."""
    root = Path(root)
    reader = _npz_reader(root) or _folder_reader(root)
    if reader is None:
        raise DataError(
            f"{root}: no Omniglot found. Expected images_background.npz and images_evaluation.npz, "
            "or the folders images_background/ and images_evaluation/ (<alphabet>/<characterNN>/*.png). "
            "Pass --data-root pointing at the folder that holds them."
        )
    return reader


def prepare_drawings(drawings: list[np.ndarray] | np.ndarray, size: int, crop: str = "none") -> torch.Tensor:
    """uint8 (105, 105) drawings -> uint8 (n, 1, size, size), as every Omniglot image is prepared."""
    return torch.from_numpy(np.stack([prepare_image(Image.fromarray(d, "L"), size, 1, crop) for d in drawings]))


def load_omniglot(
    root: str | Path, scheme: str, split: str, size: int = 28, channels: int = 1, crop: str = "none"
) -> ImageTensorDataset:
    """Load one split of Omniglot into memory, rotations as extra classes.

    Args:
        channels: 1, or 3 for a trunk that takes colour (an ImageNet one): the grey drawing in every
            channel, as the app makes an RGB image of a grey file.

    Returns:
        ImageTensorDataset with images uint8 (n, channels, size, size); class names
        "alphabet/characterNN/rotDDD".
    """
    if channels not in (1, 3):
        raise ConfigError(f"Omniglot images have 1 or 3 channels, got {channels!r}")
    reader = drawings_reader(root)
    images, labels, names = [], [], []
    for set_name, alphabet, character in wanted_characters(scheme, split):
        drawings = reader(set_name, alphabet, character)
        base_t = prepare_drawings(drawings, size, crop)
        for rot in ROTATIONS:
            labels.extend([len(names)] * len(drawings))
            images.append(torch.rot90(base_t, rot // 90, dims=(-2, -1)))
            names.append(f"{alphabet}/{character}/rot{rot:03d}")
    grey = torch.cat(images).contiguous()
    # Three channels as a stride-0 view: no extra memory, and indexing a batch copies it as usual.
    return ImageTensorDataset(grey.expand(-1, channels, -1, -1), torch.tensor(labels, dtype=torch.long), names)
