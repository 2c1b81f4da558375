"""Helpers for driving the app from tests and the screenshot script."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

TIMEOUT_MS = 60000  # how long a test waits for a job of the app on these 2-core machines
READING_JOBS = ("read drop", "unpack")  # the jobs a drop starts before anything is added


def send_drop(widget: QWidget, paths: list[Path], wait: bool = True) -> None:
    """Deliver the drag-enter, drag-move and drop events a file manager would send.

    With `wait`, return once the window has read the drop (its plan carried out), as a user sees it.
    """
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    send_mime_drop(widget, mime, wait)


def wait_for_drops(widget: QWidget, timeout_s: float = 120.0) -> None:
    """Process events until the window of `widget` has no drop left to read."""
    window = widget.window()
    wait_until(lambda: not any(j.name in READING_JOBS for j in getattr(window, "jobs", [])), timeout_s)


def send_mime_drop(widget: QWidget, mime: QMimeData, wait: bool = True) -> None:
    """Drag-enter, drag-move and drop of any data (e.g. a browser's image with its remote address)."""
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    enter = QDragEnterEvent(QPoint(5, 5), *args)
    QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        raise RuntimeError(f"{widget} refused the drag")
    QApplication.sendEvent(widget, QDragMoveEvent(QPoint(5, 5), *args))
    QApplication.sendEvent(widget, QDropEvent(QPointF(5, 5), *args))
    if wait:
        wait_for_drops(widget)


def wait_until(predicate: Callable[[], object], timeout_s: float = 120.0) -> None:
    """Process events until `predicate()` is true."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        QApplication.processEvents()
        time.sleep(0.02)


def benchmark_window(work: Path, checkpoint: str | None, size: tuple[int, int] = (1500, 950)):  # -> MainWindow
    """The real window for a benchmark: its own settings in `work`, no modal boxes, shown, model loaded."""
    from PySide6.QtCore import QSettings

    from app.window import MainWindow

    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, checkpoint=checkpoint)
    window.errors.show_dialogs = False
    window.session.confirm_discard = lambda: True
    window.resize(*size)
    window.show()
    wait_until(lambda: window.classifier is not None and not window.jobs)
    return window
