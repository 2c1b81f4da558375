"""The menus come from one table: every row works, no shortcut is taken twice, Help lists them all."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from PySide6.QtGui import QKeySequence  # noqa: E402

from app.actions import ACTIONS, SEPARATOR, _slot  # noqa: E402
from app.dialogs.help import menu_shortcuts  # noqa: E402


def test_every_action_of_the_table_is_in_the_menus_and_runs_a_real_method(window):
    for spec in ACTIONS:
        if spec.id == SEPARATOR:
            continue
        made = window.actions[spec.id]
        assert made.objectName() == spec.id or spec.id == "recent"
        if spec.slot:
            assert callable(_slot(window, spec.slot)), spec.slot


def test_no_two_actions_share_a_shortcut_and_help_lists_them(window):
    keys = [
        k.toString()
        for spec in ACTIONS
        if spec.id not in (SEPARATOR, "recent")
        for k in window.actions[spec.id].shortcuts()
    ]
    assert len(keys) == len(set(keys)), keys
    listed = {(title, key) for _menu, title, key in menu_shortcuts(window.menuBar())}
    assert (
        "New project",
        QKeySequence(QKeySequence.StandardKey.New).toString(QKeySequence.SequenceFormat.NativeText),
    ) in listed
    assert ("Add class", QKeySequence("Ctrl+Shift+N").toString(QKeySequence.SequenceFormat.NativeText)) in listed
