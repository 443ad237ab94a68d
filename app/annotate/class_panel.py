"""The class panel: the project class list (keys 1-9), add and rename, the default class for
new boxes, and the difficult / verified flags of the current selection and image."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.annotate.class_list import ClassList
from app.canvas.box_item import label_color

__all__ = ["ClassPanel"]


class ClassPanel(QWidget):
    """Signals: ``class_chosen(str)`` (double-click/Enter: apply to selection),
    ``rename_requested(str, str)``, ``difficult_toggled(bool)``, ``verified_toggled(bool)``."""

    class_chosen = Signal(str)
    rename_requested = Signal(str, str)
    difficult_toggled = Signal(bool)
    verified_toggled = Signal(bool)

    def __init__(self, classes: ClassList, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.classes = classes
        self.list = QListWidget()
        self.list.currentTextChanged.connect(self._on_current)
        self.list.itemActivated.connect(
            lambda item: self.class_chosen.emit(item.data(Qt.ItemDataRole.UserRole))
        )
        self.new_edit = QLineEdit(placeholderText="New class name, Enter to add")
        self.new_edit.returnPressed.connect(self._add)
        rename = QPushButton("Rename…")
        rename.setToolTip(
            "Rename the selected class in the whole folder: the current image's boxes (undo "
            "with Ctrl+Z) and every other image's annotation file (asks first)"
        )
        rename.clicked.connect(self._ask_rename)
        self.difficult_box = QCheckBox("Difficult (selected boxes)")
        self.difficult_box.toggled.connect(self.difficult_toggled)
        self.verified_box = QCheckBox("Image verified (Space)")
        self.verified_box.toggled.connect(self.verified_toggled)
        row = QHBoxLayout()
        row.addWidget(self.new_edit, 1)
        row.addWidget(rename)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.list, 1)
        layout.addLayout(row)
        layout.addWidget(self.difficult_box)
        layout.addWidget(self.verified_box)
        classes.classes_changed.connect(self.refresh)
        classes.default_changed.connect(self._show_default)
        self.refresh()

    def refresh(self) -> None:
        with QSignalBlocker(self.list):
            self.list.clear()
            for i, name in enumerate(self.classes.names):
                key = f"{i + 1}  " if i < 9 else "    "
                item = QListWidgetItem(f"{key}{name}")
                item.setData(Qt.ItemDataRole.UserRole, name)
                item.setForeground(label_color(name).darker(130))
                self.list.addItem(item)
        self._show_default(self.classes.default)

    def _show_default(self, name: str) -> None:
        with QSignalBlocker(self.list):
            for row in range(self.list.count()):
                item = self.list.item(row)
                is_default = item.data(Qt.ItemDataRole.UserRole) == name
                font = item.font()
                font.setBold(is_default)
                item.setFont(font)
                if is_default:
                    self.list.setCurrentRow(row)

    def _on_current(self, _text: str) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.classes.set_default(item.data(Qt.ItemDataRole.UserRole))

    def _add(self) -> None:
        name = self.new_edit.text().strip()
        if name:
            self.classes.add(name)
            self.classes.set_default(name)
            self.new_edit.clear()

    def _ask_rename(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        old = item.data(Qt.ItemDataRole.UserRole)
        new, ok = QInputDialog.getText(self, "Rename class", f"New name for '{old}':", text=old)
        if ok and new.strip() and new.strip() != old:
            self.rename_requested.emit(old, new.strip())

    def show_flags(self, difficult: bool | None, verified: bool | None) -> None:
        """Reflect the selection's difficult flag (None: no selection) and the image's verified
        flag (None: no image) without emitting."""
        with QSignalBlocker(self.difficult_box):
            self.difficult_box.setEnabled(difficult is not None)
            self.difficult_box.setChecked(bool(difficult))
        with QSignalBlocker(self.verified_box):
            self.verified_box.setEnabled(verified is not None)
            self.verified_box.setChecked(bool(verified))
