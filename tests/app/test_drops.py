"""Drop plans, without a window: every dropped path ends in one part of the plan or in a message."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from app.drops import plan_drop


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path)
    return path


@pytest.fixture
def dropped(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "birds"
    _png(root / "jay" / "1.png")
    _png(root / "wren" / "1.png")
    items = {
        "classes": root,
        "one class": root / "jay",
        "image": _png(tmp_path / "loose.png"),
        "checkpoint": tmp_path / "model.pt",
        "project": tmp_path / "work.anilproj",
        "zip": tmp_path / "more.zip",
        "text": tmp_path / "notes.txt",
        "missing": tmp_path / "gone.png",
    }
    for key in ("checkpoint", "project", "zip", "text"):
        items[key].write_bytes(b"x")
    return items


def test_a_drop_on_the_support_set_sorts_every_item(dropped):
    plan = plan_drop(list(dropped.values()), "support")
    assert plan.checkpoints == [dropped["checkpoint"]] and plan.projects == [dropped["project"]]
    assert plan.zips == [dropped["zip"]] and plan.images == [dropped["image"]]
    assert [list(f.classes) for f in plan.folders] == [["jay", "wren"], []]
    assert plan.folders[1].images == [dropped["one class"] / "1.png"]
    assert any(str(dropped["text"]) in m and "not an image" in m for m in plan.messages)
    assert f"{dropped['missing']}: not found; skipped" in plan.messages


def test_a_project_dropped_on_classify_is_not_opened(dropped):
    """Opening a project replaces the support set: only a drop on the support set does that."""
    plan = plan_drop([dropped["project"], dropped["image"]], "classify")
    assert not plan.projects and plan.images == [dropped["image"]]
    assert plan.messages == [
        f"{dropped['project']}: a project; drop it on the support set (or File ▸ Open project) to open it"
    ]


def test_classify_and_card_drops_expand_folders_to_images(dropped):
    for target in ("classify", "card"):
        plan = plan_drop([dropped["classes"]], target, card="jay" if target == "card" else None)
        assert [p.name for p in plan.images] == ["1.png", "1.png"] and not plan.folders


def test_evaluate_takes_folders_and_names_loose_files(dropped):
    plan = plan_drop([dropped["classes"], dropped["image"]], "evaluate")
    assert plan.label_folders == [dropped["classes"]] and not plan.images
    assert plan.messages == [f"{dropped['image']}: not a folder; drop a folder of class folders to evaluate"]


def test_an_unknown_target_is_refused():
    with pytest.raises(ValueError, match="drop target 'trash'"):
        plan_drop([], "trash")


def test_a_dropped_file_url_keeps_the_bytes_of_a_non_utf8_name():
    pytest.importorskip("PySide6")
    import os

    from PySide6.QtCore import QUrl

    from app.widgets import local_path

    url = QUrl.fromEncoded(b"file:///photos/caf%E9%20%E0.png")  # Latin-1 bytes, as a file manager sends them
    assert os.fsencode(local_path(url)) == b"/photos/caf\xe9 \xe0.png"
    assert local_path(QUrl.fromLocalFile("/photos/été.png")) == Path("/photos/été.png")
