"""Annotation file formats (Pascal VOC, YOLO, COCO, labelme) behind one store interface.

Boxes in memory always follow :mod:`rpn_core.boxes`; each format module documents exactly how
its file convention maps to it (VOC's two conventions in :mod:`rpn_core.annotation.formats.voc`). Readers
return an :class:`~rpn_core.annotation.data.ImageAnnotation` whose ``warnings`` name the file and
line/key of every skipped item, or raise :class:`~rpn_core.annotation.data.AnnotationReadError`
for a file that cannot be parsed at all -- never another exception type.

Use :func:`open_store` (and :func:`detect_format`) rather than the per-format functions: the
store adds atomic writes, backups of damaged files and the append-only class map.
"""

from __future__ import annotations

import os
from pathlib import Path

from rpn_core.annotation.formats.store import (
    AnnotationStore,
    CocoStore,
    PerImageStore,
    coco_file_in,
)

__all__ = ["FORMATS", "AnnotationStore", "detect_format", "open_store"]

FORMATS = ("voc", "yolo", "coco", "labelme")
_SCAN_LIMIT = 5000  # directory entries looked at by detect_format, per folder
_HEADS_LIMIT = 200  # XML/JSON files whose first bytes it reads, per folder
_SCAN_DIRS = 200  # sub-folders it visits when recursive
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


def open_store(
    folder: str | Path,
    fmt: str,
    *,
    voc_convention: str = "devkit",
    image_root: str | Path | None = None,
) -> AnnotationStore:
    """The :class:`AnnotationStore` for annotations of format ``fmt`` in ``folder``.

    ``image_root`` is the folder the images are relative to (default: ``folder`` itself);
    ``voc_convention`` is ``"devkit"`` or ``"labelimg"`` (see :mod:`rpn_core.annotation.formats.voc`).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown annotation format {fmt!r}; expected one of {FORMATS}")
    if fmt == "coco":
        return CocoStore(folder, image_root=image_root)
    return PerImageStore(folder, fmt, image_root=image_root, voc_convention=voc_convention)


def _head(path: str, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def detect_format(folder: str | Path, recursive: bool = False) -> str | None:
    """Guess the annotation format of ``folder`` from the files in it.

    Counts VOC XML files (``<annotation``), labelme JSON files (``"shapes"``) and YOLO
    ``.txt`` files named like an image (a ``classes.txt`` counts as one); a COCO file
    (see :func:`~rpn_core.annotation.formats.store.coco_file_in`) counts as one per image. The largest
    count wins, ties in :data:`FORMATS` order; ``None`` when nothing matches. With
    ``recursive``, a folder without annotations of its own takes the format of its first
    sub-folder (in sorted order) that has some.
    """
    found = _detect_here(Path(folder))
    if found is not None or not recursive:
        return found
    for visited, (root, dirs, _files) in enumerate(os.walk(folder)):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if visited > _SCAN_DIRS:
            break
        found = _detect_here(Path(root)) if visited else None
        if found is not None:
            return found
    return None


def _detect_here(folder: Path) -> str | None:
    try:
        with os.scandir(folder) as it:
            entries = [e for _, e in zip(range(_SCAN_LIMIT), it, strict=False)]
    except OSError:
        return None
    stems_of_images = {
        os.path.splitext(e.name)[0]
        for e in entries
        if os.path.splitext(e.name)[1].lower() in _IMAGE_SUFFIXES
    }
    score = dict.fromkeys(FORMATS, 0)
    heads_read = 0
    for entry in entries:
        stem, ext = os.path.splitext(entry.name)
        ext = ext.lower()
        if ext in (".xml", ".json") and heads_read < _HEADS_LIMIT:
            heads_read += 1
            if ext == ".xml" and b"<annotation" in _head(entry.path):
                score["voc"] += 1
            elif ext == ".json" and b'"shapes"' in _head(entry.path, 1 << 16):
                score["labelme"] += 1
        elif ext == ".txt" and (stem in stems_of_images or entry.name == "classes.txt"):
            score["yolo"] += 1
    if coco_file_in(folder) is not None:
        score["coco"] = max(1, len(stems_of_images))
    best = max(FORMATS, key=lambda f: score[f])
    return best if score[best] > 0 else None
