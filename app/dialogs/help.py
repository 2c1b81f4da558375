"""Help ▸ Keyboard shortcuts and Help ▸ About: built from the live menus and the installed packages."""

from __future__ import annotations

import html

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMainWindow, QMenuBar, QTextBrowser, QVBoxLayout, QWidget

# Gestures that are not menu actions, shown under the menus' shortcuts.
GESTURES = [
    ("Drop a folder of class folders on the support set", "one class per sub-folder"),
    ("Drop images on the empty support area", "a new class with them"),
    ("Drop images or a folder on a class card, or its + button", "they join that class"),
    ("Double-click an image, or select it and press Delete", "removes it from its class"),
    ("Edit a class name and press Enter", "renames the class (undoable)"),
    ("Drop images or folders on Classify, or paste (Ctrl+V)", "classifies them"),
    ("Select results and press 1-9, drag them onto a card, or right-click", "adds them to that support class"),
    ("Double-click a result", "opens the image"),
    ("Drop a .pt checkpoint anywhere, or a .anilproj project on the support set", "opens it"),
]


def menu_shortcuts(menu_bar: QMenuBar) -> list[tuple[str, str, str]]:
    """(menu, action text, shortcut) for every menu action that has a shortcut, in menu order."""
    rows = []

    def walk(title: str, actions: list[QAction]) -> None:
        for a in actions:
            if a.menu() is not None:
                walk(f"{title} ▸ {a.text().replace('&', '')}", a.menu().actions())
            elif not a.isSeparator() and a.shortcuts():
                keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in a.shortcuts())
                rows.append((title, a.text().replace("&", ""), keys))

    for top in menu_bar.actions():
        if top.menu() is not None:
            walk(top.text().replace("&", ""), top.menu().actions())
    return rows


def shortcuts_html(menu_bar: QMenuBar) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(m)}</td><td>{html.escape(t)}</td><td><b>{html.escape(k)}</b></td></tr>"
        for m, t, k in menu_shortcuts(menu_bar)
    )
    gestures = "".join(f"<tr><td>{html.escape(g)}</td><td>{html.escape(r)}</td></tr>" for g, r in GESTURES)
    return (
        "<h3>Keyboard shortcuts</h3><table cellspacing=6><tr><th align=left>Menu</th><th align=left>Action</th>"
        f"<th align=left>Keys</th></tr>{rows}</table><h3>Mouse and drops</h3><table cellspacing=6>{gestures}</table>"
    )


def about_html(checkpoint: str | None, devices: list[str], settings_file: str) -> str:
    """Versions, devices, current model and where the app keeps its settings (for bug reports)."""
    from anil_engine.environment import environment_report

    rows = {
        **environment_report(build_kernel=False),
        "Devices in the app": ", ".join(devices),
        "Current model": checkpoint or "none loaded",
        "Settings": settings_file,
    }
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows.items())
    return (
        "<h3>ANIL Studio</h3><p>Few-shot image classification with ANIL (Almost No Inner Loop, Raghu et al. 2019): "
        "only the linear head adapts to your classes.</p>"
        f"<table cellspacing=6>{body}</table><p>Select and copy this text into a bug report. "
        "<code>anil-studio info</code> prints the same in a terminal.</p>"
    )


class TextDialog(QDialog):
    """A non-modal, resizable dialog showing rich text that can be selected and copied."""

    def __init__(self, title: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(640, 560)
        layout = QVBoxLayout(self)
        self.browser = QTextBrowser()
        self.browser.setHtml(text)
        layout.addWidget(self.browser, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)


GETTING_STARTED_HTML = """
<h3>Getting started</h3>
<ol>
<li><b>Pick a model</b> (top left). The default, <i>caltech101-effnet-anil</i>, is made for photos of everyday
things; the Omniglot models are for handwritten characters.</li>
<li><b>Teach it your categories.</b> Drop a folder on the support set (the middle) that holds one sub-folder per
category, e.g. <tt>birds/robin/</tt>, <tt>birds/sparrow/</tt>, with about 5 photos in each (1 works too), or press
<b>Add folder…</b> (Ctrl+Shift+I). Each category becomes a card; the app learns them in well under a second.
With a camera: <b>Add class</b>, type its name, press the card's <b>Camera</b> button and click (or hold) Capture.</li>
<li><b>Classify.</b> Drop new photos or a folder of them on <b>Classify</b> (right), or press Ctrl+K. Each photo
gets its most likely category and the next two. The <b>Live camera</b> tab (Ctrl+Shift+P) does the same for
the camera's picture, continuously.</li>
<li><b>Correct it.</b> Select a wrong result and press the number of the right category (1-9), or drag it onto
that card: it joins the examples and every result is classified again. <b>Sort into folders…</b>
(Ctrl+Shift+D) then copies the photos into one folder per category.</li>
<li><b>Check it.</b> <b>Evaluate</b> ▸ Leave-one-out (Ctrl+L) tests each example against the others; a labelled
folder (one sub-folder per category) gives accuracy and the mistakes.</li>
<li><b>Keep it.</b> File ▸ Save project (Ctrl+S), or File ▸ Save self-contained project… for a folder you can
move or share; File ▸ Export adapted classifier to ONNX for use elsewhere.</li>
</ol>
<p>Every step also exists as a command: <tt>anil-studio --help</tt>.</p>
"""


class HelpDialogs(QObject):
    """Help ▸ Getting started, Keyboard shortcuts, About: non-modal, each kept and raised when asked again."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.text_dialogs: dict[str, TextDialog] = {}

    def _show_text_dialog(self, key: str, title: str, text: str) -> None:
        dialog = self.text_dialogs.get(key)
        if dialog is None:
            dialog = self.text_dialogs[key] = TextDialog(title, text, self.window)
        dialog.browser.setHtml(text)
        dialog.show()
        dialog.raise_()

    def show_getting_started(self) -> None:
        self._show_text_dialog("getting-started", "Getting started", GETTING_STARTED_HTML)

    def show_shortcuts(self) -> None:
        self._show_text_dialog("shortcuts", "Keyboard shortcuts", shortcuts_html(self.window.menuBar()))

    def show_about(self) -> None:
        combo = self.window.model_panel.device_combo
        devices = [combo.itemText(i) for i in range(combo.count())]
        text = about_html(self.window.checkpoint_path, devices, self.window.settings.fileName())
        self._show_text_dialog("about", "About ANIL Studio", text)
