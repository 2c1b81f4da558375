"""Live camera: the camera picture classified continuously, with the top-3 bars; keys 1-9 capture into a class."""

from __future__ import annotations

import threading
import time
from typing import Any

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QHideEvent, QImage, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from app.camera_widgets import FrameView, SourcePicker
from app.frames import CameraHub, image_pixels

TOP = 3
NOT_ADAPTED = "Add at least 2 classes with pictures to the support set; the live picture is then classified here."


class FrameClassifier(QObject):
    """Classifies the newest picture on a worker thread, dropping the ones that came while it was busy.

    Signals:
        predicted(prediction, seconds, picture): one picture classified (seconds: its trunk + head time).
    """

    predicted = Signal(object, float, object)

    def __init__(self) -> None:
        super().__init__()
        self.classifier: Any = None
        self.received = self.classified = self.dropped = 0
        self._latest: QImage | None = None
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="live preview", daemon=True)
        self._thread.start()

    def offer(self, image: QImage) -> None:
        """A new picture (GUI thread): it replaces one still waiting, which counts as dropped."""
        with self._wake:
            self.received += 1
            if self._latest is not None:
                self.dropped += 1
            self._latest = image
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._latest is None and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                image, self._latest = self._latest, None
            classifier = self.classifier
            if classifier is None or not classifier.is_adapted:
                continue
            start = time.perf_counter()
            try:
                pre = classifier.model.preprocessing
                prediction = classifier.predict_pixels(image_pixels(image, pre.size, pre.channels, pre.crop))
            except Exception:  # the head went away mid-picture (fewer than 2 classes): skip this picture
                continue
            self.classified += 1
            self.predicted.emit(prediction, time.perf_counter() - start, image)


class LivePreviewPanel(QWidget):
    """The Live camera tab.

    Signals:
        capture_requested(class index, picture): the user pressed 1-9 to add the picture to that class.
    """

    capture_requested = Signal(int, QImage)

    def __init__(self, hub: CameraHub, settings: QSettings | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hub = hub
        self.worker = FrameClassifier()
        self.worker.predicted.connect(self._show_prediction)
        self.view = FrameView()
        self.picker = SourcePicker(hub, settings)
        self.run_button = QPushButton("Start camera")
        self.run_button.setCheckable(True)
        self.run_button.setToolTip("Classify the live camera picture (the camera runs only while this is on)")
        self.run_button.toggled.connect(self._toggled)
        self.bars, self.names = [], []
        grid = QGridLayout()
        for row in range(TOP):
            name, bar = QLabel(""), QProgressBar()
            bar.setRange(0, 1000)
            bar.setFormat("")
            grid.addWidget(name, row, 0)
            grid.addWidget(bar, row, 1)
            self.names.append(name)
            self.bars.append(bar)
        grid.setColumnStretch(1, 1)
        self.status = QLabel(NOT_ADAPTED)
        self.status.setWordWrap(True)
        hint = QLabel("Press 1–9 to add the current picture to support class 1–9 (when it is classified wrong).")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #555")
        top = QHBoxLayout()
        label = QLabel("&Camera")
        label.setBuddy(self.picker)  # Alt+C
        top.addWidget(label)
        top.addWidget(self.picker, 1)
        top.addWidget(self.run_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addLayout(grid)
        layout.addWidget(self.status)
        layout.addWidget(hint)
        for number in range(1, 10):
            key = QShortcut(QKeySequence(str(number)), self)
            key.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            key.activated.connect(lambda n=number: self._capture(n - 1))
        self._timing = (0, 0.0, time.perf_counter())  # pictures, model seconds, since
        hub.failed.connect(self._failed)

    def set_classifier(self, classifier: Any) -> None:
        """The adapted classifier to use (None, or not adapted: pictures are shown, not classified)."""
        self.worker.classifier = classifier
        if classifier is None or not classifier.is_adapted:
            self.status.setText(NOT_ADAPTED)
            for name, bar in zip(self.names, self.bars, strict=True):
                name.setText("")
                bar.setValue(0)

    def _toggled(self, on: bool) -> None:
        self.run_button.setText("Stop camera" if on else "Start camera")
        if on:
            problem = self.picker.start_default()
            if problem:
                self._failed(problem)
            self.hub.frame.connect(self._frame)
            self.hub.acquire(self)
        else:
            self.hub.release(self)
            self.hub.frame.disconnect(self._frame)
            self.view.show_message("The camera is off. Press Start camera.")

    def hideEvent(self, event: QHideEvent) -> None:  # Qt override: leaving the tab turns the camera off
        self.run_button.setChecked(False)
        super().hideEvent(event)

    def showEvent(self, event: QShowEvent) -> None:  # Qt override
        super().showEvent(event)
        if not self.run_button.isChecked():
            self.view.show_message("The camera is off. Press Start camera.")

    def _frame(self, image: QImage) -> None:
        self.view.show_image(image)
        self.worker.offer(image)

    def _failed(self, text: str) -> None:
        self.view.show_message(text)

    def _show_prediction(self, prediction: Any, seconds: float, _picture: object) -> None:
        if self.worker.classifier is None or not self.worker.classifier.is_adapted:
            return
        ranked = sorted(prediction.probabilities.items(), key=lambda kv: -kv[1])[:TOP]
        for row, (name, bar) in enumerate(zip(self.names, self.bars, strict=True)):
            label, p = ranked[row] if row < len(ranked) else ("", 0.0)
            name.setText(f"<b>{label}</b>" if row == 0 else label)
            bar.setValue(round(p * 1000))
            bar.setFormat(f"{p:.0%}" if label else "")
        count, spent, since = self._timing
        count, spent = count + 1, spent + seconds
        elapsed = time.perf_counter() - since
        if elapsed >= 1.0:
            self.status.setText(
                f"{count / elapsed:.0f} pictures/s classified ({1000 * spent / count:.0f} ms each); "
                f"{self.worker.dropped} of {self.worker.received} skipped so far to keep up with the camera"
            )
            count, spent, since = 0, 0.0, time.perf_counter()
        self._timing = (count, spent, since)

    def _capture(self, index: int) -> None:
        image = self.hub.latest
        if self.run_button.isChecked() and image is not None and not image.isNull():
            self.capture_requested.emit(index, image.copy())
