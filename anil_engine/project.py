"""Project files (`.anilproj`, JSON): the support set, the adapted head and the model used.

Image paths are stored relative to the project file when they lie below its
folder, absolute otherwise. Saved atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anil_engine.checkpoint import atomic_write_bytes
from anil_engine.errors import AnilError

PROJECT_FORMAT = "anil-studio-project"
PROJECT_VERSION = 1


class ProjectError(AnilError):
    """A project file is missing, corrupt or of another version."""


@dataclass
class Project:
    """What a user's work consists of."""

    checkpoint: str  # path of the checkpoint file
    classes: list[tuple[str, list[str]]] = field(default_factory=list)  # (name, absolute image paths)
    head: dict[str, Any] | None = None  # {"class_names", "weight", "bias"} as lists
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
        "head": project.head,
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
            data.get("head"),
            float(data["fast_lr"]),
            int(data["adaptation_steps"]),
            data.get("checkpoint_sha256", ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProjectError(f"{path}: project file is incomplete ({exc})") from exc
