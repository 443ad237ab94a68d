"""The Qt-free annotation document: the current image's :class:`ImageAnnotation` and the pure
edit operations that undo commands call.

Coordinates follow :mod:`rpn_core.boxes` (original-image pixels of the EXIF-upright image).
Every operation returns what its inverse needs, so an undo command is two calls: ``redo`` applies
an operation and keeps its result, ``undo`` applies the inverse with that result. Boxes are
clamped to the image on the way in; a box that is empty after clamping is refused with
``ValueError`` (an empty box in a file is never what a user meant).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from rpn_core.annotation.data import Box, ImageAnnotation

__all__ = ["Document", "MIN_BOX_SIZE"]

# Smallest width/height (original pixels) a drawn box may have; smaller drags are dropped.
MIN_BOX_SIZE = 1.0


class Document:
    """One image's boxes and flags, edited through index-based operations.

    ``annotation`` is ``None`` until an image is set. Indices are positions in
    ``annotation.boxes``; :meth:`insert_boxes` and :meth:`remove_boxes` are exact inverses.
    """

    def __init__(self, annotation: ImageAnnotation | None = None) -> None:
        self.annotation: ImageAnnotation | None = annotation

    # -- queries -----------------------------------------------------------------------------
    @property
    def image_path(self) -> Path | None:
        return self.annotation.image_path if self.annotation else None

    @property
    def boxes(self) -> list[Box]:
        return self.annotation.boxes if self.annotation else []

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the upright image, ``(0, 0)`` without an image."""
        return (self.annotation.width, self.annotation.height) if self.annotation else (0, 0)

    @property
    def verified(self) -> bool:
        return bool(self.annotation and self.annotation.verified)

    def __len__(self) -> int:
        return len(self.boxes)

    def clamp(self, box: Box) -> Box:
        """``box`` with ordered corners, clipped to the image; ``ValueError`` if empty."""
        x1, x2 = sorted((box.x1, box.x2))
        y1, y2 = sorted((box.y1, box.y2))
        w, h = self.size
        out = box.with_coords(x1, y1, x2, y2)
        if w > 0 and h > 0:
            out = out.clamped(w, h)
        if not out.is_valid():
            raise ValueError(f"box {box.xyxy} is empty inside the {w}x{h} image")
        return out

    # -- operations (each returns what its inverse needs) --------------------------------------
    def set_annotation(self, annotation: ImageAnnotation | None) -> None:
        self.annotation = annotation

    def _require(self) -> ImageAnnotation:
        if self.annotation is None:
            raise RuntimeError("no image is open")
        return self.annotation

    def insert_boxes(self, boxes: Sequence[Box], at: Sequence[int] | None = None) -> list[int]:
        """Insert ``boxes`` (clamped) at the final positions ``at`` (default: appended).

        ``at`` must be the indices the boxes will have *after* insertion (as returned by
        :meth:`remove_boxes`); returns them, ascending.
        """
        ann = self._require()
        clamped = [self.clamp(b) for b in boxes]
        if at is None:
            start = len(ann.boxes)
            ann.boxes.extend(clamped)
            return list(range(start, start + len(clamped)))
        if len(at) != len(clamped):
            raise ValueError("one index per inserted box is needed")
        for index, box in sorted(zip(at, clamped, strict=True)):
            ann.boxes.insert(index, box)
        return sorted(at)

    def remove_boxes(self, indices: Iterable[int]) -> tuple[list[int], list[Box]]:
        """Remove the boxes at ``indices``; returns ``(indices ascending, removed boxes)``."""
        ann = self._require()
        order = sorted(set(indices))
        removed = [ann.boxes[i] for i in order]
        for i in reversed(order):
            del ann.boxes[i]
        return order, removed

    def replace_boxes(self, changes: Mapping[int, Box]) -> dict[int, Box]:
        """Set ``boxes[i] = changes[i]`` (clamped); returns the previous boxes by index."""
        ann = self._require()
        new = {i: self.clamp(b) for i, b in changes.items()}
        old = {i: ann.boxes[i] for i in new}
        for i, box in new.items():
            ann.boxes[i] = box
        return old

    def set_labels(self, indices: Iterable[int], label: str) -> dict[int, Box]:
        """Relabel boxes; returns the previous boxes (undo with :meth:`replace_boxes`)."""
        return self.replace_boxes({i: replace(self.boxes[i], label=label) for i in indices})

    def set_difficult(self, indices: Iterable[int], difficult: bool) -> dict[int, Box]:
        return self.replace_boxes({i: replace(self.boxes[i], difficult=difficult) for i in indices})

    def set_verified(self, verified: bool) -> bool:
        """Set the verified flag; returns the previous value."""
        ann = self._require()
        old, ann.verified = ann.verified, bool(verified)
        return old

    def copy_annotation(self) -> ImageAnnotation | None:
        """A snapshot that later edits do not change (boxes are immutable values)."""
        if self.annotation is None:
            return None
        return replace(
            self.annotation,
            boxes=list(self.annotation.boxes),
            extra=dict(self.annotation.extra),
            warnings=list(self.annotation.warnings),
        )
