"""The support set as a Qt model object; every edit goes through the undo stack."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack


@dataclass
class SupportClass:
    name: str
    paths: list[Path] = field(default_factory=list)


class SupportSet(QObject):
    """Classes with their support images.

    Signals:
        changed(): after every edit (views rebuild, the window re-adapts).
    """

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.classes: list[SupportClass] = []
        self.undo_stack = QUndoStack(self)

    # read access ----------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def find(self, name: str) -> SupportClass | None:
        return next((c for c in self.classes if c.name == name), None)

    def as_support(self) -> list[tuple[str, list[Path]]]:
        return [(c.name, list(c.paths)) for c in self.classes if c.paths]

    def unique_name(self, base: str = "class") -> str:
        return self._unique_among(base, set(self.names()))

    @staticmethod
    def _unique_among(base: str, names: set[str]) -> str:
        if base not in names:
            return base
        i = 2
        while f"{base} {i}" in names:
            i += 1
        return f"{base} {i}"

    # edits (undoable) -----------------------------------------------------------------------------
    def add_class(self, name: str, paths: list[Path] | None = None) -> str:
        name = self.unique_name(name.strip() or "class")
        self.undo_stack.push(_AddClass(self, name, list(paths or [])))
        return name

    def remove_class(self, name: str) -> None:
        if self.find(name):
            self.undo_stack.push(_RemoveClass(self, name))

    def rename_class(self, old: str, new: str) -> bool:
        new = new.strip()
        if not new or new == old or self.find(new) or not self.find(old):
            return False
        self.undo_stack.push(_Rename(self, old, new))
        return True

    def add_images(self, name: str, paths: list[Path]) -> int:
        cls = self.find(name)
        if cls is None:
            return 0
        new = [p for p in paths if p not in cls.paths]
        if new:
            self.undo_stack.push(_AddImages(self, name, new))
        return len(new)

    def remove_image(self, name: str, path: Path) -> None:
        cls = self.find(name)
        if cls and path in cls.paths:
            self.undo_stack.push(_RemoveImage(self, name, path, cls.paths.index(path)))

    def add_class_folders(self, found: dict[str, list[Path]], source: str) -> list[str]:
        """One class per entry of `found` (a folder of class folders, already read), as one undo step."""
        classes, taken = [], set(self.names())
        for name, paths in found.items():
            unique = name if name not in taken else self._unique_among(name, taken)
            taken.add(unique)
            classes.append((unique, [Path(p) for p in paths]))
        # One command, so one `changed`: a folder of 100 classes rebuilds the view once, not 100 times.
        current = [(c.name, list(c.paths)) for c in self.classes]
        self.undo_stack.push(_ReplaceAll(self, [*current, *classes], f"add classes from {source}"))
        return [n for n, _ in classes]

    def restore(self, classes: list[tuple[str, list[Path]]], text: str = "recover unsaved work") -> None:
        """Replace every class as one undoable step (the set is then unsaved, as recovered work is)."""
        self.undo_stack.push(_ReplaceAll(self, classes, text))

    def replace_all(self, classes: list[tuple[str, list[Path]]]) -> None:
        """Load a project: not undoable, clears the history."""
        self.classes = [SupportClass(n, list(p)) for n, p in classes]
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self.changed.emit()


class _Cmd(QUndoCommand):
    def __init__(self, model: SupportSet, text: str) -> None:
        super().__init__(text)
        self.model = model

    def _cls(self, name: str) -> SupportClass:
        cls = self.model.find(name)
        assert cls is not None, name
        return cls


class _ReplaceAll(_Cmd):
    def __init__(self, model: SupportSet, classes: list[tuple[str, list[Path]]], text: str) -> None:
        super().__init__(model, text)
        self.before = [SupportClass(c.name, list(c.paths)) for c in model.classes]
        self.after = [SupportClass(n, list(p)) for n, p in classes]

    def redo(self) -> None:
        self.model.classes = [SupportClass(c.name, list(c.paths)) for c in self.after]
        self.model.changed.emit()

    def undo(self) -> None:
        self.model.classes = [SupportClass(c.name, list(c.paths)) for c in self.before]
        self.model.changed.emit()


class _AddClass(_Cmd):
    def __init__(self, model: SupportSet, name: str, paths: list[Path]) -> None:
        super().__init__(model, f"add class {name}")
        self.name, self.paths = name, paths

    def redo(self) -> None:
        self.model.classes.append(SupportClass(self.name, list(self.paths)))
        self.model.changed.emit()

    def undo(self) -> None:
        self.model.classes = [c for c in self.model.classes if c.name != self.name]
        self.model.changed.emit()


class _RemoveClass(_Cmd):
    def __init__(self, model: SupportSet, name: str) -> None:
        super().__init__(model, f"remove class {name}")
        self.index = model.names().index(name)
        self.saved = SupportClass(name, list(model.classes[self.index].paths))

    def redo(self) -> None:
        del self.model.classes[self.index]
        self.model.changed.emit()

    def undo(self) -> None:
        self.model.classes.insert(self.index, SupportClass(self.saved.name, list(self.saved.paths)))
        self.model.changed.emit()


class _Rename(_Cmd):
    def __init__(self, model: SupportSet, old: str, new: str) -> None:
        super().__init__(model, f"rename {old} to {new}")
        self.old, self.new = old, new

    def redo(self) -> None:
        self._cls(self.old).name = self.new
        self.model.changed.emit()

    def undo(self) -> None:
        self._cls(self.new).name = self.old
        self.model.changed.emit()


class _AddImages(_Cmd):
    def __init__(self, model: SupportSet, name: str, paths: list[Path]) -> None:
        super().__init__(model, f"add {len(paths)} images to {name}")
        self.name, self.paths = name, paths

    def redo(self) -> None:
        self._cls(self.name).paths.extend(self.paths)
        self.model.changed.emit()

    def undo(self) -> None:
        cls = self._cls(self.name)
        cls.paths = [p for p in cls.paths if p not in self.paths]
        self.model.changed.emit()


class _RemoveImage(_Cmd):
    def __init__(self, model: SupportSet, name: str, path: Path, index: int) -> None:
        super().__init__(model, f"remove {path.name} from {name}")
        self.name, self.path, self.index = name, path, index

    def redo(self) -> None:
        self._cls(self.name).paths.remove(self.path)
        self.model.changed.emit()

    def undo(self) -> None:
        self._cls(self.name).paths.insert(self.index, self.path)
        self.model.changed.emit()
