"""The one handler of drops: a drop is read into a plan in a job (`app.drops.plan_drop`), then carried out here.

Pasted and dragged image data becomes a PNG file first; remote addresses get a message. Checkpoints open
wherever they are dropped, projects only on the support set, zip archives are unpacked once and then
count as the folder they hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QImage

from app.drops import DropPlan, plan_drop
from app.jobs import CANCELLED, status_while
from app.widgets import RemoteUrl

if TYPE_CHECKING:
    from app.window import MainWindow


class DropHandler(QObject):
    """Carries out drops on the window's targets: "support", "card", "classify", "evaluate"."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window

    def drop(self, items: list, target: str, card: str | None = None, new_class: str | None = None) -> None:
        """Read a drop in a job (it walks folders), then carry out its plan."""
        paths = self._as_files(items)
        if paths:
            job = self.window.run_job(
                "read drop", plan_drop, paths, target, card, on_done=lambda plan: self.carry_out(plan, new_class)
            )
            status_while(self.window.statusBar(), job, "Reading the dropped files…")

    def _as_files(self, items: list) -> list[Path]:
        """Pasted or dragged image data becomes a PNG file; remote addresses are reported."""
        paths = []
        for item in items:
            if isinstance(item, QImage):
                saved = self.window.pickers.save_pasted(item)
                if saved is not None:
                    paths.append(saved)
            elif isinstance(item, RemoteUrl):
                self.window.errors.warn(
                    f"{item.url}: not a file on this computer; save it first, or copy the image and paste it (Ctrl+V)"
                )
            else:
                paths.append(Path(item))
        return paths

    def carry_out(self, plan: DropPlan, new_class: str | None = None) -> None:
        """The one handler of drops: open, unpack, add or classify what the plan says; name what it cannot."""
        for m in plan.messages:
            self.window.errors.warn(m)
        if plan.checkpoints:
            if len(plan.checkpoints) > 1:
                self.window.errors.warn(
                    f"{len(plan.checkpoints)} checkpoints dropped; opening the last, {plan.checkpoints[-1]}"
                )
            self.window.load_model(str(plan.checkpoints[-1]))
        if plan.projects:
            self.window.session.open_project(plan.projects[0])
        for archive in plan.zips:
            self._unpack(archive, plan, new_class)
        if plan.target == "support":
            self._add_to_support(plan, new_class)
        elif plan.target == "card" and plan.images:
            self.window.support.add_images(plan.card or "", plan.images)
        elif plan.target == "classify":
            self.window.classify_images(plan.images)
        elif plan.target == "evaluate":
            self.window.evaluate_folders(plan.label_folders, expecting=bool(plan.zips))

    def _unpack(self, archive: Path, plan: DropPlan, new_class: str | None) -> None:
        from anil_engine.archives import unpack_images

        def unpacked(folder: Path | object) -> None:
            if folder is not CANCELLED:
                self.drop([folder], plan.target, plan.card, new_class)

        job = self.window.run_job("unpack", unpack_images, archive, self.window.data_dir / "unpacked", on_done=unpacked)
        status_while(self.window.statusBar(), job, f"Unpacking {archive.name}…")

    def _add_to_support(self, plan: DropPlan, new_class: str | None) -> None:
        """Folders of class folders -> classes; a folder of images -> one class; loose images -> a new class."""
        if not (plan.folders or plan.images):
            return
        self.window.support.undo_stack.beginMacro("drop")
        try:
            for contents in plan.folders:
                if contents.classes:
                    self.window.support.add_class_folders(contents.classes, contents.folder.name)
                elif contents.images:
                    self.window.support.add_class(contents.folder.name, contents.images)
            if plan.images:
                self.window.support.add_class(self.window.support.unique_name(new_class or "class"), plan.images)
        finally:
            self.window.support.undo_stack.endMacro()
