"""CIFAR-FS, FC100 and Mini-ImageNet loaders on tiny files written in the real formats."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from anil_engine.datasets import load_dataset
from anil_engine.datasets.benchmarks import SPLITS
from anil_engine.errors import DataError

CIFAR_NAMES = sorted(
    {
        c
        for kind in ("cifar_fs", "fc100")
        for s in ("train", "val", "test")
        for c in (SPLITS / kind / f"{s}.txt").read_text().split()
    }
)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    """cifar-100-python/{meta,train,test} with 2 + 1 images per class; pixel value = class index."""
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-100-python"
    folder.mkdir()
    assert len(CIFAR_NAMES) == 100
    (folder / "meta").write_bytes(cifar_pickle_bytes({b"fine_label_names": [n.encode() for n in CIFAR_NAMES]}))
    for part, per_class in (("train", 2), ("test", 1)):
        labels = [c for c in range(100) for _ in range(per_class)]
        data = np.array([np.full(3072, c, dtype=np.uint8) for c in labels])
        (folder / part).write_bytes(cifar_pickle_bytes({b"data": data, b"fine_labels": labels}))
    return root


@pytest.mark.parametrize("name,split,n", [("cifar-fs", "train", 64), ("cifar-fs", "test", 20), ("fc100", "val", 20)])
def test_cifar_splits_pool_train_and_test(cifar_root, name, split, n):
    data = load_dataset(name, cifar_root, split, 32, 3)
    assert data.n_classes == n and len(data) == 3 * n
    wanted = (SPLITS / name.replace("-", "_") / f"{split}.txt").read_text().split()
    for label, cls in enumerate(wanted):
        pixels = data.images[data.labels == label]
        assert pixels.shape[0] == 3 and int(pixels.float().mean().round()) == CIFAR_NAMES.index(cls)


def cifar_pickle_bytes(obj: dict) -> bytes:
    """Serialise like CIFAR's archive, to write test files in the real format."""
    buffer = io.BytesIO()
    pickle.dump(obj, buffer, protocol=2)
    return buffer.getvalue()


def test_fc100_splits_are_superclass_disjoint():
    splits = [set((SPLITS / "fc100" / f"{s}.txt").read_text().split()) for s in ("train", "val", "test")]
    assert [len(s) for s in splits] == [60, 20, 20] and not (splits[0] & splits[2])


def test_mini_imagenet_from_learn2learn_pickle(tmp_path):
    wanted = (SPLITS / "mini_imagenet" / "val.txt").read_text().split()
    images = np.stack([np.full((84, 84, 3), i, dtype=np.uint8) for i in range(len(wanted) * 2)])
    cache = {"image_data": images, "class_dict": {c: [2 * i, 2 * i + 1] for i, c in enumerate(wanted)}}
    (tmp_path / "mini-imagenet-cache-validation.pkl").write_bytes(pickle.dumps(cache))
    data = load_dataset("mini-imagenet", tmp_path, "val", 84, 3)
    assert data.n_classes == 16 and len(data) == 32
    assert torch.equal(data.images[2], torch.full((3, 84, 84), 2, dtype=torch.uint8))


def test_mini_imagenet_from_image_folder(tmp_path):
    wanted = (SPLITS / "mini_imagenet" / "test.txt").read_text().split()
    (tmp_path / "images").mkdir()
    for c in wanted:
        for i in range(2):
            Image.new("RGB", (100, 90), (i, 0, 0)).save(tmp_path / "images" / f"{c}{i:08d}.jpg")
    data = load_dataset("mini-imagenet", tmp_path, "test", 84, 3)
    assert data.n_classes == 20 and len(data) == 40 and data.images.shape[1:] == (3, 84, 84)


def test_missing_and_malicious_files(tmp_path):
    with pytest.raises(DataError, match="cifar-100-python"):
        load_dataset("cifar-fs", tmp_path, "train", 32, 3, use_cache=False)
    with pytest.raises(DataError, match="mini-imagenet-cache"):
        load_dataset("mini-imagenet", tmp_path, "train", 84, 3, use_cache=False)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "mini-imagenet-cache-train.pkl").write_bytes(pickle.dumps({"image_data": Evil()}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_dataset("mini-imagenet", tmp_path, "train", 84, 3, use_cache=False)


def test_caltech101_from_zip_and_folder(tmp_path):
    import io
    import zipfile

    from anil_engine.datasets.caltech import split_classes

    classes = [c for s in ("train", "val", "test") for c in split_classes(s)]
    assert len(classes) == 100 and "Faces_easy" not in classes and "BACKGROUND_Google" not in classes
    with zipfile.ZipFile(tmp_path / "101_ObjectCategories.zip", "w") as z:
        for i, c in enumerate(classes + ["BACKGROUND_Google"]):
            for j in range(2):
                buffer = io.BytesIO()
                Image.new("L" if j else "RGB", (60, 40), i).save(buffer, "JPEG")
                z.writestr(f"101_ObjectCategories/{c}/image_{j + 1:04d}.jpg", buffer.getvalue())
    from_zip = load_dataset("caltech-101", tmp_path, "test", 32, 3, use_cache=False)
    assert from_zip.n_classes == 20 and len(from_zip) == 40 and from_zip.class_names == split_classes("test")
    with zipfile.ZipFile(tmp_path / "101_ObjectCategories.zip") as z:
        z.extractall(tmp_path / "unzipped")
    from_folder = load_dataset("caltech-101", tmp_path / "unzipped", "test", 32, 3, use_cache=False)
    assert torch.equal(from_zip.images, from_folder.images)
