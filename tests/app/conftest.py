"""Fixtures of the app's tests: a window on a tiny checkpoint, with its own settings and no modal boxes."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QSettings  # noqa: E402

from app.testing import TIMEOUT_MS  # noqa: E402
from app.window import MainWindow  # noqa: E402


@pytest.fixture
def checkpoint(app_checkpoint: Path) -> Path:
    return app_checkpoint


@pytest.fixture
def window(qtbot, tmp_path: Path, checkpoint: Path):  # noqa: ANN001, ANN201 - pytest-qt's fixture
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, checkpoint=str(checkpoint))
    w.errors.show_dialogs = False
    w.session.confirm_discard = lambda: True
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.classifier is not None, timeout=TIMEOUT_MS)
    yield w
    w.wait_for_jobs()
