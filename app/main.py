"""Start the desktop app: `anil-studio` (or `python -m app.main`)."""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType


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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)

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
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
