"""Start the desktop app: `anil-studio` (or `python -m app.main`)."""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import Any

OUR_LOGGERS = ("anil_studio", "anil_engine")


def log_to_terminal() -> None:
    """The Messages panel's lines (and the engine's) from INFO up in the terminal; other libraries' from WARNING up.

    At INFO, the ONNX exporter alone prints a hundred lines of graph rewrites when a model is first exported.
    """
    logging.basicConfig(format="%(levelname)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(logging.WARNING)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def main(checkpoint: str | None = None) -> int:
    import os

    from app.qt_check import display_problem

    problem = display_problem(os.environ.get("QT_QPA_PLATFORM", "") if sys.platform.startswith("linux") else "-")
    if problem:
        print(problem, file=sys.stderr)
        return 1
    # Qt Multimedia lists every optional library it looks for (PipeWire, VA-API) and FFmpeg describes each
    # video it opens; none of it is a problem, so keep the terminal for messages that are.
    os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia.symbolsresolver=false;qt.multimedia.ffmpeg=false")
    from PySide6.QtWidgets import QApplication

    # The Messages panel, also in the terminal that started the app (file names that are not UTF-8 included).
    reconfigure = getattr(sys.stderr, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")
    log_to_terminal()

    from app.window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("ANIL Studio")
    app.setOrganizationName("ANIL Studio")
    window = MainWindow(checkpoint=checkpoint)

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        traceback.print_exception(exc_type, exc, tb)
        window.errors.exception(exc)

    sys.excepthook = excepthook
    from PySide6.QtCore import QTimer

    from app import frames
    from app.qt_check import binding_problem

    problem = binding_problem()
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
        window.errors.report(problem)

    def check_camera() -> None:  # once the window is on screen (a fraction of a second); the result is kept
        camera = frames.multimedia_error()
        if camera:  # the app works without it; the camera views show it too (Messages also go to the terminal)
            window.errors.warn(camera)

    QTimer.singleShot(0, check_camera)
    signals = CloseOnSignals(window)
    window.show()
    code = app.exec()
    signals.uninstall()
    return 128 + signals.received[0] if signals.received else code


class CloseOnSignals:
    """Ctrl-C in the terminal that started the app (SIGINT) and SIGTERM (`kill`, a logout) close the window as its
    close button does, without the question no one may be there to answer: unsaved work becomes an autosave that
    the next start offers (`Session.close_keeping_work`); a modal box left open is closed first. A second
    signal while closing ends the process at once. `received` holds the signal, for the exit status (128 + its
    number, as a shell reports it); `uninstall()` puts the process's own handlers back.

    Python runs a signal handler only between bytecodes, never while Qt's event loop waits, so the C-level handler's
    wake-up byte (`signal.set_wakeup_fd`, a socket pair) wakes the loop to let it run.
    """

    def __init__(self, window: Any) -> None:
        import signal
        import socket

        from PySide6.QtCore import QSocketNotifier

        self.window = window
        self.received: list[int] = []
        self._reader, self._writer = socket.socketpair()
        for end in (self._reader, self._writer):
            end.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._writer.fileno())
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Type.Read)
        self._notifier.activated.connect(self._drain)
        self._old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def uninstall(self) -> None:
        import signal

        for signum, old in self._old.items():
            signal.signal(signum, old)
        signal.set_wakeup_fd(self._old_fd)
        self._notifier.setEnabled(False)
        self._reader.close()
        self._writer.close()

    def _drain(self) -> None:
        try:
            while self._reader.recv(64):
                pass
        except OSError:  # nothing more to read (BlockingIOError), or closed
            pass

    def _handler(self, signum: int, _frame: Any) -> None:
        import os

        from PySide6.QtCore import QTimer

        if self.received:
            os._exit(128 + signum)
        self.received.append(signum)
        QTimer.singleShot(0, lambda: self._close(signum))

    def _close(self, signum: int) -> None:
        import signal

        from PySide6.QtWidgets import QApplication, QDialog

        for _ in range(10):  # a modal box (a question, a file picker) runs a loop of its own: end it first
            modal = QApplication.activeModalWidget()
            if modal is None or modal is self.window:
                break
            modal.reject() if isinstance(modal, QDialog) else modal.close()  # a box without Cancel refuses close
        kept = self.window.session.close_keeping_work()
        if self.window.isVisible():  # the autosave could not be written, so the window asked: kept open
            self.received.clear()  # a later signal tries again
            return
        words = f"; the unsaved support set is kept in {kept} and offered at the next start" if kept else ""
        print(f"\n{signal.Signals(signum).name}: ANIL Studio closed{words}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
