"""The one folder walker: every entry ends in the listing or in a message that names it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from anil_engine.listing import expand_inputs, read_folder, walk_images


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
    return path


def test_walk_lists_images_sorted_and_names_every_skipped_entry(tmp_path):
    a, b = _png(tmp_path / "b" / "2.png"), _png(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".DS_Store").write_bytes(b"\0")  # hidden metadata: left out without a word
    (tmp_path / "dead.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "b" / "loop").symlink_to(tmp_path)
    listing = walk_images(tmp_path)
    assert listing.images == [b, a]
    text = "\n".join(listing.messages)
    assert "notes.txt" in text and "not images" in text
    assert f"{tmp_path / 'dead.png'}: a broken link" in text
    assert f"{tmp_path / 'b' / 'loop'}: a link back to a folder already read (a loop)" in text
    assert ".DS_Store" not in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders of mode 000")
def test_an_unreadable_folder_is_named_not_dropped(tmp_path):
    _png(tmp_path / "ok" / "1.png")
    locked = tmp_path / "locked"
    _png(locked / "1.png")
    locked.chmod(0)
    try:
        listing = walk_images(tmp_path)
    finally:
        locked.chmod(0o755)
    assert listing.images == [tmp_path / "ok" / "1.png"]
    assert any(m.startswith(f"{locked}: cannot be read") and "permissions" in m for m in listing.messages)


def test_an_unreadable_folder_is_named_even_as_root(tmp_path, monkeypatch):
    # Root reads mode-000 folders, so the permission error is made the way the OS reports it.
    _png(tmp_path / "ok" / "1.png")
    (tmp_path / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    listing = walk_images(tmp_path)
    assert listing.images == [tmp_path / "ok" / "1.png"]
    assert listing.messages == [
        f"{tmp_path / 'locked'}: cannot be read (Permission denied); check its permissions "
        "(e.g. chmod u+rwx for a folder, u+rw for a file)"
    ]


def test_expand_inputs_names_what_it_cannot_use(tmp_path):
    img = _png(tmp_path / "x.png")
    (tmp_path / "a.txt").write_text("x")
    listing = expand_inputs([img, tmp_path / "a.txt", tmp_path / "missing.png"])
    assert listing.images == [img]
    assert listing.messages == [
        f"{tmp_path / 'a.txt'}: not an image file (PNG, JPEG, BMP, GIF, TIFF, WebP); skipped",
        f"{tmp_path / 'missing.png'}: not found; skipped",
    ]


def test_read_folder_tells_class_folders_from_one_class_and_names_empty_classes(tmp_path):
    root = tmp_path / "birds"
    _png(root / "jay" / "1.png")
    _png(root / "wren" / "1.png")
    (root / "empty").mkdir()
    (root / "loose.png").parent.mkdir(exist_ok=True)
    _png(root / "loose.png")
    contents = read_folder(root)
    assert list(contents.classes) == ["jay", "wren"]
    assert f"{root / 'empty'}: no images inside; this class is left out" in contents.messages
    assert any("loose.png" in m and "not in any class" in m for m in contents.messages)
    one = read_folder(root / "jay")
    assert one.images == [root / "jay" / "1.png"] and not one.classes
    (tmp_path / "nothing").mkdir()
    assert read_folder(tmp_path / "nothing").messages == [f"{tmp_path / 'nothing'}: no images inside; nothing added"]
