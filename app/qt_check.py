"""A self-check of the Qt binding at start: some releases break reference counting and crash later.

PySide6 6.12.0 returns None from every call that returns nothing without taking a reference to it. From
Python 3.12 None is immortal and nothing happens; on 3.11 each call lowers None's count until the
interpreter aborts ("deallocating None"), in the middle of a long session. `pyproject.toml` excludes
that release; this check names the problem for an installation made another way.
"""

from __future__ import annotations

import sys

CALLS = 200


def none_refcount_leak_per_call() -> float:
    """References to None lost per `QLabel.setText` call (0.0 for a sound binding; -1.0 for the broken one)."""
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        label.setText("x")
    return (sys.getrefcount(None) - before) / CALLS


def binding_problem() -> str | None:
    """A message naming the broken binding and the fix, or None when it is sound."""
    if sys.version_info >= (3, 12) or none_refcount_leak_per_call() > -0.5:
        return None
    import PySide6

    return (
        f"PySide6 {PySide6.__version__} on Python {sys.version_info.major}.{sys.version_info.minor} loses a "
        "reference to None in every Qt call, which crashes the app after a while; run `bash scripts/setup.sh` "
        "(it installs a release without this bug) or `pip install 'PySide6-Essentials!=6.12.*'`"
    )
