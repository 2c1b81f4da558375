"""Where live pictures come from: a camera, or a video file standing in for one (Qt Multimedia).

Everything that uses live pictures (the capture view of a class, the live preview on Classify) sees a
`FrameSource`: `frame(QImage)` for each new picture, `failed(str)` with a message in plain words. A
camera and a video file are the two kinds; the tests drive the same code with a video file.
"""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, QUrl, Signal
from PySide6.QtGui import QImage

from anil_engine.images import prepare_image
from app.qt_check import multimedia_problem

VIDEO_PREFIX = "video:"
CAMERA_PREFIX = "camera:"
VIDEO_SUFFIXES = ("*.mp4", "*.mkv", "*.webm", "*.avi", "*.mov", "*.gif", "*.png")
NO_CAMERA = (
    "No camera found. Connect a camera (check that another program can use it), or choose "
    "“Video file…” above to use a recording instead."
)
NO_MULTIMEDIA = "The camera cannot be used: {reason}."
CAPTURE_QUALITY = 95  # JPEG quality of captured pictures


@functools.cache
def multimedia_error() -> str | None:
    """Why Qt Multimedia cannot be used here (the message to show), or None when it can."""
    problem = multimedia_problem()
    return NO_MULTIMEDIA.format(reason=problem) if problem else None


def source_choices() -> list[tuple[str, str]]:
    """(key, description) of every camera the system has, the default one first."""
    if multimedia_error():
        return []
    from PySide6.QtMultimedia import QMediaDevices

    default = QMediaDevices.defaultVideoInput()
    cameras = sorted(QMediaDevices.videoInputs(), key=lambda d: d.id() != default.id())
    return [(CAMERA_PREFIX + bytes(d.id().data()).decode("utf-8", "replace"), d.description()) for d in cameras]


class FrameSource(QObject):
    """Live pictures. Signals: frame(QImage) per new picture (GUI thread); failed(str); started()."""

    frame = Signal(QImage)
    failed = Signal(str)
    started = Signal()

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.latest: QImage | None = None
        self.frames = 0

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _deliver(self, image: QImage) -> None:
        if image.isNull():
            return
        self.latest = image
        self.frames += 1
        if self.frames == 1:
            self.started.emit()
        self.frame.emit(image)


