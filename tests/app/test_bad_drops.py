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

    from app.thumbnails import thumbnail

    path = tmp_path / os.fsdecode(b"caf\xe9.png")
    Image.new("RGB", (40, 40), (200, 40, 40)).save(path)
    r, g, b, _ = thumbnail(path).toImage().pixelColor(10, 10).getRgb()
    assert (r, g, b) == (200, 40, 40)  # not the grey square of an unreadable file


def test_a_heic_photo_s_thumbnail_is_decoded_in_the_background_without_blocking(qtbot, tmp_path):
    """Qt cannot read HEIC (iPhones' photos): a grey square at once, the photo once a worker has decoded it."""
    import time

    from PIL import Image

    from app import thumbnails

    path = tmp_path / "IMG_0001.HEIC"
    Image.new("RGB", (64, 48), (30, 160, 60)).save(path)
    start = time.perf_counter()
    first = thumbnails.thumbnail(path)
    assert time.perf_counter() - start < 0.05  # the window's thread only looks at the header
    assert first.toImage().pixelColor(5, 5).name() == "#bbbbbb"  # the stand-in
    qtbot.waitUntil(lambda: thumbnails.thumbnail(path).toImage().pixelColor(10, 10).name() != "#bbbbbb", timeout=10_000)
    r, g, b, _ = thumbnails.thumbnail(path).toImage().pixelColor(10, 10).getRgb()
    assert abs(r - 30) + abs(g - 160) + abs(b - 60) < 30  # the photo (HEVC is lossy)
    assert thumbnails.thumbnail(path).width() == 56  # scaled to fit the square, kept


def test_a_file_neither_qt_nor_pillow_reads_is_a_grey_square(qtbot, tmp_path):
    from app import thumbnails

    path = tmp_path / "broken.heic"
    path.write_bytes(b"not a photo at all")
    key = (str(path), thumbnails.THUMB, path.stat().st_mtime_ns)

    def settled() -> bool:  # asked again, as a repainting view would
        thumbnails.thumbnail(path)
        return key in thumbnails._thumb_cache

    qtbot.waitUntil(settled, timeout=10_000)
    assert thumbnails.thumbnail(path).toImage().pixelColor(5, 5).name() == "#bbbbbb"  # cached as unreadable


def test_a_list_of_heic_thumbnails_repaints_itself_when_the_worker_is_done(qtbot, tmp_path):
    """Nothing else happens on screen: only `loader.ready` makes the list ask for its thumbnails again."""
    from PIL import Image
    from PySide6.QtCore import QSize
    from PySide6.QtWidgets import QListView

    from app import thumbnails
    from app.panels.support_panel import ThumbnailModel

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"IMG_{i}.heic")
        Image.new("RGB", (64, 48), (200, 40 + 30 * i, 40)).save(paths[-1])
    view = QListView()
    view.setViewMode(QListView.ViewMode.IconMode)
    view.setIconSize(QSize(thumbnails.THUMB, thumbnails.THUMB))
    view.setModel(ThumbnailModel(paths, view))
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    keys = [(str(p), thumbnails.THUMB, p.stat().st_mtime_ns) for p in paths]
    qtbot.waitUntil(lambda: all(k in thumbnails._thumb_cache for k in keys), timeout=10_000)
