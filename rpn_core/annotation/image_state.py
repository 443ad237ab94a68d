"""Per-image state shown in the file list (Qt-free)."""

from __future__ import annotations

import enum

from rpn_core.annotation.data import ImageAnnotation

__all__ = ["ImageState", "state_of"]


class ImageState(enum.Enum):
    UNKNOWN = "not opened"
    EMPTY = "no boxes"
    ANNOTATED = "annotated"
    VERIFIED = "verified"
    UNSAVED = "unsaved"
    UNREADABLE = "unreadable"


def state_of(ann: ImageAnnotation) -> tuple[ImageState, str]:
    """The state of a loaded or saved annotation and a tooltip (box count, warnings)."""
    n = len(ann.boxes)
    tip = f"{n} box" + ("" if n == 1 else "es")
    if ann.warnings:
        tip += f"; {len(ann.warnings)} read warning(s): " + "; ".join(ann.warnings[:3])
    if ann.verified:
        return ImageState.VERIFIED, tip
    return (ImageState.ANNOTATED if n else ImageState.EMPTY), tip
