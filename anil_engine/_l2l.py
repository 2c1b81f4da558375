"""The one place that imports learn2learn.

Importing learn2learn imports gym, which prints a deprecation banner on stderr;
it says nothing about our use (we never touch gym), so it is hidden here.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from types import ModuleType


def learn2learn() -> ModuleType:
    """Import and return the `learn2learn` module."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        import learn2learn as l2l
    return l2l
