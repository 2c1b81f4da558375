"""A drop becomes a plan; the window carries the plan out in one place.

`plan_drop` walks the file system, so the window runs it in a job, never on the GUI thread. It knows
nothing of Qt: pasted image data and remote addresses are dealt with before (they are not files yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from anil_engine.listing import FolderContents, expand_inputs, missing_message, read_folder

TARGETS = ("support", "card", "classify", "evaluate")
CHECKPOINT_SUFFIX = ".pt"
PROJECT_SUFFIX = ".anilproj"


@dataclass
class DropPlan:
    """What a drop on `target` asks for. Every dropped path ends in one field or in `messages`."""

    target: str
    card: str | None = None  # the class card dropped on (target "card")
    checkpoints: list[Path] = field(default_factory=list)
    projects: list[Path] = field(default_factory=list)
    zips: list[Path] = field(default_factory=list)
    folders: list[FolderContents] = field(default_factory=list)  # target "support": classes or one class each
    label_folders: list[Path] = field(default_factory=list)  # target "evaluate": folders of class folders
    images: list[Path] = field(default_factory=list)  # loose images, and folders' images for "card"/"classify"
    messages: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.checkpoints or self.projects or self.zips or self.folders or self.label_folders or self.images)


def _is_project(path: Path) -> bool:
    # A self-contained project is a folder named *.anilproj; a plain project a file.
    return path.suffix == PROJECT_SUFFIX and (path.is_file() or (path / "project.json").is_file())


def plan_drop(paths: list[Path], target: str, card: str | None = None) -> DropPlan:
    """Sort dropped paths into what to open, unpack, add or classify (walks folders: call it in a worker)."""
    if target not in TARGETS:
        raise ValueError(f"drop target {target!r}: expected one of {TARGETS}")
    plan = DropPlan(target, card)
    rest = []
    for p in map(Path, paths):
        if p.suffix == CHECKPOINT_SUFFIX and p.is_file():
            plan.checkpoints.append(p)
        elif _is_project(p):
            if target == "support":
                plan.projects.append(p)
            else:
                plan.messages.append(f"{p}: a project; drop it on the support set (or File ▸ Open project) to open it")
        elif p.suffix.lower() == ".zip" and p.is_file():
            plan.zips.append(p)
        elif not p.exists():
            plan.messages.append(missing_message(p))
        else:
            rest.append(p)
    folders = [p for p in rest if p.is_dir()]
    files = [p for p in rest if not p.is_dir()]
    if target == "support":
        plan.folders = [read_folder(f) for f in folders]
        for contents in plan.folders:
            plan.messages.extend(contents.messages)
    elif target == "evaluate":
        plan.label_folders = folders
        plan.messages.extend(f"{p}: not a folder; drop a folder of class folders to evaluate" for p in files)
        files = []
    else:
        files = rest  # folders expand to their images
    listing = expand_inputs(files)
    plan.images, plan.messages = listing.images, plan.messages + listing.messages
    return plan
