"""The support set on screen: one card per class, thumbnails, drops and edits through the undo stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.support_model import SupportSet
from app.thumbnails import THUMB, loader, thumbnail
from app.widgets import DropArea


class ThumbnailModel(QAbstractListModel):
    """A class's images for a list view; thumbnails are read when a row is first shown (then cached)."""

    def __init__(self, paths: list[Path], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.paths = list(paths)
        loader.ready.connect(self._thumbnails_decoded)

    def _thumbnails_decoded(self) -> None:
        """A thumbnail decoded in the background (HEIC): the shown rows ask for theirs again."""
        if self.paths:
            self.dataChanged.emit(self.index(0), self.index(len(self.paths) - 1), [Qt.ItemDataRole.DecorationRole])

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt override
        return 0 if parent.isValid() else len(self.paths)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # Qt override
        if not index.isValid():
            return None
        path = self.paths[index.row()]
        if role == Qt.ItemDataRole.DecorationRole:
            return thumbnail(path)
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(path)
        if role == Qt.ItemDataRole.UserRole:
            return path
        return None


class ClassCard(DropArea):
    """One support class: editable name, count, thumbnails, remove buttons; drop images on it."""

    renamed = Signal(str, str)
    remove_requested = Signal(str)
    remove_image_requested = Signal(str, object)
    images_dropped = Signal(str, list)
    add_requested = Signal(str)
    camera_requested = Signal(str)

    def __init__(self, name: str, paths: list[Path], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.setObjectName(f"card:{name}")
        self.dropped.connect(lambda paths: self.images_dropped.emit(self.name, paths))
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.name_edit = QLineEdit(name)
        self.name_edit.setToolTip("Class name (press Enter to rename)")
        self.name_edit.editingFinished.connect(self._rename)
        self.paths = list(paths)
        self.count = QLabel(f"{len(paths)} image{'s' if len(paths) != 1 else ''}")
        remove = QToolButton()
        remove.setText("✕")
        remove.setToolTip(f"Remove class {name}")
        remove.clicked.connect(lambda: self.remove_requested.emit(self.name))
        self.add_button = QToolButton()
        self.add_button.setText("+")
        self.add_button.setToolTip(f"Add images to class {name}…")
        self.add_button.clicked.connect(lambda: self.add_requested.emit(self.name))
        self.camera_button = QToolButton()
        self.camera_button.setText("Camera")
        self.camera_button.setToolTip(f"Take pictures of {name} with a camera…")
        self.camera_button.clicked.connect(lambda: self.camera_requested.emit(self.name))
        top.addWidget(self.name_edit, 1)
        top.addWidget(self.count)
        top.addWidget(self.camera_button)
        top.addWidget(self.add_button)
        top.addWidget(remove)
        layout.addLayout(top)
        # A model/view list: only the thumbnails scrolled into view are read (a class of thousands stays fast).
        self.thumbs = QListView()
        self.thumbs.setModel(ThumbnailModel(paths, self.thumbs))
        self.thumbs.setViewMode(QListView.ViewMode.IconMode)
        self.thumbs.setIconSize(QSize(THUMB, THUMB))
        self.thumbs.setGridSize(QSize(THUMB + 6, THUMB + 6))
        self.thumbs.setUniformItemSizes(True)
        self.thumbs.setFlow(QListView.Flow.LeftToRight)
        self.thumbs.setWrapping(False)
        self.thumbs.setMovement(QListView.Movement.Static)
        self.thumbs.setFixedHeight(THUMB + 30)
        self.thumbs.setToolTip("Drop images here; Delete removes the selected image")
        self.thumbs.setAcceptDrops(False)
        self.thumbs.doubleClicked.connect(self._remove_index)
        layout.addWidget(self.thumbs)
        if not paths:
            hint = QLabel("Drop images of this class here, or press +")
            hint.setStyleSheet("color: gray")
            layout.addWidget(hint)

    def mark_unreadable(self, unreadable: set[str]) -> None:
        """Say on the card how many of its images the head was adapted on, naming the ones it could not read."""
        bad = [p for p in self.paths if str(p) in unreadable]
        n = len(self.paths)
        if not bad:
            self.count.setText(f"{n} image{'s' if n != 1 else ''}")
            self.count.setStyleSheet("")
            self.count.setToolTip("")
            return
        self.count.setText(f"{n - len(bad)} of {n} images used")
        self.count.setStyleSheet("color: #b00020")
        self.count.setToolTip(
            "Not readable, left out of the adaptation (see Messages): " + ", ".join(p.name for p in bad)
        )

    def keyPressEvent(self, event: QKeyEvent) -> None:  # Qt override
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.thumbs.currentIndex().isValid():
            self._remove_index(self.thumbs.currentIndex())
        else:
            super().keyPressEvent(event)

    def _remove_index(self, index: QModelIndex) -> None:
        self.remove_image_requested.emit(self.name, index.data(Qt.ItemDataRole.UserRole))

    def _rename(self) -> None:
        new = self.name_edit.text().strip()
        if not new:
            self.name_edit.setText(self.name)  # a class keeps a name
        elif new != self.name:
            self.renamed.emit(self.name, new)


class SupportSetView(DropArea):
    """All class cards; dropping on the empty area creates classes.

    Signals:
        card_drop(name, items): items dropped on a class card.
        card_add_requested(name): the card's + button.
        card_camera_requested(name): the card's Camera button.
        refused(str): an edit that was not made, in words (e.g. a rename onto an existing class's name).
    """

    refused = Signal(str)
    card_drop = Signal(str, list)  # class name, dropped items
    card_add_requested = Signal(str)
    card_camera_requested = Signal(str)

    def __init__(self, support: SupportSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.support = support
        outer = QVBoxLayout(self)
        header = QHBoxLayout()
        title = QLabel("<b>Support set</b> — drop a folder of class folders, or images to start a class")
        title.setWordWrap(True)  # narrow windows wrap it instead of growing
        self.add_button = QPushButton("Add class")
        self.add_button.setToolTip("Add an empty class (Ctrl+Shift+N)")
        self.add_images_button = QPushButton("Add images…")
        self.add_images_button.setToolTip("Choose images of one new class (Ctrl+I)")
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.setToolTip("Choose a folder of class folders, or one class's folder (Ctrl+Shift+I)")
        header.addWidget(title, 1)
        header.addWidget(self.add_images_button)
        header.addWidget(self.add_folder_button)
        header.addWidget(self.add_button)
        outer.addLayout(header)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        # Always shown: a scroll bar that appears with the third card would narrow every card and move its ✕.
        self.scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.inner = QWidget()
        self.cards_layout = QVBoxLayout(self.inner)
        self.guide = QLabel(
            "<b>Start here.</b><br>1. Drop a folder that holds one sub-folder of photos per category (about 5 "
            "photos each; 1 works too), or press <b>Add folder…</b>.<br>2. Each category becomes a card and the "
            "model learns them in well under a second.<br>3. Drop new photos on <b>Classify</b> to sort them."
        )
        self.guide.setWordWrap(True)
        self.guide.setStyleSheet("color: #555; padding: 12px")
        self.cards_layout.addWidget(self.guide)
        self.cards_layout.addStretch(1)
        self.scroll.setWidget(self.inner)
        outer.addWidget(self.scroll, 1)
        self.status = QLabel("No classes yet.")
        self.status.setWordWrap(True)
        outer.addWidget(self.status)
        self.cards: dict[str, ClassCard] = {}
        self.unreadable: set[str] = set()  # images the last adaptation could not read
        self._renamed: dict[str, str] = {}  # the rename under way: old name -> new
        support.changed.connect(self.rebuild)
        self.rebuild()

    def mark_unreadable(self, unreadable: set[str]) -> None:
        """Mark on every card the images the last adaptation could not read."""
        self.unreadable = set(unreadable)
        for card in self.cards.values():
            card.mark_unreadable(self.unreadable)

    def _rename(self, old: str, new: str) -> None:
        """Rename a class, or refuse with a message and show the old name again."""
        self._renamed = {old: new.strip()}
        if self.support.rename_class(old, new):
            return
        card = self.cards.get(old)
        if card is not None:
            card.name_edit.setText(old)
        if self.support.find(new.strip()):
            self.refused.emit(f"a class named '{new.strip()}' already exists; '{old}' keeps its name")
        elif not new.strip():
            self.refused.emit(f"a class needs a name; '{old}' keeps its name")

    def rebuild(self) -> None:
        # The card being edited keeps the keyboard focus (under its new name after a rename), rather than
        # Qt moving it to whichever card comes first.
        focus = QApplication.focusWidget()
        editing = next((name for name, card in self.cards.items() if focus and card.isAncestorOf(focus)), None)
        editing = self._renamed.get(editing, editing)
        self._renamed = {}
        for card in self.cards.values():
            card.setParent(None)
            card.deleteLater()
        self.cards = {}
        for cls in self.support.classes:
            card = ClassCard(cls.name, cls.paths)
            card.renamed.connect(self._rename)
            card.remove_requested.connect(self.support.remove_class)
            card.remove_image_requested.connect(self.support.remove_image)
            card.images_dropped.connect(self.card_drop)
            card.add_requested.connect(self.card_add_requested)
            card.camera_requested.connect(self.card_camera_requested)
            self.cards_layout.insertWidget(self.cards_layout.count() - 1, card)
            self.cards[cls.name] = card
            card.mark_unreadable(self.unreadable)
        self.guide.setVisible(not self.support.classes)
        if editing in self.cards:
            self.cards[editing].name_edit.setFocus()
