"""The main window: a shell that wires the panels, runs model work in jobs and carries out drops."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QDockWidget, QInputDialog, QMainWindow, QSplitter, QTabWidget

from anil_engine.errors import NotEnoughImages
from anil_engine.loading import LoadedModel, loading_steps
from anil_engine.registry import bundled_models
from app import gc_guard
from app.actions import build_menus
from app.autosave import AutosaveStore
from app.camera import CameraControl
from app.dialogs.help import HelpDialogs
from app.drop_handler import DropHandler
from app.errors import ErrorChannel
from app.exports import Exports
from app.jobs import CANCELLED, IMAGE_JOBS, Job, start_job
from app.panels.classify_panel import ClassifyPanel
from app.panels.evaluate_panel import EvaluatePanel
from app.panels.model_panel import ModelPanel
from app.panels.support_panel import SupportSetView
from app.pickers import FilePickers
from app.session import Session
from app.support_model import SupportSet
from app.widgets import JobProgress, accept_as_copy, accepts_drop, dropped_paths

ADAPT_DELAY_MS = 250
AUTOSAVE_DELAY_MS = 3000
PHOTO_MODEL = "caltech101-effnet-anil"


class MainWindow(QMainWindow):
    """ANIL Studio's window. Model work runs in `Job`s; panels only show state and emit what the user asks."""

    model_loaded = Signal(str)
    adapted = Signal(object)
    classified = Signal(list)
    evaluated = Signal(object)
    exported = Signal(object)

    def __init__(self, settings: QSettings | None = None, checkpoint: str | None = None) -> None:
        super().__init__()
        gc_guard.acquire()  # cyclic garbage collection on this (GUI) thread only, never inside a job
        self._gc_acquired = True
        self.settings = settings or QSettings("ANIL Studio", "ANIL Studio")
        self.setAcceptDrops(True)
        self.errors = ErrorChannel(self)
        self.support = SupportSet()
        self.classifier = None
        self.checkpoint_path: str | None = None
        self.checkpoint_sha256 = ""
        self.checkpoint_info: dict[str, Any] = {}  # the current checkpoint's data set, trained task, preprocessing
        self.jobs: list[Job] = []
        self._adapt_pending = False
        self._adapt_job: Job | None = None
        self._domain_warned: str | None = None
        self._closed = False
        self.train_dialog = None
        self.eval_dialog = None
        # Pasted image data and unpacked archives are written here, so results and projects refer to files.
        data_dir = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        self.data_dir = Path(data_dir or Path.home() / ".local/share/ANIL Studio")
        self.paste_dir = self.data_dir / "pasted"
        self.autosaves = AutosaveStore(self.data_dir / "autosave")
        self.session = Session(self, self.autosaves)
        self.pickers = FilePickers(self)
        self.drops = DropHandler(self)
        self.exports = Exports(self)
        self.help = HelpDialogs(self)
        self._build_panels()
        self.camera = CameraControl(self)  # the Live camera tab and the cards' Camera buttons
        self.actions = build_menus(self)
        self.session.recent_menu = self.actions["recent"]
        self.session.rebuild_recent()
        self.recover_action = self.actions["recover"]
        self.recover_action.setEnabled(False)
        self.export_classifier_action = self.actions["export-classifier"]
        self._set_export_enabled(False)
        self.job_progress = JobProgress()
        self.job_progress.cancel_requested.connect(lambda job: job.cancel())
        self.statusBar().addPermanentWidget(self.job_progress)
        self._wire_timers()
        QTimer.singleShot(0, self.session.offer_recovery)
        self.session.restore_geometry()
        self.session.update_title()
        combo = self.model_panel.model_combo
        first = checkpoint or (combo.itemData(0) if combo.count() else None)
        if first:
            self.load_model(str(first))
        else:
            self.errors.warn("no bundled model found in models/; open a checkpoint (Ctrl+O)")

    # ---------------------------------------------------------------------------------- building
    def _build_panels(self) -> None:
        self.model_panel = ModelPanel([(m.name, str(m.path)) for m in bundled_models()])
        self.model_panel.model_chosen.connect(self.load_model)
        self.model_panel.open_requested.connect(self.pickers.open_checkpoint_dialog)
        self.model_panel.device_changed.connect(
            lambda _d: self.checkpoint_path and self.load_model(self.checkpoint_path)
        )
        self.model_panel.head_settings_changed.connect(self._head_settings_changed)
        self._dock("Model", "model-dock", self.model_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        messages = self._dock("Messages", "messages-dock", self.errors.log, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.resizeDocks([messages], [110], Qt.Orientation.Vertical)

        self.support_view = SupportSetView(self.support)
        self.support_view.dropped.connect(lambda items: self.drop(items, "support"))
        self.support_view.card_drop.connect(lambda name, items: self.drop(items, "card", card=name))
        self.support_view.card_add_requested.connect(self.pickers.add_images_to_card_dialog)
        self.support_view.refused.connect(self.errors.warn)
        self.support_view.add_button.clicked.connect(self.add_empty_class)
        self.support_view.add_images_button.clicked.connect(self.pickers.add_support_images_dialog)
        self.support_view.add_folder_button.clicked.connect(self.pickers.add_support_folder_dialog)

        self.classify_panel = ClassifyPanel(self.support)
        self.classify_panel.dropped.connect(self.classify_paths)
        self.classify_panel.classify_requested.connect(self.pickers.classify_images_dialog)
        self.classify_panel.export_requested.connect(self.exports.export_csv_dialog)
        self.classify_panel.sort_requested.connect(self.exports.sort_into_folders_dialog)
        self.classify_panel.add_to_class.connect(self.add_results_to_class)
        self.evaluate_panel = EvaluatePanel()
        self.evaluate_panel.dropped.connect(self.evaluate_paths)
        self.evaluate_panel.leave_one_out_requested.connect(self.leave_one_out)
        self.evaluate_panel.folder_requested.connect(self.pickers.evaluate_folder_dialog)
        self.evaluate_panel.mistakes_requested.connect(self.show_mistakes)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.classify_panel, "Classify")
        self.tabs.addTab(self.evaluate_panel, "Evaluate")
        splitter = QSplitter()
        splitter.addWidget(self.support_view)
        splitter.addWidget(self.tabs)
        splitter.setSizes([600, 500])
        self.setCentralWidget(splitter)

    def _dock(self, title: str, name: str, widget: Any, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _wire_timers(self) -> None:
        self.adapt_timer = QTimer(self, singleShot=True, interval=ADAPT_DELAY_MS)
        self.adapt_timer.timeout.connect(self.adapt_now)
        self.support.changed.connect(self.adapt_timer.start)
        self.support.changed.connect(self._support_changed)
        self.support.undo_stack.cleanChanged.connect(self.session.update_title)
        self.autosave_timer = QTimer(self, singleShot=True, interval=AUTOSAVE_DELAY_MS)
        self.autosave_timer.timeout.connect(self.session.autosave)
        self.support.changed.connect(self.autosave_timer.start)
        self.support.changed.connect(lambda *_: self.evaluate_panel.mark_stale("the support set changed"))
        self.model_loaded.connect(lambda _path: self.evaluate_panel.mark_stale("another model was loaded"))
        self.support.undo_stack.cleanChanged.connect(self._clean_changed)

    # ---------------------------------------------------------------------------------- jobs
    def run_job(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_failed: Callable[[BaseException], None] | None = None,
    ) -> Job:
        """Start `fn(*args)` in a job the window tracks (and waits for at exit); failures reach Messages."""
        job = start_job(
            name, fn, *args, on_done=on_done, on_progress=on_progress, on_failed=on_failed or self.errors.exception
        )
        job.finished.connect(lambda: self.jobs.remove(job) if job in self.jobs else None)
        if name in IMAGE_JOBS:
            text = IMAGE_JOBS[name]
            job.progress.connect(lambda item: self.job_progress.update_job(job, text, item.done, item.total))
            job.finished.connect(lambda: self.job_progress.job_finished(job))
        self.jobs.append(job)
        return job

    def wait_for_jobs(self, timeout_ms: int = 60000) -> bool:
        deadline = time.monotonic() + timeout_ms / 1000
        while self.jobs and time.monotonic() < deadline:
            self.jobs[0].wait(max(1, int((deadline - time.monotonic()) * 1000)))
        return not self.jobs

    # ---------------------------------------------------------------------------------- model
    def load_model(self, path: str, fast_lr: float | None = None, steps: int | None = None) -> Job:
        self.model_panel.show_loading(path)
        current = self.checkpoint_path
        job = self.run_job("load model", loading_steps, str(path), self.model_panel.device, fast_lr, steps,
                           on_done=self._model_loaded, on_progress=self.model_panel.status.setText)  # fmt: skip
        job.failed.connect(lambda _exc: self.model_panel.show_failed(path, current))
        return job

    def _model_loaded(self, loaded: LoadedModel) -> None:
        for note in loaded.notes:
            self.errors.warn(note)
        self.classifier = loaded.classifier
        self._set_export_enabled(False)  # until its head is adapted
        self.checkpoint_path, self.checkpoint_sha256 = loaded.path, loaded.sha256
        self.checkpoint_info = {k: loaded.info.get(k, {}) for k in ("dataset", "trained_task", "preprocessing")}
        if self.eval_dialog is not None:
            self.eval_dialog.set_checkpoint(loaded.path, self.checkpoint_info)
        self.model_panel.show_model(loaded)
        self.session.remember_recent(loaded.path)
        gc_guard.freeze()  # torch and the model are in memory now: keep them out of every later collection
        self.model_loaded.emit(loaded.path)
        self.adapt_now()

    def _head_settings_changed(self) -> None:
        if self.classifier is not None:
            self.classifier.fast_lr = self.model_panel.fast_lr.value()
            self.classifier.steps = self.model_panel.steps.value()
            self.adapt_timer.start()

    # ---------------------------------------------------------------------------------- drops
    def drop(self, items: list, target: str, card: str | None = None, new_class: str | None = None) -> None:
        """Every drop, paste and file-dialog choice comes here (see `app.drop_handler`)."""
        self.drops.drop(items, target, card, new_class)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # Qt override
        if accepts_drop(event.mimeData()):
            accept_as_copy(event)

    def dropEvent(self, event: QDropEvent) -> None:  # Qt override
        items = dropped_paths(event)
        accept_as_copy(event)
        self.drop(items, "support")

    def add_empty_class(self) -> None:
        name = self.support.add_class("class")  # first: the add rebuilds the cards
        self.support_view.cards[name].name_edit.setFocus()  # type its name at once
        self.support_view.cards[name].name_edit.selectAll()

    def stop_image_job(self) -> None:
        """Stop the adaptation, classification or evaluation shown in the status bar."""
        if self.job_progress.job is not None:
            self.job_progress.job.cancel()

    # ---------------------------------------------------------------------------------- adapt
    def adapt_now(self) -> None:
        self.adapt_timer.stop()  # a pending delayed request: this adaptation reads the same, current support set
        if self.classifier is None:
            return
        support = self.support.as_support()
        if len(support) < 2:
            self.support_view.status.setText("Add at least 2 classes with images to adapt the head.")
            self._drop_stale_head()
            return
        if self._adapt_job is not None and self._adapt_job.running:
            # Stop the running adaptation at its next batch (its features stay cached) and start again after it.
            self._adapt_pending = True
            self._adapt_job.cancel()
            return
        self.support_view.status.setText("Adapting…")
        self._adapt_job = self.run_job(
            "adapt", self.classifier.iter_adapt, support, on_done=self._adapted, on_failed=self._adapt_failed
        )
        self._adapt_job.finished.connect(self._adapt_finished)

    def _check_domain(self) -> None:
        """Warn (once per model) when a grayscale model is given colour photos: it sees them as grey drawings."""
        from anil_engine.images import mostly_colour

        if self.classifier is None or self.classifier.model.preprocessing.channels != 1:
            return
        if self._domain_warned == self.checkpoint_path:
            return
        if mostly_colour([p for _, ps in self.support.as_support() for p in ps]):
            self._domain_warned = self.checkpoint_path
            pre = self.classifier.model.preprocessing
            self.errors.warn(
                f"the current model ({Path(self.checkpoint_path or '').name}) was trained on {pre.size}x{pre.size} "
                "grayscale images (e.g. handwritten characters); your support images are colour photos. For photos, "
                f"choose {PHOTO_MODEL} in the model list"
            )

    def _adapt_failed(self, exc: BaseException) -> None:
        """Too few readable images (files missing or broken) is a state to show, not an error box."""
        if not isinstance(exc, NotEnoughImages):
            self.errors.exception(exc)
            return
        self._drop_stale_head()
        self.support_view.status.setText(
            "Not adapted: fewer than 2 classes have a readable image (see Messages; File ▸ Locate missing images… "
            "finds moved ones)."
        )
        self.errors.warn(str(exc))

    def _support_changed(self) -> None:
        # Fewer than 2 classes: no classifier from this moment on, not after the adaptation delay.
        if len(self.support.as_support()) < 2:
            self._drop_stale_head()

    def _drop_stale_head(self) -> None:
        """With fewer than 2 classes there is no classifier: forget the head, clear its results, disable export."""
        if self.classifier is None or not self.classifier.is_adapted:
            return
        if self._adapt_job is not None and self._adapt_job.running:
            self._adapt_job.cancel()
        self.classifier.clear_head()
        self._set_export_enabled(False)
        if self.classify_panel.predictions:
            self.classify_panel.clear()
            self.errors.info("results cleared: with fewer than 2 classes there is no classifier")

    def _set_export_enabled(self, enabled: bool) -> None:
        self.export_classifier_action.setEnabled(enabled)
        self.export_classifier_action.setStatusTip(
            "Export the adapted head and the trunk as one ONNX classifier"
            if enabled
            else "Adapt the head first: add at least 2 classes with images"
        )

    def _adapt_finished(self) -> None:
        if self._adapt_pending:
            self._adapt_pending = False
            self.adapt_now()

    def _adapted(self, result: Any) -> None:
        if result is CANCELLED:
            if not self._adapt_pending:
                self.support_view.status.setText(
                    "Adaptation stopped; the head is still the previous one. Model ▸ Adapt now (Ctrl+R) adapts it."
                )
            return
        for m in result.skipped:
            self.errors.warn(m)
        self.support_view.mark_unreadable(set(result.unreadable))
        self._check_domain()
        if len(self.support.as_support()) < 2:  # the set shrank while this ran: its head is already stale
            self._drop_stale_head()
            return
        self._set_export_enabled(True)
        self.support_view.status.setText(
            f"Learned {len(result.class_names)} classes from {result.n_images} images in "
            f"{1000 * result.seconds:.0f} ms. Drop photos on Classify to sort them."
        )
        self.support_view.status.setToolTip(
            f"{result.new_images} new images went through the trunk; head steps {1000 * result.head_seconds:.1f} ms; "
            f"head start: {result.head_init}"
        )
        self.adapted.emit(result)
        if self.classify_panel.predictions:  # the results on screen follow the new head
            self.classify_images([Path(p.path) for p in self.classify_panel.predictions], replace=True)

    # ---------------------------------------------------------------------------------- classify
    def classify_paths(self, items: list) -> None:
        """Classify dropped, pasted or chosen images and folders."""
        self.tabs.setCurrentWidget(self.classify_panel)
        self.drop(items, "classify")

    def classify_images(self, images: list[Path], replace: bool = False) -> None:
        if not images:
            return
        if self.classifier is None or not self.classifier.is_adapted:
            self.errors.warn("add at least 2 classes with images first; then drop images to classify")
            return
        self.run_job("classify", self.classifier.iter_predict, images, on_done=lambda r: self._classified(r, replace))

    def _classified(self, result: Any, replace: bool) -> None:
        if result is CANCELLED:
            self.errors.info("classification stopped; no results added")
            return
        predictions, skipped = result
        for m in skipped:
            self.errors.warn(m)
        self.classify_panel.show_predictions(predictions, replace)
        self.classified.emit(predictions)

    def add_results_to_class(self, paths: list[Path], name: str | None) -> None:
        """Add classified images to a support class (None: a new class); the head then re-adapts."""
        if name is None:
            name, ok = QInputDialog.getText(self, "New class", "Name of the new class:")
            if not ok or not name.strip():
                return
            self.support.add_class(self.support.unique_name(name.strip()), paths)
            return
        added = self.support.add_images(name, paths)
        if added < len(paths):
            self.errors.info(f"{len(paths) - added} of the images were already in class {name}")

    # ---------------------------------------------------------------------------------- evaluate
    def leave_one_out(self) -> None:
        if self.classifier is None or not self.classifier.is_adapted:
            self.errors.warn("adapt first: add at least 2 classes with 2 or more images each")
            return
        self.tabs.setCurrentWidget(self.evaluate_panel)
        self.evaluate_panel.show_running("Running leave-one-out…")
        self.run_job(
            "leave-one-out",
            self.classifier.iter_leave_one_out,
            on_done=lambda r: self._show_report(r, "Leave-one-out on the support set"),
        )

    def evaluate_paths(self, items: list) -> None:
        """Evaluate on a dropped or chosen labelled folder (or a zip of one)."""
        self.tabs.setCurrentWidget(self.evaluate_panel)
        self.drop(items, "evaluate")

    def evaluate_folders(self, folders: list[Path], expecting: bool) -> None:
        if expecting and not folders:  # an archive is being unpacked: its folder comes back here
            return
        if self.classifier is None or not self.classifier.is_adapted or not folders:
            self.errors.warn("drop a folder of class folders named like the support classes (after adapting)")
            return
        if len(folders) > 1:
            self.errors.warn(f"{len(folders)} folders dropped; evaluating the first, {folders[0]}")
        self.evaluate_panel.show_running(f"Evaluating on {folders[0]}…")
        self.run_job(
            "evaluate folder",
            self.classifier.iter_evaluate_folder,
            folders[0],
            on_done=lambda r: self._show_report(r, f"Labelled folder {folders[0].name}"),
        )

    def show_mistakes(self, mistakes: list) -> None:
        """Replace the Classify results with a labelled-folder evaluation's mistakes."""
        if not mistakes:
            return
        self.tabs.setCurrentWidget(self.classify_panel)
        self.classify_panel.show_least_confident([p for p, _ in mistakes])
        truths = ", ".join(f"{Path(p.path).name}: {t}" for p, t in mistakes[:3])
        more = "…" if len(mistakes) > 3 else ""
        self.errors.info(f"Classify lists {len(mistakes)} mistakes (true class: {truths}{more})")

    def _show_report(self, report: Any, title: str) -> None:
        if report is CANCELLED:
            self.evaluate_panel.show_stopped(title)
            return
        for m in report.skipped:
            self.errors.warn(m)
        model = Path(self.checkpoint_path).name if self.checkpoint_path else "?"
        self.evaluate_panel.show_report(report, title, model)
        self.evaluated.emit(report)

    # ---------------------------------------------------------------------------------- dialogs
    def show_train_dialog(self) -> None:
        from app.dialogs.train_dialog import TrainDialog

        if self.train_dialog is None:
            out = str(Path.home() / "anil-runs" / "run1")
            self.train_dialog = TrainDialog(self, default_out=out, settings=self.settings)
            self.train_dialog.error.connect(self.errors.exception)
            self.train_dialog.model_ready.connect(self.load_model)
        self.train_dialog.show()
        self.train_dialog.raise_()

    def show_eval_dialog(self) -> None:
        from app.dialogs.eval_dialog import EvalDialog

        if self.eval_dialog is None:
            self.eval_dialog = EvalDialog(self, settings=self.settings)
            self.eval_dialog.error.connect(self.errors.exception)
            if self.checkpoint_path:
                self.eval_dialog.set_checkpoint(self.checkpoint_path, self.checkpoint_info)
        self.eval_dialog.show()
        self.eval_dialog.raise_()

    # ---------------------------------------------------------------------------------- window state
    def _clean_changed(self, clean: bool) -> None:
        if clean:
            self.autosave_timer.stop()
            self.autosaves.remove()

    def closeEvent(self, event: Any) -> None:  # Qt override
        if not self.session.keeping and not self.session.saved and not self.session.confirm_discard():
            event.ignore()
            return
        self.adapt_timer.stop()  # a closed window starts no more work
        for dialog in (self.train_dialog, self.eval_dialog):
            if dialog is not None:
                dialog.shutdown()
        self.camera.close()
        for job in self.jobs:
            if job.name in IMAGE_JOBS:  # nothing to save: stop at the next batch instead of finishing
                job.cancel()
        self.wait_for_jobs()
        self.session.closed()
        if not self._closed:  # pytest-qt, and some window managers, close a window twice
            self.support.undo_stack.cleanChanged.disconnect(self.session.update_title)
            self.support.undo_stack.cleanChanged.disconnect(self._clean_changed)  # its destructor says "clean"
            self._closed = True
        self.session.save_geometry()
        if self._gc_acquired:
            self._gc_acquired = False
            gc_guard.release()
        event.accept()
