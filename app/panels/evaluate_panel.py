"""The Evaluate tab: leave-one-out on the support set, or a labelled folder; accuracy, confusion, mistakes."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout

from app.widgets import DropArea, confusion_image, hbox


def mistakes_text(confusion: list[list[int]], listed: int) -> str:
    """The mistakes button's words: how many there are, and whether they can be listed (a labelled folder's)."""
    wrong = sum(sum(row) - row[i] for i, row in enumerate(confusion))
    if not wrong:
        return "No mistakes"
    if listed:
        return f"Show the {listed} mistake{'s' if listed > 1 else ''} in Classify"
    return f"{wrong} mistake{'s' if wrong > 1 else ''} (a labelled folder's mistakes can be listed in Classify)"


class EvaluatePanel(DropArea):
    """Shows one evaluation at a time, and marks it out of date when what it measured changes.

    Signals:
        dropped(items): inherited; a labelled folder of class folders.
        leave_one_out_requested(), folder_requested(): the two buttons.
        mistakes_requested(list): (prediction, true class) pairs to list in Classify.
    """

    leave_one_out_requested = Signal()
    folder_requested = Signal()
    mistakes_requested = Signal(list)

    def __init__(self) -> None:
        super().__init__()
        e = QVBoxLayout(self)
        title = QLabel(
            "<b>Evaluate</b> — leave-one-out on the support set, or drop a labelled folder of class folders here"
        )
        title.setWordWrap(True)
        e.addWidget(title)
        self.loo_button = QPushButton("Leave-one-out")
        self.loo_button.setToolTip("Classify each support image with a head adapted on all the others (Ctrl+L)")
        self.loo_button.clicked.connect(self.leave_one_out_requested)
        labelled_button = QPushButton("Labelled folder…")
        labelled_button.setToolTip("Choose a folder of class folders named like the support classes (Ctrl+Shift+F)")
        labelled_button.clicked.connect(self.folder_requested)
        e.addWidget(hbox(self.loo_button, labelled_button))
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        e.addWidget(self.summary)
        self.mistakes_button = QPushButton("Show the mistakes in Classify")
        self.mistakes_button.setToolTip(
            "List the labelled folder's misclassified images in Classify (least confident first), to add them "
            "to the right support class with 1-9, a drag or a right-click"
        )
        self.mistakes_button.clicked.connect(lambda: self.mistakes_requested.emit(list(self.mistakes)))
        self.mistakes_button.setEnabled(False)
        e.addWidget(self.mistakes_button)
        self.confusion = QLabel()
        self.confusion.setAlignment(Qt.AlignmentFlag.AlignCenter)
        e.addWidget(self.confusion, 1)
        self.mistakes: list = []
        self.stale = True  # True: nothing on screen to mark out of date

    def show_running(self, text: str) -> None:
        self.summary.setText(text)

    def show_stopped(self, title: str) -> None:
        self.summary.setText(f"<b>{title}</b>: stopped; no result.")
        self.stale = True

    def show_report(self, report: object, title: str, model_name: str) -> None:
        """An `EvalReport`: accuracy, per class, the confusion matrix, and what it was computed on."""
        per_class = ", ".join(f"{n}: {a:.0f} %" for n, a in report.per_class.items())
        self.summary.setText(
            f"<b>{title}</b>: accuracy {report.accuracy:.1f} % on {report.n_images} images "
            f"(model {model_name}, {len(report.class_names)} support classes).<br>Per class: {per_class}"
        )
        self.stale = False
        self.confusion.setEnabled(True)
        self.mistakes = list(report.mistakes)
        self.mistakes_button.setEnabled(bool(self.mistakes))
        self.mistakes_button.setText(mistakes_text(report.confusion, len(self.mistakes)))
        self.confusion.setPixmap(QPixmap.fromImage(confusion_image(report.confusion, report.class_names)))

    def mark_stale(self, why: str) -> None:
        """The evaluation on screen describes a support set or model that is gone: say so (once) and grey it."""
        if self.stale:
            return
        self.stale = True
        self.summary.setText(f"<b>Out of date</b> ({why} since; evaluate again): {self.summary.text()}")
        self.confusion.setEnabled(False)
