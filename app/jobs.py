"""Running engine work off the GUI thread.

Every job is an engine callable or generator run in a superqt `GeneratorWorker`
(thread pool). Yielded values go to `progress`, the return value to `done`,
exceptions to the app's single error channel. Cancelling closes the engine
generator at its next yield, in the worker thread, so its `finally` (e.g.
"save a resumable checkpoint") runs before the job ends.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QStatusBar
from superqt.utils import GeneratorWorker

CANCELLED = object()
IMAGE_JOBS = {  # jobs shown in the status bar with a Stop button (`MainWindow.run_job`)
    "adapt": "Adapting:",
    "classify": "Classifying:",
    "evaluate folder": "Evaluating:",
    "leave-one-out": "Leave-one-out:",
    "unpack": "Unpacking:",
    "copy into folders": "Copying:",
}


class JobFailed(Exception):
    """Wraps any exception of a job (superqt swallows a bare RuntimeError from generators)."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


def _drive(fn: Callable[..., Any], args: tuple, kwargs: dict, cancel: threading.Event) -> Generator[Any, None, Any]:
    try:
        result = fn(*args, **kwargs)
        if not inspect.isgenerator(result):
            return result
        gen = result
        try:
            while True:
                if cancel.is_set():
                    gen.close()
                    return CANCELLED
                try:
                    item = next(gen)
                except StopIteration as stop:
                    return stop.value
                yield item
        finally:
            gen.close()
    except Exception as exc:  # every failure reaches the error channel
        raise JobFailed(exc) from exc


class Job(QObject):
    """One piece of engine work on a worker thread.

    Signals:
        progress(object): each value the engine generator yields.
        done(object): the return value (`CANCELLED` after `cancel()`).
        failed(object): the exception.
        finished(): always, last.
    """

    progress = Signal(object)
    done = Signal(object)
    failed = Signal(object)
    finished = Signal()

    def __init__(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.name = name
        self._cancel = threading.Event()
        self._worker = GeneratorWorker(_drive, fn, args, kwargs, self._cancel)
        self._worker.yielded.connect(self.progress.emit)
        self._worker.returned.connect(self.done.emit)
        self._worker.errored.connect(lambda exc: self.failed.emit(getattr(exc, "original", exc)))
        self._worker.finished.connect(self.finished.emit)
        self.running = False
        self.finished.connect(self._on_finished)

    def start(self) -> None:
        self.running = True
        self._worker.start()

    def cancel(self) -> None:
        self._cancel.set()

    def _on_finished(self) -> None:
        self.running = False

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until the worker thread is done (used at exit and in tests)."""
        import time

        from PySide6.QtCore import QCoreApplication

        deadline = time.monotonic() + timeout_ms / 1000
        while self.running and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.01)
        return not self.running


def start_job(
    name: str,
    fn: Callable[..., Any],
    *args: Any,
    on_progress: Callable[[Any], None] | None = None,
    on_done: Callable[[Any], None] | None = None,
    on_failed: Callable[[BaseException], None] | None = None,
    on_finished: Callable[[], None] | None = None,
) -> Job:
    """Create a `Job`, connect its signals (the only place that does) and start it."""
    job = Job(name, fn, *args)
    for signal, slot in ((job.progress, on_progress), (job.done, on_done), (job.failed, on_failed)):
        if slot is not None:
            signal.connect(slot)
    if on_finished is not None:
        job.finished.connect(on_finished)
    job.start()
    return job


def status_while(bar: QStatusBar, job: Job, text: str) -> None:
    """`text` in the status bar until the job ends, however it ends (unless something else was said since)."""
    bar.showMessage(text)
    job.finished.connect(lambda: bar.clearMessage() if bar.currentMessage() == text else None)
