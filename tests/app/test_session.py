"""Projects as a user meets them: new, save, save as, self-contained folders that move, missing images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("PySide6")

from PySide6.QtCore import QPoint, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QKeySequence  # noqa: E402
from PySide6.QtWidgets import QFileDialog  # noqa: E402

from anil_engine.project import load_project  # noqa: E402
from app.testing import TIMEOUT_MS, send_drop  # noqa: E402
from app.window import MainWindow  # noqa: E402


def _copy_classes(folder_root: Path, dest: Path, names: tuple[str, ...] = ("class_00", "class_01")) -> Path:
    for name in names:
        shutil.copytree(folder_root / name, dest / name)
    return dest


def _other_window(qtbot, tmp_path: Path, checkpoint: Path) -> MainWindow:
    w = MainWindow(QSettings(str(tmp_path / "other.ini"), QSettings.Format.IniFormat), str(checkpoint))
    w.errors.show_dialogs = False
    w.session.confirm_discard = lambda: True
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.classifier is not None, timeout=TIMEOUT_MS)
    return w


def test_new_project_empties_the_set_and_the_next_save_asks_where(qtbot, window, folder_root, tmp_path, monkeypatch):
    first = tmp_path / "birds.anilproj"
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT_MS):
        send_drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    assert window.session.save_to(first)
    assert window.windowTitle() == "ANIL Studio — birds.anilproj"
    new = window.actions["new-project"]
    assert new.shortcut() == QKeySequence(QKeySequence.StandardKey.New) and new.isEnabled()
    assert window.actions["add-class"].shortcut() == QKeySequence("Ctrl+Shift+N")  # Add class moved off Ctrl+N
    new.trigger()
    assert window.support.classes == [] and window.windowTitle() == "ANIL Studio — untitled"
    assert not window.classifier.is_adapted and not window.export_classifier_action.isEnabled()
    send_drop(window.support_view, [folder_root / "class_02", folder_root / "class_03"])
    assert window.windowTitle() == "ANIL Studio — untitled *"
    asked = []
    second = tmp_path / "flowers.anilproj"

    def save_dialog(*args, **kwargs):
        asked.append(args[1])
        return str(second), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    window.actions["save-project"].trigger()
    assert asked == ["Save project as"]  # Ctrl+S after New project asks; it never writes into birds.anilproj
    assert [n for n, _ in load_project(first).classes] == ["class_00", "class_01"]
    assert [n for n, _ in load_project(second).classes] == ["class_02", "class_03"]
    assert window.windowTitle() == "ANIL Studio — flowers.anilproj"


def test_new_project_asks_before_dropping_unsaved_work(qtbot, window, folder_root):
    send_drop(window.support_view, [folder_root / "class_00"])
    window.session.confirm_discard = lambda: False  # the user presses Cancel
    window.actions["new-project"].trigger()
    assert window.support.names() == ["class_00"] and window.windowTitle().endswith(" *")
    window.session.confirm_discard = lambda: True  # so that the fixture's window can close


def test_a_self_contained_project_opens_after_a_move_with_its_images_gone(
    qtbot, window, folder_root, tmp_path, checkpoint
):
    photos = _copy_classes(folder_root, tmp_path / "photos")
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT_MS) as first:
        send_drop(window.support_view, [photos / "class_00", photos / "class_01"])
    assert window.actions["save-bundle"].isEnabled()
    # The bundle's own copy of the model, then the head adapted anew on the bundle's images, once: the adaptation
    # the model's loading starts also answers the delayed one that opening the bundle's images asked for (it once
    # fired later, after the bundle was moved away below, and dropped the head for want of images).
    with qtbot.waitSignals([window.model_loaded, window.adapted], timeout=TIMEOUT_MS):
        window.session.save_bundle(tmp_path / "proj")
    window.wait_for_jobs()
    assert not window.adapt_timer.isActive()
    assert window.windowTitle() == "ANIL Studio — proj.anilproj"
    moved = tmp_path / "usb" / "proj"
    moved.parent.mkdir()
    shutil.move(tmp_path / "proj", moved)
    shutil.rmtree(photos)
    other = _other_window(qtbot, tmp_path, checkpoint)
    warnings = []
    other.errors.reported.connect(lambda level, text: warnings.append(text) if level != "info" else None)
    with qtbot.waitSignal(other.adapted, timeout=TIMEOUT_MS * 2) as opened:
        other.session.open_project(moved / "proj.anilproj")
    assert not warnings and not other.session.missing
    assert Path(other.checkpoint_path) == moved / "model" / checkpoint.name
    assert opened.args[0].n_images == first.args[0].n_images == 12
    assert torch.allclose(other.classifier.weight, window.classifier.weight)  # deterministic re-adaptation
    other.wait_for_jobs()


def test_missing_images_are_named_and_can_be_located(qtbot, window, folder_root, tmp_path, checkpoint):
    photos = _copy_classes(folder_root, tmp_path / "photos")
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT_MS):
        send_drop(window.support_view, [photos / "class_00", photos / "class_01"])
    assert window.session.save_to(tmp_path / "p.anilproj")
    shutil.move(photos, tmp_path / "backup")
    other = _other_window(qtbot, tmp_path, checkpoint)
    messages, levels = [], []
    other.errors.reported.connect(lambda level, text: (messages.append(text), levels.append(level)))
    other.session.open_project(tmp_path / "p.anilproj")
    assert len(other.session.missing) == 12
    # Nothing readable is left to adapt on: the panel says so, no error box covers the offer to locate them.
    qtbot.waitUntil(lambda: other.support_view.status.text().startswith("Not adapted"), timeout=TIMEOUT_MS)
    assert "error" not in levels and not other.classifier.is_adapted
    assert other.support_view.cards["class_00"].count.text() == "0 of 6 images used"  # the card shows what is there
    assert any("12 image(s) of the project are missing" in m and "Locate missing images" in m for m in messages)
    box = other.session.locate_box
    assert box is not None and [b.text() for b in box.buttons()] == ["Locate images…", "Later"]
    assert other.actions["locate-images"].isEnabled()
    with qtbot.waitSignal(other.adapted, timeout=TIMEOUT_MS) as adapted:
        other.session.locate_in(tmp_path / "backup")
    assert adapted.args[0].n_images == 12 and not other.session.missing
    assert all(tmp_path / "backup" in p.parents for c in other.support.classes for p in c.paths)
    assert any(m.startswith(f"located 12 image(s) in {tmp_path / 'backup'}") for m in messages)
    assert other.windowTitle().endswith(" *")  # located paths are an unsaved, undoable edit
    other.support.undo_stack.undo()
    assert all(photos in p.parents for c in other.support.classes for p in c.paths)
    other.wait_for_jobs()


def test_a_card_s_remove_button_stays_put_when_the_list_grows_a_scroll_bar(qtbot, window, folder_root):
    window.resize(1024, 700)
    window.show()
    qtbot.waitExposed(window)
    send_drop(window.support_view, [folder_root / "class_00"])
    view = window.support_view

    def remove_button_x() -> int:
        card = view.cards["class_00"]
        button = next(b for b in card.findChildren(type(card.add_button)) if b.text() == "✕")
        return button.mapTo(view, QPoint(0, 0)).x()

    qtbot.waitUntil(lambda: view.cards["class_00"].isVisible(), timeout=5000)
    before = remove_button_x()
    send_drop(view, [folder_root / f"class_{i:02d}" for i in range(1, 12)])
    qtbot.waitUntil(lambda: len(view.cards) == 12, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: view.scroll.verticalScrollBar().maximum() > 0, timeout=5000)  # the cards now scroll
    assert remove_button_x() == before
    assert view.scroll.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOn
