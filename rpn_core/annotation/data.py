"""The Qt-free annotation data model shared by the format readers/writers and the app.

Coordinates follow :mod:`rpn_core.boxes`: ``(x1, y1, x2, y2)``, 0-based continuous pixels of
the EXIF-upright image. A :class:`Box` is an immutable value; an :class:`ImageAnnotation`
is the list of boxes of one image plus what the file formats need to round-trip it.

Format data of one box that the app does not model (VOC ``<pose>``, labelme ``group_id``, a
COCO annotation's ``id`` and ``segmentation``...) rides on the box itself (``Box.extra``), so
it follows the box through every edit made with ``dataclasses.replace`` -- relabel, move,
resize, flags -- and through undo/redo and the undo of a delete, and is gone only with the box.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rpn_core.errors import RPNStudioError

__all__ = [
    "AnnotationError",
    "AnnotationReadError",
    "AnnotationWriteError",
    "Box",
    "ImageAnnotation",
]


class AnnotationError(RPNStudioError):
    """Base of the annotation errors; ``path`` names the file, ``reason`` says what is wrong."""

    path: Path

    def __init__(self, path: str | Path, reason: str, *, location: str | None = None) -> None:
        super().__init__(path, reason)
        # Line number ("line 3"), key ("annotations[2].bbox") or element ("object #4").
        self.location = location
        where = f" ({location})" if location else ""
        self.args = (f"{self.path}{where}: {reason}",)


class AnnotationReadError(AnnotationError):
    """A file could not be read as an annotation (malformed, hostile, wrong type)."""


class AnnotationWriteError(AnnotationError):
    """An annotation could not be written (permission, disk full, unrepresentable value)."""


@dataclass(frozen=True)
class Box:
    """One ground-truth box. Classes matter to users; the RPN ignores them.

    ``extra`` holds the box's format data that we do not edit, by format name (``{"voc":
    [elements], "labelme": {keys}, "coco": {keys}}``), set by a reader and written back by the
    writer of the same format (another format ignores it). It is not part of equality, hash or
    repr (two boxes are equal when the app shows them the same) and is never mutated: writers
    copy it. A *new* box -- drawn, pasted, duplicated -- has none (see ``app.state.undo``).
    """

    x1: float
    y1: float
    x2: float
    y2: float
    label: str = ""
    difficult: bool = False
    truncated: bool = False
    extra: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def format_extra(self, fmt: str, default: Any = None) -> Any:
        """``extra[fmt]`` (the data format ``fmt`` keeps for this box), else ``default``."""
        return self.extra.get(fmt, default) if self.extra else default

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def is_valid(self) -> bool:
        """Finite corners with positive width and height."""
        return all(math.isfinite(v) for v in self.xyxy) and self.x2 > self.x1 and self.y2 > self.y1

    def clamped(self, width: float, height: float) -> Box:
        """The box clipped to the image ``[0, width] x [0, height]``."""
        return replace(
            self,
            x1=min(max(self.x1, 0.0), width),
            y1=min(max(self.y1, 0.0), height),
            x2=min(max(self.x2, 0.0), width),
            y2=min(max(self.y2, 0.0), height),
        )

    def moved(self, dx: float, dy: float) -> Box:
        return replace(self, x1=self.x1 + dx, y1=self.y1 + dy, x2=self.x2 + dx, y2=self.y2 + dy)

    def with_coords(self, x1: float, y1: float, x2: float, y2: float) -> Box:
        return replace(self, x1=x1, y1=y1, x2=x2, y2=y2)


@dataclass
class ImageAnnotation:
    """The boxes of one image and what its file formats need to round-trip it.

    ``width``/``height`` are of the upright image (0 when unknown, e.g. a labelme file read
    without its image). ``extra`` keeps format data we do not edit (labelme's non-rectangle
    shapes, VOC's ``<source>``...) so that a save writes them back untouched; per-box data is
    kept on each box (``Box.extra``).
    """

    image_path: Path
    width: int = 0
    height: int = 0
    boxes: list[Box] = field(default_factory=list)
    verified: bool = False
    extra: dict = field(default_factory=dict)
    # Problems met while reading that did not stop the read (a skipped line, a bad box).
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.image_path = Path(self.image_path)

    @property
    def labels(self) -> list[str]:
        return [b.label for b in self.boxes]

    def boxes_array(self) -> np.ndarray:
        """The boxes as a float64 ``(N, 4)`` array."""
        if not self.boxes:
            return np.zeros((0, 4), dtype=np.float64)
        return np.array([b.xyxy for b in self.boxes], dtype=np.float64)

    def same_content(self, other: ImageAnnotation) -> bool:
        """Equal boxes (order included), verified flag and size; ignores warnings."""
        return (
            self.boxes == other.boxes
            and self.verified == other.verified
            and (self.width, self.height) == (other.width, other.height)
        )
