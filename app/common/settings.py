"""Typed access to the user's preferences, stored with :class:`QSettings`.

Tests pass their own ``QSettings`` (an ini file in a temporary folder), so they never read or
write the user's real preferences.
"""

from __future__ import annotations

from pathlib import Path

import shiboken6
from PySide6.QtCore import QByteArray, QSettings

from rpn_core.annotation.formats.folder import FORMATS

__all__ = ["AppSettings", "MAX_RECENT", "SAVE_FORMATS", "VOC_CONVENTIONS"]

MAX_RECENT = 10
SAVE_FORMATS = ("auto", *FORMATS)  # auto: the format detected in the folder, VOC if none
VOC_CONVENTIONS = ("devkit", "labelimg")


class _Flag:
    """A boolean setting: ``settings.autosave`` reads ``key`` (``default`` when unset), and
    assigning stores it."""

    def __init__(self, key: str, default: bool) -> None:
        self.key, self.default = key, default

    def __get__(self, settings: AppSettings | None, owner: type | None = None):
        return self if settings is None else settings._get(self.key, self.default, bool)

    def __set__(self, settings: AppSettings, value: bool) -> None:
        settings.q.setValue(self.key, bool(value))


class AppSettings:
    """Preferences with defaults; every setter writes through to the QSettings backend."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings()

    @classmethod
    def in_file(cls, path: str | Path) -> AppSettings:
        """Preferences kept in one ini file (tests, scripts, portable set-ups)."""
        return cls(QSettings(str(path), QSettings.Format.IniFormat))

    def _get(self, key: str, default, kind=None):
        if not shiboken6.isValid(self.q):  # read by a late timer while the app tears down
            value = default
        else:
            value = self.q.value(key, default)
        if kind is bool:
            return value in (True, "true", "1", 1)
        if kind is list:
            if value is None or value == "":
                return []
            return [str(v) for v in (value if isinstance(value, list) else [value])]
        return value

    # -- files -------------------------------------------------------------------------------
    @property
    def recent_paths(self) -> list[str]:
        return self._get("files/recent", [], list)

    def add_recent(self, path: str | Path) -> None:
        text = str(Path(path))
        items = [text] + [p for p in self.recent_paths if p != text]
        self.q.setValue("files/recent", items[:MAX_RECENT])

    def clear_recent(self) -> None:
        self.q.setValue("files/recent", [])

    recursive = _Flag("files/recursive", False)

    @property
    def last_dir(self) -> str:
        return str(self._get("files/last_dir", ""))

    @last_dir.setter
    def last_dir(self, value: str) -> None:
        self.q.setValue("files/last_dir", str(value))

    # -- saving ------------------------------------------------------------------------------
    @property
    def save_format(self) -> str:
        value = str(self._get("save/format", "auto"))
        return value if value in SAVE_FORMATS else "auto"

    @save_format.setter
    def save_format(self, value: str) -> None:
        if value not in SAVE_FORMATS:
            raise ValueError(f"unknown save format {value!r}")
        self.q.setValue("save/format", value)

    @property
    def voc_convention(self) -> str:
        value = str(self._get("save/voc_convention", "devkit"))
        return value if value in VOC_CONVENTIONS else "devkit"

    @voc_convention.setter
    def voc_convention(self, value: str) -> None:
        if value not in VOC_CONVENTIONS:
            raise ValueError(f"unknown VOC convention {value!r}")
        self.q.setValue("save/voc_convention", value)

    autosave = _Flag("save/autosave", True)

    # -- annotation ----------------------------------------------------------------------------
    keep_previous = _Flag("edit/keep_previous", False)

    create_sticky = _Flag("edit/create_sticky", False)

    # Skip the label prompt after drawing a box: the box gets the default class (labelImg's
    # "Use default label"); with no class yet the prompt still asks.
    use_default_label = _Flag("edit/use_default_label", False)

    @property
    def recent_labels(self) -> list[str]:
        """Classes most recently given to new boxes, newest first (the label prompt's order)."""
        return self._get("edit/recent_labels", [], list)

    def add_recent_label(self, name: str) -> None:
        items = [name] + [n for n in self.recent_labels if n != name]
        self.q.setValue("edit/recent_labels", items[:MAX_RECENT])

    def classes_for(self, root: str | Path) -> list[str]:
        """The project class list remembered for an image folder."""
        self.q.beginGroup("classes")
        try:
            return self._get(_key(root), [], list)
        finally:
            self.q.endGroup()

    def set_classes_for(self, root: str | Path, classes: list[str]) -> None:
        self.q.beginGroup("classes")
        self.q.setValue(_key(root), list(classes))
        self.q.endGroup()

    def save_dir_for(self, root: str | Path) -> str:
        """The annotation folder chosen for an image folder (File ▸ Change Save Dir), or ""
        for the default (beside the images)."""
        self.q.beginGroup("save_dirs")
        try:
            return str(self._get(_key(root), "") or "")
        finally:
            self.q.endGroup()

    def set_save_dir_for(self, root: str | Path, folder: str | Path | None) -> None:
        self.q.beginGroup("save_dirs")
        if folder:
            self.q.setValue(_key(root), str(folder))
        else:
            self.q.remove(_key(root))
        self.q.endGroup()

    # -- view ------------------------------------------------------------------------------
    show_boxes = _Flag("view/show_boxes", True)

    show_labels = _Flag("view/show_labels", True)

    def layer_shown(self, name: str, default: bool = True) -> bool:
        """Whether the canvas layer ``name`` (boxes, anchors, proposals...) is switched on."""
        return self._get(f"view/layer_{name}", default, bool)

    def set_layer_shown(self, name: str, on: bool) -> None:
        self.q.setValue(f"view/layer_{name}", bool(on))

    # -- window ------------------------------------------------------------------------------
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.q.value("window/geometry"), self.q.value("window/state")

    def set_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)

    def sync(self) -> None:
        self.q.sync()


def _key(root: str | Path) -> str:
    # QSettings treats "/" and "\\" as group separators: encode the path into one key.
    return str(Path(root).resolve()).replace("%", "%25").replace("/", "%2F").replace("\\", "%5C")
