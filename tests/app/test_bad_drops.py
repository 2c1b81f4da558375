"""The bad-input corpus dropped on the window: the app stays alive and names every bad file in Messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from app.testing import TIMEOUT_MS, send_drop  # noqa: E402


def test_the_corpus_dropped_on_the_app_names_every_bad_file(qtbot, window, bad_corpus, monkeypatch):
    import anil_engine.images as images

    monkeypatch.setattr(images, "PIXEL_LIMIT", 70 * 70)
    messages = []
    window.errors.reported.connect(lambda level, text: messages.append(text))
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT_MS):
        send_drop(window.support_view, [bad_corpus["support"]])
    assert window.support.names() == ["class_00", "class_01"]
    assert any(str(bad_corpus["support"] / "empty_class") in m and "left out" in m for m in messages)
    assert any("notes.txt" in m for m in messages)
    q = bad_corpus["queries"]
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT_MS) as classified:
        send_drop(window.classify_panel, [q, bad_corpus["empty"]])
    window.wait_for_jobs()
    names = {Path(p.path).name for p in classified.args[0]}
    assert names == {"good.png", os.fsdecode(b"caf\xe9.png")}
    for name in ("truncated.jpg", "garbage.png", "empty.jpg", "dead.png", "loop", "huge.png"):
        assert any(str(q / name) in m for m in messages), name
    assert any(m.startswith(f"{q}: ") and "readme.txt" in m for m in messages)
    assert any(str(bad_corpus["empty"]) in m and "no images inside" in m for m in messages)
    assert window.isEnabled() and window.classifier.is_adapted  # alive, still a classifier


def test_a_file_name_that_is_not_utf8_gets_its_real_thumbnail(qtbot, tmp_path):
    import os

    from PIL import Image

    from app.widgets import thumbnail

    path = tmp_path / os.fsdecode(b"caf\xe9.png")
    Image.new("RGB", (40, 40), (200, 40, 40)).save(path)
    r, g, b, _ = thumbnail(path).toImage().pixelColor(10, 10).getRgb()
    assert (r, g, b) == (200, 40, 40)  # not the grey square of an unreadable file
