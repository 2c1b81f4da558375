"""The one walker of the file system: every image the user named, or a message saying why not.

Used by the app's drops, the CLI's image arguments and class-folder scans. Hidden files and folders
(names starting with ".") are OS or tool metadata (``.DS_Store``, ``.git``) and are left out without a
message; everything else that is not used is named: non-image files, broken links, link loops, folders
that cannot be read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from anil_engine.errors import os_message
from anil_engine.images import is_image_path

NAMED_SKIPS = 5  # non-image files named one by one in a message; the rest are counted


@dataclass
class Listing:
    """Image files found (sorted within each folder walk) and one message per entry left out."""

    images: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def extend(self, other: Listing) -> None:
        self.images.extend(other.images)
        self.messages.extend(other.messages)


def _permission_message(path: Path, exc: OSError) -> str:
    return os_message(exc, path, "cannot be read")


def _non_images(folder: Path, names: list[Path]) -> list[str]:
    if not names:
        return []
    shown = ", ".join(p.name for p in names[:NAMED_SKIPS])
    more = f" and {len(names) - NAMED_SKIPS} more" if len(names) > NAMED_SKIPS else ""
    return [f"{folder}: {len(names)} file(s) that are not images skipped ({shown}{more})"]


def missing_message(path: Path) -> str:
    """Why a path the user named is not there: a broken link or nothing at all."""
    if path.is_symlink():
        return f"{path}: a broken link (it points to {os.readlink(path)}, which does not exist); skipped"
    return f"{path}: not found; skipped"


def walk_images(folder: str | Path) -> Listing:
    """Image files below `folder`, recursively (links followed once; loops and dead links reported).

    Raises nothing for unreadable entries: each becomes a message.
    """
    folder = Path(folder)
    out = Listing()
    seen: set[str] = set()

    def visit(directory: Path) -> None:
        real = os.path.realpath(directory)
        if real in seen:
            out.messages.append(f"{directory}: a link back to a folder already read (a loop); skipped")
            return
        seen.add(real)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            out.messages.append(_permission_message(directory, exc))
            return
        skipped, subfolders = [], []
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    subfolders.append(path)
                elif entry.is_file():
                    (out.images if is_image_path(path) else skipped).append(path)
                elif entry.is_symlink():
                    out.messages.append(missing_message(path))
                else:
                    skipped.append(path)  # a socket, a FIFO, a device
            except OSError as exc:
                out.messages.append(_permission_message(path, exc))
        out.messages.extend(_non_images(directory, skipped))
        for sub in subfolders:
            visit(sub)

    visit(folder)
    return out


def expand_inputs(paths: list[Path]) -> Listing:
    """Files as given (non-images reported), folders walked to their images, missing paths reported."""
    out = Listing()
    for p in paths:
        p = Path(p)
        try:
            if p.is_dir():
                found = walk_images(p)
                if not found.images and not found.messages:
                    found.messages.append(f"{p}: no images inside; nothing to classify there")
                out.extend(found)
            elif p.is_file():
                if is_image_path(p):
                    out.images.append(p)
                else:
                    out.messages.append(f"{p}: not an image file (PNG, JPEG, BMP, GIF, TIFF, WebP); skipped")
            else:
                out.messages.append(missing_message(p))
        except OSError as exc:
            out.messages.append(_permission_message(p, exc))
    return out


@dataclass
class FolderContents:
    """A dropped or named folder: a folder of class folders (`classes`) or one class's images (`images`)."""

    folder: Path
    classes: dict[str, list[Path]] = field(default_factory=dict)
    images: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def read_folder(folder: str | Path) -> FolderContents:
    """Sort a folder into class folders (sub-folders with images) or one class (images directly inside).

    A folder with both keeps its sub-folders as classes and names the loose images in a message.
    An empty class folder is named in a message, never left out silently.
    """
    folder = Path(folder)
    out = FolderContents(folder)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        out.messages.append(_permission_message(folder, exc))
        return out
    subfolders = []
    for e in entries:
        try:
            if not e.name.startswith(".") and e.is_dir():
                subfolders.append(Path(e.path))
        except OSError as exc:
            out.messages.append(_permission_message(Path(e.path), exc))
    per_class = {sub.name: walk_images(sub) for sub in subfolders}
    if any(listing.images for listing in per_class.values()):
        loose = [Path(e.path) for e in entries if not e.name.startswith(".") and Path(e.path) not in subfolders]
        for name, listing in per_class.items():
            out.messages.extend(listing.messages)
            if listing.images:
                out.classes[name] = listing.images
            else:
                out.messages.append(f"{folder / name}: no images inside; this class is left out")
        if loose:
            shown = ", ".join(p.name for p in loose[:NAMED_SKIPS])
            out.messages.append(
                f"{folder}: {len(loose)} file(s) beside the class folders are not in any class ({shown}); "
                "move them into a class folder to use them"
            )
        return out
    listing = walk_images(folder)
    out.images, out.messages = listing.images, out.messages + listing.messages
    if not out.images:
        out.messages.append(f"{folder}: no images inside; nothing added")
    return out
