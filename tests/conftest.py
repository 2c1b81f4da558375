"""Shared fixtures: tiny synthetic data in the real on-disk formats."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n N`: N test processes share the cores, one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torch, here and in the CLI runs the tests start
    os.environ.setdefault("ANIL_STUDIO_THREADS", "1")  # onnxruntime

REPO = Path(__file__).resolve().parent.parent
CHARACTERS_TSV = REPO / "anil_engine" / "datasets" / "splits" / "omniglot_characters.tsv"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANIL_STUDIO_CACHE", str(tmp_path_factory.mktemp("cache")))
    # The app's data folder (autosaves, pasted images): QStandardPaths reads it from here on Linux.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


def synthetic_drawings(n_chars: int, drawers: int, size: int, seed: int) -> np.ndarray:
    """bool (n_chars, drawers, size, size), True = paper; each character a distinct blob pattern."""
    rng = np.random.default_rng(seed)
    base = rng.random((n_chars, 1, size, size)) > 0.6
    noise = rng.random((n_chars, drawers, size, size)) > 0.93
    return ~(base ^ noise)


def write_omniglot_npz(root: Path, drawers: int = 4, size: int = 16) -> Path:
    """Both Omniglot arrays, with every character of the real data set (tiny images)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(CHARACTERS_TSV, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for i, set_name in enumerate(("background", "evaluation")):
        n = sum(r["set"] == set_name for r in rows)
        images = synthetic_drawings(n, drawers, size, seed=i)
        labels = np.repeat(np.arange(n)[:, None], drawers, axis=1)
        np.savez_compressed(root / f"images_{set_name}.npz", images=images, labels=labels)
    return root


def write_class_folders(root: Path, n_classes: int, per_class: int, size: int = 40, seed: int = 0) -> Path:
    """ROOT/class_XX/img_YY.png colour images, each class a distinct colour pattern."""
    rng = np.random.default_rng(seed)
    for c in range(n_classes):
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        colour = rng.integers(0, 256, 3)
        base = 0.7 * colour + 0.3 * rng.integers(0, 256, (size, size, 3))
        for i in range(per_class):
            img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img, "RGB").save(folder / f"img_{i:02d}.png")
    return root


@pytest.fixture(scope="session")
def omniglot_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_omniglot_npz(tmp_path_factory.mktemp("omniglot"))


@pytest.fixture(scope="session")
def folder_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_class_folders(tmp_path_factory.mktemp("folders"), n_classes=12, per_class=6)


@pytest.fixture
def app_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random 5-way checkpoint for 3x32x32 images, BatchNorm calibrated on noise, 20 head steps."""
    import torch

    from anil_engine.checkpoint import save_checkpoint
    from anil_engine.config import ModelConfig, Preprocessing
    from anil_engine.meta.trainrun import make_checkpoint
    from anil_engine.models import AnilModel, calibrate_batchnorm

    torch.manual_seed(0)
    pre = Preprocessing(32, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    model = AnilModel(ModelConfig(16, 4, 3, 32, 5), pre)
    calibrate_batchnorm(model, torch.rand(64, 3, 32, 32))
    ckpt = make_checkpoint(model, None, "anil", {}, {"name": "folder", "split_scheme": "vinyals"})
    ckpt["fast_lr"], ckpt["adaptation_steps"] = 0.5, 20
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(ckpt, path)
    return path


# -- the app's window ------------------------------------------------------------------------------------------
@pytest.fixture
def checkpoint(app_checkpoint: Path) -> Path:
    return app_checkpoint


@pytest.fixture
def window(qtbot, tmp_path: Path, checkpoint: Path):  # pytest-qt's fixture
    """A window on a tiny checkpoint, with its own settings file and no modal boxes."""
    from PySide6.QtCore import QSettings

    from app.testing import TIMEOUT_MS
    from app.window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, checkpoint=str(checkpoint))
    w.errors.show_dialogs = False
    w.session.confirm_discard = lambda: True
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.classifier is not None, timeout=TIMEOUT_MS)
    yield w
    w.wait_for_jobs()


# -- bad inputs -------------------------------------------------------------------------------------------------


def _png(path: Path, colour: tuple[int, int, int], size: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


@pytest.fixture
def bad_corpus(tmp_path: Path, folder_root: Path) -> dict[str, Path]:
    """Support folder (with an empty class and junk) and a query folder of good and bad files."""
    support = tmp_path / "support"
    for name in ("class_00", "class_01"):
        shutil.copytree(folder_root / name, support / name)
    (support / "empty_class").mkdir()
    (support / "class_00" / "notes.txt").write_text("not an image")
    q = tmp_path / "queries"
    good = _png(q / "good.png", (200, 30, 30))
    _png(q / os.fsdecode(b"caf\xe9.png"), (30, 200, 30))  # a file name that is not UTF-8
    jpeg = q / "truncated.jpg"
    Image.new("RGB", (64, 64), (9, 9, 200)).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    (q / "garbage.png").write_bytes(os.urandom(200))
    (q / "empty.jpg").write_bytes(b"")
    (q / "readme.txt").write_text("x")
    (q / "dead.png").symlink_to(q / "nowhere.png")
    (q / "loop").symlink_to(q)
    _png(q / "huge.png", (1, 2, 3), size=80)  # over the (lowered) pixel limit
    (tmp_path / "empty_queries").mkdir()
    return {"support": support, "queries": q, "good": good, "empty": tmp_path / "empty_queries"}
