"""Project files (`.anilproj`, JSON): the support set, the model used and the head's settings.

Image paths are stored relative to the project file when they lie below its folder, absolute otherwise;
a self-contained project (`bundle_project`) is a folder with the images and the model copied in, so
every path is relative and the folder can be moved or copied. Saved atomically.

The adapted head is not stored: adaptation is deterministic and takes well under a second, so opening a
project re-adapts the head from its images (a stored head could only disagree with them). Files of
earlier versions that hold a head still open; the head in them is ignored.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from anil_engine.checkpoint import atomic_write_bytes
from anil_engine.errors import AnilError, os_message

PROJECT_FORMAT = "anil-studio-project"
PROJECT_VERSION = 1


class ProjectError(AnilError):
    """A project file is missing, corrupt or of another version."""


@dataclass
class Project:
    """What a user's work consists of."""

    checkpoint: str  # path of the checkpoint file
    classes: list[tuple[str, list[str]]] = field(default_factory=list)  # (name, absolute image paths)
    fast_lr: float = 0.1
    adaptation_steps: int = 5
    checkpoint_sha256: str = ""


def _rel(path: str, base: Path) -> str:
    if not path:  # no model was loaded when it was saved
        return ""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(base))
    except ValueError:
        return str(p)


def save_project(project: Project, path: str | Path) -> None:
    path = Path(path)
    base = path.resolve().parent
    data = {
        "format": PROJECT_FORMAT,
        "version": PROJECT_VERSION,
        "checkpoint": _rel(project.checkpoint, base),
        "checkpoint_sha256": project.checkpoint_sha256,
        "fast_lr": project.fast_lr,
        "adaptation_steps": project.adaptation_steps,
        "classes": [{"name": n, "images": [_rel(p, base) for p in paths]} for n, paths in project.classes],
    }
    try:
        atomic_write_bytes(json.dumps(data, indent=1).encode(), path)
    except AnilError as exc:
        raise ProjectError(str(exc)) from exc


def load_project(path: str | Path) -> Project:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ProjectError(f"{path}: no such project file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectError(
            f"{path}: not a readable project file ({exc}); open a .anilproj saved by ANIL Studio"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != PROJECT_FORMAT:
        raise ProjectError(f"{path}: not an ANIL Studio project (no '{PROJECT_FORMAT}' marker)")
    if data.get("version") != PROJECT_VERSION:
        raise ProjectError(f"{path}: project version {data.get('version')!r}; this ANIL Studio reads {PROJECT_VERSION}")
    base = path.resolve().parent

    def absolute(p: str) -> str:
        return str(p if not p or os.path.isabs(p) else (base / p))

    try:
        classes = [(c["name"], [absolute(p) for p in c["images"]]) for c in data["classes"]]
        return Project(
            absolute(data["checkpoint"]),
            classes,
            float(data["fast_lr"]),
            int(data["adaptation_steps"]),
            data.get("checkpoint_sha256", ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProjectError(f"{path}: project file is incomplete ({exc})") from exc


BUNDLE_IMAGES = "images"
BUNDLE_MODEL = "model"


def _safe_name(name: str) -> str:
    """A class name as a folder name on every file system."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name).strip(" .")
    return cleaned or "class"


def bundle_project(project: Project, folder: str | Path) -> Path:
    """Write a self-contained project: `folder/NAME.anilproj` with the images and the model copied into `folder`.

    The folder is built beside its target and moved into place, so a failure leaves nothing half-written
    (and an earlier bundle at `folder` intact until the new one is complete).

    Returns:
        the project file's path.

    Raises:
        ProjectError: an image or the model cannot be read, or `folder` cannot be written.
    """
    folder = Path(folder)
    target = folder / f"{folder.name}.anilproj"
    if folder.exists() and any(folder.iterdir()) and not target.is_file():
        raise ProjectError(f"{folder}: a folder that holds other files; choose a new name for the project folder")
    staging = folder.with_name(f".{folder.name}.bundle-{os.getpid()}")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        classes = []
        for i, (name, paths) in enumerate(project.classes):
            sub = staging / BUNDLE_IMAGES / f"{i + 1:02d}-{_safe_name(name)}"
            sub.mkdir(parents=True)
            copied = []
            for j, src in enumerate(paths):
                dst = sub / f"{j + 1:04d}-{Path(src).name}"
                shutil.copy2(src, dst)
                copied.append(str(dst))  # saved relative to the project file
            classes.append((name, copied))
        checkpoint = ""
        if project.checkpoint:
            model_dir = staging / BUNDLE_MODEL
            model_dir.mkdir()
            src = Path(project.checkpoint)
            shutil.copy2(src, model_dir / src.name)
            if src.with_suffix(".md").is_file():  # the model card travels with the model
                shutil.copy2(src.with_suffix(".md"), model_dir / src.with_suffix(".md").name)
            checkpoint = str(model_dir / src.name)
        bundled = Project(checkpoint, classes, project.fast_lr, project.adaptation_steps, project.checkpoint_sha256)
        save_project(bundled, staging / target.name)
        _swap_in(staging, folder)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        name = getattr(exc, "filename", None) or folder
        raise ProjectError(os_message(exc, name, "could not build the self-contained project")) from exc
    return target


def _swap_in(staging: Path, folder: Path) -> None:
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        os.replace(folder, old)
    os.replace(staging, folder)
    shutil.rmtree(old, ignore_errors=True)


def locate_images(missing: list[str], found: list[Path]) -> dict[str, Path]:
    """Match missing image paths to files found elsewhere (e.g. the folder a user points to).

    A file matches on its name; among several with that name, the one whose parent folder has the same
    name as the missing file's wins; an ambiguous name is left unmatched rather than guessed.

    Returns:
        {missing path: found path} for the images located.
    """
    by_name: dict[str, list[Path]] = {}
    for p in found:
        by_name.setdefault(p.name, []).append(p)
    located = {}
    for m in missing:
        candidates = by_name.get(Path(m).name, [])
        if len(candidates) > 1:
            candidates = [c for c in candidates if c.parent.name == Path(m).parent.name]
        if len(candidates) == 1:
            located[m] = candidates[0]
    return located
