"""Bundled models in `models/`: each `NAME.pt` with its card `NAME.md`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(os.environ.get("ANIL_STUDIO_MODELS", Path(__file__).resolve().parent.parent / "models"))
# The app opens the first of these that exists.
DEFAULT_ORDER = ("caltech101-effnet-anil", "caltech101-anil", "omniglot-vinyals-anil", "omniglot-lake-anil")


@dataclass(frozen=True)
class BundledModel:
    name: str
    path: Path
    card: Path


def bundled_models(directory: Path | None = None) -> list[BundledModel]:
    """Every `*.pt` in the models folder, default model first."""
    directory = directory or MODELS_DIR
    found = {p.stem: BundledModel(p.stem, p, p.with_suffix(".md")) for p in sorted(directory.glob("*.pt"))}
    ordered = [found.pop(n) for n in DEFAULT_ORDER if n in found]
    return ordered + list(found.values())
