"""Autosave of the unsaved support set, and recovery after a session that ended without closing.

Each running app writes `autosave-PID.anilproj` (plus `autosave-PID.json`: which project file it belongs to)
a few seconds after an edit while the set is unsaved, and removes both once the set is saved, discarded or
the app closes normally. At start, files of processes that are no longer running are offered for recovery.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from anil_engine.checkpoint import atomic_write_bytes
from anil_engine.errors import AnilError
from anil_engine.project import Project, load_project, save_project


@dataclass(frozen=True)
class Autosave:
    """An autosaved support set left by an earlier session."""

    path: Path
    project: Project
    project_path: Path | None  # the project file it was an unsaved edit of, if any
    saved_at: float  # seconds since the epoch

    def describe(self) -> str:
        n_images = sum(len(p) for _, p in self.project.classes)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))
        of = f" of {self.project_path.name}" if self.project_path else ""
        return f"{len(self.project.classes)} classes, {n_images} images{of}, autosaved {when}"


def _pid_running(pid: int) -> bool | None:
    """Whether process `pid` runs; None where that cannot be told safely (not POSIX)."""
    if os.name != "posix":
        return None  # os.kill would end the process there; such files are offered after 12 hours
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AutosaveStore:
    """The autosave files of this process and the leftovers of earlier ones, in `folder`."""

    def __init__(self, folder: Path, pid: int | None = None) -> None:
        self.folder = Path(folder)
        self.pid = os.getpid() if pid is None else pid

    @property
    def path(self) -> Path:
        return self.folder / f"autosave-{self.pid}.anilproj"

    def write(self, project: Project, project_path: Path | None) -> None:
        """Atomically write this process's autosave (raises AnilError naming the file when it cannot)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        save_project(project, self.path)
        meta = {"project_path": str(project_path) if project_path else None, "saved_at": time.time()}
        atomic_write_bytes(json.dumps(meta).encode(), self.path.with_suffix(".json"))

    def remove(self, path: Path | None = None) -> None:
        path = path or self.path
        for p in (path, path.with_suffix(".json")):
            try:
                p.unlink(missing_ok=True)
            except OSError:  # e.g. the folder became unusable; at worst it is offered once more at the next start
                pass

    def leftovers(self) -> list[Autosave]:
        """Readable autosaves of processes that are not running, newest first (unreadable ones are removed)."""
        found = []
        for path in self.folder.glob("autosave-*.anilproj"):
            try:
                pid = int(path.stem.split("-", 1)[1])
            except ValueError:
                continue
            try:
                old = time.time() - path.stat().st_mtime > 12 * 3600
            except OSError:  # removed meanwhile by its own app
                continue
            running = _pid_running(pid)
            if pid == self.pid or running or (running is None and not old):
                continue
            try:
                project = load_project(path)
            except AnilError:  # unreadable: of no use to anyone
                self.remove(path)
                continue
            try:
                meta = json.loads(path.with_suffix(".json").read_text())
            except (OSError, ValueError):  # stopped between the two writes: the support set is what matters
                meta = {}
            project_path = Path(meta["project_path"]) if meta.get("project_path") else None
            found.append(Autosave(path, project, project_path, float(meta.get("saved_at", 0.0))))
        return sorted(found, key=lambda a: -a.saved_at)
