"""The file dialogs and the clipboard: the same flows as the drops, for users who cannot or would rather not drag."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog

from anil_engine.images import IMAGE_SUFFIXES
from app.widgets import RemoteUrl, dropped_items

if TYPE_CHECKING:
    from app.window import MainWindow

IMAGE_FILTER = (
    "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ");;Zip archives of images (*.zip);;All files (*)"
)


class FilePickers(QObject):
    """Open-file dialogs and paste; each hands what the user chose to the window's one drop handler."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window

    def _pick_images(self, title: str) -> list[Path]:
        paths, _ = QFileDialog.getOpenFileNames(self.window, title, self.window.session.last_dir(), IMAGE_FILTER)
        if paths:
            self.window.session.remember_dir(Path(paths[0]).parent)
        return [Path(p) for p in paths]

    def _pick_folder(self, title: str) -> Path | None:
        path = QFileDialog.getExistingDirectory(self.window, title, self.window.session.last_dir())
        if not path:
            return None
        self.window.session.remember_dir(Path(path).parent)
        return Path(path)

    def open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.window, "Open checkpoint", self.window.session.last_dir(), "Checkpoints (*.pt)"
        )
        if path:
            self.window.load_model(path)

    def add_support_images_dialog(self) -> None:
        paths = self._pick_images("Images of one new class")
        if paths:
            folders = {p.parent for p in paths}
            # Images picked from one folder start a class named after it (the folder a user keeps them in).
            self.window.drop(paths, "support", new_class=folders.pop().name if len(folders) == 1 else None)

    def add_support_folder_dialog(self) -> None:
        folder = self._pick_folder("A folder of class folders, or one class's folder")
        if folder is not None:
            self.window.drop([folder], "support")

    def add_images_to_card_dialog(self, name: str) -> None:
        paths = self._pick_images(f"Images to add to class {name}")
        if paths:
            self.window.drop(paths, "card", card=name)

    def classify_images_dialog(self) -> None:
        paths = self._pick_images("Images to classify")
        if paths:
            self.window.classify_paths(paths)

    def classify_folder_dialog(self) -> None:
        folder = self._pick_folder("A folder of images to classify")
        if folder is not None:
            self.window.classify_paths([folder])

    def evaluate_folder_dialog(self) -> None:
        folder = self._pick_folder("A labelled folder: one folder per support class")
        if folder is not None:
            self.window.evaluate_paths([folder])

    def paste_images(self) -> None:
        """Classify the clipboard: copied image files, or image data (saved as a PNG in `paste_dir`)."""
        mime = QGuiApplication.clipboard().mimeData()
        items = dropped_items(mime) if mime is not None else []
        if not items or all(isinstance(i, RemoteUrl) for i in items):
            self.window.errors.warn("the clipboard holds no image or image file; copy one first, then paste")
            return
        self.window.classify_paths(items)

    def save_pasted(self, image: QImage) -> Path | None:
        if image.isNull():
            self.window.errors.warn("the clipboard's image is empty; copy the image again, then paste")
            return None
        path = self.window.paste_dir / f"pasted-{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 10**6:06d}.png"
        tmp = path.with_suffix(".part.png")
        try:
            self.window.paste_dir.mkdir(parents=True, exist_ok=True)
            if not image.save(str(tmp), "PNG"):
                raise OSError("Qt could not write the PNG")
            os.replace(tmp, path)
        except OSError as exc:
            self.window.errors.report(
                f"{path}: could not save the pasted image ({exc}); check that the folder is writable"
            )
            return None
        return path
