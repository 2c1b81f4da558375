"""Help ▸ Keyboard shortcuts and Help ▸ About: built from the live menus and the installed packages."""

from __future__ import annotations

import html

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMenuBar, QTextBrowser, QVBoxLayout, QWidget

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
    ("Drop a .pt checkpoint or .anilproj project anywhere", "opens it"),
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
