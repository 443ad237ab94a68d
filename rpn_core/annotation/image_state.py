"""Per-image state shown in the file list, and the scan that finds it for a whole folder."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rpn_core.annotation.data import AnnotationReadError, ImageAnnotation
from rpn_core.images.loading import ImageReadError, probe_image

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rpn_core.annotation.formats import AnnotationStore

__all__ = ["ImageState", "scan_one", "scan_states", "state_of"]

SCAN_BATCH = 64  # images per batch of :func:`scan_states`


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


def scan_one(path: Path, stores: Sequence[AnnotationStore]) -> tuple[Path, ImageState, str]:
    """The state of one image from its header and its annotation file (if any)."""
    try:
        width, height = probe_image(path)
    except ImageReadError as exc:
        return (path, ImageState.UNREADABLE, exc.reason)
    for store in stores:
        if store.has_annotation(path):
            try:
                ann = store.load(path, width=width, height=height)
            except AnnotationReadError as exc:
                return (path, ImageState.EMPTY, f"annotation unreadable: {exc.reason}")
            return (path, *state_of(ann))
    return (path, ImageState.EMPTY, "no annotation file")


def scan_states(
    paths: Sequence[Path],
    make_stores: Callable[[], list[AnnotationStore]],
    batch: int = SCAN_BATCH,
) -> Iterator[list[tuple[Path, ImageState, str]]]:
    """``(path, state, tooltip)`` of every image, yielded in batches of ``batch``.

    ``make_stores`` builds the scan's *own* annotation stores (a store is not shared between
    threads); if it fails, nothing is yielded (visiting an image still shows its state).
    """
    try:
        stores = make_stores()
    except Exception:  # noqa: BLE001 - no scan rather than a crash; visits still work
        return
    found = []
    for path in paths:
        found.append(scan_one(path, stores))
        if len(found) >= batch:
            yield found
            found = []
    if found:
        yield found
