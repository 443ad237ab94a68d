"""The project's class list (names in a stable order) and the default class for new boxes.

Persisted per image folder in the settings; names seen in loaded annotations and in the
store's class map (YOLO ``classes.txt``, COCO categories) are appended, never reordered, so
key 1-9 always picks the same class for a folder.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QObject, Signal

__all__ = ["ClassList"]


class ClassList(QObject):
    """Signals: ``classes_changed()``; ``default_changed(str)``."""

    classes_changed = Signal()
    default_changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._names: list[str] = []
        self._default = ""

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def default(self) -> str:
        return self._default

    def set_default(self, name: str) -> None:
        name = name.strip()
        if name and name not in self._names:
            self.add(name)
        if name != self._default:
            self._default = name
            self.default_changed.emit(name)

    def reset(self, names: Iterable[str]) -> None:
        self._names = []
        self._extend(names)
        self.classes_changed.emit()
        if self._default not in self._names:
            self.set_default(self._names[0] if self._names else "")

    def _extend(self, names: Iterable[str]) -> bool:
        added = False
        for name in names:
            name = str(name).strip()
            if name and name not in self._names:
                self._names.append(name)
                added = True
        return added

    def add(self, name: str) -> bool:
        """Append ``name`` (stripped) if new; returns whether it was added."""
        if self._extend([name]):
            self.classes_changed.emit()
            if not self._default:
                self.set_default(name.strip())
            return True
        return False

    def merge(self, names: Iterable[str]) -> None:
        """Append the names not yet known (e.g. labels of a loaded image)."""
        if self._extend(names):
            self.classes_changed.emit()

    def checked_rename(self, old: str, new: str) -> str:
        """The name ``old`` would get (``new`` stripped); raises ``KeyError`` if ``old`` is not
        a class, ``ValueError`` if ``new`` is empty or another class (no merging)."""
        new = new.strip()
        if old not in self._names:
            raise KeyError(old)
        if not new:
            raise ValueError("a class name cannot be empty")
        if new in self._names and new != old:
            raise ValueError(f"class {new!r} already exists")
        return new

    def rename(self, old: str, new: str) -> None:
        """Rename in place (the position, hence the 1-9 key, is kept); errors as
        :meth:`checked_rename`."""
        new = self.checked_rename(old, new)
        self._names[self._names.index(old)] = new
        self.classes_changed.emit()
        if self._default == old:
            self.set_default(new)

    def by_key(self, number: int) -> str | None:
        """The class for key ``number`` (1-based), if any."""
        return self._names[number - 1] if 1 <= number <= len(self._names) else None
