"""Project files: what is saved, self-contained bundles that survive a move, and locating missing images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from anil_engine.project import Project, ProjectError, bundle_project, load_project, locate_images, save_project


def _png(path: Path, colour: tuple[int, int, int] = (10, 20, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def test_a_project_stores_no_head_and_reads_an_old_file_that_has_one(tmp_path):
    img = _png(tmp_path / "a" / "1.png")
    save_project(Project("", [("a", [str(img)])], 0.3, 7, ""), tmp_path / "p.anilproj")
    data = json.loads((tmp_path / "p.anilproj").read_text())
    assert "head" not in data  # re-adapted on open: a stored head could only disagree with the images
    data["head"] = {"class_names": ["a"], "weight": [[0.0]], "bias": [0.0]}  # an earlier version's file
    (tmp_path / "old.anilproj").write_text(json.dumps(data))
    old = load_project(tmp_path / "old.anilproj")
    assert old.classes == [("a", [str(img)])] and (old.fast_lr, old.adaptation_steps) == (0.3, 7)


def test_a_bundle_holds_copies_of_every_image_and_the_model_and_survives_a_move(tmp_path):
    photos = tmp_path / "photos"
    a1, a2 = _png(photos / "jay" / "1.png"), _png(photos / "jay" / "2.png", (200, 0, 0))
    b1 = _png(photos / "other" / "1.png", (0, 200, 0))  # same file name as a1, another class
    model = tmp_path / "m.pt"
    model.write_bytes(b"model bytes")
    model.with_suffix(".md").write_text("# card")
    project = Project(str(model), [("jay/blue", [str(a1), str(a2)]), ("wren", [str(b1)])], 0.2, 3, "abc")
    path = bundle_project(project, tmp_path / "birds")
    assert path == tmp_path / "birds" / "birds.anilproj"
    moved = tmp_path / "elsewhere" / "birds-copy"
    moved.parent.mkdir()
    shutil.move(tmp_path / "birds", moved)
    shutil.rmtree(photos)
    model.unlink()
    opened = load_project(moved / "birds.anilproj")
    assert [n for n, _ in opened.classes] == ["jay/blue", "wren"]
    files = [Path(p) for _, ps in opened.classes for p in ps]
    assert all(p.is_file() and moved in p.parents for p in files)
    assert [Image.open(p).getpixel((0, 0)) for p in files] == [(10, 20, 30), (200, 0, 0), (0, 200, 0)]
    assert (
        Path(opened.checkpoint) == moved / "model" / "m.pt" and Path(opened.checkpoint).read_bytes() == b"model bytes"
    )
    assert (moved / "model" / "m.md").is_file()
    assert (opened.fast_lr, opened.adaptation_steps) == (0.2, 3)


def test_a_failed_bundle_leaves_nothing_and_keeps_an_earlier_one(tmp_path):
    img = _png(tmp_path / "1.png")
    first = bundle_project(Project("", [("a", [str(img)])]), tmp_path / "proj")
    with pytest.raises(ProjectError, match="could not build the self-contained project"):
        bundle_project(Project("", [("a", [str(img), str(tmp_path / "gone.png")])]), tmp_path / "proj")
    assert load_project(first).classes[0][1] == [str(tmp_path / "proj" / "images" / "01-a" / "0001-1.png")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.png", "proj"]  # no staging folder left behind
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "thesis.pdf").write_bytes(b"%PDF")
    with pytest.raises(ProjectError, match="holds other files"):
        bundle_project(Project("", [("a", [str(img)])]), tmp_path / "full")


def test_locate_matches_by_name_and_prefers_the_same_folder_name():
    missing = ["/old/jay/1.png", "/old/wren/1.png", "/old/jay/2.png", "/old/jay/3.png"]
    found = [Path("/new/jay/1.png"), Path("/new/wren/1.png"), Path("/new/x/2.png"), Path("/a/3.png"), Path("/b/3.png")]
    located = locate_images(missing, found)
    assert located == {
        "/old/jay/1.png": Path("/new/jay/1.png"),
        "/old/wren/1.png": Path("/new/wren/1.png"),
        "/old/jay/2.png": Path("/new/x/2.png"),
    }  # 3.png: two candidates, neither in a folder named jay: not guessed
