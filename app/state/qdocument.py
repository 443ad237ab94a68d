"""The one QObject wrapper around :class:`rpn_core.annotation.document.Document` (ARCHITECTURE.md rule 8).

Widgets listen to its snake_case signals; undo commands (:mod:`app.state.undo`) call its edit
methods, which apply the Qt-free operation and emit. Box coordinates follow
:mod:`rpn_core.boxes` (original pixels of the upright image).

Undo policy: ONE :class:`QUndoStack` (``undo_stack``) that holds the history of the *current*
image. Opening another image saves (autosave) and clears it, so Ctrl+Z never reaches into an
image that is no longer shown -- the same rule as labelme and X-AnyLabeling, but with redo.

Signals
-------
``image_changed()``            a new image (and its annotation) is shown, or none
``boxes_changed()``            any change of the boxes (emitted after the fine signals below)
``boxes_inserted(object)``     ascending ``list[int]`` of the new boxes' indices
``boxes_removed(object)``      ascending ``list[int]`` of removed indices (before removal)
``boxes_updated(object)``      ``list[int]`` of boxes changed in place (geometry, label, flags)
``box_preview(int, object)``   live drag: index and current ``(x1, y1, x2, y2)``, every mouse
                               move; the document itself is only changed on release
``verified_changed(bool)``     the image's verified flag
``selection_changed(object)``  ascending ``list[int]`` of selected boxes
``dirty_changed(bool)``        unsaved changes appeared / were saved
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage, QUndoStack

from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.annotation.document import Document
from rpn_core.images.loading import LoadedImage

__all__ = ["AnnotationDocument", "qimage_from_rgb"]


def qimage_from_rgb(pixels: np.ndarray) -> QImage:
    """A deep-copied ``QImage`` (RGB888) of an ``(H, W, 3)`` uint8 array."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = pixels.shape[:2]
    return QImage(pixels.data, w, h, pixels.strides[0], QImage.Format.Format_RGB888).copy()


class AnnotationDocument(QObject):
    """The current image, its annotation, the selection and the undo stack."""

    image_changed = Signal()
    boxes_changed = Signal()
    boxes_inserted = Signal(object)
    boxes_removed = Signal(object)
    boxes_updated = Signal(object)
    box_preview = Signal(int, object)
    verified_changed = Signal(bool)
    selection_changed = Signal(object)
    dirty_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.core = Document()
        self.undo_stack = QUndoStack(self)
        self.loaded: LoadedImage | None = None
        self.qimage: QImage | None = None
        self.image_error: str | None = None
        self._selection: list[int] = []
        self._dirty_without_history = False
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)

    # -- image ---------------------------------------------------------------------------------
    def set_image(
        self,
        loaded: LoadedImage | None,
        annotation: ImageAnnotation | None,
        *,
        qimage: QImage | None = None,
        error: str | None = None,
        dirty: bool = False,
    ) -> None:
        """Show a new image; clears history and selection. ``dirty`` marks unsaved content
        that did not come from an edit (e.g. a save that failed before switching away)."""
        self.undo_stack.clear()
        self.loaded = loaded
        self.qimage = (
            qimage if qimage is not None or loaded is None else qimage_from_rgb(loaded.pixels)
        )
        self.image_error = error
        self.core.set_annotation(annotation)
        self._selection = []
        was = self.dirty
        self._dirty_without_history = dirty
        self.image_changed.emit()
        self.selection_changed.emit([])
        self.boxes_changed.emit()
        if self.dirty != was:
            self.dirty_changed.emit(self.dirty)

    @property
    def image_path(self) -> Path | None:
        return self.core.image_path

    @property
    def annotation(self) -> ImageAnnotation | None:
        return self.core.annotation

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the upright original image."""
        return self.core.size

    @property
    def boxes(self) -> list[Box]:
        return self.core.boxes

    def boxes_array(self) -> np.ndarray:
        """The boxes as float64 ``(N, 4)``."""
        return self.annotation.boxes_array() if self.annotation else np.zeros((0, 4))

    @property
    def verified(self) -> bool:
        return self.core.verified

    def pixel_at(self, x: float, y: float) -> tuple[int, int, int] | None:
        """RGB of the displayed pixel under original-image point ``(x, y)``, if inside."""
        if self.loaded is None:
            return None
        s = self.loaded.scale
        col, row = int(x * s), int(y * s)
        h, w = self.loaded.pixels.shape[:2]
        if 0 <= col < w and 0 <= row < h and x >= 0 and y >= 0:
            r, g, b = self.loaded.pixels[row, col]
            return int(r), int(g), int(b)
        return None

    # -- dirty state ---------------------------------------------------------------------------
    def _on_clean_changed(self, _clean: bool) -> None:
        try:
            self.dirty_changed.emit(self.dirty)
        except RuntimeError:  # this object is being destroyed with the window
            pass

    @property
    def dirty(self) -> bool:
        try:
            return self._dirty_without_history or not self.undo_stack.isClean()
        except RuntimeError:  # the stack is being destroyed with the window
            return self._dirty_without_history

    def mark_dirty(self) -> None:
        """Unsaved content that is not an edit (e.g. the save format changed)."""
        if not self.dirty and self.annotation is not None:
            self._dirty_without_history = True
            self.dirty_changed.emit(True)

    def mark_saved(self) -> None:
        was = self.dirty
        self._dirty_without_history = False
        self.undo_stack.setClean()
        if was and not self.dirty:
            self.dirty_changed.emit(False)

    # -- selection -----------------------------------------------------------------------------
    @property
    def selection(self) -> list[int]:
        return list(self._selection)

    def select(self, indices: Iterable[int]) -> None:
        new = sorted({i for i in indices if 0 <= i < len(self.boxes)})
        if new != self._selection:
            self._selection = new
            self.selection_changed.emit(list(new))

    # -- edits (called by undo commands) -------------------------------------------------------
    def insert_boxes(self, boxes: Sequence[Box], at: Sequence[int] | None = None) -> list[int]:
        indices = self.core.insert_boxes(boxes, at)
        shifted = []
        for s in self._selection:
            # An old index moves up by one for every new box placed at or before it.
            for p in indices:
                if p <= s:
                    s += 1
            shifted.append(s)
        old_sel, self._selection = self._selection, sorted(shifted)
        self.boxes_inserted.emit(indices)
        self.boxes_changed.emit()
        if self._selection != old_sel:
            self.selection_changed.emit(list(self._selection))
        return indices

    def remove_boxes(self, indices: Iterable[int]) -> tuple[list[int], list[Box]]:
        order, removed = self.core.remove_boxes(indices)
        old_sel = self._selection
        self._selection = [s - bisect.bisect_left(order, s) for s in old_sel if s not in order]
        self.boxes_removed.emit(order)
        self.boxes_changed.emit()
        if self._selection != old_sel:
            self.selection_changed.emit(list(self._selection))
        return order, removed

    def replace_boxes(self, changes: Mapping[int, Box]) -> dict[int, Box]:
        old = self.core.replace_boxes(changes)
        self.boxes_updated.emit(sorted(changes))
        self.boxes_changed.emit()
        return old

    def set_verified(self, verified: bool) -> bool:
        old = self.core.set_verified(verified)
        if old != verified:
            self.verified_changed.emit(bool(verified))
        return old

    def preview_box(self, index: int, xyxy: tuple[float, float, float, float]) -> None:
        """Announce a box's live geometry during a drag (no document change)."""
        self.box_preview.emit(index, tuple(float(v) for v in xyxy))
