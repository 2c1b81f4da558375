"""The camera: capture into a class and the live preview, driven by a video file through Qt Multimedia."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.frames import NO_CAMERA, VideoFileSource, multimedia_error
from app.testing import TIMEOUT_MS

pytestmark = pytest.mark.skipif(multimedia_error() is not None, reason=str(multimedia_error()))

COLOURS = ((200, 30, 30), (30, 200, 30), (30, 30, 200))


def write_video(path: Path, size: int = 64, per_colour: int = 6) -> Path:
    """An animated PNG (lossless; Qt's FFmpeg plays it as a video): a few noisy frames of each colour in turn."""
    rng = np.random.default_rng(0)
    frames = []
    for colour in COLOURS:
        for _ in range(per_colour):
            pixels = np.clip(np.array(colour) + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
            frames.append(Image.fromarray(pixels, "RGB"))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0, format="PNG")
    return path


def colour_folders(root: Path, per_class: int = 4, size: int = 48) -> list[tuple[str, list[Path]]]:
    rng = np.random.default_rng(1)
    classes = []
    for name, colour in zip(("red", "green", "blue"), COLOURS, strict=True):
        folder = root / name
        folder.mkdir(parents=True)
        paths = []
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(folder / f"{i}.png")
            paths.append(folder / f"{i}.png")
        classes.append((name, paths))
    return classes


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "camera.png")


@pytest.fixture
def adapted_window(window, tmp_path, qtbot):
    window.show()
    qtbot.waitExposed(window)
    for name, paths in colour_folders(tmp_path / "support"):
        window.support.add_class(name, paths)
    window.adapt_timer.stop()
    with_head = []
    window.adapted.connect(with_head.append)
    window.adapt_now()
    qtbot.waitUntil(lambda: bool(with_head) and window.classifier.is_adapted, timeout=TIMEOUT_MS)
    return window


def test_a_video_file_stands_in_for_the_camera(qtbot, video):
    source = VideoFileSource(video)
    frames = []
    source.frame.connect(frames.append)
    source.start()
    qtbot.waitUntil(lambda: len(frames) >= 3, timeout=TIMEOUT_MS)
    source.stop()
    r, g, b, _ = frames[0].pixelColor(32, 32).getRgb()
    assert abs(r - 200) < 50 and g < 90 and b < 90  # the first frames are red


def test_a_missing_or_broken_video_is_named_in_the_camera_view(qtbot, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 50)
    for path, words in ((tmp_path / "gone.mp4", "no such video file"), (broken, "cannot be played")):
        source = VideoFileSource(path)
        failures = []
        source.failed.connect(failures.append)
        source.start()
        qtbot.waitUntil(lambda failures=failures: bool(failures), timeout=TIMEOUT_MS)
        assert str(path) in failures[0] and words in failures[0]


def open_capture(window, name):
    card = window.support_view.cards[name]
    assert card.camera_button.isVisible() and card.camera_button.isEnabled()
    QTest.mouseClick(card.camera_button, Qt.MouseButton.LeftButton)
    dialog = window.camera.dialog
    assert dialog is not None and dialog.isVisible() and dialog.target.currentText() == name
    return dialog


def test_without_a_camera_the_capture_view_says_so(adapted_window, monkeypatch):
    monkeypatch.setattr("app.camera_widgets.source_choices", lambda: [])
    adapted_window.camera.hub.source = None
    adapted_window.camera.dialog = None
    dialog = open_capture(adapted_window, "red")
    assert dialog.view.message == NO_CAMERA
    QTest.mouseClick(dialog.capture_button, Qt.MouseButton.LeftButton)
    assert "No picture yet" in dialog.status.text()
    assert len(adapted_window.support.find("red").paths) == 4  # nothing added, nothing crashed


def test_capture_adds_pictures_to_the_class_as_one_undoable_edit(adapted_window, video, qtbot):
    w = adapted_window
    dialog = open_capture(w, "green")
    dialog.picker.use_video(video)
    qtbot.waitUntil(lambda: w.camera.hub.latest is not None, timeout=TIMEOUT_MS)
    heads = []
    w.adapted.connect(heads.append)
    edits = w.support.undo_stack.index()
    QTest.mouseClick(dialog.capture_button, Qt.MouseButton.LeftButton)  # a click: one picture
    qtbot.waitUntil(lambda: len(w.support.find("green").paths) == 5, timeout=TIMEOUT_MS)
    added = w.support.find("green").paths[-1]
    assert added.is_file() and added.parent == w.data_dir / "captures" / "green" and added.suffix == ".jpg"
    assert Image.open(added).size == (64, 64)
    assert w.support.undo_stack.index() == edits + 1
    qtbot.waitUntil(lambda: bool(heads), timeout=TIMEOUT_MS)  # the head re-adapted with it

    QTest.mousePress(dialog.capture_button, Qt.MouseButton.LeftButton)  # held: a burst
    QTest.qWait(1400)
    QTest.mouseRelease(dialog.capture_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(w.support.find("green").paths) > 5, timeout=TIMEOUT_MS)
    burst = len(w.support.find("green").paths) - 5
    assert 3 <= burst <= 8  # 1 at once, then 4 a second after the first 350 ms
    assert w.support.undo_stack.index() == edits + 2  # the whole burst is one edit
    w.support.undo_stack.undo()
    assert len(w.support.find("green").paths) == 5
    dialog.close()
    assert not dialog.isVisible() and not w.camera.hub._users  # the camera stops with its last viewer


