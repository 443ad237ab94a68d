"""Every edit of the annotation is one of these :class:`QUndoCommand` (ARCHITECTURE.md rule 9).

Commands call the :class:`app.state.qdocument.AnnotationDocument` and never canvas items. Construct
one and push it on ``document.undo_stack``; ``redo()`` runs on push. Box coordinates follow
:mod:`rpn_core.boxes`.

* :class:`AddBoxesCommand` -- any number of boxes in ONE step (new box, paste, duplicate, copy
  from the previous image, "accept proposals as GT"). Invalid boxes are clamped or dropped at
  construction; check ``cmd.boxes`` before pushing. Added boxes are new objects: they carry no
  per-box format data (``Box.extra``) of a box they were copied from -- a copy must not claim
  the original's COCO annotation id or segmentation, nor its VOC pose or labelme group.
* :class:`DeleteBoxesCommand`
* :class:`EditBoxesCommand` -- move/resize/nudge; commands with the same ``merge_key`` and the
  same boxes merge (``id()``/``mergeWith()``), so a drag or a run of arrow-key nudges is one
  step. :class:`RelabelBoxesCommand` and :class:`SetDifficultCommand` are edits too.
* :class:`SetVerifiedCommand`
* :class:`RenameClassCommand` -- a class rename in the whole folder (other images' files, the
  class list and the open image's boxes) as ONE step; it calls back into whoever does the
  rename (:class:`app.annotate.edit_controller.EditController`), the same way in both directions.

Every other edit keeps a box's ``Box.extra`` (it is changed with ``dataclasses.replace``), and
undoing a delete puts the very same boxes back, so a save loses only what the user deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from PySide6.QtGui import QUndoCommand

from app.state.qdocument import AnnotationDocument
from rpn_core.annotation.box_edit import translate_within
from rpn_core.annotation.data import Box

__all__ = [
    "AddBoxesCommand",
    "DeleteBoxesCommand",
    "EditBoxesCommand",
    "RelabelBoxesCommand",
    "RenameClassCommand",
    "SetDifficultCommand",
    "SetVerifiedCommand",
    "duplicate_command",
    "paste_command",
    "push_boxes",
]

_EDIT_ID = 0x5250_4E01  # any constant shared by all mergeable edits


class AddBoxesCommand(QUndoCommand):
    """Append boxes (clamped to the image; empty ones dropped; without per-box format data:
    they are new) and select them."""

    def __init__(self, doc: AnnotationDocument, boxes: Iterable[Box], text: str = "") -> None:
        self.boxes: list[Box] = []
        for box in boxes:
            try:
                self.boxes.append(doc.core.clamp(replace(box, extra=None) if box.extra else box))
            except ValueError:
                continue
        n = len(self.boxes)
        super().__init__(text or (f"Add {n} boxes" if n != 1 else "Add box"))
        self._doc = doc
        self._indices: list[int] | None = None

    def redo(self) -> None:
        self._indices = self._doc.insert_boxes(self.boxes, self._indices)
        self._doc.select(self._indices)

    def undo(self) -> None:
        assert self._indices is not None
        self._doc.remove_boxes(self._indices)


class DeleteBoxesCommand(QUndoCommand):
    def __init__(self, doc: AnnotationDocument, indices: Iterable[int], text: str = "") -> None:
        self._indices = sorted(set(indices))
        n = len(self._indices)
        super().__init__(text or (f"Delete {n} boxes" if n != 1 else "Delete box"))
        self._doc = doc
        self._removed: list[Box] = []

    def redo(self) -> None:
        self._indices, self._removed = self._doc.remove_boxes(self._indices)

    def undo(self) -> None:
        self._doc.insert_boxes(self._removed, self._indices)
        self._doc.select(self._indices)


class EditBoxesCommand(QUndoCommand):
    """Replace boxes in place. ``merge_key`` (e.g. ``"move"``, ``"nudge"``) lets consecutive
    edits of the same boxes merge into one undo step."""

    def __init__(
        self,
        doc: AnnotationDocument,
        changes: Mapping[int, Box],
        text: str = "Edit box",
        merge_key: str | None = None,
    ) -> None:
        super().__init__(text)
        self._doc = doc
        self.new = {i: doc.core.clamp(b) for i, b in changes.items()}
        self.old = {i: doc.boxes[i] for i in self.new}
        self.merge_key = merge_key

    def redo(self) -> None:
        self._doc.replace_boxes(self.new)

    def undo(self) -> None:
        self._doc.replace_boxes(self.old)

    def id(self) -> int:  # noqa: A003 - Qt's name
        return _EDIT_ID if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if (
            not isinstance(other, EditBoxesCommand)
            or other.merge_key != self.merge_key
            or other.new.keys() != self.new.keys()
        ):
            return False
        self.new = dict(other.new)
        self.setObsolete(self.new == self.old)
        return True


class RelabelBoxesCommand(EditBoxesCommand):
    def __init__(self, doc: AnnotationDocument, indices: Iterable[int], label: str) -> None:
        changes = {i: replace(doc.boxes[i], label=label) for i in indices}
        super().__init__(doc, changes, f"Set class '{label}'")


class SetDifficultCommand(EditBoxesCommand):
    def __init__(self, doc: AnnotationDocument, indices: Iterable[int], difficult: bool) -> None:
        changes = {i: replace(doc.boxes[i], difficult=difficult) for i in indices}
        super().__init__(doc, changes, "Mark difficult" if difficult else "Clear difficult")


class RenameClassCommand(QUndoCommand):
    """Rename class ``old`` to ``new`` on redo and back on undo through ``rename(a, b)``,
    which renames everywhere and returns False when it cannot (a message says why): the
    command then drops out of the history (``setObsolete``), having changed nothing."""

    def __init__(self, rename: Callable[[str, str], bool], old: str, new: str) -> None:
        super().__init__(f"Rename class '{old}' to '{new}'")
        self._rename = rename
        self.old, self.new = old, new

    def redo(self) -> None:
        if not self._rename(self.old, self.new):
            self.setObsolete(True)

    def undo(self) -> None:
        if not self._rename(self.new, self.old):
            self.setObsolete(True)


class SetVerifiedCommand(QUndoCommand):
    def __init__(self, doc: AnnotationDocument, verified: bool) -> None:
        super().__init__("Mark verified" if verified else "Clear verified")
        self._doc = doc
        self._new = verified
        self._old = doc.verified

    def redo(self) -> None:
        self._doc.set_verified(self._new)

    def undo(self) -> None:
        self._doc.set_verified(self._old)


def duplicate_command(
    doc: AnnotationDocument, indices: Sequence[int], offset: float = 10.0
) -> AddBoxesCommand:
    """Copies of the boxes shifted by ``offset`` pixels (kept inside the image)."""
    w, h = doc.size
    copies = [
        doc.boxes[i].with_coords(*translate_within(doc.boxes[i].xyxy, offset, offset, w, h))
        for i in indices
    ]
    return AddBoxesCommand(
        doc, copies, "Duplicate" if len(copies) == 1 else f"Duplicate {len(copies)} boxes"
    )


def paste_command(doc: AnnotationDocument, boxes: Sequence[Box]) -> AddBoxesCommand:
    """Paste boxes copied from this or another image (clamped; empty ones dropped)."""
    return AddBoxesCommand(doc, boxes, "Paste" if len(boxes) == 1 else f"Paste {len(boxes)} boxes")


def push_boxes(doc: AnnotationDocument, boxes: Sequence[Box], text: str = "") -> bool:
    """Add ``boxes`` to the open image as ONE undo step (clamped; empty ones dropped);
    False if there is no image or nothing valid to add."""
    if doc.annotation is None or not boxes:
        return False
    cmd = AddBoxesCommand(doc, boxes, text) if text else paste_command(doc, list(boxes))
    if not cmd.boxes:
        return False
    doc.undo_stack.push(cmd)
    return True
