"""The menus as data: one row per action (id, menu, title, shortcut, the window's method that runs it).

`build_menus` turns the table into the menu bar; Help ▸ Keyboard shortcuts reads the menu bar back, so a
shortcut added here is listed there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

Key = QKeySequence.StandardKey


@dataclass(frozen=True)
class ActionSpec:
    """One menu entry. `slot` names a method of the window (or of `window.session` as "session.name")."""

    id: str
    menu: str
    title: str
    slot: str
    shortcut: str | QKeySequence.StandardKey | tuple[str, ...] | None = None
    tip: str = ""


SEPARATOR = "-"  # a row with this id is a separator; "recent" is the Recent submenu; "undo"/"redo" the stack's

ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "new-project", "&File", "New project", "session.new_project", Key.New, "An empty support set (the model stays)"
    ),
    ActionSpec("open-checkpoint", "&File", "Open checkpoint…", "pickers.open_checkpoint_dialog", Key.Open),
    ActionSpec("open-project", "&File", "Open project…", "session.open_dialog", "Ctrl+Shift+O"),
    ActionSpec("recent", "&File", "Recent", ""),
    ActionSpec("save-project", "&File", "Save project", "session.save", Key.Save),
    ActionSpec("save-project-as", "&File", "Save project as…", "session.save_as", Key.SaveAs),
    ActionSpec(
        "save-bundle",
        "&File",
        "Save self-contained project…",
        "session.save_bundle_dialog",
        "Ctrl+Alt+S",
        "A folder with the project, a copy of every image and the model: move or copy it anywhere",
    ),
    ActionSpec("locate-images", "&File", "Locate missing images…", "session.locate_dialog", "Ctrl+Shift+M"),
    ActionSpec("recover", "&File", "Recover unsaved work…", "session.offer_recovery"),
    ActionSpec(SEPARATOR, "&File", "", ""),
    ActionSpec(
        "add-images", "&File", "Add support images as a new class…", "pickers.add_support_images_dialog", "Ctrl+I"
    ),
    ActionSpec("add-folder", "&File", "Add support folder…", "pickers.add_support_folder_dialog", "Ctrl+Shift+I"),
    ActionSpec("classify-images", "&File", "Classify images…", "pickers.classify_images_dialog", "Ctrl+K"),
    ActionSpec("classify-folder", "&File", "Classify a folder…", "pickers.classify_folder_dialog", "Ctrl+Shift+K"),
    ActionSpec(
        "evaluate-folder", "&File", "Evaluate on a labelled folder…", "pickers.evaluate_folder_dialog", "Ctrl+Shift+F"
    ),
    ActionSpec(SEPARATOR, "&File", "", ""),
    ActionSpec("export-csv", "&File", "Export results as CSV…", "exports.export_csv_dialog", "Ctrl+E"),
    ActionSpec(
        "sort-into-folders",
        "&File",
        "Copy photos into class folders…",
        "exports.sort_into_folders_dialog",
        "Ctrl+Shift+D",
    ),
    ActionSpec(
        "export-classifier",
        "&File",
        "Export adapted classifier to ONNX…",
        "exports.export_classifier_dialog",
        "Ctrl+Shift+E",
        "Adapt the head first: add at least 2 classes with images",
    ),
    ActionSpec("export-trunk", "&File", "Export frozen trunk to ONNX…", "exports.export_trunk_dialog"),
    ActionSpec(SEPARATOR, "&File", "", ""),
    ActionSpec("quit", "&File", "Quit", "close", Key.Quit),
    ActionSpec("undo", "&Edit", "Undo", "", Key.Undo),
    ActionSpec("redo", "&Edit", "Redo", "", ("Ctrl+Shift+Z", "Ctrl+Y")),
    ActionSpec("add-class", "&Edit", "Add class", "add_empty_class", "Ctrl+Shift+N"),
    ActionSpec("paste", "&Edit", "Paste images to classify", "pickers.paste_images", Key.Paste),
    ActionSpec(
        "capture",
        "&Edit",
        "Capture pictures from a camera…",
        "camera.open_capture_for_current",
        "Ctrl+Shift+C",
        "Take pictures for the selected class (or the last one) with a camera",
    ),
    ActionSpec(
        "live-camera",
        "&Model",
        "Classify the live camera",
        "camera.show_live_camera",
        "Ctrl+Shift+P",
        "Show the Live camera tab and start the camera",
    ),
    ActionSpec("adapt", "&Model", "Adapt now", "adapt_now", "Ctrl+R"),
    ActionSpec("stop", "&Model", "Stop the running image job", "stop_image_job", "Esc"),
    ActionSpec("leave-one-out", "&Model", "Leave-one-out evaluation", "leave_one_out", "Ctrl+L"),
    ActionSpec("meta-train", "&Model", "Meta-train…", "show_train_dialog", "Ctrl+T"),
    ActionSpec("evaluate-dataset", "&Model", "Evaluate on a data set…", "show_eval_dialog", "Ctrl+Shift+L"),
    ActionSpec("getting-started", "&Help", "Getting started", "help.show_getting_started"),
    ActionSpec("shortcuts", "&Help", "Keyboard shortcuts", "help.show_shortcuts", Key.HelpContents),
    ActionSpec("about", "&Help", "About ANIL Studio", "help.show_about"),
)


def _shortcuts(spec: ActionSpec) -> list[QKeySequence]:
    if spec.shortcut is None:
        return []
    keys = spec.shortcut if isinstance(spec.shortcut, tuple) else (spec.shortcut,)
    return [QKeySequence(k) for k in keys]


def _slot(window: QMainWindow, name: str) -> Callable[[], object]:  # a bound method of the window or its session
    target = window
    for part in name.split("."):
        target = getattr(target, part)
    return target


def build_menus(window: QMainWindow, specs: tuple[ActionSpec, ...] = ACTIONS) -> dict[str, QAction | QMenu]:
    """Fill the window's menu bar from `specs`; returns the actions (and the Recent menu) by id."""
    menus: dict[str, QMenu] = {}
    made: dict[str, QAction | QMenu] = {}
    undo_stack = window.support.undo_stack
    for spec in specs:
        menu = menus.get(spec.menu) or menus.setdefault(spec.menu, window.menuBar().addMenu(spec.menu))
        if spec.id == SEPARATOR:
            menu.addSeparator()
            continue
        if spec.id == "recent":
            made[spec.id] = menu.addMenu(spec.title)
            continue
        if spec.id in ("undo", "redo"):
            make = undo_stack.createUndoAction if spec.id == "undo" else undo_stack.createRedoAction
            action = make(window, spec.title)
        else:
            action = QAction(spec.title, window)
            action.triggered.connect(lambda _=False, name=spec.slot: _slot(window, name)())
        action.setObjectName(spec.id)
        action.setShortcuts(_shortcuts(spec))
        if spec.tip:
            action.setStatusTip(spec.tip)
            action.setToolTip(spec.tip)
        menu.addAction(action)
        made[spec.id] = action
    return made
