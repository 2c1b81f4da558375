"""Long work as generators: they yield progress and return a result; `run_to_end` drives one without a bar."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any


def run_to_end(gen: Generator[Any, None, Any]) -> Any:
    """Drive a job generator to completion and return its result."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
