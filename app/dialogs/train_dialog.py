"""Meta-train an ANIL model in the app: settings, optional pre-training, progress, ETA, curves, Stop / Resume."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from anil_engine.config import (
    DATASETS,
    DEVICES,
    RECIPE_FEATURE_NORM,
    TrainConfig,
    dataset_preprocessing,
    field_defaults,
)
from app.jobs import CANCELLED, Job, start_job
from app.widgets import hbox, path_row, remember_data_roots, split_scheme_box

if TYPE_CHECKING:
    from anil_engine.meta.pretraining import PretrainProgress
    from anil_engine.meta.trainrun import DataProgress, TrainProgress

# The data sets with training splits the dialog offers (the few-shot benchmarks are for evaluation here).
TRAINABLE_DATASETS = ("omniglot", "caltech-101", "folder")


class TrainDialog(QDialog):
    """Non-modal dialog running `anil_engine.meta.training.train` in a worker (or, with pre-training epochs,
    `anil_engine.meta.pretraining.pretrain_then_train`).

    Signals:
        model_ready(str): path of the best checkpoint when a run finishes.
        error(object): exceptions, for the app's error channel.
    """

    model_ready = Signal(str)
    error = Signal(object)

    def __init__(self, parent: QWidget | None = None, default_out: str = "", settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Meta-train an ANIL model")
        self.job: Job | None = None
        self._result_path = ""
        self._xs: list[int] = []
        self._acc: list[float] = []
        self._loss: list[float] = []
        self._vx: list[int] = []
        self._vy: list[float] = []
        self._build_fields(field_defaults(TrainConfig), default_out)
        self._store_data_root = remember_data_roots(settings, self.dataset, self.data_root)
        layout = QVBoxLayout(self)
        layout.addLayout(self._form())
        layout.addWidget(self._buttons())
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self._build_plots(layout)
        self.resize(720, 900)

    def _build_fields(self, d: dict, default_out: str) -> None:
        """Every setting, its default from `TrainConfig`, its choices from the engine's constants."""
        from anil_engine.backbones import BACKBONES

        self.dataset = QComboBox()
        self.dataset.addItems([name for name in DATASETS if name in TRAINABLE_DATASETS])
        self.dataset.setCurrentText(d["dataset"])
        self.dataset.setToolTip(
            "omniglot: Omniglot arrays or folders; caltech-101: 101_ObjectCategories folder or zip; "
            "folder: a folder of class folders"
        )
        self.data_root = QLineEdit()
        self.split_scheme = split_scheme_box(d["split_scheme"])
        self.within_alphabet = QCheckBox("tasks within one alphabet")
        self.within_alphabet.setChecked(d["within"] == "alphabet")
        self.within_alphabet.setToolTip(
            "Draw every training and validation task's classes from one Omniglot alphabet (look-alike "
            "characters), as Lake et al.'s one-shot test does; off: from all training characters"
        )
        self.ways, self.shots, self.query = QSpinBox(), QSpinBox(), QSpinBox()
        for box, key in ((self.ways, "ways"), (self.shots, "shots"), (self.query, "query")):
            box.setRange(1, 100)
            box.setValue(d[key])
        self.meta_lr = QDoubleSpinBox(decimals=5, minimum=1e-5, maximum=1.0, singleStep=1e-4, value=d["meta_lr"])
        self.fast_lr = QDoubleSpinBox(decimals=4, minimum=1e-4, maximum=10.0, singleStep=0.01, value=d["fast_lr"])
        self.meta_batch = QSpinBox(minimum=1, maximum=1024, value=d["meta_batch_size"])
        self.steps = QSpinBox(minimum=0, maximum=100, value=d["adaptation_steps"])
        self.iterations = QSpinBox(minimum=1, maximum=1_000_000, value=d["iterations"])
        self.input_size = QSpinBox(minimum=16, maximum=256, value=d["input_size"])
        self.hidden = QSpinBox(minimum=4, maximum=512, value=d["hidden_size"])
        self.crop_ink = QCheckBox("&crop every image to its ink")
        self.crop_ink.setChecked(d["crop"] == "ink")
        self.crop_ink.setToolTip(
            "Frame every image by the square around its dark pixels before it is resized, so a drawing on light "
            "paper fills the input whatever its size and place on the page (`--crop ink`; Omniglot's lake model). "
            "The model keeps it: the app frames every image it is given the same way."
        )
        self.first_order = QCheckBox("first order (no second derivatives)")
        self.first_order.setChecked(d["first_order"])
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.device.setCurrentText(d["device"])
        self.val_every = QSpinBox(minimum=1, maximum=100000, value=d["val_every"])
        self.val_episodes = QSpinBox(minimum=1, maximum=10000, value=d["val_episodes"])
        self.out = QLineEdit(default_out)
        self.init_from = QLineEdit(d["init_from"])
        self.pretrain_epochs = QSpinBox(minimum=0, maximum=1000, value=0)
        self.pretrain_epochs.setSpecialValueText("none")
        self.pretrain_epochs.setToolTip(
            "First train the trunk as a plain classifier over the training classes for this many epochs "
            f"(into RUN/pretrained.pt), then meta-train from it with its features rescaled to norm "
            f"{RECIPE_FEATURE_NORM:g}: the recipe of the bundled models, much better on photos than meta-training "
            "from scratch. Leave 'Start trunk from' empty."
        )
        self.backbone = QComboBox()
        for name, spec in BACKBONES.items():
            self.backbone.addItem(spec.title, name)
        self.backbone.setCurrentIndex(list(BACKBONES).index(d["backbone"]))
        self.backbone.setToolTip(
            "The trunk: CNN4 is trained from scratch on the data set; EfficientNet-Lite0 starts from ImageNet "
            "features (best for photos; its frozen part is computed once, so meta-training fits a CPU)"
        )
        self.trunk_train = QComboBox()
        self.trunk_train.addItem("automatic (all of a trunk from scratch, none of a pretrained one)", "auto")
        self.trunk_train.addItem("none: only the head", "none")
        for k in (1, 2):
            self.trunk_train.addItem(f"the last {k} stage{'s' if k > 1 else ''} of the trunk and the head", f"last:{k}")
        self.trunk_train.addItem("all of the trunk and the head", "all")
        self.trunk_train.setCurrentIndex(self.trunk_train.findData(d["trunk_train"]))
        self.backbone.currentIndexChanged.connect(self._backbone_changed)
        self.dataset.currentTextChanged.connect(self._dataset_changed)
        self.progress = QProgressBar()
        self.status = QLabel("Not started.")

    def _form(self) -> QFormLayout:
        form = QFormLayout()
        form.addRow("Data set", self.dataset)
        form.addRow("Data root", path_row(self.data_root, True, self))
        form.addRow("Omniglot split", hbox(self.split_scheme, self.within_alphabet))
        form.addRow("Trunk", self.backbone)
        form.addRow("Trunk training", self.trunk_train)
        form.addRow("Ways / shots / query", hbox(self.ways, self.shots, self.query))
        form.addRow("Meta learning rate (Adam)", self.meta_lr)
        form.addRow("Fast learning rate (head)", self.fast_lr)
        form.addRow("Meta-batch size", self.meta_batch)
        form.addRow("Adaptation steps", self.steps)
        form.addRow("Iterations", self.iterations)
        form.addRow("Input size / hidden size", hbox(self.input_size, self.hidden, self.crop_ink))
        form.addRow("", self.first_order)
        form.addRow("Validate every / episodes", hbox(self.val_every, self.val_episodes))
        form.addRow("Device", self.device)
        form.addRow("Run folder", path_row(self.out, True, self))
        form.addRow("Start trunk from (optional)", path_row(self.init_from, False, self))
        form.addRow("Pre-train trunk first (epochs)", self.pretrain_epochs)
        return form

    def _buttons(self) -> QWidget:
        self.start_button = QPushButton("Start")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        # A finished run does not replace the current model by itself: the user chooses (the support set is
        # re-adapted onto the new model, which may see images of another kind).
        self.use_button = QPushButton("Use this model")
        self.use_button.setToolTip("Make the run's best checkpoint the current model (the support set re-adapts)")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use_result)
        self.start_button.clicked.connect(lambda: self.start(resume=False))
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.stop_button.clicked.connect(self.stop)
        return hbox(self.start_button, self.resume_button, self.stop_button, self.use_button)

    def _build_plots(self, layout: QVBoxLayout) -> None:
        import pyqtgraph as pg

        self.plot = pg.PlotWidget(title="Meta-training")
        self.plot.setBackground("w")
        self.plot.addLegend()
        self.plot.setLabel("bottom", "iteration")
        self.plot.setLabel("left", "accuracy (%)")
        self.train_curve = self.plot.plot([], [], pen=pg.mkPen("#1f77b4", width=1), name="meta-train query accuracy")
        self.val_curve = self.plot.plot(
            [], [], pen=pg.mkPen("#d62728", width=2), symbol="o", symbolSize=5, name="validation accuracy"
        )
        self.loss_plot = pg.PlotWidget(title="Meta-train query loss")
        self.loss_plot.setBackground("w")
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#2ca02c", width=1))
        layout.addWidget(self.plot, 2)
        layout.addWidget(self.loss_plot, 1)

    def _dataset_changed(self, name: str) -> None:
        self.split_scheme.setEnabled(name == "omniglot")
        self.within_alphabet.setEnabled(name == "omniglot")
        self._backbone_changed()

    def _backbone_changed(self) -> None:
        from anil_engine.backbones import get_backbone

        spec = get_backbone(self.backbone.currentData())
        if spec.pretrained is not None:
            self.input_size.setValue(spec.input_sizes[0])
        else:
            self.input_size.setValue(dataset_preprocessing(self.dataset.currentText()).size)
        self.hidden.setEnabled(spec.pretrained is None)
        self.pretrain_epochs.setEnabled(spec.pretrained is None)
        if spec.pretrained is not None:
            self.pretrain_epochs.setValue(0)  # the trunk is pretrained already

    def config(self) -> TrainConfig:
        return TrainConfig(
            dataset=self.dataset.currentText(),
            data_root=self.data_root.text().strip(),
            split_scheme=self.split_scheme.currentText(),
            ways=self.ways.value(),
            shots=self.shots.value(),
            query=self.query.value(),
            meta_lr=self.meta_lr.value(),
            fast_lr=self.fast_lr.value(),
            meta_batch_size=self.meta_batch.value(),
            adaptation_steps=self.steps.value(),
            iterations=self.iterations.value(),
            first_order=self.first_order.isChecked(),
            device=self.device.currentText(),
            hidden_size=self.hidden.value(),
            input_size=self.input_size.value(),
            crop="ink" if self.crop_ink.isChecked() else "none",
            val_every=self.val_every.value(),
            val_episodes=self.val_episodes.value(),
            checkpoint_every=max(1, min(field_defaults(TrainConfig)["checkpoint_every"], self.val_every.value())),
            init_from=self.init_from.text().strip(),
            backbone=self.backbone.currentData(),
            trunk_train=self.trunk_train.currentData(),
            within="alphabet" if self.within_alphabet.isEnabled() and self.within_alphabet.isChecked() else None,
        )

    def start(self, resume: bool) -> None:
        from anil_engine.meta.pretraining import pretrain_then_train
        from anil_engine.meta.training import train

        if self.job is not None and self.job.running:
            return
        try:
            config = self.config()
            if not self.out.text().strip():
                raise ValueError("choose a run folder for the checkpoints")
        except ValueError as exc:
            self.error.emit(exc)
            return
        self._store_data_root()
        self.use_button.setEnabled(False)
        if not resume:
            self._xs, self._acc, self._loss, self._vx, self._vy = [], [], [], [], []
        self.progress.setRange(0, config.iterations)
        self.status.setText("Loading data…")
        out = Path(self.out.text().strip())
        epochs = self.pretrain_epochs.value()
        name, fn, args = (
            ("pre-train + meta-train", pretrain_then_train, (config, epochs, out, resume))
            if epochs
            else ("meta-train", train, (config, out, resume))
        )
        self._set_running(True)
        self.job = start_job(
            name,
            fn,
            *args,
            on_progress=self._on_progress,
            on_done=self._on_done,
            on_failed=self._on_failed,
            on_finished=self._on_finished,
        )

    def stop(self) -> None:
        if self.job is not None and self.job.running:
            self.status.setText("Stopping: saving a resumable checkpoint…")
            self.job.cancel()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.resume_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    def _on_progress(
        self, p: TrainProgress | PretrainProgress | DataProgress
    ) -> None:  # TrainProgress, PretrainProgress or DataProgress
        from anil_engine.meta.pretraining import PretrainProgress
        from anil_engine.meta.trainrun import DataProgress

        if isinstance(p, DataProgress):
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
            self.status.setText(f"{p.stage}: {p.done}/{p.total}" if p.total > 1 else f"{p.stage}…")
            return

        if isinstance(p, PretrainProgress):  # progress and status only; the curves are meta-training's
            self.progress.setRange(0, p.steps)
            self.progress.setValue(p.step)
            val = f", validation (nearest class mean) {p.val_accuracy:.1f} %" if p.val_accuracy is not None else ""
            self.status.setText(
                f"Pre-training the trunk, epoch {p.epoch}/{p.epochs}: loss {p.loss:.3f}, "
                f"accuracy {p.accuracy:.1f} %{val}"
            )
            return
        self.progress.setRange(0, p.iterations)
        self.progress.setValue(p.iteration)
        if p.iteration == 0:  # the starting point's validation, before the first meta-iteration
            self._vx.append(0)
            self._vy.append(p.val_accuracy)
            self.val_curve.setData(self._vx, self._vy)
            self.status.setText(f"Starting point: validation accuracy {p.val_accuracy:.1f} %. Meta-training…")
            return
        self._xs.append(p.iteration)
        self._acc.append(p.accuracy)
        self._loss.append(p.loss)
        if p.val_accuracy is not None:
            self._vx.append(p.iteration)
            self._vy.append(p.val_accuracy)
            self.val_curve.setData(self._vx, self._vy)
        self.train_curve.setData(self._xs, self._acc)
        self.loss_curve.setData(self._xs, self._loss)
        eta = int(p.eta_s)
        best = f", best validation {p.best_val_accuracy:.1f} %" if p.best_val_accuracy is not None else ""
        self.status.setText(
            f"Iteration {p.iteration}/{p.iterations}: loss {p.loss:.3f}, accuracy "
            f"{p.accuracy:.1f} %{best} — ETA {eta // 60} min {eta % 60:02d} s"
        )

    def _on_done(self, result: dict[str, Any] | object) -> None:
        if result is CANCELLED:
            self.status.setText(f"Stopped. Resumable state saved in {self.out.text()} — press Resume to continue.")
            return
        self._result_path = result["best"]
        self.use_button.setEnabled(True)
        best = result["best_val_accuracy"]
        # None: the starting trunk learnt the validation classes too, so the run kept its last point.
        kept = f"best validation accuracy {best} %" if best is not None else "no validation, the last point kept"
        self.status.setText(
            f"Finished: {kept}, saved as {result['best']}. Press Use this model to make it the current model."
        )

    def _use_result(self) -> None:
        if self._result_path:
            self.use_button.setEnabled(False)
            self.model_ready.emit(self._result_path)

    def _on_failed(self, exc: BaseException) -> None:
        self.status.setText(f"Failed: {exc}")
        self.error.emit(exc)

    def _on_finished(self) -> None:
        self._set_running(False)

    def shutdown(self) -> None:
        """Stop a running job (it saves last.pt) and wait for it."""
        if self.job is not None and self.job.running:
            self.job.cancel()
            self.job.wait(60000)
