"""An annotated folder as a list of (image, size, boxes), without decoding any pixels.

:func:`load_dataset` pairs every image of a folder with its
:class:`~rpn_core.annotation.data.ImageAnnotation` (boxes as in :mod:`rpn_core.boxes`), taking
the upright size from the image header (:func:`rpn_core.images.loading.probe_image`). Nothing
raises for a bad file: unreadable images and annotation problems are collected with their
reasons, so the ``eval``, ``train``, ``anchors`` and ``convert`` commands can report them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rpn_core.annotation.data import AnnotationReadError, ImageAnnotation
from rpn_core.annotation.formats import AnnotationStore, detect_format, open_store
from rpn_core.images.loading import ImageReadError, list_images, probe_image

__all__ = ["Dataset", "DatasetItem", "load_dataset"]


@dataclass(frozen=True)
class DatasetItem:
    """One readable image and its annotation (empty if it has none or it could not be read,
    in which case ``annotation_error`` says why)."""

    image_path: Path
    width: int
    height: int
    annotation: ImageAnnotation
    annotation_error: str | None = None

    @property
    def boxes(self) -> np.ndarray:
        """The GT boxes as a float64 ``(N, 4)`` array."""
        return self.annotation.boxes_array()


@dataclass
class Dataset:
    """The images of a folder with their annotations, plus everything that went wrong.

    ``unreadable``: ``(image path, reason)`` for images whose header could not be read (they
    are not in ``items``). ``problems``: ``(file path, reason)`` for annotation files read
    with warnings or not at all (their images are in ``items``, with the boxes that could be
    read).
    """

    folder: Path
    fmt: str | None
    items: list[DatasetItem] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[DatasetItem]:
        return iter(self.items)

    @property
    def annotated(self) -> list[DatasetItem]:
        """Items with at least one box."""
        return [it for it in self.items if it.annotation.boxes]

    @property
    def num_boxes(self) -> int:
        return sum(len(it.annotation.boxes) for it in self.items)

    def all_boxes(self) -> np.ndarray:
        """Every GT box of the folder stacked into one ``(N, 4)`` array."""
        arrays = [it.boxes for it in self.items]
        return np.concatenate(arrays) if arrays else np.zeros((0, 4))


def load_dataset(
    folder: str | Path,
    fmt: str | None = None,
    recursive: bool = False,
    *,
    voc_convention: str = "devkit",
    store: AnnotationStore | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Pair every image in ``folder`` with its annotation (format auto-detected if ``fmt`` is
    None; a folder with no annotations gives items with empty annotations and ``fmt=None``).

    ``store`` overrides the store (e.g. annotations kept in another folder); ``progress`` is
    called as ``progress(k, total)`` when the k-th image (1-based) is read. Raises
    :class:`~rpn_core.images.loading.ImageReadError` only if ``folder`` itself cannot be listed.
    """
    folder = Path(folder)
    if store is None:
        fmt = fmt or detect_format(folder, recursive=recursive)
        if fmt is not None:
            store = open_store(folder, fmt, voc_convention=voc_convention)
    else:
        fmt = store.fmt
    listing_errors: list[str] = []
    images = list_images(folder, recursive=recursive, errors=listing_errors)
    data = Dataset(folder, fmt)
    data.problems.extend((folder, msg) for msg in listing_errors)
    if store is not None:
        data.problems.extend((store.folder, w) for w in store.warnings)
    for done, image_path in enumerate(images, start=1):
        if progress is not None:
            progress(done, len(images))
        try:
            width, height = probe_image(image_path)
        except ImageReadError as exc:
            data.unreadable.append((image_path, exc.reason))
            continue
        ann, error = ImageAnnotation(image_path, width, height), None
        if store is not None:
            try:
                ann = store.load(image_path, width=width, height=height)
            except AnnotationReadError as exc:
                error = str(exc)
                data.problems.append((exc.path, error))
            else:
                path = store.annotation_path(image_path)
                data.problems.extend((path, w) for w in ann.warnings)
        data.items.append(DatasetItem(image_path, width, height, ann, error))
    if store is not None:
        data.classes = store.classes
    data.problems = list(dict.fromkeys(data.problems))  # a broken COCO file is named once
    return data
