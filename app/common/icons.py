"""Icons: the SVGs in ``resources/icons`` (drawn for this project), cached by name."""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QIcon

import resources

__all__ = ["icon"]


@cache
def icon(name: str) -> QIcon:
    """The icon ``resources/icons/<name>.svg`` (an empty icon if it does not exist)."""
    path = resources.path_of(f"icons/{name}.svg")
    return QIcon(str(path)) if path.is_file() else QIcon()
