from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from anil_engine.datasets import load_dataset
from anil_engine.datasets.folder import folder_split_classes, load_class_folders
from anil_engine.datasets.omniglot import load_omniglot, wanted_characters
from anil_engine.errors import DataError


def test_vinyals_split_sizes_and_disjointness():
    splits = {s: wanted_characters("vinyals", s) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [1028, 172, 423]
    assert not set(splits["train"]) & set(splits["test"]) and not set(splits["train"]) & set(splits["val"])


def test_lake_split_uses_background_for_training_and_evaluation_for_test():
    train, val, test = (wanted_characters("lake", s) for s in ("train", "val", "test"))
    assert len(train) + len(val) == 964 and len(test) == 659
    assert {c[0] for c in train + val} == {"background"} and {c[0] for c in test} == {"evaluation"}
    assert not {c[1] for c in train} & {c[1] for c in val}  # validation holds out whole alphabets
    assert len({c[1] for c in val}) == 5


def test_the_lake_folds_validate_on_every_background_alphabet_once():
    """lake and lake-fold0..4: each holds out 5 other background alphabets; together all 30, once each."""
    from anil_engine.config import SPLIT_SCHEMES

    folds = [s for s in SPLIT_SCHEMES if s.startswith("lake")]
    assert folds == ["lake", *(f"lake-fold{k}" for k in range(5))]
    background = {c[1] for c in wanted_characters("lake", "train") + wanted_characters("lake", "val")}
    held_out = []
    for scheme in folds:
        train, val, test = (wanted_characters(scheme, s) for s in ("train", "val", "test"))
        alphabets = {c[1] for c in val}
        assert len(alphabets) == 5 and not alphabets & {c[1] for c in train}
        assert {c[1] for c in train} | alphabets == background and test == wanted_characters("lake", "test")
        held_out += sorted(alphabets)
    assert sorted(held_out) == sorted(background) and len(background) == 30
    assert {"Balinese", "Tifinagh"} <= {c[1] for c in wanted_characters("lake", "val")}  # lake: as before the folds


def test_omniglot_npz_rotations_are_extra_classes(omniglot_root):
    data = load_omniglot(omniglot_root, "vinyals", "val", size=28)
    assert data.images.shape == (172 * 4 * 4, 1, 28, 28)
    assert data.n_classes == 172 * 4
    assert data.class_names[1].endswith("rot090")
    first = data.images[data.labels == 0][0]
    rotated = data.images[data.labels == 1][0]
    assert torch.equal(torch.rot90(first, 1, dims=(-2, -1)), rotated)


def test_omniglot_folder_layout_matches_npz(tmp_path, omniglot_root):
    import csv

    from anil_engine.datasets.omniglot import SPLITS_DIR

    with open(SPLITS_DIR / "omniglot_characters.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    arrays = {s: np.load(omniglot_root / f"images_{s}.npz")["images"] for s in ("background", "evaluation")}
    for r in rows:
        folder = tmp_path / f"images_{r['set']}" / r["alphabet"] / r["character"]
        folder.mkdir(parents=True)
        for d, drawing in enumerate(arrays[r["set"]][int(r["array_index"])]):
            Image.fromarray(drawing).save(folder / f"{r['char_id']}_{d + 1:02d}.png")
    a = load_omniglot(omniglot_root, "lake", "val", size=20)
    b = load_omniglot(tmp_path, "lake", "val", size=20)
    assert torch.equal(a.images, b.images) and a.class_names == b.class_names


def test_missing_omniglot_says_what_to_put_where(tmp_path):
    with pytest.raises(DataError, match="images_background.npz"):
        load_omniglot(tmp_path, "vinyals", "train")


def test_folder_loader_skips_bad_files_and_names_them(tmp_path, folder_root):
    import shutil

    root = tmp_path / "classes"
    shutil.copytree(folder_root, root)
    (root / "class_00" / "broken.jpg").write_text("garbage")
    (root / "class_01" / "readme.txt").write_text("hello")
    data, messages = load_class_folders(root, 32, 3)
    assert data.n_classes == 12 and len(data) == 72
    assert any("broken.jpg" in m for m in messages) and any("readme.txt" in m for m in messages)


def test_folder_split_is_class_disjoint_and_seeded(folder_root):
    names = [f"class_{i:02d}" for i in range(12)]
    parts = [folder_split_classes(names, s) for s in ("train", "val", "test")]
    assert sorted(sum(parts, [])) == names
    assert parts == [folder_split_classes(names, s) for s in ("train", "val", "test")]


def test_load_dataset_cache_gives_identical_data(folder_root, monkeypatch):
    import anil_engine.datasets as datasets

    a = load_dataset("folder", folder_root, "all", 24, 3)
    decoded = []
    real = datasets._load_uncached
    monkeypatch.setattr(datasets, "_load_uncached", lambda *args: decoded.append(args) or real(*args))
    b = load_dataset("folder", folder_root, "all", 24, 3)
    assert not decoded  # a cache hit: nothing decoded again
    assert torch.equal(a.images, b.images) and a.class_names == b.class_names
    # A damaged cache entry is decoded again (and rewritten), never an error.
    (entry,) = (datasets.cache_dir() / "datasets").glob("*.pt")
    entry.write_bytes(b"damaged")
    c = load_dataset("folder", folder_root, "all", 24, 3)
    assert len(decoded) == 1 and torch.equal(c.images, a.images)


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no class folders with images"):
        load_class_folders(tmp_path, 32, 3)
