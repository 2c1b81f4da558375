"""Cyclic garbage collection on the GUI thread only, while a window is open.

Python's cycle collector runs in whichever thread happens to cross an allocation
threshold. When that is a worker thread (loading a model, adapting, training) and a
collected cycle holds Qt wrappers made on the GUI thread, they are destroyed off the
GUI thread, which can crash the process: a CI run once died with a segmentation fault
inside a model-loading job that was "Garbage-collecting". So while a window is open,
automatic collection is off and a GUI-thread timer collects instead, generation by
generation with the interpreter's own thresholds (the approach of pyqtgraph's
`GarbageCollector`). Reference counting, which frees almost everything, is unaffected.

A full collection scans every object: with torch and a model loaded that is over half a million objects
and about 0.3 s of the GUI thread, a visible freeze every time it comes round. `freeze()` (after a model
has loaded) moves the objects that exist then out of the collector's sight (`gc.freeze`), so later
collections scan only what was made since; the last window's `release()` gives them back (`gc.unfreeze`).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500


class _GuiThreadCollector(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.was_enabled = gc.isenabled()
        self.thresholds = gc.get_threshold()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.collect)
        self.timer.start(INTERVAL_MS)

    def collect(self) -> None:
        l0, l1, l2 = gc.get_count()
        t0, t1, t2 = self.thresholds
        if l0 > t0:
            gc.collect(0)
            if l1 > t1:
                gc.collect(1)
                if l2 > t2:
                    gc.collect(2)

    def stop(self) -> None:
        self.timer.stop()
        gc.unfreeze()
        gc.collect()
        if self.was_enabled:
            gc.enable()


_collector: _GuiThreadCollector | None = None
_users = 0


def acquire() -> None:
    """A window opened (call on the GUI thread): collect only there from now on."""
    global _collector, _users
    if _users == 0:
        _collector = _GuiThreadCollector()
    _users += 1


def release() -> None:
    """A window closed: when it was the last, give collection back to the interpreter."""
    global _collector, _users
    if _users == 0:
        return
    _users -= 1
    if _users == 0 and _collector is not None:
        _collector.stop()
        _collector.deleteLater()
        _collector = None


def freeze() -> None:
    """Exclude every object that exists now from later collections (call on the GUI thread, once idle)."""
    if _collector is not None:
        gc.freeze()
