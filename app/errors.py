"""The one channel through which messages reach the user."""

from __future__ import annotations

import logging
import time
import traceback

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QMainWindow, QMessageBox, QWidget

from anil_engine.errors import AnilError, os_message

STATUS_MS = 15000
LOG = logging.getLogger("anil_studio")  # every message also goes here (app.main prints it to the terminal)
LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}


class ErrorChannel(QWidget):
    """A log (the Messages dock), the status bar and, for errors, one non-modal box.

    Signals:
        reported(level, text): after every message.
    """

    reported = Signal(str, str)

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window_ = window
        self.log = QListWidget()
        self.show_dialogs = True
        self._box: QMessageBox | None = None

    def report(self, text: str, level: str = "error") -> None:
        stamp = time.strftime("%H:%M:%S")
        item = QListWidgetItem(f"{stamp}  {level.upper()}: {text}")
        if level == "error":
            item.setForeground(Qt.GlobalColor.red)
        self.log.addItem(item)
        LOG.log(LEVELS.get(level, logging.INFO), text)
        self.log.scrollToBottom()
        self.window_.statusBar().showMessage(text, STATUS_MS)
        self.reported.emit(level, text)
        if level == "error" and self.show_dialogs:
            if self._box is None:
                self._box = QMessageBox(QMessageBox.Icon.Warning, "ANIL Studio", "", parent=self.window_)
                self._box.setWindowModality(Qt.WindowModality.NonModal)
            self._box.setText(text)
            self._box.show()

    def warn(self, text: str) -> None:
        self.report(text, "warning")

    def info(self, text: str) -> None:
        self.report(text, "info")

    def exception(self, exc: BaseException) -> None:
        if isinstance(exc, OSError):
            self.report(os_message(exc))
        elif isinstance(exc, AnilError | ValueError):
            self.report(str(exc))
        else:
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.report(f"unexpected problem: {detail} (the app keeps running; please report this)")
