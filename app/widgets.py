"""Views. They show models and emit user intents; no ML logic here."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QRect,
    QSettings,
    QSize,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QFontMetrics,
    QImage,
    QPainter,
)
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QToolButton,
    QWidget,
)

from anil_engine.config import LAKE_FOLDS, SPLIT_SCHEMES
from app.thumbnails import THUMB, thumbnail

if TYPE_CHECKING:
    from app.jobs import Job


def split_scheme_box(current: str) -> QComboBox:
    """Omniglot's class splits to choose from, each explained in plain words."""
    box = QComboBox()
    box.addItems(list(SPLIT_SCHEMES))
    box.setCurrentText(current)
    box.setToolTip(
        "vinyals: the split of most few-shot papers (characters of all alphabets mixed). "
        "lake: Lake et al.'s, trains on 25 background alphabets, validates on 5 others, tests on the 20 "
        f"evaluation alphabets. lake-fold0 to lake-fold{LAKE_FOLDS - 2}: the same with 5 other validation "
        "alphabets each; "
        "with lake, every background alphabet is validated on once"
    )
    return box


def hbox(*widgets: QWidget) -> QWidget:
    """The widgets side by side, as one form field."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return row


def remember_data_roots(settings: QSettings | None, dataset: QComboBox, root: QLineEdit) -> Callable[[], None]:
    """Fill `root` with the folder last used for the chosen data set; returns what stores the current one."""
    if settings is None:
        return lambda: None

    def fill(name: str) -> None:
        saved = settings.value(f"data_root/{name}", "")
        if saved:
            root.setText(str(saved))

    def store() -> None:
        if root.text().strip():
            settings.setValue(f"data_root/{dataset.currentText()}", root.text().strip())

    dataset.currentTextChanged.connect(fill)
    fill(dataset.currentText())
    return store


def path_row(edit: QLineEdit, folder: bool, parent: QWidget) -> QWidget:
    """`edit` with a Browse… button choosing a folder, or else a checkpoint file."""
    browse = QPushButton("Browse…")

    def pick() -> None:
        if folder:
            chosen = QFileDialog.getExistingDirectory(parent, "Choose folder", edit.text())
        else:
            chosen, _ = QFileDialog.getOpenFileName(parent, "Choose checkpoint", edit.text(), "Checkpoints (*.pt)")
        if chosen:
            edit.setText(chosen)

    browse.clicked.connect(pick)
    row = hbox(edit, browse)
    row.layout().setStretch(0, 1)
    return row


@dataclass(frozen=True)
class RemoteUrl:
    """A dropped address that is not a local file (e.g. an image dragged from a web page without its data)."""

    url: str


def local_path(url: QUrl) -> Path:
    """The file a file:// URL names, byte for byte: a name that is not UTF-8 (Latin-1 bytes) keeps its bytes
    (Qt would decode them as UTF-8 and name a file that does not exist)."""
    encoded = bytes(url.toEncoded(QUrl.ComponentFormattingOption.FullyEncoded)).decode("ascii")
    return Path(os.fsdecode(urllib.parse.unquote_to_bytes(urllib.parse.urlsplit(encoded).path)))


def dropped_items(mime: QMimeData) -> list[Path | QImage | RemoteUrl]:
    """What a drop carries: local paths; else image data (a browser's image); else the remote addresses."""
    urls = mime.urls() if mime.hasUrls() else []
    paths = [local_path(u) for u in urls if u.isLocalFile()]
    if paths:
        return paths
    if mime.hasImage():
        image = QImage(mime.imageData())
        if not image.isNull():
            return [image]
    return [RemoteUrl(u.toString()) for u in urls]


def accepts_drop(mime: QMimeData) -> bool:
    return mime.hasUrls() or mime.hasImage()


def dropped_paths(event: QDropEvent | QDragEnterEvent) -> list[Path | QImage | RemoteUrl]:
    return dropped_items(event.mimeData())


def accept_as_copy(event: QDropEvent) -> None:
    """Accept a drag or a drop as a copy, whatever the source proposed: a file manager offering Move must
    never read the drop as "move the originals" (the app only reads them)."""
    event.setDropAction(Qt.DropAction.CopyAction)
    event.accept()


class DropArea(QFrame):
    """A frame that accepts drops of files, folders or image data and emits what was dropped (`dropped_items`)."""

    dropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # Qt override
        if accepts_drop(event.mimeData()):
            accept_as_copy(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # Qt override
        if accepts_drop(event.mimeData()):
            accept_as_copy(event)

    def dropEvent(self, event: QDropEvent) -> None:  # Qt override
        items = dropped_paths(event)
        if items:
            accept_as_copy(event)
            self.dropped.emit(items)


class JobProgress(QWidget):
    """Status-bar progress of the image jobs (adapt, classify, evaluate) with a Stop button.

    Hidden until a job reports that work remains; `cancel_requested(job)` asks to stop the job shown.
    """

    cancel_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(220)
        self.stop = QToolButton()
        self.stop.setText("Stop")
        self.stop.setToolTip("Stop this job (Esc); the batch of images in flight finishes first")
        self.stop.clicked.connect(lambda: self.job is not None and self.cancel_requested.emit(self.job))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.label, self.bar, self.stop):
            layout.addWidget(w)
        self.job = None
        self.hide()

    def update_job(self, job: Job, text: str, done: int, total: int) -> None:  # Job
        """Show `job`'s progress while work remains."""
        if done >= total:
            return
        self.job = job
        self.label.setText(f"{text} {done}/{total} images")
        self.bar.setRange(0, total)
        self.bar.setValue(done)
        self.show()

    def job_finished(self, job: Job) -> None:  # Job
        if job is self.job:
            self.job = None
            self.hide()


LABEL_ROLE = Qt.ItemDataRole.UserRole + 1
CONFIDENCE_ROLE = Qt.ItemDataRole.UserRole + 2
ORDER_ROLE = Qt.ItemDataRole.UserRole + 3


class ResultsModel(QAbstractListModel):
    """Classification results, one row per image (the `Prediction` is the row's `UserRole` data)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.predictions: list = []

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt override
        return 0 if parent.isValid() else len(self.predictions)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # Qt override
        if not index.isValid():
            return None
        p = self.predictions[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{p.label} ({100 * p.confidence:.1f} %) — {Path(p.path).name}"
        if role == Qt.ItemDataRole.ToolTipRole:
            top = sorted(p.probabilities.items(), key=lambda kv: -kv[1])
            return p.path + "\n" + "\n".join(f"{n}: {100 * v:.1f} %" for n, v in top)
        if role == Qt.ItemDataRole.UserRole:
            return p
        if role == LABEL_ROLE:
            return p.label
        if role == CONFIDENCE_ROLE:
            return p.confidence
        if role == ORDER_ROLE:
            return index.row()
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        return super().flags(index) | Qt.ItemFlag.ItemIsDragEnabled

    def mimeTypes(self) -> list[str]:  # Qt override
        return ["text/uri-list"]

    def mimeData(self, indexes: list[QModelIndex]) -> QMimeData:  # Qt override
        """The images' files: dropped on a class card, they join that class."""
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(self.predictions[i.row()].path) for i in indexes if i.isValid()])
        return mime

    def extend(self, predictions: list) -> None:
        if predictions:
            n = len(self.predictions)
            self.beginInsertRows(QModelIndex(), n, n + len(predictions) - 1)
            self.predictions.extend(predictions)
            self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.predictions = []
        self.endResetModel()


