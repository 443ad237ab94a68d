"""What the Edit menu, the class keys and the class panel do to the document: each user intent
becomes one undo command (ARCHITECTURE.md rule 9). Kept out of the main window so it stays a thin shell."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication

from app.annotate.workspace import Workspace
from app.state.qdocument import AnnotationDocument
from app.state.undo import (
    DeleteBoxesCommand,
    RelabelBoxesCommand,
    RenameClassCommand,
    SetDifficultCommand,
    SetVerifiedCommand,
    duplicate_command,
    push_boxes,
)
from rpn_core.annotation.class_rename import (
    ClassRenamePlan,
    ClassRenameResult,
    apply_class_rename,
    plan_class_rename,
    relabel_annotation,
)
from rpn_core.annotation.data import Box
from rpn_core.annotation.formats import AnnotationStore

__all__ = ["EditController"]


class EditController(QObject):
    """Signals: ``status(str)``, a short note for the status bar (e.g. "Copied 2 boxes");
    ``message(str, str)``, ``(level, text)`` for the message bar (as ``Workspace.message``)."""

    status = Signal(str)
    message = Signal(str, str)

    def __init__(
        self, document: AnnotationDocument, workspace: Workspace, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.workspace = workspace
        self.clipboard: list[Box] = []  # boxes copied with Ctrl+C, pasted into any image
        # Asked before a class rename rewrites other images' files: (old, new, plans) -> go on?
        # The main window asks the user; the default goes on (the user asked for the rename).
        self.confirm_rename: Callable[[str, str, list[ClassRenamePlan]], bool] = (
            lambda _old, _new, _plans: True
        )
        self._confirmed: tuple[str, str, list[ClassRenamePlan]] | None = None

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
        """Rename a project class in the whole folder as ONE undo step: the open image's boxes,
        edits not saved yet in memory, every other image's saved annotation on disk (YOLO,
        COCO: the class map; see :mod:`rpn_core.annotation.class_rename`) and the class list -- after
        ``confirm_rename`` agrees, when other images have boxes of it. Undo renames it back
        the same way (while the image stays open, like every edit), so the folder, the class
        list and the open image always agree. Returns an error text if the rename is refused
        (then nothing changed, as after a cancel)."""
        try:
            new = self.workspace.classes.checked_rename(old, new)
            plans = self._plan_rename(old, new)
        except (KeyError, ValueError) as exc:
            return f"Cannot rename class: {exc}"
        if any(plan.images for plan in plans) and not self.confirm_rename(old, new, plans):
            return None
        self._confirmed = (old, new, plans)  # the first redo writes what the user agreed to
        self._push(RenameClassCommand(self._rename_everywhere, old, new))
        return None

    def _rename_everywhere(self, old: str, new: str) -> bool:
        """Do a rename (or its undo, ``new`` to ``old``) without asking: the user confirmed
        it. Returns False, with a message, when it is refused now (e.g. undoing a rename
        after ``old`` was added again as a class): then nothing changed."""
        classes = self.workspace.classes
        confirmed, self._confirmed = self._confirmed, None
        try:
            new = classes.checked_rename(old, new)
            if confirmed is not None and confirmed[:2] == (old, new):
                plans = confirmed[2]
            else:
                plans = self._plan_rename(old, new)
        except (KeyError, ValueError) as exc:
            self.message.emit("warning", f"Cannot rename class '{old}' to '{new}': {exc}")
            return False
        # ~1 s per 1000 VOC files here: a busy cursor says the window is working.
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            results = [apply_class_rename(plan) for plan in plans]
        finally:
            QGuiApplication.restoreOverrideCursor()
        renamed = self._rename_in_memory(old, new)
        classes.rename(old, new)  # after the stores: classes_changed adds its names to them
        doc = self.document
        hits = {i: replace(b, label=new) for i, b in enumerate(doc.boxes) if b.label == old}
        if hits:
            doc.replace_boxes(hits)
            renamed.add(doc.image_path)
        renamed.update(p for result in results for p in result.images)
        self._report_rename(old, new, len(renamed), results)
        return True

    def _plan_rename(self, old: str, new: str) -> list[ClassRenamePlan]:
        """Plans for the save store and, if of another format, the store read from.

        The open image (an undo step) and parked unsaved edits (relabelled in memory) are
        excluded; they reach their files on their next save. Nothing needs saving first: no
        other image's per-image file holds the open image's boxes, and a class-map rename
        (YOLO, COCO) keeps the id they will be saved under.
        """
        ws = self.workspace
        stores: dict[str, AnnotationStore] = {}
        for store in (ws.store, ws.read_store):
            # A read store of the save format (after a VOC convention change) holds the same
            # files: they are rewritten once, by the save store, as the app saves them.
            if store is not None:
                stores.setdefault(store.fmt, store)
        exclude = [p for p in (self.document.image_path, *ws.unsaved) if p is not None]
        return [
            plan_class_rename(store, ws.images, old, new, exclude=exclude)
            for store in stores.values()
        ]

    def _rename_in_memory(self, old: str, new: str) -> set[Path]:
        """Relabel what is held besides the open image: parked unsaved edits, the previous
        image's boxes (Ctrl+Shift+V) and the clipboard. Returns the images relabelled."""
        ws = self.workspace
        renamed = set()
        for path, ann in ws.unsaved.items():
            # The open image's parked edits are its document (relabelled by the undo step).
            if path != self.document.image_path and relabel_annotation(ann, old, new):
                renamed.add(path)

        def relabel(boxes: list[Box]) -> list[Box]:
            return [replace(b, label=new) if b.label == old else b for b in boxes]

        ws.previous_boxes = relabel(ws.previous_boxes)
        self.clipboard = relabel(self.clipboard)
        return renamed

    def _report_rename(
        self, old: str, new: str, images: int, results: list[ClassRenameResult]
    ) -> None:
        errors = [e for result in results for e in result.errors]
        if errors:
            more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
            shown = "; ".join(errors[:5]) + more
            self.message.emit(
                "warning",
                f"Renaming '{old}' to '{new}': {len(errors)} file(s) left as they were: {shown}",
            )
        backups = {k: v for result in results for k, v in result.backups.items()}
        if backups:
            listed = ", ".join(f"{k.name} to {v.name}" for k, v in list(backups.items())[:5])
            self.message.emit(
                "info", f"Backed up {len(backups)} file(s) read with warnings first: {listed}"
            )
        self.status.emit(f"Renamed '{old}' to '{new}' in {images} image" + "s" * (images != 1))

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
