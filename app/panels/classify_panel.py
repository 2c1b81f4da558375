"""The Classify tab: drop photos, see the top class and top-3 bars, correct the model in place."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QSortFilterProxyModel, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QListView, QMenu, QPushButton, QSizePolicy, QVBoxLayout

from app import thumbnails
from app.support_model import SupportSet
from app.widgets import CONFIDENCE_ROLE, LABEL_ROLE, ORDER_ROLE, DropArea, ResultDelegate, ResultsModel

RESULT_ORDERS = {
    "as classified": (ORDER_ROLE, Qt.SortOrder.AscendingOrder),
    "least confident first": (CONFIDENCE_ROLE, Qt.SortOrder.AscendingOrder),
    "by class": (LABEL_ROLE, Qt.SortOrder.AscendingOrder),
}
GUIDE = (
    "<b>Nothing classified yet.</b> Drop photos or a folder of photos here (or press Classify images…, "
    "Ctrl+K). First give the support set at least 2 categories with a few photos each; Help ▸ Getting "
    "started shows the steps."
)


class ClassifyPanel(DropArea):
    """Results of classification, in a list the user can sort, open, and add to support classes.

    Signals:
        dropped(items): inherited; images or folders to classify.
        classify_requested(): the Classify images… button.
        export_requested(): the Export CSV… button.
        sort_requested(): the Sort into folders… button.
        add_to_class(paths, name): add these images to support class `name` (None: a new class).
    """

    classify_requested = Signal()
    export_requested = Signal()
    sort_requested = Signal()
    add_to_class = Signal(list, object)

    def __init__(self, support: SupportSet) -> None:
        super().__init__()
        self.support = support
        q = QVBoxLayout(self)
        title = QLabel("<b>Classify</b> — drop images or folders here, or paste images (Ctrl+V)")
        title.setWordWrap(True)
        q.addWidget(title)
        self.results_model = ResultsModel(self)
        self.results_sorted = QSortFilterProxyModel(self)
        self.results_sorted.setSourceModel(self.results_model)
        self.results = self._results_view()
        self.results_order = QComboBox()
        self.results_order.addItems(list(RESULT_ORDERS))
        self.results_order.setToolTip("Order of the results (the CSV keeps the order of classification)")
        self.results_order.currentTextChanged.connect(self.sort)
        self.results_summary = QLabel("")
        # Many classes make a long line: never let it widen the window (the tooltip has it all).
        self.results_summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        order_row = QHBoxLayout()
        order_row.addWidget(QLabel("Order"))
        order_row.addWidget(self.results_order)
        order_row.addWidget(self.results_summary, 1)
        clear = QPushButton("Clear")
        clear.setToolTip("Remove every result from this list (the photos stay where they are)")
        clear.clicked.connect(self.clear)
        order_row.addWidget(clear)
        q.addLayout(order_row)
        self.guide = QLabel(GUIDE)
        self.guide.setWordWrap(True)
        self.guide.setStyleSheet("color: #555; padding: 8px")
        q.addWidget(self.guide)
        q.addWidget(self.results, 1)
        buttons = QHBoxLayout()
        classify_button = QPushButton("Classify images…")
        classify_button.setToolTip("Choose image files to classify (Ctrl+K)")
        classify_button.clicked.connect(self.classify_requested)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip("Save the results as a table (Ctrl+E)")
        self.export_button.clicked.connect(self.export_requested)
        self.sort_button = QPushButton("Sort into folders…")
        self.sort_button.setToolTip("Copy the photos into one folder per class; the originals stay (Ctrl+Shift+D)")
        self.sort_button.clicked.connect(self.sort_requested)
        for b in (classify_button, self.export_button, self.sort_button):
            buttons.addWidget(b)
        q.addLayout(buttons)

    def _results_view(self) -> QListView:
        view = QListView()
        view.setModel(self.results_sorted)
        view.setItemDelegate(ResultDelegate(view))
        thumbnails.loader.ready.connect(view.viewport().update)  # a HEIC photo's thumbnail decoded in the background
        view.setUniformItemSizes(True)
        view.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        view.doubleClicked.connect(
            lambda index: QDesktopServices.openUrl(QUrl.fromLocalFile(index.data(Qt.ItemDataRole.UserRole).path))
        )
        # Correcting the model: drag results onto a class card, right-click ▸ Add to support class, or 1-9.
        view.setDragEnabled(True)
        view.setDragDropMode(QListView.DragDropMode.DragOnly)
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self._show_menu)
        view.setToolTip(
            "Double-click opens an image; drag images onto a class card, right-click, or press 1-9 (the support "
            "class's position) to add the selected images to the support set"
        )
        for digit in range(1, 10):
            key = QShortcut(QKeySequence(str(digit)), view, context=Qt.ShortcutContext.WidgetShortcut)
            key.activated.connect(lambda d=digit: self._add_selected_to_class_number(d))
        return view

    # -- what is shown ------------------------------------------------------------------------------------
    @property
    def predictions(self) -> list:
        """Every classification result shown, in the order classified."""
        return self.results_model.predictions

    def show_predictions(self, predictions: list, replace: bool = False) -> None:
        if replace:
            self.results_model.clear()
        self.results_model.extend(predictions)
        self.sort()

    def clear(self) -> None:
        self.results_model.clear()
        self.sort()

    def sort(self, *_args: object) -> None:
        role, order = RESULT_ORDERS[self.results_order.currentText()]
        self.results_sorted.setSortRole(role)
        self.results_sorted.sort(0 if role != ORDER_ROLE else -1, order)
        counts: dict[str, int] = {}
        for p in self.predictions:
            counts[p.label] = counts.get(p.label, 0) + 1
        summary = ", ".join(f"{n} {c}" for n, c in sorted(counts.items()))
        self.results_summary.setText(f"{len(self.predictions)} images: {summary}" if self.predictions else "")
        self.results_summary.setToolTip(summary)
        self.guide.setVisible(not self.predictions)

    def show_least_confident(self, predictions: list) -> None:
        """Replace the results with `predictions`, least confident first (an evaluation's mistakes)."""
        self.results_model.clear()
        self.results_model.extend(predictions)
        self.results_order.setCurrentText("least confident first")
        self.sort()

    # -- correcting ---------------------------------------------------------------------------------------
    def selected_results(self) -> list:
        """The predictions selected in the results list, in the order shown."""
        rows = sorted(self.results.selectionModel().selectedRows(), key=lambda i: i.row())
        return [i.data(Qt.ItemDataRole.UserRole) for i in rows]

    def _show_menu(self, pos: QPoint) -> None:
        selected = self.selected_results()
        if selected:
            menu = self.results_menu(selected)
            menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            menu.exec(self.results.viewport().mapToGlobal(pos))

    def results_menu(self, selected: list) -> QMenu:
        """The results' context menu for the selected predictions."""
        menu = QMenu(self)
        paths = [Path(p.path) for p in selected]
        add = menu.addMenu(f"Add {len(selected)} image{'s' if len(selected) > 1 else ''} to support class")
        for i, name in enumerate(self.support.names()):
            a = add.addAction(name, lambda n=name: self.add_to_class.emit(paths, n))
            if i < 9:
                a.setShortcut(QKeySequence(str(i + 1)))  # shown only: the list's own shortcuts act
        add.addSeparator()
        add.addAction("New class…", lambda: self.add_to_class.emit(paths, None))
        menu.addAction("Open image", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(selected[0].path)))
        return menu

    def _add_selected_to_class_number(self, number: int) -> None:
        names, selected = self.support.names(), self.selected_results()
        if selected and number <= len(names):
            self.add_to_class.emit([Path(p.path) for p in selected], names[number - 1])
