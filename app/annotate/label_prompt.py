"""The label prompt shown after a box is drawn (labelImg's and labelme's behaviour).

A small dialog: a filter field over the project's classes, recently used classes first, the
default class highlighted. Typing filters the list; Up / Down move in it; Enter accepts the
highlighted class -- or, when no class contains the text, the text as a new class; Esc (or
Cancel) drops the new box (labelme's rule: a box without a class is never kept). "Use this
class for new boxes without asking" switches on "use default label" (also in the Classes
panel), which skips the prompt while there is a default class.

:class:`LabelAsker` is what the canvas calls (``canvas.ask_label``); it returns the class of
the new box(es) or ``None`` to drop them. The caller adds the box with its class as ONE undo
step, so Ctrl+Z after a labelled draw removes the box.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.annotate.class_list import ClassList
from app.canvas.box_item import label_color
from app.common.settings import AppSettings

__all__ = ["LabelAsker", "LabelPrompt", "ordered_classes"]


def ordered_classes(names: list[str], recent: list[str]) -> list[str]:
    """The prompt's order: the recent classes that still exist (newest first), then the rest
    in project order."""
    first = [n for n in recent if n in names]
    return first + [n for n in names if n not in first]


class LabelPrompt(QDialog):
    """The dialog; :meth:`label` is the chosen class after ``exec()`` returns Accepted."""

    def __init__(
        self,
        names: list[str],
        recent: list[str],
        current: str = "",
        *,
        title: str = "Class of the new box",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("Type to filter, or a new class name")
        self.edit.setClearButtonEnabled(True)
        self.list = QListWidget()
        self.list.setMinimumHeight(180)
        for name in ordered_classes(names, recent):
            item = QListWidgetItem(name)
            item.setForeground(label_color(name).darker(130))
            self.list.addItem(item)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.use_default_box = QCheckBox("Use this class for new boxes without asking")
        self.use_default_box.setToolTip(
            "'Use default label': later boxes get the chosen class at once; switch it off "
            "in the Classes panel"
        )
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._accept_if_named)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.edit)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.hint)
        layout.addWidget(self.use_default_box)
        layout.addWidget(buttons)
        self.edit.textChanged.connect(self._filter)
        self.edit.installEventFilter(self)
        self.list.itemClicked.connect(lambda item: self.edit.setText(item.text()))
        self.list.itemDoubleClicked.connect(lambda item: self._accept_name(item.text()))
        start = self._row_of(current)
        self.list.setCurrentRow(start if start is not None else 0)
        self._update_hint()
        self.edit.setFocus()
        self._label = ""

    # -- choosing ------------------------------------------------------------------------------
    def label(self) -> str:
        return self._label

    def chosen(self) -> str:
        """What Enter would accept now: the exact (case-insensitive) class, else the
        highlighted class the filter shows, else the typed text (a new class)."""
        text = self.edit.text().strip()
        exact = self._row_of(text, case=False)
        if exact is not None:
            return self.list.item(exact).text()
        item = self.list.currentItem()
        if item is not None and not item.isHidden():
            return item.text()
        return text

    def _row_of(self, name: str, case: bool = True) -> int | None:
        for row in range(self.list.count()):
            text = self.list.item(row).text()
            if text == name or (not case and name and text.lower() == name.lower()):
                return row
        return None

    def _accept_if_named(self) -> None:
        self._accept_name(self.chosen())

    def _accept_name(self, name: str) -> None:
        name = name.strip()
        if name:
            self._label = name
            self.accept()

    # -- filtering and keys --------------------------------------------------------------------
    def _filter(self, text: str) -> None:
        needle = text.strip().lower()
        first = prefix = None
        for row in range(self.list.count()):
            item = self.list.item(row)
            hidden = bool(needle) and needle not in item.text().lower()
            item.setHidden(hidden)
            if not hidden and first is None:
                first = row
            if not hidden and prefix is None and item.text().lower().startswith(needle):
                prefix = row
        if needle and (prefix if prefix is not None else first) is not None:
            # a class that starts with the typed text before one that only contains it
            self.list.setCurrentRow(prefix if prefix is not None else first)
        self._update_hint()

    def _update_hint(self) -> None:
        name = self.chosen()
        shown = html.escape(name)
        if not name:
            self.hint.setText("Type a class name")
        elif self._row_of(name) is None:
            self.hint.setText(f"Enter: new class <b>{shown}</b> &nbsp; Esc: drop the box")
        else:
            self.hint.setText(f"Enter: <b>{shown}</b> &nbsp; Esc: drop the box")

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        """Up / Down in the filter field move through the visible classes."""
        if obj is self.edit and event.type() == QEvent.Type.KeyPress:
            key = event.key()
            if key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
                self._step(-1 if key == Qt.Key.Key_Up else 1)
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._accept_if_named()
                return True
        return super().eventFilter(obj, event)

    def _step(self, step: int) -> None:
        rows = [r for r in range(self.list.count()) if not self.list.item(r).isHidden()]
        if not rows:
            return
        row = self.list.currentRow()
        pos = rows.index(row) + step if row in rows else 0
        self.list.setCurrentRow(rows[max(0, min(len(rows) - 1, pos))])
        self._update_hint()


class LabelAsker(QObject):
    """Asks the class of newly drawn (or accepted) boxes. ``use_default_changed(bool)`` says
    the prompt's check box changed the "use default label" setting."""

    use_default_changed = Signal(bool)

    def __init__(
        self, classes: ClassList, settings: AppSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.classes, self.settings = classes, settings
        self._parent = parent

    def ask(self, what: str = "the new box") -> str | None:
        """The class for ``what``; ``None`` when the user cancelled (drop the boxes). The
        chosen class becomes the default (the next box's)."""
        default = self.classes.default
        if self.settings.use_default_label and default:
            return default
        dialog = self._dialog(default, f"Class of {what}")
        dialog.use_default_box.setChecked(self.settings.use_default_label)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        name = self._chosen(dialog)
        self.classes.set_default(name)
        if dialog.use_default_box.isChecked() != self.settings.use_default_label:
            self.set_use_default(dialog.use_default_box.isChecked())
        return name

    def relabel(self, current: str) -> str | None:
        """The new class of an existing box (double-click, labelme's "edit label"): the same
        dialog, always shown, ``current`` highlighted; ``None`` keeps the box as it is."""
        dialog = self._dialog(current, "Class of the box")
        dialog.use_default_box.hide()
        dialog.hint.setText("Enter: keep or change the class; Esc: keep the box as it is")
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return self._chosen(dialog)

    def _dialog(self, current: str, title: str) -> LabelPrompt:
        return LabelPrompt(
            self.classes.names,
            self.settings.recent_labels,
            current,
            title=title,
            parent=self._parent,
        )

    def _chosen(self, dialog: LabelPrompt) -> str:
        name = dialog.label()
        self.classes.add(name)
        self.settings.add_recent_label(name)
        return name

    def set_use_default(self, on: bool) -> None:
        if on != self.settings.use_default_label:
            self.settings.use_default_label = on
            self.use_default_changed.emit(on)
