"""Widgets shared by the capture view and the live preview: the picture, and the camera picker."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, QSettings, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QShowEvent
from PySide6.QtWidgets import QComboBox, QFileDialog, QSizePolicy, QWidget

from app import frames
from app.frames import NO_CAMERA, VIDEO_PREFIX, VIDEO_SUFFIXES, CameraHub, source_choices

VIDEO_ITEM = "Video file…"
MAX_VIDEOS = 5  # recent video files kept in the picker


class FrameView(QWidget):
    """The latest picture, scaled to fit with its aspect ratio, or a message in its place."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.message = "Starting the camera…"
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # clicked, its keys (1-9 on the preview) work

    def show_image(self, image: QImage) -> None:
        self.image, self.message = image, ""
        self.update()

    def show_message(self, text: str) -> None:
        self.image, self.message = None, text
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#202020"))
        if self.image is not None and not self.image.isNull():
            size = self.image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
            x, y = (self.width() - size.width()) / 2, (self.height() - size.height()) / 2
            painter.drawImage(QRectF(x, y, size.width(), size.height()), self.image)
        else:
            painter.setPen(QColor("#e0e0e0"))
            painter.drawText(self.rect().adjusted(16, 16, -16, -16), Qt.TextFlag.TextWordWrap, self.message)
        painter.end()


class SourcePicker(QComboBox):
    """Every camera of the system, recent video files and “Video file…”; the choice drives the hub."""

    def __init__(self, hub: CameraHub, settings: QSettings | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hub, self.settings = hub, settings
        self.setToolTip("The camera to use (or a video file standing in for one); remembered for the next start")
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.filled = False  # the cameras are listed when a camera view is first shown, not at the app's start
        self.addItem(VIDEO_ITEM, None)
        self.activated.connect(self._activated)
        hub.changed.connect(lambda _name: self.fill())  # another picker may have added a video

    def showEvent(self, event: QShowEvent) -> None:  # Qt override
        if not self.filled:
            self.fill()
        super().showEvent(event)

    def fill(self) -> None:
        self.filled = True
        self.blockSignals(True)
        self.clear()
        for key, name in source_choices():
            self.addItem(name, key)
        for video in self._videos():
            self.addItem(f"Video: {Path(video).name}", VIDEO_PREFIX + video)
        self.addItem(VIDEO_ITEM, None)
        self.blockSignals(False)
        self._show_current()

    def _videos(self) -> list[str]:
        stored = self.settings.value("camera/videos", []) if self.settings is not None else []
        return [v for v in (stored if isinstance(stored, list) else [stored]) if v and Path(v).is_file()]

    def _show_current(self) -> None:
        index = self.findData(self.hub.key) if self.hub.key else -1
        self.blockSignals(True)
        self.setCurrentIndex(index if index >= 0 else self.count() - 1)
        self.blockSignals(False)

    def start_default(self) -> str | None:
        """Choose the remembered source if it is still there, else the first camera; the reason when none."""
        if not self.filled:
            self.fill()
        if self.hub.source is not None:
            return None
        remembered = self.settings.value("camera/source", "") if self.settings is not None else ""
        keys = [self.itemData(i) for i in range(self.count()) if self.itemData(i)]
        key = remembered if remembered in keys else next((k for k in keys if not k.startswith(VIDEO_PREFIX)), None)
        if key is None:
            return frames.multimedia_error() or NO_CAMERA
        self.hub.choose(key, self.itemText(self.findData(key)))
        return None

    def use_video(self, path: str | Path) -> None:
        """Use a video file as the camera (and list it among the recent ones)."""
        path = str(Path(path).resolve())
        if self.settings is not None:
            self.settings.setValue("camera/videos", [path, *[v for v in self._videos() if v != path]][:MAX_VIDEOS])
        self.fill()
        self.hub.choose(VIDEO_PREFIX + path)

    def _activated(self, index: int) -> None:
        key = self.itemData(index)
        if key is not None:
            self.hub.choose(key, self.itemText(index))
            return
        error = frames.multimedia_error()
        if error:
            self.hub.failed.emit(error)
            self._show_current()
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Video file to use as the camera", "", f"Videos ({' '.join(VIDEO_SUFFIXES)});;All files (*)"
        )
        if path:
            self.use_video(path)
        else:
            self._show_current()
