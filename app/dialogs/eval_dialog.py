"""Evaluate the current model on a data set's few-shot episodes: mean accuracy ± 95 % CI, as `anil-studio eval`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from anil_engine.config import (
    BN_MODES,
    DATASETS,
    DEVICES,
    LAKE_RUNS,
    METHODS,
    SPLIT_SCHEMES,
    VIEW_COUNTS,
    EvalConfig,
    LakeRunsRequest,
    TaskSpec,
    field_defaults,
)
from app.jobs import CANCELLED, Job, start_job
from app.widgets import hbox, path_row, remember_data_roots, split_scheme_box

if TYPE_CHECKING:
    from anil_engine.evaluation import EvalProgress

# (what the list shows, EvalConfig.within or LAKE_RUNS)
PROTOCOLS = (
    ("Random episodes of the split", None),
    ("Episodes within one alphabet (Omniglot, Lake et al.'s protocol)", "alphabet"),
    ("Lake et al.'s 20 runs (Omniglot; next to humans' 4.5 % errors)", LAKE_RUNS),
)


class EvalDialog(QDialog):
    """Non-modal dialog running `anil_engine.evaluation.evaluate_checkpoint` on the current checkpoint in a worker.

    Every finished run is added to the list at the bottom (and stays there), so settings can be compared.

    Signals:
        error(object): exceptions, for the app's error channel.
    """

    error = Signal(object)

    def __init__(self, parent: QWidget | None = None, settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Evaluate on a data set")
        self.job: Job | None = None
        self.checkpoint = ""
        self.checkpoint_label = QLabel("No model loaded.")
        self.checkpoint_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dataset = QComboBox()
        self.dataset.addItems(list(DATASETS))
        self.data_root = QLineEdit()
        self.split_scheme = split_scheme_box(SPLIT_SCHEMES[0])
        self.split = QComboBox()
        self.split.addItems(["test", "val", "train", "all"])
        self.ways, self.shots, self.query = QSpinBox(), QSpinBox(), QSpinBox()
        d = field_defaults(EvalConfig)
        for box, value in ((self.ways, d["task"].ways), (self.shots, 1), (self.query, d["task"].query)):
            box.setRange(1, 1000)
            box.setValue(value)
        self.episodes = QSpinBox(minimum=1, maximum=1_000_000, value=d["episodes"])
        self.bn = QComboBox()
        self.bn.addItems(list(BN_MODES))
        self.bn.setCurrentText(d["bn"])
        self.bn.setToolTip(
            "inductive: BatchNorm with the support set's statistics (the app's); transductive: with each batch's "
            "own (learn2learn's)"
        )
        self.method = QComboBox()
        self.method.addItems(list(METHODS))
        self.method.setCurrentText(d["method"])
        self.method.setToolTip("head: ANIL's head adaptation; ncm: nearest class mean of the support features")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=d["seed"])
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.protocol = QComboBox()
        for text, data in PROTOCOLS:
            self.protocol.addItem(text, data)
        self.protocol.setToolTip(
            "Omniglot: episodes within one alphabet draw all their characters from one alphabet (Lake et al.'s "
            "protocol, characters that look alike); Lake et al.'s 20 runs are the fixed runs humans (4.5 % "
            "errors) and Bayesian Program Learning (3.3 %) were scored on, for a lake-split model"
        )
        self.views = QComboBox()
        self._set_views_choices(1, drawings=True)
        self.views.setToolTip(
            "Test-time views (drawings only): every image is also seen slightly shifted, turned and resized, and "
            "its features averaged; 9 views cost 9 times the work. The model's own setting is the app's"
        )
        self.dataset.currentTextChanged.connect(self._dataset_changed)
        self.protocol.currentIndexChanged.connect(self._protocol_changed)
        self._dataset_changed(self.dataset.currentText())
        self._store_data_root = remember_data_roots(settings, self.dataset, self.data_root)
        form = self._form()
        self.run_button = QPushButton("&Run")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.run_button.clicked.connect(self.run)
        self.stop_button.clicked.connect(self.stop)
        self.progress = QProgressBar()
        self.status = QLabel("Not started.")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setWordWrap(True)
        self.results = QListWidget()
        self.results.setWordWrap(True)
        self.results.setToolTip("Finished evaluations, newest last")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hbox(self.run_button, self.stop_button))
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("Results"))
        layout.addWidget(self.results, 1)
        self.resize(640, 560)

    def _form(self) -> QFormLayout:
        """The settings, one row each; Alt+D, Alt+W, Alt+V and Alt+R are the keyboard's way through them."""
        form = QFormLayout()
        form.addRow("Checkpoint", self.checkpoint_label)
        form.addRow("Data set", self.dataset)
        root_label = QLabel("&Data root")  # Alt+D, Alt+W and Alt+R: the keyboard's way to Lake's runs
        root_label.setBuddy(self.data_root)
        form.addRow(root_label, path_row(self.data_root, True, self))
        form.addRow("Omniglot split", self.split_scheme)
        form.addRow("Episodes dra&wn", self.protocol)
        form.addRow("Split", self.split)
        form.addRow("Ways / shots / query", hbox(self.ways, self.shots, self.query))
        form.addRow("Episodes", self.episodes)
        form.addRow("BatchNorm / method", hbox(self.bn, self.method))
        form.addRow("Seed / device", hbox(self.seed, self.device))
        views_label = QLabel("&Views")  # Alt+V
        views_label.setBuddy(self.views)
        form.addRow(views_label, self.views)
        return form

    def set_checkpoint(self, path: str, info: dict[str, Any]) -> None:
        """The model to evaluate, and its data set and trained task as defaults."""
        self.checkpoint = path
        self.checkpoint_label.setText(path)
        dataset = info.get("dataset", {})
        if dataset.get("name") in DATASETS:
            self.dataset.setCurrentText(dataset["name"])
        if dataset.get("split_scheme") in SPLIT_SCHEMES:
            self.split_scheme.setCurrentText(dataset["split_scheme"])
        pre = info.get("preprocessing", {})
        self._set_views_choices(int(pre.get("views", 1)), drawings=int(pre.get("channels", 1)) == 1)
        task = info.get("trained_task", {})
        for box, key in ((self.ways, "ways"), (self.shots, "shots")):
            if isinstance(task.get(key), int):
                box.setValue(task[key])

    def _set_views_choices(self, own: int, drawings: bool) -> None:
        """The model's own test-time views first (what the app does), then the other counts; a photo model
        has no choice (views are for drawings on white paper)."""
        self.views.clear()
        self.views.addItem(f"the model's ({own}: {'the image alone' if own == 1 else f'{own} views'})", None)
        for n in VIEW_COUNTS:
            if n != own and drawings:
                self.views.addItem("1: the image alone" if n == 1 else f"{n} views", n)
        self.views.setEnabled(drawings)

    def _dataset_changed(self, name: str) -> None:
        omniglot = name == "omniglot"
        self.split_scheme.setEnabled(omniglot)
        self.protocol.setEnabled(omniglot)
        if not omniglot:
            self.protocol.setCurrentIndex(0)

    def _protocol_changed(self) -> None:
        """Lake's runs are fixed: no split, task, episode count or seed to choose."""
        fixed = self.protocol.currentData() == LAKE_RUNS
        for box in (self.split, self.ways, self.shots, self.query, self.episodes, self.seed):
            box.setEnabled(not fixed)

    def config(self) -> EvalConfig:
        task = TaskSpec(self.ways.value(), self.shots.value(), self.query.value())
        within = self.protocol.currentData() if self.protocol.currentData() != LAKE_RUNS else None
        return EvalConfig(
            task,
            self.episodes.value(),
            self.bn.currentText(),
            self.seed.value(),
            method=self.method.currentText(),
            within=within,
            views=self.views.currentData(),
        )

    def lake_runs_request(self) -> LakeRunsRequest:
        return LakeRunsRequest(self.checkpoint, self.data_root.text().strip(), self.method.currentText(),
                               self.bn.currentText(), device=self.device.currentText(),
                               views=self.views.currentData())  # fmt: skip

    def run(self) -> None:
        from anil_engine.evaluation import EvalRequest, evaluate_checkpoint
        from anil_engine.lake_evaluation import evaluate_lake_runs

        if self.job is not None and self.job.running:
            return
        try:
            if not self.checkpoint:
                raise ValueError("no model loaded: open a checkpoint first (Ctrl+O)")
            if not self.data_root.text().strip():
                raise ValueError("choose the data root: the folder that holds the data set")
            config = self.config()
            lake = self.lake_runs_request() if self.protocol.currentData() == LAKE_RUNS else None
        except ValueError as exc:  # ConfigError is a ValueError
            self.error.emit(exc)
            self.status.setText(f"Not started: {exc}")
            return
        self._store_data_root()
        if lake is not None:
            self._start(evaluate_lake_runs, lake, 20, "Loading the model and Lake's runs…")
            return
        request = EvalRequest(
            self.checkpoint,
            self.data_root.text().strip(),
            config,
            self.dataset.currentText(),
            self.split.currentText(),
            self.split_scheme.currentText(),
            self.device.currentText(),
        )
        self._start(evaluate_checkpoint, request, config.episodes, "Loading the model and the data…")

    def _start(self, fn: Any, request: Any, steps: int, text: str) -> None:
        self.progress.setRange(0, steps)
        self.progress.setValue(0)
        self.status.setText(text)
        self._set_running(True)
        self.job = start_job(
            "evaluate",
            fn,
            request,
            on_progress=self._on_progress,
            on_done=self._on_done,
            on_failed=self._on_failed,
            on_finished=lambda: self._set_running(False),
        )

    def stop(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    def _on_progress(self, p: EvalProgress) -> None:  # EvalProgress
        self.progress.setMaximum(p.episodes)
        self.progress.setValue(p.episode)
        if p.episode == 0:
            self.status.setText(f"Reading the images and computing their features: {p.images_done}/{p.images_total}")
            return
        left = p.elapsed_s / p.episode * (p.episodes - p.episode)
        what = "Run" if self.protocol.currentData() == LAKE_RUNS else "Episode"
        self.status.setText(
            f"{what} {p.episode}/{p.episodes}: running mean {p.accuracy:.2f} % — about {left:.0f} s left"
        )

    def _on_done(self, result: dict[str, Any] | object) -> None:
        if result is CANCELLED:
            self.status.setText("Stopped: no result (a mean over fewer episodes than asked is not reported).")
            return
        views = f", {result['views']} views" if result.get("views", 1) > 1 else ""
        if "published" in result:  # Lake's runs
            line = (
                f"error {result['error']:.2f} ± {result['ci95']:.2f} % — Lake et al.'s {result['runs']} runs "
                f"(20-way 1-shot within one alphabet, {result['queries']} queries), {result['bn']}, "
                f"{result['method']}{views}; "
                f"humans {result['published']['humans']} %, Bayesian Program Learning "
                f"{result['published']['Bayesian Program Learning']} %"
            )
        else:
            within = f" within one {result['within']}" if result.get("within") else ""
            line = (
                f"{result['accuracy']:.2f} ± {result['ci95']:.2f} % — {result['dataset']} {result['split']}, "
                f"{result['ways']}-way {result['shots']}-shot{within}, {result['query']} queries, "
                f"{result['episodes']} episodes, {result['bn']}, {result['method']}{views}, seed {result['seed']} "
                f"({result['seconds']:.0f} s)"
            )
        self.status.setText(line)
        self.results.addItem(line)
        self.results.scrollToBottom()

    def _on_failed(self, exc: BaseException) -> None:
        self.status.setText(f"Failed: {exc}")
        self.error.emit(exc)

    def shutdown(self) -> None:
        """Stop a running evaluation and wait for it."""
        if self.job is not None and self.job.running:
            self.job.cancel()
            self.job.wait(60000)
