"""Jobs and the status line that says what they are doing."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtWidgets import QStatusBar

from app.jobs import start_job, status_while


def _work(outcome: str, gate: threading.Event):
    while not gate.wait(0.01):
        yield None
    if outcome == "failed":
        raise ValueError("no")
    return "result"


@pytest.mark.parametrize("outcome", ["done", "failed", "cancelled"])
def test_a_job_s_status_line_goes_when_the_job_ends_however_it_ends(qtbot, outcome):
    bar = QStatusBar()
    qtbot.addWidget(bar)
    gate = threading.Event()
    job = start_job("work", _work, outcome, gate, on_failed=lambda exc: None)
    status_while(bar, job, "Working…")
    assert bar.currentMessage() == "Working…"
    qtbot.wait(50)
    assert bar.currentMessage() == "Working…"  # still running: still said
    with qtbot.waitSignal(job.finished, timeout=5000):
        job.cancel() if outcome == "cancelled" else gate.set()
    assert bar.currentMessage() == ""


def test_what_was_said_since_the_job_began_stays(qtbot):
    bar = QStatusBar()
    qtbot.addWidget(bar)
    gate = threading.Event()
    job = start_job("work", _work, "done", gate)
    status_while(bar, job, "Working…")
    bar.showMessage("exported model.onnx")
    with qtbot.waitSignal(job.finished, timeout=5000):
        gate.set()
    assert bar.currentMessage() == "exported model.onnx"
