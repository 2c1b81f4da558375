"""The article's benchmark data sets: CIFAR-FS, FC100 and Mini-ImageNet.

Their images are not on this project's machines; users with the data point
`--data-root` at it. Expected layouts (the error message repeats them):

- CIFAR-FS (Bertinetto et al. 2019) and FC100 (Oreshkin et al. 2018):
  `ROOT/cifar-100-python/{train,test,meta}` — CIFAR-100's standard python archive,
  unpacked. Both pool all 600 images (train + test) of each fine class. Class
  splits are shipped: CIFAR-FS 64/16/20 classes, FC100 60/20/20 (by superclass).
- Mini-ImageNet (Ravi & Larochelle 2017 split, 64/16/20 classes, shipped):
  learn2learn's cache pickles `ROOT/mini-imagenet-cache-{train,validation,test}.pkl`,
  or the images `ROOT/images/<synset><8 digits>.jpg` (as named in the split CSVs).

Pickles are read with a restricted unpickler that only rebuilds NumPy arrays
and plain containers, so a data file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from anil_engine.datasets.base import ImageTensorDataset
from anil_engine.errors import ConfigError, DataError
from anil_engine.images import prepare_image

SPLITS = Path(__file__).parent / "splits"
_SAFE = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
    ("builtins", "set"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("builtins", "list"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:  # pickle API
        if (module, name) in _SAFE:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return _SafeUnpickler(f, encoding="bytes").load()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: missing") from exc
    except Exception as exc:  # truncated or foreign pickles
        raise DataError(f"{path}: cannot be read as the expected pickle ({exc})") from exc


def _classes(kind: str, split: str) -> list[str]:
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split must be train, val or test, got {split!r}")
    return (SPLITS / kind / f"{split}.txt").read_text().split()


def _resize_all(images: np.ndarray, size: int, channels: int, crop: str) -> np.ndarray:
    """(n, h, w, 3) uint8 -> (n, channels, size, size) with the app's preprocessing."""
    return np.stack([prepare_image(Image.fromarray(im), size, channels, crop) for im in images])


def load_cifar(
    kind: str, root: str | Path, split: str, size: int = 32, channels: int = 3, crop: str = "none"
) -> ImageTensorDataset:
    """CIFAR-FS (`kind="cifar_fs"`) or FC100 (`kind="fc100"`) from CIFAR-100's python archive."""
    folder = Path(root) / "cifar-100-python"
    if not folder.is_dir():
        folder = Path(root) if (Path(root) / "meta").is_file() else folder
    if not (folder / "meta").is_file():
        raise DataError(
            f"{root}: CIFAR-100 not found. Unpack cifar-100-python.tar.gz (from "
            "https://www.cs.toronto.edu/~kriz/cifar.html) so that ROOT/cifar-100-python/{train,test,meta} exist"
        )
    names = [n.decode() for n in _unpickle(folder / "meta")[b"fine_label_names"]]
    wanted = _classes(kind, split)
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise DataError(f"{folder / 'meta'}: classes {unknown[:3]} missing; not the CIFAR-100 archive")
    parts = [_unpickle(folder / part) for part in ("train", "test")]
    data = np.concatenate([p[b"data"] for p in parts]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    fine = np.concatenate([np.asarray(p[b"fine_labels"]) for p in parts])
    images, labels = [], []
    for label, c in enumerate(wanted):
        idx = np.nonzero(fine == names.index(c))[0]
        images.append(_resize_all(data[idx], size, channels, crop))
        labels.extend([label] * len(idx))
    return ImageTensorDataset(torch.from_numpy(np.concatenate(images)), torch.tensor(labels), wanted)


def load_mini_imagenet(
    root: str | Path, split: str, size: int = 84, channels: int = 3, crop: str = "none"
) -> ImageTensorDataset:
    """Mini-ImageNet (Ravi split) from learn2learn's cache pickles or an image folder."""
    root = Path(root)
    wanted = _classes("mini_imagenet", split)
    pkl = root / f"mini-imagenet-cache-{ {'train': 'train', 'val': 'validation', 'test': 'test'}[split] }.pkl"
    images, labels = [], []
    if pkl.is_file():
        cache = _unpickle(pkl)
        cache = {(k.decode() if isinstance(k, bytes) else k): v for k, v in cache.items()}
        data, class_dict = cache["image_data"], cache["class_dict"]
        class_dict = {(k.decode() if isinstance(k, bytes) else k): v for k, v in class_dict.items()}
        for label, c in enumerate(wanted):
            if c not in class_dict:
                raise DataError(f"{pkl}: class {c} missing; not the Ravi split of Mini-ImageNet")
            images.append(_resize_all(np.asarray(data)[class_dict[c]], size, channels, crop))
            labels.extend([label] * len(class_dict[c]))
    elif (root / "images").is_dir():
        from anil_engine.images import load_image

        files = sorted((root / "images").glob("*.jpg"))
        for label, c in enumerate(wanted):
            mine = [f for f in files if f.name.startswith(c)]
            if not mine:
                raise DataError(f"{root / 'images'}: no images of class {c} ({c}XXXXXXXX.jpg)")
            images.append(np.stack([load_image(f, size, channels, crop) for f in mine]))
            labels.extend([label] * len(mine))
    else:
        raise DataError(
            f"{root}: Mini-ImageNet not found. Expected learn2learn's mini-imagenet-cache-"
            "{train,validation,test}.pkl there, or images/<synset><8 digits>.jpg (Ravi & Larochelle file names)"
        )
    return ImageTensorDataset(torch.from_numpy(np.concatenate(images)), torch.tensor(labels), wanted)
