"""Classified photos copied into one folder per class: what a person does with the results.

Copies, never moves: the originals stay where they are. Each copy is written under a temporary name and renamed
when complete, so a stopped job leaves whole files only. Running the same sort again copies nothing twice (a file
already there with the same bytes counts as sorted); two different photos with one name both arrive
("IMG_0001.jpg", "IMG_0001 (2).jpg").
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anil_engine.errors import DataError, os_message
from anil_engine.runtime import Prediction

UNSURE = "unsure"  # the folder of photos below the confidence the user asked for


@dataclass(frozen=True)
class SortProgress:
    stage: str  # "copy"
    done: int  # photos copied (or found already there) so far
    total: int


@dataclass(frozen=True)
class SortReport:
    dest: str
    counts: dict[str, int]  # folder name -> photos now in it from this sort
    already: int = 0  # of those, photos whose copy was there already (the same sort run before)
    failed: list[str] = field(default_factory=list)  # one message per photo that could not be copied, naming it

    @property
    def sorted(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """One line for a person: how many photos went where."""
        folders = ", ".join(f"{name} {n}" for name, n in self.counts.items())
        text = f"sorted {self.sorted} photo(s) into {len(self.counts)} folder(s) in {self.dest}"
        text += f" ({folders})" if folders else ""
        text += f"; {self.already} of them were there already" if self.already else ""
        return text + (f"; {len(self.failed)} could not be copied" if self.failed else "")


def folder_name(label: str) -> str:
    """A class name as a folder name on any system: path separators and characters Windows refuses become "_",
    never empty, "." or ".."."""
    name = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", label).strip().rstrip(".")
    return name if name not in ("", ".", "..") else "_"


def check_destination(dest: str | Path) -> Path:
    """`dest` created if needed and writable; else a DataError naming it and the fix (before any work)."""
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(os_message(exc, dest, "cannot be made a folder")) from exc
    try:  # what writing there takes (permissions, a read-only disk): a file made and removed
        with tempfile.NamedTemporaryFile(dir=dest, prefix=".anil-studio-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DataError(f"{dest}: no file can be written in this folder ({reason}); choose another folder") from exc
    return dest


def _free_target(folder: Path, source: Path) -> Path | None:
    """Where `source` goes in `folder`: its own name, else "name (2).ext" ...; None when a copy is already there."""
    stem, suffix = source.stem, source.suffix
    for k in range(1, 10_000):
        target = folder / (source.name if k == 1 else f"{stem} ({k}){suffix}")
        if not target.exists():
            return target
        try:
            if filecmp.cmp(source, target, shallow=False):
                return None
        except OSError:
            continue
    raise DataError(f"{folder}: 10,000 files named like {source.name} already; choose an empty folder")


def _copy(source: Path, target: Path) -> None:
    """`source` to `target` through a temporary in the same folder, renamed when whole."""
    part = target.with_name(f".{target.name}.part-{os.getpid()}")
    try:
        shutil.copy2(source, part)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def sort_into_folders(
    predictions: Sequence[Prediction], dest: str | Path, unsure_below: float = 0.0
) -> Generator[SortProgress, None, SortReport]:
    """Copy every classified photo into `dest`/<its class>/ (below `unsure_below` confidence, 0-1: into
    `dest`/unsure/); yields progress per photo, returns what went where and what could not be copied."""
    dest = check_destination(dest)
    counts: Counter[str] = Counter()
    already = 0
    failed: list[str] = []
    for i, p in enumerate(predictions, 1):
        name = UNSURE if p.confidence < unsure_below else folder_name(p.label)
        source = Path(p.path)
        try:
            folder = dest / name
            folder.mkdir(exist_ok=True)
            target = _free_target(folder, source)
            if target is None:
                already += 1
            else:
                _copy(source, target)
            counts[name] += 1
        except OSError as exc:
            failed.append(os_message(exc, source, f"could not be copied into {dest / name}"))
        yield SortProgress("copy", i, len(predictions))
    return SortReport(str(dest), dict(sorted(counts.items())), already, failed)
