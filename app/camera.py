"""The camera in the window: capture views for the classes, the Live camera tab, captured pictures on disk."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from anil_engine.checkpoint import atomic_write_bytes
from app.dialogs.capture_dialog import CaptureDialog
from app.frames import CameraHub, capture_name, encode_capture, safe_name
from app.panels.live_preview import LivePreviewPanel

if TYPE_CHECKING:
    from app.window import MainWindow

_COUNTER = itertools.count(1)


def write_captures(pictures: list[QImage], folder: Path, class_name: str) -> list[Path]:
    """Save pictures as JPEG files in `folder` (worker thread); the paths, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for picture in pictures:
        path = folder / capture_name(class_name, next(_COUNTER))
        atomic_write_bytes(encode_capture(picture), path)
        paths.append(path)
    return paths


class CameraControl(QObject):
    """Owns the one camera (`hub`), the capture dialog and the Live camera tab, and saves what they capture."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.hub = CameraHub(window.settings)
        self.dialog: CaptureDialog | None = None
        self.preview = LivePreviewPanel(self.hub, window.settings)
        self.preview.capture_requested.connect(self.capture_into_number)
        window.tabs.addTab(self.preview, "Live camera")
        window.support_view.card_camera_requested.connect(self.open_capture)
        window.adapted.connect(lambda _result: self.preview.set_classifier(window.classifier))
        window.support.changed.connect(self._support_changed)

    def folder(self, class_name: str) -> Path:
        """Where captured pictures go: beside the saved project, else in the app's data folder."""
        project = self.window.session.project_path
        base = project.parent / f"{project.stem} captures" if project else self.window.data_dir / "captures"
        return base / safe_name(class_name)

    def open_capture(self, class_name: str) -> None:
        """The capture view, capturing into `class_name`."""
        if self.dialog is None:
            self.dialog = CaptureDialog(self.hub, self.window.settings, self.window.support.names(), self.window)
            self.dialog.captured.connect(self.capture_into)
        self.dialog.set_classes(self.window.support.names(), class_name)
        self.dialog.show()
        self.dialog.raise_()

    def open_capture_for_current(self) -> None:
        """The capture view for the class being edited (its card has the focus), else the last class."""
        names = self.window.support.names()
        if not names:
            self.window.errors.warn("add a class first (Ctrl+Shift+N): the camera's pictures join a class")
            return
        focused = QApplication.focusWidget()
        cards = self.window.support_view.cards
        current = next((name for name, card in cards.items() if focused and card.isAncestorOf(focused)), names[-1])
        self.open_capture(current)

    def show_live_camera(self) -> None:
        self.window.tabs.setCurrentWidget(self.preview)
        self.preview.run_button.setChecked(True)
        self.preview.view.setFocus()  # keys 1-9 capture from here

    def capture_into(self, class_name: str, pictures: list[QImage]) -> None:
        """Save the pictures, then add them to the class as one undoable edit (the head re-adapts)."""
        self.window.run_job(
            "save pictures",
            write_captures,
            pictures,
            self.folder(class_name),
            class_name,
            on_done=lambda paths: self._saved(class_name, paths),
        )

    def capture_into_number(self, index: int, picture: QImage) -> None:
        names = self.window.support.names()
        if index >= len(names):
            self.window.errors.warn(f"there is no support class {index + 1}; the support set has {len(names)}")
            return
        self.capture_into(names[index], [picture])

    def _saved(self, class_name: str, paths: list[Path]) -> None:
        if self.window.support.find(class_name) is None:
            self.window.errors.warn(
                f"class {class_name} was removed while its pictures were saved; they are in {paths[0].parent}"
            )
            return
        self.window.support.add_images(class_name, paths)
        self.window.errors.info(f"{len(paths)} camera picture{'s' if len(paths) != 1 else ''} added to {class_name}")

    def _support_changed(self) -> None:
        if self.dialog is not None:
            self.dialog.set_classes(self.window.support.names())
        if len(self.window.support.names()) < 2:
            self.preview.set_classifier(None)

    def close(self) -> None:
        if self.dialog is not None:
            self.dialog.hide()
        self.preview.run_button.setChecked(False)
        self.preview.worker.close()
