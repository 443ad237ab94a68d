"""The box list panel: the current image's boxes, kept in sync with the canvas selection.

Updated incrementally from the document's fine-grained signals, so editing one of 1,000 boxes
touches one row.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem, QWidget

from app.canvas.box_item import label_color
from app.state.qdocument import AnnotationDocument
from rpn_core.annotation.data import Box

__all__ = ["BoxListPanel"]


def _text(box: Box) -> str:
    flags = " · difficult" if box.difficult else ""
    return f"{box.label or '(no class)'}   {box.width:.0f}×{box.height:.0f}{flags}"


class BoxListPanel(QListWidget):
    def __init__(self, document: AnnotationDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setUniformItemSizes(True)
        document.image_changed.connect(self._rebuild)
        document.boxes_inserted.connect(self._on_inserted)
        document.boxes_removed.connect(self._on_removed)
        document.boxes_updated.connect(self._on_updated)
        document.selection_changed.connect(self._show_selection)
        self.itemSelectionChanged.connect(self._on_user_selection)

    def _item(self, box: Box) -> QListWidgetItem:
        item = QListWidgetItem(_text(box))
        item.setForeground(label_color(box.label).darker(130))
        return item

    def _rebuild(self) -> None:
        with QSignalBlocker(self):
            self.clear()
            for box in self.document.boxes:
                self.addItem(self._item(box))

    def _on_inserted(self, indices: list[int]) -> None:
        with QSignalBlocker(self):
            for i in indices:
                self.insertItem(i, self._item(self.document.boxes[i]))

    def _on_removed(self, indices: list[int]) -> None:
        with QSignalBlocker(self):
            for i in reversed(indices):
                self.takeItem(i)

    def _on_updated(self, indices: list[int]) -> None:
        boxes = self.document.boxes
        for i in indices:
            item = self.item(i)
            item.setText(_text(boxes[i]))
            item.setForeground(label_color(boxes[i].label).darker(130))

    def _show_selection(self, selection: list[int]) -> None:
        with QSignalBlocker(self):
            self.clearSelection()
            for i in selection:
                if i < self.count():
                    self.item(i).setSelected(True)
            if selection and selection[0] < self.count():
                self.scrollToItem(self.item(selection[0]))

    def _on_user_selection(self) -> None:
        self.document.select(self.row(item) for item in self.selectedItems())
