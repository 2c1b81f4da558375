"""The user's work between sessions: projects (new, open, save, save as, self-contained), missing images,
autosave and recovery, recent files, and the window title that says which project is open.

`Session` drives the window through a narrow set of its members: `support`, `settings`, `errors`,
`run_job`, `load_model`, `model_panel` (head settings), `checkpoint_path` / `checkpoint_sha256`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QStandardPaths, Qt
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from anil_engine.errors import AnilError, os_message
from anil_engine.listing import walk_images
from anil_engine.project import Project, bundle_project, load_project, locate_images, save_project
from anil_engine.registry import MODELS_DIR, bundled_models
from app.autosave import Autosave, AutosaveStore

if TYPE_CHECKING:
    from app.window import MainWindow

MAX_RECENT = 8
PROJECT_FILTER = "ANIL Studio projects (*.anilproj)"


class Session(QObject):
    """Which project is open and whether it is saved; everything that reads or writes project files."""

    def __init__(self, window: MainWindow, autosaves: AutosaveStore) -> None:
        super().__init__(window)
        self.window = window
        self.support = window.support
        self.settings = window.settings
        self.errors = window.errors
        self.keeping = False  # closing on a signal: unsaved work stays as the autosave, nothing is asked
        self.autosaves = autosaves
        self.project_path: Path | None = None
        self.missing: list[str] = []  # images of the open project that were not found
        self.recent_menu: QMenu | None = None
        self.recovery_box: QMessageBox | None = None
        self.locate_box: QMessageBox | None = None
        self.confirm_discard = self.ask_save_changes  # tests replace it

    # -- title and state -----------------------------------------------------------------------------
    @property
    def saved(self) -> bool:
        return self.support.undo_stack.isClean()

    def title(self) -> str:
        name = self.project_path.name if self.project_path else "untitled"
        return f"ANIL Studio — {name}{'' if self.saved else ' *'}"

    def update_title(self, *_args: object) -> None:
        self.window.setWindowTitle(self.title())

    def ask_save_changes(self) -> bool:
        """Save, discard or cancel unsaved changes; True when it is fine to go on."""
        answer = QMessageBox.question(
            self.window,
            "Unsaved changes",
            "The support set has unsaved changes. Save them?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def _may_replace(self) -> bool:
        return self.saved or self.confirm_discard()

    # -- what a project holds ----------------------------------------------------------------------------
    def use_project_model(self, project: Project, path: Path) -> None:
        """Load the project's model with its head settings, or apply the settings to the current one."""
        if project.checkpoint and project.checkpoint != self.window.checkpoint_path:
            if Path(project.checkpoint).is_file():
                self.window.load_model(project.checkpoint, project.fast_lr, project.adaptation_steps)
            else:
                self.window.errors.report(
                    f"{path}: its model {project.checkpoint} is missing; open that checkpoint (Ctrl+O) to adapt"
                )
        else:
            self.window.model_panel.set_head_settings(project.fast_lr, project.adaptation_steps)

    def current_project(self) -> Project:
        return Project(
            self.window.checkpoint_path or "",
            [(c.name, [str(p) for p in c.paths]) for c in self.window.support.classes],
            self.window.model_panel.fast_lr.value(),
            self.window.model_panel.steps.value(),
            self.window.checkpoint_sha256,
        )

    # -- new, save, save as ----------------------------------------------------------------------------
    def new_project(self) -> bool:
        """An empty, untitled support set (the model stays); unsaved changes are asked about first."""
        if not self._may_replace():
            return False
        self.project_path = None
        self.missing = []
        self.support.replace_all([])
        self.update_title()
        self.errors.info("new project: drop a folder of class folders on the support set to start")
        return True

    def save(self) -> bool:
        if self.project_path is None:
            return self.save_as()
        return self.save_to(self.project_path)

    def save_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Save project as", str(Path(self.last_dir()) / "project.anilproj"), PROJECT_FILTER
        )
        return bool(path) and self.save_to(Path(path))

    def save_to(self, path: Path) -> bool:
        if path.suffix != ".anilproj":
            path = path.with_name(path.name + ".anilproj")
        try:
            save_project(self.current_project(), path)
        except AnilError as exc:
            self.errors.report(str(exc))
            return False
        self._saved_as(path)
        self.errors.info(f"saved project {path}")
        return True

    def save_bundle_dialog(self) -> bool:
        folder, _ = QFileDialog.getSaveFileName(
            self.window,
            "Save a self-contained project (a new folder with the images and the model)",
            str(Path(self.last_dir()) / "project"),
            "Project folder (*)",
        )
        return bool(folder) and self.save_bundle(Path(folder))

    def save_bundle(self, folder: Path) -> bool:
        """Copy the images and the model into `folder` (in a job) and make its project the open one."""
        project = self.current_project()
        n = sum(len(p) for _, p in project.classes)
        self.errors.info(f"copying {n} images and the model into {folder}…")
        self.window.run_job(
            "save self-contained project",
            bundle_project,
            project,
            folder,
            on_done=lambda path: self._bundled(Path(path), n),
        )
        return True

    def _bundled(self, path: Path, n_images: int) -> None:
        self.open_project(path, ask=False)
        self.errors.info(
            f"saved a self-contained project in {path.parent} ({n_images} images and the model copied in); "
            "move or copy the whole folder"
        )

    def _saved_as(self, path: Path) -> None:
        self.project_path = path
        self.support.undo_stack.setClean()
        self.remember_recent(str(path))
        self.update_title()

    # -- open ------------------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open project", self.last_dir(), PROJECT_FILTER)
        if path:
            self.open_project(Path(path))

    def open_project(self, path: Path, ask: bool = True) -> bool:
        if ask and not self._may_replace():
            return False
        try:
            project = load_project(path)
        except AnilError as exc:
            self.errors.report(str(exc))
            return False
        project = self._find_bundled_model(project)
        self.project_path = path
        self.support.replace_all([(n, [Path(p) for p in ps]) for n, ps in project.classes])
        self.remember_recent(str(path))
        self.update_title()
        self.use_project_model(project, path)
        self.missing = [p for _, ps in project.classes for p in ps if not Path(p).is_file()]
        self.window.support_view.mark_unreadable(set(self.missing))  # the cards count what is there
        if self.missing:
            self._offer_locate()
        return True

    def _find_bundled_model(self, project: Project) -> Project:
        """A project saved with a bundled model in another copy of ANIL Studio uses this copy's model."""
        if not project.checkpoint or Path(project.checkpoint).is_file():
            return project
        same = [m for m in bundled_models() if m.path.name == Path(project.checkpoint).name]
        if not same:
            return project
        self.errors.info(f"the project's model {Path(project.checkpoint).name} is the bundled one at {same[0].path}")
        return Project(str(same[0].path), project.classes, project.fast_lr, project.adaptation_steps, "")

    # -- missing images ----------------------------------------------------------------------------------
    def _offer_locate(self) -> None:
        text = (
            f"{len(self.missing)} image(s) of the project were not found (e.g. {self.missing[0]}). They are kept in "
            "the project but left out of the adaptation. Locate them in a folder?"
        )
        self.errors.warn(
            f"{len(self.missing)} image(s) of the project are missing, e.g. {self.missing[0]}; "
            "File ▸ Locate missing images… finds them in a folder you choose"
        )
        box = QMessageBox(QMessageBox.Icon.Warning, "Missing images", text, parent=self.window)
        locate = box.addButton("Locate images…", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.buttonClicked.connect(lambda b: self.locate_dialog() if b is locate else None)
        self.locate_box = box
        if self.errors.show_dialogs:
            box.show()

    def locate_dialog(self) -> None:
        if not self.missing:
            self.errors.info("no missing images: every image of the project was found")
            return
        folder = QFileDialog.getExistingDirectory(self.window, "Folder that holds the missing images", self.last_dir())
        if folder:
            self.locate_in(Path(folder))

    def locate_in(self, folder: Path) -> None:
        """Find the missing images below `folder` (walked in a job) and point the project at them (undoable)."""
        missing = list(self.missing)
        self.window.run_job(
            "locate images",
            lambda: locate_images(missing, walk_images(folder).images),
            on_done=lambda located: self._located(located, folder),
        )

    def _located(self, located: dict[str, Path], folder: Path) -> None:
        if not located:
            self.errors.warn(f"{folder}: none of the {len(self.missing)} missing images is in it (matched by name)")
            return
        classes = [(c.name, [located.get(str(p), p) for p in c.paths]) for c in self.support.classes]
        self.support.restore(classes, f"locate {len(located)} images")
        self.missing = [m for m in self.missing if m not in located]
        left = f"; {len(self.missing)} still missing, e.g. {self.missing[0]}" if self.missing else ""
        self.errors.info(f"located {len(located)} image(s) in {folder}{left}; save the project to keep them")

    # -- autosave and recovery -----------------------------------------------------------------------------
    def autosave(self) -> None:
        """Write the unsaved support set where a crash cannot take it (removed once saved or discarded)."""
        if self.saved:
            self.autosaves.remove()
            return
        # The write (two fsyncs) runs in a worker: on a busy disk it took ~0.2 s of the event loop.
        self.window.run_job(
            "autosave",
            self.autosaves.write,
            self.current_project(),
            self.project_path,
            on_done=lambda _: self.autosaves.remove() if self.saved else None,
            on_failed=lambda exc: self.errors.warn(
                f"autosave failed: {exc}; save the project (Ctrl+S) to keep your work"
            ),
        )

    def offer_recovery(self) -> None:
        """If an earlier session ended with unsaved work, offer to restore it (non-modal)."""
        found = self.autosaves.leftovers()
        self.window.recover_action.setEnabled(bool(found))
        if not found:
            return
        newest = found[0]
        self.errors.info(f"unsaved work from a session that did not close: {newest.describe()}")
        box = QMessageBox(QMessageBox.Icon.Question, "Recover unsaved work", "", parent=self.window)
        box.setText(
            f"ANIL Studio did not close normally last time. Restore its unsaved support set?\n\n{newest.describe()}"
        )
        restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.buttonClicked.connect(
            lambda b: self.recover(newest) if b is restore else self.discard_recovery(newest) if b is discard else None
        )
        self.recovery_box = box
        if self.errors.show_dialogs:
            box.show()

    def close_keeping_work(self) -> Path | None:
        """Close the window without asking (Ctrl-C in the app's terminal, SIGTERM: `app.main.CloseOnSignals`; no one
        may be there to answer), an unsaved support set kept as the autosave the next start offers; jobs stop as on
        any close (training saves its resumable state). Returns that autosave, if any. Where it cannot be written
        (said why), the window asks as on any close rather than lose the set."""
        self.keeping = not self.saved and self._write_autosave_now()
        self.window.close()
        return self.autosaves.path if self.keeping else None

    def closed(self) -> None:
        """The window closed, its jobs done: the autosave goes (saved or discarded by the user), or, when kept, is
        written again (a running autosave job may have written an older support set)."""
        self.window.autosave_timer.stop()
        if self.keeping:
            self._write_autosave_now()
        else:
            self.autosaves.remove()

    def _write_autosave_now(self) -> bool:
        """This process's autosave, written in the GUI thread (the app is closing: no job would finish)."""
        self.window.autosave_timer.stop()
        try:
            self.autosaves.write(self.current_project(), self.project_path)
        except (AnilError, OSError) as exc:
            why = os_message(exc) if isinstance(exc, OSError) else str(exc)
            self.errors.warn(f"{why}; the unsaved support set could not be kept")
            return False
        return True

    def recover(self, autosave: Autosave) -> None:
        """Restore an autosaved support set as one undoable, unsaved edit."""
        if not self._may_replace():
            return
        self.support.restore([(n, [Path(p) for p in ps]) for n, ps in autosave.project.classes])
        self.project_path = autosave.project_path
        self.update_title()
        self.use_project_model(autosave.project, autosave.path)
        self.autosaves.remove(autosave.path)
        self.autosave()
        self.window.recover_action.setEnabled(bool(self.autosaves.leftovers()))
        self.errors.info(f"restored unsaved work: {autosave.describe()}; save it with Ctrl+S")

    def discard_recovery(self, autosave: Autosave) -> None:
        self.autosaves.remove(autosave.path)
        self.window.recover_action.setEnabled(bool(self.autosaves.leftovers()))
        self.errors.info(f"discarded unsaved work: {autosave.describe()}")

    def restore_geometry(self) -> None:
        """The window's last size, place and docks; the first time, a size that fits the screen."""
        window = self.window
        geometry = self.settings.value("geometry")
        if geometry is not None:
            window.restoreGeometry(geometry)
        else:
            width, height = 1400, 860
            screen = window.screen()
            if screen is not None:  # never open wider or taller than the screen (e.g. 1280x800)
                available = screen.availableGeometry()
                width, height = min(width, available.width()), min(height, available.height())
            window.resize(width, height)
        state = self.settings.value("window_state")
        if state is not None:
            window.restoreState(state)

    def save_geometry(self) -> None:
        self.settings.setValue("geometry", self.window.saveGeometry())
        self.settings.setValue("window_state", self.window.saveState())

    # -- recent files and folders ----------------------------------------------------------------------------
    def last_dir(self) -> str:
        """Where file dialogs open: the folder last chosen, else the user's Pictures folder, else home."""
        pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
        default = pictures if pictures and Path(pictures).is_dir() else str(Path.home())
        return str(self.settings.value("last_dir", default))

    def remember_dir(self, path: Path) -> None:
        self.settings.setValue("last_dir", str(path))

    def remember_recent(self, path: str) -> None:
        recent = [p for p in (self.settings.value("recent", []) or []) if p != path]
        self.settings.setValue("recent", [path, *recent][:MAX_RECENT])
        if Path(path).resolve().parent != MODELS_DIR.resolve():  # the bundled models' folder is not the user's
            self.remember_dir(Path(path).parent)
        self.rebuild_recent()

    def rebuild_recent(self) -> None:
        if self.recent_menu is None:
            return
        self.recent_menu.clear()
        for p in self.settings.value("recent", []) or []:
            a = self.recent_menu.addAction(p)
            a.triggered.connect(
                lambda _=False, p=p: (
                    self.open_project(Path(p)) if p.endswith(".anilproj") else self.window.load_model(p)
                )
            )