def start_preview(window, video, qtbot):
    tab = window.camera.preview
    window.tabs.setCurrentWidget(tab)
    assert tab.isVisible() and tab.run_button.isVisible() and tab.run_button.isEnabled()
    tab.picker.use_video(video)
    QTest.mouseClick(tab.run_button, Qt.MouseButton.LeftButton)
    assert tab.run_button.isChecked()
    return tab


def test_the_live_preview_gives_what_classifying_the_same_pictures_as_files_gives(
    adapted_window, video, qtbot, tmp_path
):
    w = adapted_window
    seen = []
    tab = start_preview(w, video, qtbot)
    tab.worker.predicted.connect(lambda prediction, _s, picture: seen.append((prediction, picture)))
    qtbot.waitUntil(lambda: len(seen) >= 6, timeout=TIMEOUT_MS)
    QTest.mouseClick(tab.run_button, Qt.MouseButton.LeftButton)
    assert not tab.run_button.isChecked()
    for i, (prediction, picture) in enumerate(seen[:6]):
        path = tmp_path / f"frame{i}.png"
        assert picture.save(str(path))
        (as_file,), skipped = w.classifier.predict([path])
        assert not skipped and as_file.label == prediction.label
        for name, p in as_file.probabilities.items():
            assert prediction.probabilities[name] == pytest.approx(p, abs=1e-5)
    top = tab.names[0].text()
    assert any(n in top for n in ("red", "green", "blue")) and tab.bars[0].value() > 0


def test_keys_1_to_9_capture_the_live_picture_into_that_class(adapted_window, video, qtbot):
    w = adapted_window
    tab = start_preview(w, video, qtbot)
    qtbot.waitUntil(lambda: w.camera.hub.latest is not None, timeout=TIMEOUT_MS)
    w.activateWindow()
    tab.view.setFocus()  # a click on the picture gives it the keyboard focus
    qtbot.waitUntil(tab.view.hasFocus)
    QTest.keyClick(tab.view, Qt.Key.Key_3)
    qtbot.waitUntil(lambda: len(w.support.find("blue").paths) == 5, timeout=TIMEOUT_MS)
    QTest.keyClick(tab.view, Qt.Key.Key_9)
    qtbot.waitUntil(
        lambda: any("no support class 9" in w.errors.log.item(i).text() for i in range(w.errors.log.count()))
    )
    QTest.mouseClick(tab.run_button, Qt.MouseButton.LeftButton)


class _SlowClassifier:
    is_adapted = True

    class model:  # noqa: N801 - stands in for the model's attribute
        class preprocessing:  # noqa: N801
            size, channels, crop = 16, 3, "none"

    def predict_pixels(self, pixels):
        time.sleep(0.2)
        return None


def test_a_slow_model_drops_pictures_instead_of_queueing_them(qtbot, video):
    from PySide6.QtGui import QImage

    from app.panels.live_preview import FrameClassifier

    worker = FrameClassifier()
    worker.classifier = _SlowClassifier()
    done = []
    worker.predicted.connect(lambda *args: done.append(args))
    picture = QImage(64, 48, QImage.Format.Format_RGB32)
    picture.fill(Qt.GlobalColor.darkCyan)
    longest = 0.0
    for _ in range(40):  # 40 pictures at 100 a second, for a model that takes 0.2 s each
        start = time.perf_counter()
        worker.offer(picture)
        longest = max(longest, time.perf_counter() - start)
        QTest.qWait(10)
    qtbot.waitUntil(lambda: worker.classified + worker.dropped == 40, timeout=TIMEOUT_MS)
    worker.close()
    assert worker.received == 40
    assert worker.classified <= 6 and worker.dropped >= 34  # the newest picture, never a backlog
    assert longest < 0.05  # handing a picture over never waits for the model
    QTest.qWait(50)
    assert len(done) == worker.classified


def test_a_camera_that_went_away_or_is_busy_is_named_with_what_to_do(qtbot):
    from app.frames import CameraSource

    source = CameraSource("camera:/dev/video-gone", "USB Camera")
    failures = []
    source.failed.connect(failures.append)
    source.start()
    assert failures and "“USB Camera” is no longer connected" in failures[0] and "Video file…" in failures[0]
    source._camera_error(None, "Device or resource busy")
    assert "another program is using it" in failures[-1] and "USB Camera" in failures[-1]
    source._camera_error(None, "Permission denied")
    assert "allow camera access" in failures[-1]


def test_space_held_on_the_capture_button_takes_a_burst(adapted_window, video, qtbot):
    w = adapted_window
    dialog = open_capture(w, "red")
    dialog.picker.use_video(video)
    qtbot.waitUntil(lambda: w.camera.hub.latest is not None, timeout=TIMEOUT_MS)
    qtbot.waitUntil(dialog.capture_button.hasFocus, timeout=TIMEOUT_MS)  # given the focus with the first picture
    QTest.keyPress(dialog.capture_button, Qt.Key.Key_Space)
    QTest.qWait(1200)
    QTest.keyRelease(dialog.capture_button, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: len(w.support.find("red").paths) > 4, timeout=TIMEOUT_MS)
    assert 3 <= len(w.support.find("red").paths) - 4 <= 7
    dialog.close()
