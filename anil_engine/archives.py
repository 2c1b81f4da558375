"""Zip archives of images, unpacked once so that the app and the CLI can treat them as folders.

`unpack_images(zip_path, into)` is a generator (progress per file, cancellable between files) that
extracts the archive's image files below `into/<stem>-<key>/` and returns the folder to use: the single
top-level folder when there is one (a zipped folder of class folders stays one), else the extraction root.
The key depends on the archive's path, size and modification time, so the same archive is unpacked once
and an edited one again. Members with absolute paths or `..` are skipped, never written outside.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from anil_engine.errors import DataError, os_message
from anil_engine.images import is_image_path

COMPLETE = ".unpacked"  # written last: a folder without it is a partial extraction and is redone


@dataclass(frozen=True)
class UnpackProgress:
    stage: str  # "unpack"
    done: int  # image files written so far
    total: int


def _key(zip_path: Path) -> str:
    st = zip_path.stat()
    return hashlib.sha256(f"{zip_path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:10]


def _safe_member(name: str) -> PurePosixPath | None:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0].startswith("__MACOSX"):
        return None
    if any(part.startswith(".") for part in p.parts):
        return None
    return p


def _result_folder(root: Path) -> Path:
    children = [c for c in root.iterdir() if c.name != COMPLETE]
    return children[0] if len(children) == 1 and children[0].is_dir() else root


def unpack_images(zip_path: str | Path, into: str | Path) -> Generator[UnpackProgress, None, Path]:
    """Extract the image files of `zip_path` (once) and return the folder that holds them.

    Raises:
        DataError: not a readable zip, or no image files inside; the message names the archive.
    """
    zip_path = Path(zip_path)
    try:
        root = Path(into) / f"{zip_path.stem}-{_key(zip_path)}"
    except OSError as exc:
        raise DataError(os_message(exc, zip_path, "cannot be read")) from exc
    if (root / COMPLETE).is_file():
        return _result_folder(root)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{zip_path}: not a readable zip archive ({exc}); re-download or re-create it") from exc
    with archive:
        members = []
        for info in archive.infolist():
            safe = _safe_member(info.filename)
            if safe is not None and not info.is_dir() and is_image_path(Path(safe.name)):
                members.append((info, safe))
        if not members:
            raise DataError(f"{zip_path}: no image files inside (PNG, JPEG, BMP, GIF, TIFF, WebP)")
        shutil.rmtree(root, ignore_errors=True)  # a partial extraction of an earlier, stopped attempt
        for i, (info, safe) in enumerate(members):
            target = root.joinpath(*safe.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except OSError as exc:
                doing = f"could not extract {info.filename} to {target}"
                raise DataError(os_message(exc, zip_path, doing)) from exc
            except zipfile.BadZipFile as exc:
                raise DataError(f"{zip_path}: {info.filename} is damaged ({exc}); re-create the archive") from exc
            if (i + 1) % 64 == 0 or i + 1 == len(members):
                yield UnpackProgress("unpack", i + 1, len(members))
    (root / COMPLETE).write_text(str(zip_path.resolve()))
    return _result_folder(root)
