"""Small previews of image files for the support cards and the results, without blocking the window.

Qt decodes the formats it knows on the spot, scaled while decoding (a JPEG thumbnail takes milliseconds). A
format Qt cannot read but the engine can (HEIC/HEIF photos, through Pillow and pillow-heif: about 0.3 s for a
12-megapixel photo) is decoded in a background thread; a grey square stands in until `loader.ready` is emitted,
and views connected to it repaint.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, Qt, Signal
from PySide6.QtGui import QColor, QImage, QImageReader, QPixmap

from anil_engine.images import PIXEL_LIMIT, is_image_path, to_mode

THUMB = 56
_Key = tuple[str, int, int]
_thumb_cache: dict[_Key, QPixmap] = {}


class _Loader(QObject):
    """Decodes thumbnails Qt cannot read, one at a time in a worker thread; `ready` once one is done."""

    ready = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thumbnails")
        self._lock = threading.Lock()
        self._done: dict[_Key, QImage] = {}
        self._asked: set[_Key] = set()

    def take(self, key: _Key) -> QImage | None:
        """The decoded image for `key` once the worker has it (a null image when it could not); else None,
        after asking the worker for it once."""
        with self._lock:
            if key in self._done:
                self._asked.discard(key)
                return self._done.pop(key)
            if key not in self._asked:
                self._asked.add(key)
                self._pool.submit(self._decode, key)
        return None

    def _decode(self, key: _Key) -> None:
        image = pillow_thumbnail(Path(key[0]), key[1])
        with self._lock:
            self._done[key] = image
        self.ready.emit()


def pillow_thumbnail(path: Path, size: int) -> QImage:
    """`path` decoded by Pillow (EXIF orientation applied) and scaled to fit size x size; a null image when it
    cannot be read or is over the pixel limit. Safe in any thread."""
    try:
        with Image.open(path) as image:
            if image.width * image.height > PIXEL_LIMIT:
                return QImage()
            image.draft("RGB", (size, size))
            small = to_mode(ImageOps.exif_transpose(image), 3)  # as the model sees it: alpha on white, ...
            small.thumbnail((size, size))
    except Exception:  # noqa: BLE001 - any unreadable file is a grey square here; adaptation names it
        return QImage()
    data = small.tobytes()
    return QImage(data, small.width, small.height, 3 * small.width, QImage.Format.Format_RGB888).copy()


loader = _Loader()


def _image_reader(path: Path) -> tuple[QImageReader, object]:
    """A reader of `path`; a name that is not UTF-8 (Latin-1 bytes, say) is read through Python's own open.

    Returns the reader and what must stay alive while it reads.
    """
    try:
        return QImageReader(str(path).encode("utf-8").decode("utf-8")), None
    except UnicodeEncodeError:  # Qt cannot name such a file; its bytes can still be read
        try:
            data = QByteArray(path.read_bytes())
        except OSError:
            return QImageReader(), None
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        return QImageReader(buffer), (buffer, data)


def _grey(size: int) -> QPixmap:
    pix = QPixmap(size, size)
    pix.fill(QColor("#bbbbbb"))
    return pix


def thumbnail(path: Path, size: int = THUMB) -> QPixmap:
    """A small preview, EXIF orientation applied; a grey square for unreadable or missing files, and while a
    format Qt cannot read is decoded in the background (`loader.ready` then).

    Cached by path, size and modification time: a file that is moved away or replaced is shown as it is now.
    """
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        stamp = -1
    key = (str(path), size, stamp)
    if key not in _thumb_cache:
        image = QImage()
        if stamp >= 0:
            reader, _keep = _image_reader(Path(path))
            if not reader.canRead() and is_image_path(Path(path)):  # Pillow reads it; Qt does not (HEIC)
                decoded = loader.take(key)
                if decoded is None:
                    return _grey(size)  # not cached: asked again when the view repaints on `loader.ready`
                image = decoded
            else:
                reader.setAutoTransform(True)
                original = reader.size()
                if original.isValid():
                    reader.setScaledSize(original.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio))
                # Over the pixel limit: never decoded, on the GUI thread or anywhere (adaptation names the file).
                if not original.isValid() or original.width() * original.height() <= PIXEL_LIMIT:
                    image = reader.read()
        _thumb_cache[key] = _grey(size) if image.isNull() else QPixmap.fromImage(image)
    return _thumb_cache[key]