class _SinkSource(FrameSource):
    """A source that hands its pictures to a QVideoSink."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        from PySide6.QtMultimedia import QVideoSink

        self.sink = QVideoSink(self)
        self.sink.videoFrameChanged.connect(self._frame_changed)

    def _frame_changed(self, frame: object) -> None:
        if frame.isValid():  # type: ignore[attr-defined]
            self._deliver(frame.toImage())  # type: ignore[attr-defined]


class CameraSource(_SinkSource):
    """A camera of the system (`key` from `source_choices`)."""

    def __init__(self, key: str, name: str) -> None:
        super().__init__(name)
        from PySide6.QtMultimedia import QCamera, QMediaCaptureSession, QMediaDevices

        wanted = key.removeprefix(CAMERA_PREFIX)
        device = next(
            (d for d in QMediaDevices.videoInputs() if bytes(d.id().data()).decode("utf-8", "replace") == wanted),
            None,
        )
        self.camera = QCamera(device, self) if device is not None else None
        self.session = QMediaCaptureSession(self)
        if self.camera is not None:
            self.session.setCamera(self.camera)
            self.camera.errorOccurred.connect(self._camera_error)
        self.session.setVideoSink(self.sink)

    def start(self) -> None:
        if self.camera is None:
            self.failed.emit(f"The camera “{self.name}” is no longer connected. {NO_CAMERA}")
            return
        self.camera.start()

    def stop(self) -> None:
        if self.camera is not None:
            self.camera.stop()

    def _camera_error(self, _error: object, text: str) -> None:
        lowered = text.lower()
        if "permission" in lowered or "denied" in lowered:
            why = "this program may not use it; allow camera access in the system settings"
        elif "busy" in lowered or "in use" in lowered:
            why = "another program is using it; close that program (a video call, say) and try again"
        else:
            why = "check that it is connected and that another program can use it"
        self.failed.emit(f"The camera “{self.name}” could not be started ({text or 'no reason given'}); {why}.")


class VideoFileSource(_SinkSource):
    """A video file played in a loop, standing in for a camera (any format Qt's FFmpeg reads: MP4, GIF, …)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(f"video file {self.path.name}")
        from PySide6.QtMultimedia import QMediaPlayer

        self.player = QMediaPlayer(self)
        self.player.setVideoSink(self.sink)
        self.player.setLoops(QMediaPlayer.Loops.Infinite)
        self.player.errorOccurred.connect(self._player_error)

    def start(self) -> None:
        if not self.path.is_file():
            self.failed.emit(f"{self.path}: no such video file; choose another one with “Video file…”")
            return
        self.player.setSource(QUrl.fromLocalFile(str(self.path)))
        self.player.play()

    def stop(self) -> None:
        self.player.stop()

    def _player_error(self, _error: object, text: str) -> None:
        self.failed.emit(
            f"{self.path}: cannot be played as a video ({text or 'unknown format'}); choose an MP4, WebM or GIF file"
        )


def open_source(key: str, name: str = "") -> FrameSource:
    """The source a picker key names (`camera:<id>` or `video:<path>`)."""
    if key.startswith(VIDEO_PREFIX):
        return VideoFileSource(key.removeprefix(VIDEO_PREFIX))
    return CameraSource(key, name or "camera")


def image_pixels(image: QImage, size: int, channels: int, crop: str = "none") -> np.ndarray:
    """A picture as the model's input, exactly as a file with these pixels would be read (`prepare_image`)."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    rows = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=stride * height).reshape(height, stride)
    array = rows[:, : width * 3].reshape(height, width, 3)
    return prepare_image(Image.fromarray(array, "RGB"), size, channels, crop)


def encode_capture(image: QImage) -> bytes:
    """A captured picture as JPEG bytes (written by the caller, atomically, off the GUI thread)."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "JPEG", CAPTURE_QUALITY):
        raise ValueError("Qt could not encode the picture as JPEG")
    return bytes(data.data())


def safe_name(class_name: str) -> str:
    """A class name as a file or folder name that every file system accepts."""
    return re.sub(r"[^\w\- ]+", "_", class_name).strip(" .") or "class"


def capture_name(class_name: str, index: int) -> str:
    """A file name for a captured picture: the class, the time, a counter."""
    return f"{safe_name(class_name)} {time.strftime('%Y-%m-%d %H-%M-%S')} {index:03d}.jpg"


class CameraHub(QObject):
    """The one live source the app uses: its viewers share it, it runs while any of them is shown.

    Signals: frame(QImage), failed(str), changed(str) with the new source's name.
    """

    frame = Signal(QImage)
    failed = Signal(str)
    changed = Signal(str)

    def __init__(self, settings: object) -> None:
        super().__init__()
        self.settings = settings
        self.source: FrameSource | None = None
        self.key = ""
        self.last_error = ""
        self._users: set[int] = set()

    def choose(self, key: str, name: str = "") -> None:
        """Switch to another camera or video file (remembered for the next start)."""
        running = bool(self._users)
        if self.source is not None:
            self.source.stop()
            self.source.deleteLater()
        self.key, self.last_error = key, ""
        self.source = open_source(key, name)
        self.source.frame.connect(self.frame)
        self.source.failed.connect(self._failed)
        if self.settings is not None:
            self.settings.setValue("camera/source", key)  # type: ignore[attr-defined]
        self.changed.emit(self.source.name)
        if running:
            self.source.start()

    def _failed(self, text: str) -> None:
        self.last_error = text
        self.failed.emit(text)

    @property
    def latest(self) -> QImage | None:
        return self.source.latest if self.source is not None else None

    def acquire(self, user: QObject) -> None:
        """`user` wants pictures: start the source if it is the first."""
        first = not self._users
        self._users.add(id(user))
        if first and self.source is not None:
            self.source.start()

    def release(self, user: QObject) -> None:
        self._users.discard(id(user))
        if not self._users and self.source is not None:
            self.source.stop()
