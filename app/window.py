"""The main window: model, support set, classification, evaluation, meta-training, projects."""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QSortFilterProxyModel, QStandardPaths, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
    QPixmap,
    QShortcut,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from anil_engine.errors import AnilError
from anil_engine.images import IMAGE_SUFFIXES
from anil_engine.registry import MODELS_DIR, bundled_models
from app import gc_guard
from app.autosave import Autosave, AutosaveStore
from app.help import GETTING_STARTED_HTML, TextDialog, about_html, shortcuts_html
from app.jobs import CANCELLED, Job
from app.support_model import SupportSet, expand_drop, images_in
from app.widgets import (
    CONFIDENCE_ROLE,
    LABEL_ROLE,
    ORDER_ROLE,
    DropArea,
    JobProgress,
    RemoteUrl,
    ResultDelegate,
    ResultsModel,
    SupportSetView,
    accept_as_copy,
    accepts_drop,
    confusion_image,
    dropped_items,
    dropped_paths,
    hbox,
)

ADAPT_DELAY_MS = 250
AUTOSAVE_DELAY_MS = 3000
RESULT_ORDERS = {
    "as classified": (ORDER_ROLE, Qt.SortOrder.AscendingOrder),
    "least confident first": (CONFIDENCE_ROLE, Qt.SortOrder.AscendingOrder),
    "by class": (LABEL_ROLE, Qt.SortOrder.AscendingOrder),
}
IMAGE_JOBS = {
    "adapt": "Adapting:",
    "classify": "Classifying:",
    "evaluate folder": "Evaluating:",
    "leave-one-out": "Leave-one-out:",
    "unpack": "Unpacking:",
}
MAX_RECENT = 8
IMAGE_FILTER = (
    "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ");;Zip archives of images (*.zip);;All files (*)"
)


class ErrorChannel(QWidget):
    """The one place messages reach the user: a log dock, the status bar and, for errors, a non-modal box."""

    reported = Signal(str, str)  # level, text

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window_ = window
        self.log = QListWidget()
        self.show_dialogs = True
        self._box: QMessageBox | None = None

    def report(self, text: str, level: str = "error") -> None:
        stamp = time.strftime("%H:%M:%S")
        item = QListWidgetItem(f"{stamp}  {level.upper()}: {text}")
        if level == "error":
            item.setForeground(Qt.GlobalColor.red)
        self.log.addItem(item)
        self.log.scrollToBottom()
        self.window_.statusBar().showMessage(text, 15000)
        self.reported.emit(level, text)
        if level == "error" and self.show_dialogs:
            if self._box is None:
                self._box = QMessageBox(QMessageBox.Icon.Warning, "ANIL Studio", "", parent=self.window_)
                self._box.setWindowModality(Qt.WindowModality.NonModal)
            self._box.setText(text)
            self._box.show()

    def exception(self, exc: BaseException) -> None:
        if isinstance(exc, AnilError | ValueError | OSError):
            self.report(str(exc))
        else:
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.report(f"unexpected problem: {detail} (the app keeps running; please report this)")


def _load_model_job(path: str, device: str, fast_lr: float | None, steps: int | None) -> dict[str, Any]:
    """Worker side of loading a checkpoint."""
    import torch

    from anil_engine.checkpoint import file_sha256, load_checkpoint
    from anil_engine.classifier import FewShotClassifier
    from anil_engine.models import model_from_checkpoint

    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, path)
    notes = []
    backend = "onnxruntime" if device == "cpu" else "torch"
    try:
        classifier = FewShotClassifier.for_checkpoint(ckpt, model, device, backend, fast_lr, steps)
    except AnilError as exc:  # the verified ONNX trunk could not be built: torch is always available
        notes.append(f"onnxruntime trunk unavailable ({exc}); using torch")
        classifier = FewShotClassifier.for_checkpoint(ckpt, model, device, "torch", fast_lr, steps)
    return {
        "path": path,
        "classifier": classifier,
        "ckpt": {k: v for k, v in ckpt.items() if k != "state_dict"},
        "sha256": file_sha256(path),
        "notes": notes,
        "cuda": torch.cuda.is_available(),
    }


def describe_checkpoint(path: str, ckpt: dict[str, Any]) -> str:
    """Markdown card: the bundled card file when there is one, else a summary of the checkpoint."""
    card = Path(path).with_suffix(".md")
    if card.is_file():
        return card.read_text()
    pre, task, ds = ckpt["preprocessing"], ckpt.get("trained_task", {}), ckpt.get("dataset", {})
    lines = [
        f"# {Path(path).name}",
        "",
        f"- Data set: {ds.get('name', '?')} ({ds.get('split_scheme', '')})",
        f"- Input: {pre['channels']} x {pre['size']} x {pre['size']}",
        f"- Trained: {task.get('ways', '?')}-way {task.get('shots', '?')}-shot",
        f"- Head adaptation: {ckpt['adaptation_steps']} steps at fast_lr {ckpt['fast_lr']}",
    ]
    for r in ckpt.get("test_results", []):
        lines.append(f"- Test {r['ways']}-way {r['shots']}-shot ({r['bn']}): {r['accuracy']:.2f} ± {r['ci95']:.2f} %")
    return "\n".join(lines)


