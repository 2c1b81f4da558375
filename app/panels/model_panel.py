"""The Model dock: which model, where it runs, what it is good for; the head's settings under Advanced."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from anil_engine.config import DEVICES
from anil_engine.loading import LoadedModel, model_card, status_line
from app.widgets import hbox


class ModelPanel(QWidget):
    """Model picker, device, plain-words card; fast_lr and steps in a collapsed Advanced group.

    Signals:
        model_chosen(path): a model picked in the list.
        open_requested(): Open checkpoint….
        device_changed(device): "cpu" or "cuda".
        head_settings_changed(): fast_lr or steps edited (read them from `fast_lr` / `steps`).
    """

    model_chosen = Signal(str)
    open_requested = Signal()
    device_changed = Signal(str)
    head_settings_changed = Signal()

    def __init__(self, bundled: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("The model that looks at your images (bundled ones, and any you opened)")
        for name, path in bundled:
            self.model_combo.addItem(name, path)
        self.model_combo.activated.connect(lambda i: self.model_chosen.emit(self.model_combo.itemData(i)))
        open_button = QPushButton("Open checkpoint…")
        open_button.setToolTip("Open a model file (.pt) trained with ANIL Studio (Ctrl+O)")
        open_button.clicked.connect(self.open_requested)
        self.device_combo = QComboBox()
        self.device_combo.addItem("cpu")  # "cuda" is added when a model load finds a GPU
        self.device_combo.setToolTip("Where the model runs: the CPU, or the graphics card (CUDA) when there is one")
        self.device_combo.currentTextChanged.connect(self.device_changed)
        self.fast_lr = QDoubleSpinBox(decimals=4, minimum=1e-4, maximum=10.0, singleStep=0.05, value=0.1)
        self.steps = QSpinBox(minimum=0, maximum=1000, value=5)
        self.fast_lr.setToolTip("Step size of the head's adaptation (fast_lr; the model's own value when it loads)")
        self.steps.setToolTip("Number of head adaptation steps (the model's own value when it loads)")
        self.fast_lr.valueChanged.connect(self.head_settings_changed)
        self.steps.valueChanged.connect(self.head_settings_changed)
        self.advanced = QCollapsible("Advanced: head adaptation")
        self.advanced.setCollapsedIcon("▸")
        self.advanced.setExpandedIcon("▾")
        form = QWidget()
        rows = QFormLayout(form)
        rows.addRow("Step size (fast_lr)", self.fast_lr)
        rows.addRow("Steps", self.steps)
        self.advanced.addWidget(form)
        self.status = QLabel("Loading model…")
        self.status.setWordWrap(True)
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(True)
        self.detail = QTextBrowser()
        self.detail.setOpenExternalLinks(True)
        self.detail.setMinimumHeight(160)
        self.research = QCollapsible("Research detail")
        self.research.setCollapsedIcon("▸")
        self.research.setExpandedIcon("▾")
        self.research.addWidget(self.detail)
        layout.addWidget(QLabel("<b>Model</b>"))
        layout.addWidget(self.model_combo)
        layout.addWidget(open_button)
        device_row = hbox(QLabel("Runs on"), self.device_combo)
        device_row.layout().setStretch(1, 1)
        layout.addWidget(device_row)
        layout.addWidget(self.status)
        layout.addWidget(self.card, 1)
        layout.addWidget(self.research)
        layout.addWidget(self.advanced)

    @property
    def device(self) -> str:
        return self.device_combo.currentText()

    def show_loading(self, path: str) -> None:
        self.status.setText(f"Loading {Path(path).name}…")

    def show_failed(self, path: str, current: str | None) -> None:
        still = f"still using {Path(current).name}." if current else "open a checkpoint (Ctrl+O)."
        self.status.setText(f"Could not load {Path(path).name}; {still}")

    def show_model(self, loaded: LoadedModel) -> None:
        """Show a loaded model: picker (it always names the current model), card, status, head settings."""
        if loaded.cuda:
            for device in DEVICES:
                if device not in ("auto", "cpu") and self.device_combo.findText(device) < 0:
                    self.device_combo.addItem(device)
        for box, value in ((self.fast_lr, loaded.classifier.fast_lr), (self.steps, loaded.classifier.steps)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        card = model_card(loaded.path, loaded.info)
        self.card.setMarkdown(card.plain)
        self.detail.setMarkdown(card.detail)
        self.research.setVisible(bool(card.detail))
        self._select(loaded.path)
        self.status.setText(status_line(loaded, self.device))
        self.status.setToolTip(f"trunk: {loaded.classifier.backend} on {loaded.classifier.device}")

    def _select(self, path: str) -> None:
        # A checkpoint from elsewhere joins the list, named with its folder (e.g. "best.pt (run1)").
        loaded = Path(path).resolve()
        listed = [Path(self.model_combo.itemData(i)).resolve() for i in range(self.model_combo.count())]
        if loaded not in listed:
            self.model_combo.addItem(f"{loaded.name} ({loaded.parent.name})", str(loaded))
            self.model_combo.setItemData(self.model_combo.count() - 1, str(loaded), Qt.ItemDataRole.ToolTipRole)
            listed.append(loaded)
        self.model_combo.setCurrentIndex(listed.index(loaded))

    def set_head_settings(self, fast_lr: float, steps: int) -> None:
        """Apply a project's head settings (emits `head_settings_changed`)."""
        self.fast_lr.setValue(fast_lr)
        self.steps.setValue(steps)
