"""What the Edit menu, the class keys and the class panel do to the document: each user intent
becomes one undo command (STYLE.md #9). Kept out of the main window so it stays a thin shell."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.commands import (
    DeleteBoxesCommand,
    RelabelBoxesCommand,
    SetDifficultCommand,
    SetVerifiedCommand,
    duplicate_command,
    push_boxes,
)
from app.document import AnnotationDocument
from app.workspace import Workspace
from rpn_core.annotations import Box

__all__ = ["EditController"]


class EditController(QObject):
    """Signal ``status(str)``: a short note for the status bar (e.g. "Copied 2 boxes")."""

    status = Signal(str)

    def __init__(
        self, document: AnnotationDocument, workspace: Workspace, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.workspace = workspace
        self.clipboard: list[Box] = []  # boxes copied with Ctrl+C, pasted into any image

    def _push(self, command) -> None:
        self.document.undo_stack.push(command)

    def delete_selection(self) -> None:
        if self.document.selection:
            self._push(DeleteBoxesCommand(self.document, self.document.selection))

    def duplicate_selection(self) -> None:
        if self.document.selection:
            self._push(duplicate_command(self.document, self.document.selection))

    def copy_selection(self) -> None:
        doc = self.document
        self.clipboard = [doc.boxes[i] for i in doc.selection]
        n = len(self.clipboard)
        self.status.emit(f"Copied {n} box" + ("" if n == 1 else "es"))

    def paste(self) -> None:
        if not push_boxes(self.document, self.clipboard):
            self.status.emit("Nothing to paste")

    def copy_previous(self) -> None:
        boxes = self.workspace.previous_boxes
        if not push_boxes(self.document, boxes, "Copy boxes from previous image"):
            self.status.emit("The previous image has no boxes")

    def select_all(self) -> None:
        self.document.select(range(len(self.document.boxes)))

    def use_class_key(self, number: int) -> None:
        """Key 1-9: make class #number the default and give it to the selected boxes."""
        name = self.workspace.classes.by_key(number)
        if name is None:
            self.status.emit(f"No class #{number}: add classes in the Classes panel")
            return
        self.workspace.classes.set_default(name)
        self.relabel_selection(name)

    def relabel_selection(self, name: str) -> None:
        doc = self.document
        sel = [i for i in doc.selection if doc.boxes[i].label != name]
        if sel:
            self._push(RelabelBoxesCommand(doc, sel, name))

    def rename_class(self, old: str, new: str) -> str | None:
        """Rename a project class and, as one undo step, the current image's boxes of it.
        Returns an error text if the rename is refused."""
        try:
            self.workspace.classes.rename(old, new)
        except (KeyError, ValueError) as exc:
            return f"Cannot rename class: {exc}"
        hits = [i for i, b in enumerate(self.document.boxes) if b.label == old]
        if hits:
            self._push(RelabelBoxesCommand(self.document, hits, new))
        return None

    def toggle_difficult(self) -> None:
        doc = self.document
        if doc.selection:
            self.set_difficult(not all(doc.boxes[i].difficult for i in doc.selection))

    def set_difficult(self, on: bool) -> None:
        doc = self.document
        sel = [i for i in doc.selection if doc.boxes[i].difficult != on]
        if sel:
            self._push(SetDifficultCommand(doc, sel, on))

    def set_verified(self, on: bool) -> None:
        if self.document.annotation is not None and self.document.verified != on:
            self._push(SetVerifiedCommand(self.document, on))

    def toggle_verified(self) -> None:
        self.set_verified(not self.document.verified)
