"""Zip archives of images: unpacked once, safely, into a folder the app and the CLI treat like a dropped one."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from anil_engine.archives import COMPLETE, unpack_images
from anil_engine.errors import DataError
from anil_engine.jobs import run_to_end


def make_zip(path: Path, folder_root: Path, top: str | None = "dataset") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for c in ("class_00", "class_01"):
            for img in sorted((folder_root / c).iterdir()):
                z.write(img, f"{top}/{c}/{img.name}" if top else f"{c}/{img.name}")
        z.writestr(f"{top}/README.txt" if top else "README.txt", "not an image")
        z.writestr("__MACOSX/dataset/._x.png", b"junk")
        z.writestr("../evil.png", b"outside")
        z.writestr("/abs/evil.png", b"outside")
    return path


def test_a_zipped_folder_of_class_folders_unpacks_once_into_that_folder(tmp_path, folder_root):
    archive = make_zip(tmp_path / "photos.zip", folder_root)
    into = tmp_path / "unpacked"
    gen = unpack_images(archive, into)
    items = []
    with pytest.raises(StopIteration) as stop:
        while True:
            items.append(next(gen))
    folder = stop.value.value
    assert folder.name == "dataset" and folder.parent.parent == into
    assert sorted(p.name for p in folder.iterdir()) == ["class_00", "class_01"]  # README.txt left out
    names = sorted(p.name for p in (folder_root / "class_01").iterdir())
    assert sorted(p.name for p in (folder / "class_01").iterdir()) == names
    assert (folder / "class_00" / "img_00.png").read_bytes() == (folder_root / "class_00" / "img_00.png").read_bytes()
    assert items[-1].done == items[-1].total == 12
    assert not (tmp_path / "evil.png").exists() and not list(into.rglob("evil.png")) and not list(into.rglob("._x.png"))
    stamp = (folder / "class_00" / "img_00.png").stat().st_mtime_ns
    assert run_to_end(unpack_images(archive, into)) == folder  # the second time: nothing is written
    assert (folder / "class_00" / "img_00.png").stat().st_mtime_ns == stamp


def test_loose_images_in_a_zip_give_the_root(tmp_path, folder_root):
    archive = make_zip(tmp_path / "flat.zip", folder_root, top=None)
    folder = run_to_end(unpack_images(archive, tmp_path / "u"))
    assert (folder / COMPLETE).is_file() and sorted(p.name for p in folder.iterdir() if p.is_dir()) == [
        "class_00",
        "class_01",
    ]


def test_a_stopped_unpacking_is_redone(tmp_path, folder_root):
    image = (folder_root / "class_00" / "img_00.png").read_bytes()
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(70):
            z.writestr(f"many/c/{i:03d}.png", image)
    gen = unpack_images(archive, tmp_path / "u")
    first = next(gen)
    assert (first.done, first.total) == (64, 70)
    gen.close()  # what Stop does
    (root,) = (tmp_path / "u").iterdir()
    assert not (root / COMPLETE).exists() and len(list(root.rglob("*.png"))) == 64
    (root / "many" / "c" / "000.png").write_bytes(b"partial")
    folder = run_to_end(unpack_images(archive, tmp_path / "u"))
    assert len(list(folder.rglob("*.png"))) == 70 and (folder / "c" / "000.png").read_bytes() == image


def test_bad_archives_are_named(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.zip: not a readable zip archive"):
        run_to_end(unpack_images(bad, tmp_path / "u"))
    empty = tmp_path / "text.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(DataError, match="text.zip: no image files inside"):
        run_to_end(unpack_images(empty, tmp_path / "u"))
