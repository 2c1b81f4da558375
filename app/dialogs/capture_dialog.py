"""The capture view of a class: the live camera picture, click to take one picture, hold for a burst."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QHideEvent, QImage, QShowEvent
from PySide6.QtWidgets import QComboBox, QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.camera_widgets import FrameView, SourcePicker
from app.frames import CameraHub

BURST_FPS = 4  # pictures per second while the button is held
HOLD_MS = 350  # held this long, a click becomes a burst


class CaptureDialog(QDialog):
    """Take pictures for a support class. Each click, or each held burst, joins the class as one edit.

    Signals:
        captured(class name, [QImage]): pictures to save and add to the class.
    """

    captured = Signal(str, list)

    def __init__(self, hub: CameraHub, settings: QSettings | None, classes: list[str], parent: QWidget) -> None:
        super().__init__(parent)
        self.setWindowTitle("Camera — capture support pictures")
        self.setWindowModality(Qt.WindowModality.NonModal)
        self.hub = hub
        self.view = FrameView()
        self.picker = SourcePicker(hub, settings)
        self.target = QComboBox()
        self.target.setToolTip("The class the pictures join")
        self.set_classes(classes)
        self.capture_button = QPushButton("Ca&pture (Space)")  # Alt+P; focused, Space presses it, held or not
        self.capture_button.setToolTip(
            f"Click to take one picture; hold to take {BURST_FPS} pictures a second until you let go"
        )
        self.capture_button.setDefault(True)
        self.capture_button.pressed.connect(self._begin)
        self.capture_button.released.connect(self._end)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        close = QPushButton("Done")
        close.clicked.connect(self.close)
        top = QHBoxLayout()
        for text, widget in (("&Camera", self.picker), ("&into class", self.target)):
            label = QLabel(text)
            label.setBuddy(widget)  # Alt+C, Alt+I
            top.addWidget(label)
            top.addWidget(widget, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.capture_button)
        bottom.addWidget(self.status, 1)
        bottom.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addLayout(bottom)
        self.burst_timer = QTimer(self, interval=1000 // BURST_FPS)
        self.burst_timer.timeout.connect(self._take)
        self.hold_timer = QTimer(self, singleShot=True, interval=HOLD_MS)
        self.hold_timer.timeout.connect(self.burst_timer.start)
        self.pending: list[QImage] = []
        self.taken = 0
        hub.frame.connect(self._frame)
        hub.failed.connect(self._failed)
        hub.changed.connect(lambda _name: self.view.show_message("Starting…"))
        self.resize(720, 600)

    def set_classes(self, classes: list[str], current: str | None = None) -> None:
        current = current or self.target.currentText()
        self.target.clear()
        self.target.addItems(classes)
        if current in classes:
            self.target.setCurrentText(current)

    def showEvent(self, event: QShowEvent) -> None:  # Qt override
        super().showEvent(event)
        problem = self.picker.start_default()
        if problem:
            self._failed(problem)
        elif self.hub.last_error:
            self._failed(self.hub.last_error)
        self.hub.acquire(self)
        self.capture_button.setFocus()

    def hideEvent(self, event: QHideEvent) -> None:  # Qt override: Done, Esc and the title bar's close
        self._end()
        self.hub.release(self)
        super().hideEvent(event)

    def _frame(self, image: QImage) -> None:
        if self.view.image is None:  # the first picture of this source: Space captures from now on
            if not self.taken:
                self.status.setText("Click Capture for one picture; hold it (or Space) for a burst.")
            if self.isActiveWindow() and not self.picker.view().isVisible():
                self.capture_button.setFocus()
        self.view.show_image(image)

    def _failed(self, text: str) -> None:
        self.view.show_message(text)
        self.status.setText("No picture to capture.")

    def _begin(self) -> None:
        self.capture_button.setFocus()  # also after Alt+P: Space held then makes a burst
        self.pending = []
        self._take()
        self.hold_timer.start()

    def _take(self) -> None:
        image = self.hub.latest
        if image is None or image.isNull():
            self.status.setText("No picture yet: wait for the camera, or choose another one above.")
            return
        self.pending.append(image.copy())

    def _end(self) -> None:
        self.hold_timer.stop()
        self.burst_timer.stop()
        pictures, self.pending = self.pending, []
        name = self.target.currentText()
        if not pictures or not name:
            return
        self.taken += len(pictures)
        self.status.setText(f"{self.taken} picture{'s' if self.taken != 1 else ''} taken into {name} so far.")
        self.captured.emit(name, pictures)