class MainWindow(QMainWindow):
    """ANIL Studio's window. Model work runs in `Job`s; widgets only show state."""

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
        self.setWindowTitle("ANIL Studio")
        self.setAcceptDrops(True)
        self.errors = ErrorChannel(self)
        self.support = SupportSet()
        self.classifier = None
        self.checkpoint_path: str | None = None
        self.checkpoint_sha256 = ""
        self.project_path: Path | None = None
        self.jobs: list[Job] = []
        self._adapt_pending = False
        self._adapt_job: Job | None = None
        self.train_dialog = None
        self.eval_dialog = None
        self.text_dialogs: dict[str, Any] = {}  # Help dialogs, kept so that they stay open
        self.recovery_box: QMessageBox | None = None
        # Pasted image data is written here, so that results, CSV and projects can refer to a file.
        data_dir = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        self.data_dir = data_dir = Path(data_dir or Path.home() / ".local/share/ANIL Studio")
        self.paste_dir = data_dir / "pasted"
        self.autosaves = AutosaveStore(data_dir / "autosave")
        self.checkpoint_info: dict[str, Any] = {}  # the current checkpoint's data set and trained task
        self.confirm_close = self._ask_save_changes
        self._build_model_panel()
        self._build_center()
        self._build_menus()
        self.job_progress = JobProgress()
        self.job_progress.cancel_requested.connect(lambda job: job.cancel())
        self.statusBar().addPermanentWidget(self.job_progress)
        self.adapt_timer = QTimer(self, singleShot=True, interval=ADAPT_DELAY_MS)
        self.adapt_timer.timeout.connect(self.adapt_now)
        self.support.changed.connect(self.adapt_timer.start)
        self.support.undo_stack.cleanChanged.connect(self._update_title)
        self.autosave_timer = QTimer(self, singleShot=True, interval=AUTOSAVE_DELAY_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.support.changed.connect(self.autosave_timer.start)
        self.support.changed.connect(lambda *_: self._mark_evaluation_stale("the support set changed"))
        self.model_loaded.connect(lambda _path: self._mark_evaluation_stale("another model was loaded"))
        self.support.undo_stack.cleanChanged.connect(self._clean_changed)
        QTimer.singleShot(0, self.offer_recovery)
        self._restore_window_state()
        self._update_title()
        first = checkpoint or (self.model_combo.itemData(0) if self.model_combo.count() else None)
        if first:
            self.load_model(str(first))
        else:
            self.errors.report("no bundled model found in models/; open a checkpoint (Ctrl+O)", "warning")

    # ---------------------------------------------------------------------------------- building
    def _build_model_panel(self) -> None:
        panel = QWidget()
        layout = QVBoxLayout(panel)
        self.model_combo = QComboBox()
        for m in bundled_models():
            self.model_combo.addItem(m.name, str(m.path))
        self.model_combo.activated.connect(lambda i: self.load_model(self.model_combo.itemData(i)))
        open_button = QPushButton("Open checkpoint…")
        open_button.clicked.connect(self.open_checkpoint_dialog)
        self.device_combo = QComboBox()
        self.device_combo.addItem("cpu")  # "cuda" is added when the first model load finds a GPU
        self.device_combo.currentTextChanged.connect(
            lambda _d: self.checkpoint_path and self.load_model(self.checkpoint_path)
        )
        self.fast_lr = QDoubleSpinBox(decimals=4, minimum=1e-4, maximum=10.0, singleStep=0.05, value=0.1)
        self.steps = QSpinBox(minimum=0, maximum=1000, value=5)
        self.fast_lr.setToolTip("Head step size (from the checkpoint; editable)")
        self.steps.setToolTip("Head adaptation steps (from the checkpoint; editable)")
        self.fast_lr.valueChanged.connect(self._adapt_settings_changed)
        self.steps.valueChanged.connect(self._adapt_settings_changed)
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(True)
        self.model_status = QLabel("Loading model…")
        self.model_status.setWordWrap(True)
        layout.addWidget(QLabel("<b>Model</b>"))
        layout.addWidget(self.model_combo)
        layout.addWidget(open_button)
        row = QHBoxLayout()
        row.addWidget(QLabel("Device"))
        row.addWidget(self.device_combo, 1)
        layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("fast_lr"))
        row.addWidget(self.fast_lr)
        row.addWidget(QLabel("steps"))
        row.addWidget(self.steps)
        layout.addLayout(row)
        layout.addWidget(self.model_status)
        layout.addWidget(self.card, 1)
        dock = QDockWidget("Model", self)
        dock.setObjectName("model-dock")
        dock.setWidget(panel)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        messages = QDockWidget("Messages", self)
        messages.setObjectName("messages-dock")
        messages.setWidget(self.errors.log)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, messages)
        self.resizeDocks([messages], [110], Qt.Orientation.Vertical)

    def _build_center(self) -> None:
        self.support_view = SupportSetView(self.support)
        self.support_view.dropped.connect(self.drop_on_support)
        self.support_view.card_drop.connect(self.drop_on_card)
        self.support_view.card_add_requested.connect(self.add_images_to_card_dialog)
        self.support_view.refused.connect(lambda text: self.errors.report(text, "warning"))
        self.support_view.add_button.clicked.connect(lambda: self.support.add_class("class"))
        self.support_view.add_images_button.clicked.connect(self.add_support_images_dialog)
        self.support_view.add_folder_button.clicked.connect(self.add_support_folder_dialog)
        self.adapt_status = self.support_view.status

        self.query_area = DropArea()
        q = QVBoxLayout(self.query_area)
        title = QLabel("<b>Classify</b> — drop images or folders here, or paste images (Ctrl+V)")
        title.setWordWrap(True)
        q.addWidget(title)
        self.results_model = ResultsModel(self)
        self.results_sorted = QSortFilterProxyModel(self)
        self.results_sorted.setSourceModel(self.results_model)
        self.results = QListView()
        self.results.setModel(self.results_sorted)
        self.results.setItemDelegate(ResultDelegate(self.results))
        self.results.setUniformItemSizes(True)
        self.results.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.results.doubleClicked.connect(
            lambda index: QDesktopServices.openUrl(QUrl.fromLocalFile(index.data(Qt.ItemDataRole.UserRole).path))
        )
        # Correcting the model: drag results onto a class card, or right-click ▸ Add to support class.
        self.results.setDragEnabled(True)
        self.results.setDragDropMode(QListView.DragDropMode.DragOnly)
        self.results.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.results.customContextMenuRequested.connect(self._results_menu)
        self.results.setToolTip(
            "Double-click opens an image; drag images onto a class card, right-click, or press 1-9 (the support "
            "class's position) to add the selected images to the support set"
        )
        for digit in range(1, 10):
            key = QShortcut(QKeySequence(str(digit)), self.results, context=Qt.ShortcutContext.WidgetShortcut)
            key.activated.connect(lambda d=digit: self._add_selected_to_class_number(d))
        self.results_order = QComboBox()
        self.results_order.addItems(list(RESULT_ORDERS))
        self.results_order.setToolTip("Order of the results (the CSV keeps the order of classification)")
        self.results_order.currentTextChanged.connect(self._sort_results)
        self.results_summary = QLabel("")
        # Many classes make a long line: never let it widen the window (the tooltip has it all).
        self.results_summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        order_row = QHBoxLayout()
        order_row.addWidget(QLabel("Order"))
        order_row.addWidget(self.results_order)
        order_row.addWidget(self.results_summary, 1)
        q.addLayout(order_row)
        self.classify_guide = QLabel(
            "<b>Nothing classified yet.</b> Drop photos or a folder of photos here (or press Classify images…, "
            "Ctrl+K). First give the support set at least 2 categories with a few photos each; Help ▸ Getting "
            "started shows the steps."
        )
        self.classify_guide.setWordWrap(True)
        self.classify_guide.setStyleSheet("color: #555; padding: 8px")
        q.addWidget(self.classify_guide)
        q.addWidget(self.results, 1)
        buttons = QHBoxLayout()
        classify_button = QPushButton("Classify images…")
        classify_button.setToolTip("Choose image files to classify (Ctrl+K)")
        classify_button.clicked.connect(self.classify_images_dialog)
        buttons.addWidget(classify_button)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self.export_csv_dialog)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear_results)
        buttons.addWidget(self.export_button)
        buttons.addWidget(clear)
        q.addLayout(buttons)
        self.query_area.dropped.connect(self.classify_paths)

        self.eval_area = DropArea()
        e = QVBoxLayout(self.eval_area)
        title = QLabel(
            "<b>Evaluate</b> — leave-one-out on the support set, or drop a labelled folder of class folders here"
        )
        title.setWordWrap(True)
        e.addWidget(title)
        self.loo_button = QPushButton("Leave-one-out")
        self.loo_button.setToolTip("Classify each support image with a head adapted on all the others (Ctrl+L)")
        self.loo_button.clicked.connect(self.leave_one_out)
        labelled_button = QPushButton("Labelled folder…")
        labelled_button.setToolTip("Choose a folder of class folders named like the support classes (Ctrl+Shift+F)")
        labelled_button.clicked.connect(self.evaluate_folder_dialog)
        e.addWidget(hbox(self.loo_button, labelled_button))
        self.mistakes_button = QPushButton("Show the mistakes in Classify")
        self.mistakes_button.setToolTip(
            "List the labelled folder's misclassified images in Classify (least confident first), to add them "
            "to the right support class with 1-9, a drag or a right-click"
        )
        self.mistakes_button.clicked.connect(self.show_mistakes)
        self.mistakes_button.setEnabled(False)
        self.mistakes: list = []
        self._evaluation_stale = True  # True: nothing on screen to mark out of date
        self.eval_summary = QLabel("")
        self.eval_summary.setWordWrap(True)
        self.eval_summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        e.addWidget(self.eval_summary)
        e.addWidget(self.mistakes_button)
        self.confusion = QLabel()
        self.confusion.setAlignment(Qt.AlignmentFlag.AlignCenter)
        e.addWidget(self.confusion, 1)
        self.eval_area.dropped.connect(self.evaluate_paths)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.query_area, "Classify")
        self.tabs.addTab(self.eval_area, "Evaluate")
        splitter = QSplitter()
        splitter.addWidget(self.support_view)
        splitter.addWidget(self.tabs)
        splitter.setSizes([600, 500])
        self.setCentralWidget(splitter)

    def _build_menus(self) -> None:
        def action(menu, text: str, slot, shortcut=None) -> QAction:  # noqa: ANN001
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            a.triggered.connect(slot)
            menu.addAction(a)
            return a

        file = self.menuBar().addMenu("&File")
        action(file, "Open checkpoint…", self.open_checkpoint_dialog, QKeySequence.StandardKey.Open)
        action(file, "Open project…", self.open_project_dialog, "Ctrl+Shift+O")
        self.recent_menu = file.addMenu("Recent")
        self._rebuild_recent()
        action(file, "Save project", self.save_project, QKeySequence.StandardKey.Save)
        action(file, "Save project as…", self.save_project_as, QKeySequence.StandardKey.SaveAs)
        self.recover_action = action(file, "Recover unsaved work…", self.offer_recovery)
        self.recover_action.setEnabled(False)
        file.addSeparator()
        action(file, "Add support images as a new class…", self.add_support_images_dialog, "Ctrl+I")
        action(file, "Add support folder…", self.add_support_folder_dialog, "Ctrl+Shift+I")
        action(file, "Classify images…", self.classify_images_dialog, "Ctrl+K")
        action(file, "Classify a folder…", self.classify_folder_dialog, "Ctrl+Shift+K")
        action(file, "Evaluate on a labelled folder…", self.evaluate_folder_dialog, "Ctrl+Shift+F")
        file.addSeparator()
        action(file, "Export results as CSV…", self.export_csv_dialog, "Ctrl+E")
        self.export_classifier_action = action(
            file, "Export adapted classifier to ONNX…", self.export_classifier_dialog, "Ctrl+Shift+E"
        )
        self.export_classifier_action.setEnabled(False)
        self.export_classifier_action.setStatusTip("Adapt the head first: add at least 2 classes with images")
        action(file, "Export frozen trunk to ONNX…", self.export_trunk_dialog)
        file.addSeparator()
        action(file, "Quit", self.close, QKeySequence.StandardKey.Quit)
        edit = self.menuBar().addMenu("&Edit")
        undo = self.support.undo_stack.createUndoAction(self, "Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = self.support.undo_stack.createRedoAction(self, "Redo")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        edit.addAction(undo)
        edit.addAction(redo)
        action(edit, "Add class", lambda: self.support.add_class("class"), QKeySequence.StandardKey.New)
        action(edit, "Paste images to classify", self.paste_images, QKeySequence.StandardKey.Paste)
        model = self.menuBar().addMenu("&Model")
        action(model, "Adapt now", self.adapt_now, "Ctrl+R")
        action(model, "Stop the running image job", self.stop_image_job, "Esc")
        action(model, "Leave-one-out evaluation", self.leave_one_out, "Ctrl+L")
        action(model, "Meta-train…", self.show_train_dialog, "Ctrl+T")
        action(model, "Evaluate on a data set…", self.show_eval_dialog, "Ctrl+Shift+L")
        help_menu = self.menuBar().addMenu("&Help")
        action(help_menu, "Getting started", self.show_getting_started)
        action(help_menu, "Keyboard shortcuts", self.show_shortcuts, QKeySequence.StandardKey.HelpContents)
        action(help_menu, "About ANIL Studio", self.show_about)

    # ---------------------------------------------------------------------------------- jobs
    def run_job(self, name: str, fn, *args, on_done=None, on_progress=None, on_failed=None) -> Job:  # noqa: ANN001
        job = Job(name, fn, *args)
        if on_done is not None:
            job.done.connect(on_done)
        if on_progress is not None:
            job.progress.connect(on_progress)
        job.failed.connect(on_failed or self.errors.exception)
        job.finished.connect(lambda: self.jobs.remove(job) if job in self.jobs else None)
        if name in IMAGE_JOBS:
            text = IMAGE_JOBS[name]
            job.progress.connect(lambda item: self.job_progress.update_job(job, text, item.done, item.total))
            job.finished.connect(lambda: self.job_progress.job_finished(job))
        self.jobs.append(job)
        job.start()
        return job

    def wait_for_jobs(self, timeout_ms: int = 60000) -> bool:
        deadline = time.monotonic() + timeout_ms / 1000
        while self.jobs and time.monotonic() < deadline:
            self.jobs[0].wait(max(1, int((deadline - time.monotonic()) * 1000)))
        return not self.jobs

    # ---------------------------------------------------------------------------------- model
    def open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", self._last_dir(), "Checkpoints (*.pt)")
        if path:
            self.load_model(path)

    def load_model(self, path: str, fast_lr: float | None = None, steps: int | None = None) -> Job:
        self.model_status.setText(f"Loading {Path(path).name}…")
        job = self.run_job(
            "load model",
            _load_model_job,
            str(path),
            self.device_combo.currentText(),
            fast_lr,
            steps,
            on_done=self._model_loaded,
        )
        current = Path(self.checkpoint_path).name if self.checkpoint_path else None
        job.failed.connect(
            lambda _exc: self.model_status.setText(
                f"Could not load {Path(path).name}; "
                + (f"still using {current}." if current else "open a checkpoint (Ctrl+O).")
            )
        )
        return job

    def _model_loaded(self, result: dict[str, Any]) -> None:
        for note in result["notes"]:
            self.errors.report(note, "warning")
        if result["cuda"] and self.device_combo.findText("cuda") < 0:
            self.device_combo.addItem("cuda")
        self.classifier = result["classifier"]
        self._set_export_enabled(False)  # until its head is adapted
        self.checkpoint_path = result["path"]
        self.checkpoint_sha256 = result["sha256"]
        ckpt = result["ckpt"]
        self.checkpoint_info = {"dataset": ckpt.get("dataset", {}), "trained_task": ckpt.get("trained_task", {})}
        if self.eval_dialog is not None:
            self.eval_dialog.set_checkpoint(result["path"], self.checkpoint_info)
        for w, v in ((self.fast_lr, self.classifier.fast_lr), (self.steps, self.classifier.steps)):
            w.blockSignals(True)
            w.setValue(v)
            w.blockSignals(False)
        self.card.setMarkdown(describe_checkpoint(result["path"], ckpt))
        # The model list always shows the current model: a checkpoint from elsewhere joins the list, named with
        # its folder (e.g. "best.pt (runs/x)"), so the picker is never blank.
        loaded = Path(result["path"]).resolve()
        listed = [Path(self.model_combo.itemData(i)).resolve() for i in range(self.model_combo.count())]
        if loaded not in listed:
            self.model_combo.addItem(f"{loaded.name} ({loaded.parent.name})", str(loaded))
            self.model_combo.setItemData(self.model_combo.count() - 1, str(loaded), Qt.ItemDataRole.ToolTipRole)
            listed.append(loaded)
        self.model_combo.setCurrentIndex(listed.index(loaded))
        pre = ckpt["preprocessing"]
        self.model_status.setText(
            f"{Path(result['path']).name}: {pre['channels']}x{pre['size']}x{pre['size']} input, trained "
            f"{ckpt.get('trained_task', {}).get('ways', '?')}-way, on {self.classifier.device} "
            f"(trunk: {self.classifier.backend})"
        )
        self._remember_recent(result["path"])
        gc_guard.freeze()  # torch and the model are in memory now: keep them out of every later collection
        self.model_loaded.emit(result["path"])
        self.adapt_now()

    def _adapt_settings_changed(self) -> None:
        if self.classifier is not None:
            self.classifier.fast_lr = self.fast_lr.value()
            self.classifier.steps = self.steps.value()
            self.adapt_timer.start()

    # ---------------------------------------------------------------------------------- support set
    def _take_zips(self, paths: list, then) -> tuple[list, bool]:  # noqa: ANN001 - callable
        """Unpack dropped zip archives in a job, then hand their folder to `then` as if it had been dropped.

        Returns the other items, and whether any archive was taken.
        """
        from anil_engine.archives import unpack_images

        rest, taken = [], False
        for p in paths:
            if isinstance(p, Path) and p.suffix.lower() == ".zip" and p.is_file():
                taken = True
                self.statusBar().showMessage(f"Unpacking {p.name}…")
                self.run_job(
                    "unpack",
                    unpack_images,
                    p,
                    self.data_dir / "unpacked",
                    on_done=lambda folder: self._unpacked(folder, then),
                )
            else:
                rest.append(p)
        return rest, taken

    def _unpacked(self, folder, then) -> None:  # noqa: ANN001 - Path or CANCELLED, callable
        self.statusBar().clearMessage()
        if folder is not CANCELLED:
            then([folder])

    def _route_special_files(self, paths: list) -> list[Path]:
        """Open checkpoints and projects; save dropped image data as PNG files; report remote addresses."""
        rest = []
        for p in paths:
            if isinstance(p, QImage):
                saved = self._save_pasted(p)
                if saved is not None:
                    rest.append(saved)
            elif isinstance(p, RemoteUrl):
                self.errors.report(
                    f"{p.url}: not a file on this computer; save it first, or copy the image and paste it (Ctrl+V)",
                    "warning",
                )
            elif p.suffix == ".pt" and p.is_file():
                self.load_model(str(p))
            elif p.suffix == ".anilproj" and p.is_file():
                self.open_project(p)
            else:
                rest.append(p)
        return rest

    def drop_on_support(self, paths: list[Path], new_class: str | None = None) -> None:
        """Folders of class folders -> classes; a folder of images -> one class; loose images -> a new class
        (named `new_class`, else "class").

        Zip archives are unpacked first (once) and then count as the folder they hold.
        """
        paths, _ = self._take_zips(paths, self.drop_on_support)
        images, folders, messages = expand_drop(self._route_special_files(paths))
        for m in messages:
            self.errors.report(m, "warning")
        self.support.undo_stack.beginMacro("drop")
        try:
            for folder in folders:
                subdirs = [d for d in folder.iterdir() if d.is_dir() and images_in(d)]
                if subdirs:
                    self.support.add_class_folders(folder)
                elif images_in(folder):
                    self.support.add_class(folder.name, images_in(folder))
                else:
                    self.errors.report(f"{folder}: no images inside; nothing added", "warning")
            if images:
                self.support.add_class(self.support.unique_name(new_class or "class"), images)
        finally:
            self.support.undo_stack.endMacro()

    def _dropped_images(self, paths: list[Path], then=None) -> list[Path]:  # noqa: ANN001 - callable
        """Checkpoints and projects are opened; folders expand to their images; other files are reported.

        Zip archives go to `then` once unpacked (with `then` None they are reported like other files).
        """
        if then is not None:
            paths, _ = self._take_zips(paths, then)
        images, folders, messages = expand_drop(self._route_special_files(paths))
        for m in messages:
            self.errors.report(m, "warning")
        for folder in folders:
            images.extend(images_in(folder))
        return images

    def drop_on_card(self, name: str, paths: list[Path]) -> None:
        images = self._dropped_images(paths, then=lambda folder: self.drop_on_card(name, folder))
        if images:
            self.support.add_images(name, images)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if accepts_drop(event.mimeData()):
            accept_as_copy(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = dropped_paths(event)
        accept_as_copy(event)
        self.drop_on_support(paths)

    # ---------------------------------------------------------------------------------- file pickers
    # The same flows as the drops, for users who cannot or would rather not drag.
    def _pick_images(self, title: str) -> list[Path]:
        paths, _ = QFileDialog.getOpenFileNames(self, title, self._last_dir(), IMAGE_FILTER)
        if paths:
            self.settings.setValue("last_dir", str(Path(paths[0]).parent))
        return [Path(p) for p in paths]

    def _pick_folder(self, title: str) -> Path | None:
        path = QFileDialog.getExistingDirectory(self, title, self._last_dir())
        if not path:
            return None
        self.settings.setValue("last_dir", str(Path(path).parent))
        return Path(path)

    def add_support_images_dialog(self) -> None:
        paths = self._pick_images("Images of one new class")
        if paths:
            folders = {p.parent for p in paths}
            # Images picked from one folder start a class named after it (the folder a user keeps them in).
            self.drop_on_support(paths, new_class=folders.pop().name if len(folders) == 1 else None)

    def add_support_folder_dialog(self) -> None:
        folder = self._pick_folder("A folder of class folders, or one class's folder")
        if folder is not None:
            self.drop_on_support([folder])

    def add_images_to_card_dialog(self, name: str) -> None:
        paths = self._pick_images(f"Images to add to class {name}")
        if paths:
            self.drop_on_card(name, paths)

    def classify_images_dialog(self) -> None:
        paths = self._pick_images("Images to classify")
        if paths:
            self.tabs.setCurrentWidget(self.query_area)
            self.classify_paths(paths)

    def classify_folder_dialog(self) -> None:
        folder = self._pick_folder("A folder of images to classify")
        if folder is not None:
            self.tabs.setCurrentWidget(self.query_area)
            self.classify_paths([folder])

    def evaluate_folder_dialog(self) -> None:
        folder = self._pick_folder("A labelled folder: one folder per support class")
        if folder is not None:
            self.tabs.setCurrentWidget(self.eval_area)
            self.evaluate_paths([folder])

    def paste_images(self) -> None:
        """Classify the clipboard: copied image files, or image data (saved as a PNG in `paste_dir`)."""
        mime = QGuiApplication.clipboard().mimeData()
        items = dropped_items(mime) if mime is not None else []
        if not items or all(isinstance(i, RemoteUrl) for i in items):
            self.errors.report("the clipboard holds no image or image file; copy one first, then paste", "warning")
            return
        self.tabs.setCurrentWidget(self.query_area)
        self.classify_paths(items)

    def _save_pasted(self, image) -> Path | None:  # noqa: ANN001 - QImage
        if image.isNull():
            self.errors.report("the clipboard's image is empty; copy the image again, then paste", "warning")
            return None
        path = self.paste_dir / f"pasted-{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 10**6:06d}.png"
        tmp = path.with_suffix(".part.png")
        try:
            self.paste_dir.mkdir(parents=True, exist_ok=True)
            if not image.save(str(tmp), "PNG"):
                raise OSError("Qt could not write the PNG")
            os.replace(tmp, path)
        except OSError as exc:
            self.errors.report(f"{path}: could not save the pasted image ({exc}); check that the folder is writable")
            return None
        return path

    def stop_image_job(self) -> None:
        """Stop the adaptation, classification or evaluation shown in the status bar."""
        if self.job_progress.job is not None:
            self.job_progress.job.cancel()

    # ---------------------------------------------------------------------------------- help
    def _show_text_dialog(self, key: str, title: str, text: str) -> None:
        dialog = self.text_dialogs.get(key)
        if dialog is None:
            dialog = self.text_dialogs[key] = TextDialog(title, text, self)
        dialog.browser.setHtml(text)
        dialog.show()
        dialog.raise_()

    def show_getting_started(self) -> None:
        self._show_text_dialog("getting-started", "Getting started", GETTING_STARTED_HTML)

    def show_shortcuts(self) -> None:
        self._show_text_dialog("shortcuts", "Keyboard shortcuts", shortcuts_html(self.menuBar()))

    def show_about(self) -> None:
        devices = [self.device_combo.itemText(i) for i in range(self.device_combo.count())]
        text = about_html(self.checkpoint_path, devices, self.settings.fileName())
        self._show_text_dialog("about", "About ANIL Studio", text)

    # ---------------------------------------------------------------------------------- adapt
    def adapt_now(self) -> None:
        if self.classifier is None:
            return
        support = self.support.as_support()
        if len(support) < 2:
            self.adapt_status.setText("Add at least 2 classes with images to adapt the head.")
            self._drop_stale_head()
            return
        if self._adapt_job is not None and self._adapt_job.running:
            # Stop the running adaptation at its next batch (its features stay cached) and start again after it.
            self._adapt_pending = True
            self._adapt_job.cancel()
            return
        self.adapt_status.setText("Adapting…")
        self._adapt_job = self.run_job("adapt", self.classifier.iter_adapt, support, on_done=self._adapted)
        self._adapt_job.finished.connect(self._adapt_finished)

    def _check_domain(self) -> None:
        """Warn (once per model) when a grayscale model is given colour photos: it sees them as grey drawings."""
        if self.classifier is None or self.classifier.model.preprocessing.channels != 1:
            return
        if getattr(self, "_domain_warned", None) == self.checkpoint_path:
            return
        from PIL import Image

        paths = [p for _, ps in self.support.as_support() for p in ps][:5]
        colour = 0
        for p in paths:
            try:
                with Image.open(p) as im:  # the header only
                    colour += im.mode in ("RGB", "RGBA", "CMYK", "YCbCr")
            except OSError:
                continue
        if paths and colour * 2 > len(paths):
            self._domain_warned = self.checkpoint_path
            pre = self.classifier.model.preprocessing
            self.errors.report(
                f"the current model ({Path(self.checkpoint_path or '').name}) was trained on {pre.size}x{pre.size} "
                "grayscale images (e.g. handwritten characters); your support images are colour photos. For photos, "
                "choose caltech101-effnet-anil in the model list",
                "warning",
            )

    def _drop_stale_head(self) -> None:
        """With fewer than 2 classes there is no classifier: forget the head, clear its results, disable export."""
        if self.classifier is None or not self.classifier.is_adapted:
            return
        if self._adapt_job is not None and self._adapt_job.running:
            self._adapt_job.cancel()
        self.classifier.clear_head()
        self._set_export_enabled(False)
        if self.predictions:
            self.clear_results()
            self.errors.report("results cleared: with fewer than 2 classes there is no classifier", "info")

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

    def _adapted(self, result) -> None:  # noqa: ANN001 - AdaptResult
        if result is CANCELLED:
            if not self._adapt_pending:
                self.adapt_status.setText(
                    "Adaptation stopped; the head is still the previous one. Model ▸ Adapt now (Ctrl+R) adapts it."
                )
            return
        for m in result.skipped:
            self.errors.report(m, "warning")
        self.support_view.mark_unreadable(set(result.unreadable))
        self._check_domain()
        if len(self.support.as_support()) < 2:  # the set shrank while this ran: its head is already stale
            self._drop_stale_head()
            return
        self._set_export_enabled(True)
        self.adapt_status.setText(
            f"Head adapted to {len(result.class_names)} classes from {result.n_images} images in "
            f"{1000 * result.seconds:.0f} ms ({result.new_images} new images through the trunk, head steps "
            f"{1000 * result.head_seconds:.1f} ms). Head start: {result.head_init}."
        )
        self.adapted.emit(result)
        if self.predictions:
            self.classify_paths([Path(p.path) for p in self.predictions], replace=True)

    # ---------------------------------------------------------------------------------- classify
    def classify_paths(self, paths: list[Path], replace: bool = False) -> None:
        images = self._dropped_images(paths, then=self.classify_paths)
        if images and (self.classifier is None or not self.classifier.is_adapted):
            self.errors.report("add at least 2 classes with images first; then drop images to classify", "warning")
            return
        if images:
            self.run_job(
                "classify", self.classifier.iter_predict, images, on_done=lambda r: self._classified(r, replace)
            )

    def _classified(self, result, replace: bool) -> None:  # noqa: ANN001
        if result is CANCELLED:
            self.errors.report("classification stopped; no results added", "info")
            return
        predictions, skipped = result
        for m in skipped:
            self.errors.report(m, "warning")
        if replace:
            self.clear_results()
        self.results_model.extend(predictions)
        self._sort_results()
        self.classified.emit(predictions)

    def selected_results(self) -> list:
        """The predictions selected in the results list, in the order shown."""
        rows = sorted(self.results.selectionModel().selectedRows(), key=lambda i: i.row())
        return [i.data(Qt.ItemDataRole.UserRole) for i in rows]

    def _results_menu(self, pos) -> None:  # noqa: ANN001 - QPoint
        selected = self.selected_results()
        if selected:
            menu = self.results_menu(selected)
            menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            menu.exec(self.results.viewport().mapToGlobal(pos))

    def results_menu(self, selected: list) -> QMenu:
        """The results' context menu for the selected predictions."""
        menu = QMenu(self)
        add = menu.addMenu(f"Add {len(selected)} image{'s' if len(selected) > 1 else ''} to support class")
        for i, name in enumerate(self.support.names()):
            a = add.addAction(name, lambda n=name: self.add_results_to_class(selected, n))
            if i < 9:
                a.setShortcut(QKeySequence(str(i + 1)))  # shown only: the list's own shortcuts act
        add.addSeparator()
        add.addAction("New class…", lambda: self.add_results_to_class(selected, None))
        menu.addAction("Open image", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(selected[0].path)))
        return menu

    def _add_selected_to_class_number(self, number: int) -> None:
        names, selected = self.support.names(), self.selected_results()
        if selected and number <= len(names):
            self.add_results_to_class(selected, names[number - 1])

    def add_results_to_class(self, predictions: list, name: str | None) -> None:
        """Add classified images to a support class (None: a new class); the head then re-adapts."""
        paths = [Path(p.path) for p in predictions]
        if name is None:
            name, ok = QInputDialog.getText(self, "New class", "Name of the new class:")
            if not ok or not name.strip():
                return
            name = self.support.unique_name(name.strip())
            self.support.add_class(name, paths)
        else:
            added = self.support.add_images(name, paths)
            if added < len(paths):
                self.errors.report(f"{len(paths) - added} of the images were already in class {name}", "info")

    @property
    def predictions(self) -> list:
        """Every classification result shown, in the order classified."""
        return self.results_model.predictions

    def clear_results(self) -> None:
        self.results_model.clear()
        self._sort_results()

    def _sort_results(self, *_args) -> None:  # noqa: ANN002
        role, order = RESULT_ORDERS[self.results_order.currentText()]
        self.results_sorted.setSortRole(role)
        self.results_sorted.sort(0 if role != ORDER_ROLE else -1, order)
        counts: dict[str, int] = {}
        for p in self.predictions:
            counts[p.label] = counts.get(p.label, 0) + 1
        summary = ", ".join(f"{n} {c}" for n, c in sorted(counts.items()))
        self.results_summary.setText(f"{len(self.predictions)} images: {summary}" if self.predictions else "")
        self.classify_guide.setVisible(not self.predictions)
        self.results_summary.setToolTip(summary)

    def export_csv_dialog(self) -> None:
        if not self.predictions:
            self.errors.report("no classification results to export yet", "warning")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export results", self._last_dir() + "/results.csv", "CSV (*.csv)")
        if path:
            self.export_csv(Path(path))

    def export_csv(self, path: Path) -> None:
        from anil_engine.checkpoint import atomic_write_bytes
        from anil_engine.classifier import predictions_csv

        try:
            atomic_write_bytes(predictions_csv(self.predictions).encode(), path)
            self.errors.report(f"wrote {len(self.predictions)} results to {path}", "info")
        except AnilError as exc:
            self.errors.report(str(exc))

    # ---------------------------------------------------------------------------------- ONNX export
    def export_classifier_dialog(self) -> None:
        if self.classifier is None or not self.classifier.is_adapted:
            self.errors.report("adapt first: the classifier export holds the adapted head", "warning")
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export adapted classifier", self._last_dir() + "/classifier.onnx", "ONNX (*.onnx)"
        )
        if path:
            self.export_onnx(Path(path), classifier=True)

    def export_trunk_dialog(self) -> None:
        if self.classifier is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export frozen trunk", self._last_dir() + "/trunk.onnx", "ONNX (*.onnx)"
        )
        if path:
            self.export_onnx(Path(path), classifier=False)

    def export_onnx(self, path: Path, classifier: bool) -> Job | None:
        """Export in a worker; the engine verifies the file against torch before writing it."""
        from anil_engine import export

        clf = self.classifier
        if clf is None:
            return None
        if classifier:
            job = self.run_job(
                "export classifier",
                export.export_classifier,
                clf.model,
                clf.weight,
                clf.bias,
                list(clf.class_names),
                path,
                self.checkpoint_sha256,
                on_done=self._exported,
            )
        else:
            job = self.run_job("export trunk", export.export_trunk, clf.model, path, on_done=self._exported)
        self.statusBar().showMessage(f"Exporting {path.name}…")
        return job

    def _exported(self, report) -> None:  # noqa: ANN001 - ExportReport
        self.errors.report(f"exported {report.path} (onnxruntime matches torch to {report.max_abs_diff:.1e})", "info")
        self.exported.emit(report)

    # ---------------------------------------------------------------------------------- evaluate
    def leave_one_out(self) -> None:
        if self.classifier is None or not self.classifier.is_adapted:
            self.errors.report("adapt first: add at least 2 classes with 2 or more images each", "warning")
            return
        self.tabs.setCurrentWidget(self.eval_area)
        self.eval_summary.setText("Running leave-one-out…")
        self.run_job(
            "leave-one-out",
            self.classifier.iter_leave_one_out,
            on_done=lambda r: self._show_report(r, "Leave-one-out on the support set"),
        )

    def evaluate_paths(self, paths: list[Path]) -> None:
        paths, unpacking = self._take_zips(paths, self.evaluate_paths)
        folders = [p for p in self._route_special_files(paths) if p.is_dir()]
        if unpacking and not folders:
            return
        if self.classifier is None or not self.classifier.is_adapted or not folders:
            self.errors.report(
                "drop a folder of class folders named like the support classes (after adapting)", "warning"
            )
            return
        self.eval_summary.setText(f"Evaluating on {folders[0]}…")
        self.run_job(
            "evaluate folder",
            self.classifier.iter_evaluate_folder,
            folders[0],
            on_done=lambda r: self._show_report(r, f"Labelled folder {folders[0].name}"),
        )

    def show_mistakes(self) -> None:
        """Replace the Classify results with the last labelled-folder evaluation's mistakes."""
        if not self.mistakes:
            return
        self.tabs.setCurrentWidget(self.query_area)
        self.clear_results()
        self.results_model.extend([p for p, _ in self.mistakes])
        self.results_order.setCurrentText("least confident first")
        self._sort_results()
        truths = ", ".join(f"{Path(p.path).name}: {t}" for p, t in self.mistakes[:3])
        more = "…" if len(self.mistakes) > 3 else ""
        self.errors.report(f"Classify lists {len(self.mistakes)} mistakes (true class: {truths}{more})", "info")

    def _show_report(self, report, title: str) -> None:  # noqa: ANN001 - EvalReport
        if report is CANCELLED:
            self.eval_summary.setText(f"<b>{title}</b>: stopped; no result.")
            self._evaluation_stale = True
            return
        for m in report.skipped:
            self.errors.report(m, "warning")
        per_class = ", ".join(f"{n}: {a:.0f} %" for n, a in report.per_class.items())
        model = Path(self.checkpoint_path).name if self.checkpoint_path else "?"
        self.eval_summary.setText(
            f"<b>{title}</b>: accuracy {report.accuracy:.1f} % on {report.n_images} images "
            f"(model {model}, {len(report.class_names)} support classes).<br>Per class: {per_class}"
        )
        self._evaluation_stale = False
        self.confusion.setEnabled(True)
        self.mistakes = list(report.mistakes)
        self.mistakes_button.setEnabled(bool(self.mistakes))
        self.mistakes_button.setText(f"Show the {len(self.mistakes)} mistakes in Classify")
        self.confusion.setPixmap(QPixmap.fromImage(confusion_image(report.confusion, report.class_names)))
        self.evaluated.emit(report)

    def _mark_evaluation_stale(self, why: str) -> None:
        """An evaluation on screen describes a support set or model that is gone: say so (once) and grey it."""
        if self._evaluation_stale:
            return
        self._evaluation_stale = True
        self.eval_summary.setText(f"<b>Out of date</b> ({why} since; evaluate again): {self.eval_summary.text()}")
        self.confusion.setEnabled(False)

    # ---------------------------------------------------------------------------------- training
    def show_train_dialog(self) -> None:
        from app.train_dialog import TrainDialog

        if self.train_dialog is None:
            out = str(Path.home() / "anil-runs" / "run1")
            self.train_dialog = TrainDialog(self, default_out=out, settings=self.settings)
            self.train_dialog.error.connect(self.errors.exception)
            self.train_dialog.model_ready.connect(self.load_model)
        self.train_dialog.show()
        self.train_dialog.raise_()

    def show_eval_dialog(self) -> None:
        from app.eval_dialog import EvalDialog

        if self.eval_dialog is None:
            self.eval_dialog = EvalDialog(self, settings=self.settings)
            self.eval_dialog.error.connect(self.errors.exception)
            if self.checkpoint_path:
                self.eval_dialog.set_checkpoint(self.checkpoint_path, self.checkpoint_info)
        self.eval_dialog.show()
        self.eval_dialog.raise_()

    # ---------------------------------------------------------------------------------- projects
    def current_project(self):  # noqa: ANN201 - Project
        from anil_engine.project import Project

        head = None
        if self.classifier is not None and self.classifier.is_adapted:
            head = {
                "class_names": self.classifier.class_names,
                "weight": self.classifier.weight.cpu().tolist(),
                "bias": self.classifier.bias.cpu().tolist(),
            }
        return Project(
            self.checkpoint_path or "",
            [(c.name, [str(p) for p in c.paths]) for c in self.support.classes],
            head,
            self.fast_lr.value(),
            self.steps.value(),
            self.checkpoint_sha256,
        )

    def save_project(self) -> bool:
        if self.project_path is None:
            return self.save_project_as()
        return self.save_project_to(self.project_path)

    def save_project_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save project", self._last_dir() + "/project.anilproj", "ANIL Studio projects (*.anilproj)"
        )
        return bool(path) and self.save_project_to(Path(path))

    def save_project_to(self, path: Path) -> bool:
        from anil_engine.project import save_project

        try:
            save_project(self.current_project(), path)
        except AnilError as exc:
            self.errors.report(str(exc))
            return False
        self.project_path = path
        self.support.undo_stack.setClean()
        self._remember_recent(str(path))
        self._update_title()
        self.errors.report(f"saved project {path}", "info")
        return True

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open project", self._last_dir(), "ANIL Studio projects (*.anilproj)"
        )
        if path:
            self.open_project(Path(path))

    def open_project(self, path: Path) -> None:
        from anil_engine.project import load_project

        if not self.support.undo_stack.isClean() and not self.confirm_close():
            return
        try:
            project = load_project(path)
        except AnilError as exc:
            self.errors.report(str(exc))
            return
        missing = [p for _, paths in project.classes for p in paths if not Path(p).is_file()]
        if missing:
            self.errors.report(
                f"{len(missing)} image(s) of the project are missing, e.g. {missing[0]}; "
                "they are kept in the project but skipped when adapting",
                "warning",
            )
        self.project_path = path
        self.support.replace_all([(n, [Path(p) for p in ps]) for n, ps in project.classes])
        self._remember_recent(str(path))
        self._update_title()
        self._use_project_model(project, path)

    def _use_project_model(self, project, path: Path) -> None:  # noqa: ANN001 - Project
        """Load the project's model with its head settings, or apply the settings to the current one."""
        if project.checkpoint and project.checkpoint != self.checkpoint_path:
            if Path(project.checkpoint).is_file():
                self.load_model(project.checkpoint, project.fast_lr, project.adaptation_steps)
            else:
                self.errors.report(
                    f"{path}: its model {project.checkpoint} is missing; open that checkpoint (Ctrl+O) to adapt"
                )
        else:
            self.fast_lr.setValue(project.fast_lr)
            self.steps.setValue(project.adaptation_steps)

    # ---------------------------------------------------------------------------------- autosave
    def autosave(self) -> None:
        """Write the unsaved support set where a crash cannot take it (removed once saved or discarded)."""
        if self.support.undo_stack.isClean():
            self.autosaves.remove()
            return
        # The write (two fsyncs) runs in a worker: on a busy disk it took ~0.2 s of the event loop.
        self.run_job(
            "autosave",
            self.autosaves.write,
            self.current_project(),
            self.project_path,
            on_done=lambda _: self.autosaves.remove() if self.support.undo_stack.isClean() else None,
            on_failed=lambda exc: self.errors.report(
                f"autosave failed: {exc}; save the project (Ctrl+S) to keep your work", "warning"
            ),
        )

    def _clean_changed(self, clean: bool) -> None:
        if clean:
            self.autosave_timer.stop()
            self.autosaves.remove()

    def offer_recovery(self) -> None:
        """If an earlier session ended with unsaved work, offer to restore it (non-modal)."""
        found = self.autosaves.leftovers()
        self.recover_action.setEnabled(bool(found))
        if not found:
            return
        newest = found[0]
        self.errors.report(f"unsaved work from a session that did not close: {newest.describe()}", "info")
        box = QMessageBox(QMessageBox.Icon.Question, "Recover unsaved work", "", parent=self)
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

    def recover(self, autosave: Autosave) -> None:
        """Restore an autosaved support set as one undoable, unsaved edit."""
        if not self.support.undo_stack.isClean() and not self.confirm_close():
            return
        self.support.restore([(n, [Path(p) for p in ps]) for n, ps in autosave.project.classes])
        self.project_path = autosave.project_path
        self._update_title()
        self._use_project_model(autosave.project, autosave.path)
        self.autosaves.remove(autosave.path)
        self.autosave()
        self.recover_action.setEnabled(bool(self.autosaves.leftovers()))
        self.errors.report(f"restored unsaved work: {autosave.describe()}; save it with Ctrl+S", "info")

    def discard_recovery(self, autosave: Autosave) -> None:
        self.autosaves.remove(autosave.path)
        self.recover_action.setEnabled(bool(self.autosaves.leftovers()))
        self.errors.report(f"discarded unsaved work: {autosave.describe()}", "info")

    # ---------------------------------------------------------------------------------- settings
    def _last_dir(self) -> str:
        """Where file dialogs open: the folder last chosen, else the user's Pictures folder, else home."""
        from PySide6.QtCore import QStandardPaths

        pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
        default = pictures if pictures and Path(pictures).is_dir() else str(Path.home())
        return str(self.settings.value("last_dir", default))

    def _remember_recent(self, path: str) -> None:
        recent = [p for p in (self.settings.value("recent", []) or []) if p != path]
        self.settings.setValue("recent", [path, *recent][:MAX_RECENT])
        if Path(path).resolve().parent != MODELS_DIR.resolve():  # the bundled models' folder is not the user's
            self.settings.setValue("last_dir", str(Path(path).parent))
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.settings.value("recent", []) or []:
            a = self.recent_menu.addAction(p)
            a.triggered.connect(
                lambda _=False, p=p: self.open_project(Path(p)) if p.endswith(".anilproj") else self.load_model(p)
            )

    def _restore_window_state(self) -> None:
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            width, height = 1400, 860
            screen = self.screen()
            if screen is not None:  # never open wider or taller than the screen (e.g. 1280x800)
                available = screen.availableGeometry()
                width, height = min(width, available.width()), min(height, available.height())
            self.resize(width, height)
        state = self.settings.value("window_state")
        if state is not None:
            self.restoreState(state)

    def _update_title(self, *_args) -> None:  # noqa: ANN002
        name = self.project_path.name if self.project_path else "untitled"
        dirty = "" if self.support.undo_stack.isClean() else " *"
        self.setWindowTitle(f"ANIL Studio — {name}{dirty}")

    def _ask_save_changes(self) -> bool:
        answer = QMessageBox.question(
            self,
            "Unsaved changes",
            "The support set has unsaved changes. Save them?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save_project()
        return answer == QMessageBox.StandardButton.Discard

    def closeEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        if not self.support.undo_stack.isClean() and not self.confirm_close():
            event.ignore()
            return
        for dialog in (self.train_dialog, self.eval_dialog):
            if dialog is not None:
                dialog.shutdown()
        for job in self.jobs:
            if job.name in IMAGE_JOBS:  # nothing to save: stop at the next batch instead of finishing
                job.cancel()
        self.wait_for_jobs()
        self.autosave_timer.stop()
        self.autosaves.remove()  # saved or discarded by the user: nothing to recover
        self.support.undo_stack.cleanChanged.disconnect(self._update_title)
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        if self._gc_acquired:
            self._gc_acquired = False
            gc_guard.release()
        event.accept()