class ResultDelegate(QStyledItemDelegate):
    """Paints a result row: thumbnail, top class, confidence and file name, bars for the top 3 classes.

    Only visible rows are painted (thumbnails load then), so thousands of results stay responsive.
    """

    LINE = 18

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # Qt override
        return QSize(320, max(THUMB, 4 * self.LINE) + 6)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:  # Qt override
        prediction = index.data(Qt.ItemDataRole.UserRole)
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, widget)
        r = option.rect.adjusted(3, 3, -3, -3)
        pix = thumbnail(Path(prediction.path))
        painter.drawPixmap(r.x() + (THUMB - pix.width()) // 2, r.y() + (r.height() - pix.height()) // 2, pix)
        x = r.x() + THUMB + 8
        width = max(40, r.right() - x)
        painter.save()
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        head = f"{prediction.label}"
        painter.drawText(QRect(x, r.y(), width, self.LINE), Qt.AlignmentFlag.AlignVCenter, head)
        used = QFontMetrics(bold).horizontalAdvance(head + " ")
        painter.setFont(option.font)
        rest = f"({100 * prediction.confidence:.1f} %) — {Path(prediction.path).name}"
        painter.drawText(QRect(x + used, r.y(), max(0, width - used), self.LINE), Qt.AlignmentFlag.AlignVCenter, rest)
        painter.restore()
        top = sorted(prediction.probabilities.items(), key=lambda kv: -kv[1])[:3]
        for i, (name, p) in enumerate(top):
            bar = QStyleOptionProgressBar()
            bar.rect = QRect(x, r.y() + self.LINE * (i + 1) + 1, width, self.LINE - 3)
            bar.minimum, bar.maximum, bar.progress = 0, 1000, round(1000 * p)
            bar.text, bar.textVisible = f"{name}: {100 * p:.1f} %", True
            bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
            style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, widget)


def confusion_image(confusion: list[list[int]], names: list[str], cell: int = 36) -> QImage:
    """The confusion matrix (rows: true class, columns: predicted) drawn as a picture."""
    n = len(names)
    label_w = 110
    image = QImage(label_w + n * cell + 10, label_w + n * cell + 10, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    try:
        for i, row in enumerate(confusion):
            total = max(1, sum(row))
            for j, count in enumerate(row):
                share = count / total
                colour = (
                    QColor.fromRgbF(1 - 0.8 * share, 1 - 0.5 * share, 1.0)
                    if i != j
                    else QColor.fromRgbF(1 - 0.7 * share, 1.0, 1 - 0.7 * share)
                )
                x, y = label_w + j * cell, label_w + i * cell
                painter.fillRect(x, y, cell - 1, cell - 1, colour)
                painter.drawText(x, y, cell - 1, cell - 1, Qt.AlignmentFlag.AlignCenter, str(count))
        for i, name in enumerate(names):
            short = name if len(name) <= 14 else name[:13] + "…"
            painter.drawText(
                2,
                label_w + i * cell,
                label_w - 6,
                cell,
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                short,
            )
            painter.save()
            painter.translate(label_w + i * cell, label_w - 4)
            painter.rotate(-90)
            painter.drawText(0, 0, label_w - 6, cell, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, short)
            painter.restore()
        painter.drawText(label_w, 12, "predicted →")
        painter.save()
        painter.translate(12, label_w + n * cell)
        painter.rotate(-90)
        painter.drawText(0, 0, "true ↑")  # rows: the true class
        painter.restore()
    finally:
        painter.end()
    return image
