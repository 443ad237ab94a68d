"""One interface over the four formats: load, save (atomic, with backups), classes.

An :class:`AnnotationStore` maps image paths to annotation files under ``folder``: an image
``image_root/sub/a.jpg`` has ``folder/sub/a.xml`` (VOC), ``.txt`` (YOLO) or ``.json``
(labelme), or its entry in the folder's single COCO file. ``image_root`` defaults to
``folder`` (annotations beside the images, as labelImg and labelme keep them); images outside
``image_root`` use their bare name. Two images that differ only by suffix (``a.jpg``,
``a.png``) share a per-image annotation file -- as in labelImg and labelme.

Damage and backups: a file that cannot be parsed (``load`` raises
:class:`~rpn_core.annotation.data.AnnotationReadError`) or that was read with warnings is
remembered as *damaged*; a file that exists but was never loaded through this store is
*foreign*. Before the first overwrite of a damaged or foreign file the store copies it to
``name.bak`` (or ``name.bak1``...; see :func:`rpn_core.atomic.backup_once`) and records it in
``backups``. Every write is atomic; a failed save raises
:class:`~rpn_core.annotation.data.AnnotationWriteError` and leaves the old file as it was.

Classes: names are only ever appended, so a class keeps its id. :meth:`rename_class` renames one
in place (same id); for YOLO and COCO, whose files refer to classes by id, that is one edit of
the class map (``classes.txt``, the COCO categories) and relabels every image's boxes at once.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

from rpn_core.annotation.data import AnnotationReadError, AnnotationWriteError, ImageAnnotation
from rpn_core.annotation.formats import coco, labelme, voc, yolo
from rpn_core.annotation.formats._common import read_bytes
from rpn_core.atomic import atomic_write_bytes, backup_once

__all__ = ["AnnotationStore", "CocoStore", "PerImageStore", "coco_file_in"]


class AnnotationStore(ABC):
    """Loads and saves the :class:`ImageAnnotation` of images for one format and folder."""

    fmt: str = ""

    def __init__(self, folder: str | Path, *, image_root: str | Path | None = None) -> None:
        self.folder = Path(folder)
        self.image_root = Path(image_root) if image_root is not None else self.folder
        self.warnings: list[str] = []  # store-level problems (class map, COCO file entries)
        self.backups: dict[Path, Path] = {}  # damaged/foreign file -> its backup copy
        self._damaged: set[Path] = set()
        self._loaded: set[Path] = set()
        self._classes: list[str] = []

    # -- classes (append-only) -------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        """Class names in id order (a copy); names are only ever appended."""
        return list(self._classes)

    def add_class(self, name: str) -> None:
        if name not in self._classes:
            self._classes.append(name)

    def class_map_path(self) -> Path | None:
        """The file whose class names the annotation files refer to by id (YOLO's class map,
        the COCO file), or ``None`` when each file spells out its labels (VOC, labelme)."""
        return None

    def rename_class(self, old: str, new: str) -> list[Path]:
        """Rename class ``old`` to ``new`` in place: its id is kept (a no-op if ``old`` is not
        a class). Formats with a class map rewrite it, which relabels the boxes of ``old`` in
        every image; per-image files are not touched here (see :mod:`rpn_core.annotation.class_rename`).

        Returns the files written. Raises ``ValueError`` if ``new`` is already a class
        (merging classes is not supported) and :class:`AnnotationError` if the class map
        cannot be read or written; nothing is changed then. (VOC and labelme have no ids: their
        list only notes the names seen, and ``new`` simply replaces ``old`` in it.)
        """
        self._check_rename(old, new)
        self._classes = [new if name == old else name for name in self._classes]
        return []

    def _check_rename(self, old: str, new: str) -> None:
        if new != old and new in self._classes:
            raise ValueError(f"class {new!r} already exists; merging classes is not supported")

    def _note_labels(self, ann: ImageAnnotation) -> None:
        for label in ann.labels:
            self.add_class(label)

    # -- paths -----------------------------------------------------------------------------
    def image_rel(self, image_path: str | Path) -> Path:
        image_path = Path(image_path)
        try:
            return image_path.relative_to(self.image_root)
        except ValueError:
            return Path(image_path.name)

    @abstractmethod
    def annotation_path(self, image_path: str | Path) -> Path:
        """The file that holds (or will hold) the annotation of ``image_path``."""

    @abstractmethod
    def has_annotation(self, image_path: str | Path) -> bool:
        """Whether an annotation exists on disk for ``image_path``."""

    def is_damaged(self, image_path: str | Path) -> bool:
        return self.annotation_path(image_path) in self._damaged

    # -- load / save -----------------------------------------------------------------------
    @abstractmethod
    def load(self, image_path: str | Path, *, width: int, height: int) -> ImageAnnotation:
        """The annotation of ``image_path`` (``width``/``height``: its upright size).

        An image without a file gives an empty annotation; a partly bad file gives the boxes
        that could be read plus ``warnings``; an unreadable one raises AnnotationReadError.
        """

    @abstractmethod
    def save(self, annotation: ImageAnnotation) -> None:
        """Write ``annotation`` atomically (backing up a damaged or foreign file first)."""

    def _write(self, path: Path, data: bytes) -> None:
        if path not in self.backups and path.exists():
            if path in self._damaged or path not in self._loaded:
                backup = backup_once(path)
                if backup is not None:
                    self.backups[path] = backup
        atomic_write_bytes(path, data)
        self._damaged.discard(path)
        self._loaded.add(path)

    def _mark(self, path: Path, ann: ImageAnnotation | None) -> None:
        self._loaded.add(path)
        if ann is None or ann.warnings:
            self._damaged.add(path)
        else:
            self._damaged.discard(path)


class PerImageStore(AnnotationStore):
    """VOC, YOLO and labelme: one annotation file per image."""

    def __init__(
        self,
        folder: str | Path,
        fmt: str,
        *,
        image_root: str | Path | None = None,
        voc_convention: str = "devkit",
    ) -> None:
        super().__init__(folder, image_root=image_root)
        if fmt not in ("voc", "yolo", "labelme"):
            raise ValueError(f"not a per-image format: {fmt!r}")
        self.fmt = fmt
        voc._check_convention(voc_convention)
        self.voc_convention = voc_convention
        self.suffix = {"voc": voc.SUFFIX, "yolo": yolo.SUFFIX, "labelme": labelme.SUFFIX}[fmt]
        self.classes_path = yolo.find_class_file(self.folder)
        self._classes_on_disk: list[str] | None = None
        if fmt == "yolo":
            self._read_classes()

    def _read_classes(self) -> None:
        if not self.classes_path.exists():
            return
        try:
            names, warnings = yolo.parse_classes(read_bytes(self.classes_path), self.classes_path)
        except AnnotationReadError as exc:
            self.warnings.append(str(exc))
            self._damaged.add(self.classes_path)
            return
        self._classes = names
        self._classes_on_disk = list(names)
        self.warnings.extend(warnings)
        self._mark(self.classes_path, ImageAnnotation(self.classes_path, warnings=warnings))

    def annotation_path(self, image_path: str | Path) -> Path:
        return self.folder / self.image_rel(image_path).with_suffix(self.suffix)

    def class_map_path(self) -> Path | None:
        return self.classes_path if self.fmt == "yolo" else None

    def rename_class(self, old: str, new: str) -> list[Path]:
        if self.fmt != "yolo":
            # Each file spells out its labels; the class list only notes the names seen (the
            # rename's own saves note new too), so there are no ids to keep apart.
            renamed = (new if name == old else name for name in self._classes)
            self._classes = list(dict.fromkeys(renamed))
            return []
        self._check_class_map()
        if old not in (self._classes_on_disk or []):  # no file refers to old's id yet
            return super().rename_class(old, new)
        self._check_rename(old, new)
        if "\n" in new or "\r" in new:  # would shift every later id in classes.txt
            raise AnnotationWriteError(self.classes_path, f"class name {new!r} has a line break")
        renamed = [new if name == old else name for name in self._classes]
        self._write(self.classes_path, yolo.format_classes(renamed))
        self._classes, self._classes_on_disk = renamed, list(renamed)
        return [self.classes_path]

    def _check_class_map(self) -> None:
        if self.classes_path in self._damaged and self.classes_path not in self._loaded:
            raise AnnotationWriteError(
                self.classes_path, "unreadable class map; fix or remove it before saving YOLO"
            )

    def has_annotation(self, image_path: str | Path) -> bool:
        return self.annotation_path(image_path).is_file()

    def load(self, image_path: str | Path, *, width: int, height: int) -> ImageAnnotation:
        path = self.annotation_path(image_path)
        if not path.exists():
            return ImageAnnotation(image_path, width, height)
        try:
            ann = self._parse(read_bytes(path), path, Path(image_path), width, height)
        except AnnotationReadError:
            self._mark(path, None)
            raise
        self._mark(path, ann)
        if self.fmt != "yolo":
            self._note_labels(ann)
        return ann

    def _parse(self, data: bytes, path: Path, image: Path, w: int, h: int) -> ImageAnnotation:
        if self.fmt == "voc":
            return voc.parse_voc(
                data,
                path=path,
                image_path=image,
                width=w,
                height=h,
                convention=self.voc_convention,
            )
        if self.fmt == "labelme":
            return labelme.parse_labelme(data, path=path, image_path=image, width=w, height=h)
        return yolo.parse_yolo(
            data, path=path, image_path=image, width=w, height=h, classes=self._classes
        )

    def save(self, annotation: ImageAnnotation) -> None:
        path = self.annotation_path(annotation.image_path)
        try:
            if self.fmt == "voc":
                data = voc.format_voc(annotation, convention=self.voc_convention)
            elif self.fmt == "labelme":
                rel = os.path.relpath(annotation.image_path, path.parent)
                data = labelme.format_labelme(annotation, image_rel=Path(rel).as_posix())
            else:
                data = self._yolo_bytes(annotation, path)
        except ValueError as exc:  # a label or value the format cannot represent
            raise AnnotationWriteError(path, str(exc)) from exc
        self._write(path, data)
        self._note_labels(annotation)

    def _yolo_bytes(self, annotation: ImageAnnotation, path: Path) -> bytes:
        self._check_class_map()
        data, classes = yolo.format_yolo(annotation, self._classes)
        if classes != self._classes_on_disk:  # new labels, add_class() or no file yet
            self._write(self.classes_path, yolo.format_classes(classes))
            self._classes_on_disk = list(classes)
        self._classes = classes
        return data


def coco_file_in(folder: str | Path) -> Path | None:
    """The COCO file of ``folder``: ``annotations.json``, else the first ``*.json`` (also under
    ``annotations/``, CVAT's layout) whose head mentions ``"images"`` and ``"annotations"``."""
    folder = Path(folder)
    default = folder / "annotations.json"
    if default.is_file():
        return default
    for sub in (folder, folder / "annotations"):
        try:
            candidates = sorted(p for p in sub.glob("*.json") if p.is_file())
        except OSError:
            continue
        for p in candidates:
            try:
                with open(p, "rb") as f:
                    head = f.read(1 << 16)
            except OSError:
                continue
            if b'"images"' in head and b'"shapes"' not in head:
                return p
    return None


class CocoStore(AnnotationStore):
    """COCO: one JSON file for the folder, re-read when it changes on disk."""

    fmt = "coco"

    def __init__(self, folder: str | Path, *, image_root: str | Path | None = None) -> None:
        super().__init__(folder, image_root=image_root)
        self.path = coco_file_in(self.folder) or self.folder / "annotations.json"
        self._doc: coco.CocoDocument | None = None
        self._error: AnnotationReadError | None = None
        self._stamp: tuple[int, int] | None = None
        self._refresh()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        stamp = self._file_stamp()
        if self._doc is not None and stamp == self._stamp:
            return
        self._stamp, self._error = stamp, None
        if stamp is None:
            self._doc = coco.CocoDocument(self.path)
            return
        try:
            self._doc = coco.parse_coco(read_bytes(self.path), path=self.path)
        except AnnotationReadError as exc:
            self._doc, self._error = coco.CocoDocument(self.path), exc
            self._mark(self.path, None)
            self.warnings.append(str(exc))
            return
        self.warnings.extend(self._doc.warnings)
        self._loaded.add(self.path)
        if self._doc.warnings:
            self._damaged.add(self.path)
        for c in self._doc.categories:
            self.add_class(c["name"])

    def _rel(self, image_path: str | Path) -> str:
        return self.image_rel(image_path).as_posix()

    def annotation_path(self, image_path: str | Path) -> Path:
        return self.path

    def class_map_path(self) -> Path | None:
        return self.path

    def rename_class(self, old: str, new: str) -> list[Path]:
        self._refresh()
        if self._error is not None:
            raise self._error
        assert self._doc is not None
        self._check_rename(old, new)
        if new != old and any(c["name"] == new for c in self._doc.categories):
            raise ValueError(f"category {new!r} already exists; merging classes is not supported")
        renamed = [c for c in self._doc.categories if c["name"] == old]
        written = []
        if renamed:
            for c in renamed:  # same id: every annotation of it now reads as new
                c["name"] = new
            try:
                self._write(self.path, self._doc.to_bytes())
            except (AnnotationWriteError, ValueError) as exc:
                for c in renamed:
                    c["name"] = old
                if isinstance(exc, ValueError):
                    raise AnnotationWriteError(self.path, str(exc)) from exc
                raise
            self._stamp = self._file_stamp()
            written.append(self.path)
        super().rename_class(old, new)
        return written

    def has_annotation(self, image_path: str | Path) -> bool:
        self._refresh()
        return self._doc is not None and self._doc.find_image(self._rel(image_path)) is not None

    def load(self, image_path: str | Path, *, width: int, height: int) -> ImageAnnotation:
        self._refresh()
        if self._error is not None:
            raise self._error
        assert self._doc is not None
        ann = self._doc.annotation_for(self._rel(image_path), image_path, width, height)
        if ann.warnings:
            self._damaged.add(self.path)
        self._note_labels(ann)
        return ann

    def save(self, annotation: ImageAnnotation) -> None:
        self._refresh()
        assert self._doc is not None
        try:
            self._doc.set_annotation(self._rel(annotation.image_path), annotation)
            data = self._doc.to_bytes()
        except ValueError as exc:  # non-finite box, unencodable text
            raise AnnotationWriteError(self.path, str(exc)) from exc
        self._write(self.path, data)
        self._stamp, self._error = self._file_stamp(), None
        self._note_labels(annotation)
