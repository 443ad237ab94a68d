"""Rename a class in every saved annotation of a folder (a project-wide class rename).

Two steps, so that a caller can ask the user in between: :func:`plan_class_rename` only reads
(which images have boxes of the class, which files will be written, which cannot be read) and
:func:`apply_class_rename` writes; :func:`rename_class` does both.

Per format, through the folder's :class:`~rpn_core.annotation.formats.AnnotationStore`:

* **VOC, labelme** (labels spelled out in each image's file): each file with boxes of ``old``
  is read and written back through the store, exactly as the app saves an image after a
  relabel: atomically, a file read with warnings backed up first (``result.backups``), the
  boxes' per-box data (VOC ``<pose>``, labelme ``group_id``...) kept. Non-box shapes (labelme
  polygons...) are kept untouched, label included: the app only edits boxes.
* **YOLO, COCO** (files refer to classes by id): the rename is one edit of the class map --
  ``classes.txt`` or the COCO categories -- at the same id, so ids never shift and no image
  file changes; it relabels the boxes of *every* image at once, excluded ones included (the
  caller relabels those in memory, so both agree).

``exclude`` names images the caller handles itself (the open image, whose relabel is an undo
step; edits not saved yet): their per-image files are neither read nor written (nor another
image's that shares the file, as ``a.jpg`` and ``a.png`` share ``a.xml``).

Merging is refused, as by the app's class list: ``ValueError`` when ``new`` is already a class
of the store or a label in any image's annotation. A file that cannot be read (malformed XML
or JSON, not text, or an image whose size cannot be read) is reported in ``errors`` (file and
reason) and never written; the rename goes on for the other files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from rpn_core.annotation.data import AnnotationError, AnnotationReadError, ImageAnnotation
from rpn_core.annotation.formats import AnnotationStore
from rpn_core.images.loading import ImageReadError, probe_image

__all__ = [
    "ClassRenamePlan",
    "ClassRenameResult",
    "apply_class_rename",
    "plan_class_rename",
    "relabel_annotation",
    "rename_class",
]

SizeOf = Callable[[Path], tuple[int, int]]  # an image's upright (width, height)
_CONFLICTS_NAMED = 5  # images named in the "already used" refusal


@dataclass
class ClassRenamePlan:
    """What :func:`apply_class_rename` will do; made by :func:`plan_class_rename`."""

    store: AnnotationStore
    old: str
    new: str
    images: list[Path] = field(default_factory=list)  # not excluded, with boxes of ``old``
    boxes: int = 0  # their boxes of ``old``
    files: list[Path] = field(default_factory=list)  # the files the rename writes
    errors: list[str] = field(default_factory=list)  # files that cannot be read, and why


@dataclass
class ClassRenameResult:
    images: list[Path] = field(default_factory=list)  # their saved boxes now carry ``new``
    boxes: int = 0
    files: list[Path] = field(default_factory=list)  # files written
    backups: dict[Path, Path] = field(default_factory=dict)  # file read with warnings -> copy
    errors: list[str] = field(default_factory=list)  # files left unchanged, and why


def relabel_annotation(ann: ImageAnnotation, old: str, new: str) -> int:
    """Give the boxes of ``ann`` labelled ``old`` the label ``new``, in place (their per-box
    format data, ``Box.extra``, goes along with them); returns how many."""
    count = 0
    for i, box in enumerate(ann.boxes):
        if box.label == old:
            ann.boxes[i] = replace(box, label=new)
            count += 1
    return count


def _check_names(old: str, new: str) -> None:
    if not new.strip():
        raise ValueError("a class name cannot be empty")
    if "\n" in new or "\r" in new:
        raise ValueError(f"class name {new!r} has a line break")
    if new == old:
        raise ValueError(f"the class is already called {new!r}")


def _read(
    store: AnnotationStore, image: Path, size_of: SizeOf, errors: list[str], outcome: str
) -> ImageAnnotation | None:
    """The saved annotation of ``image``, or ``None`` after noting why it cannot be read."""
    try:
        width, height = size_of(image)
    except ImageReadError as exc:
        note = f"{store.annotation_path(image)}: image {image.name} unreadable ({exc.reason})"
        errors.append(f"{note}; {outcome}")
        return None
    try:
        return store.load(image, width=width, height=height)
    except AnnotationReadError as exc:
        errors.append(f"{exc}; {outcome}")
        return None


def plan_class_rename(
    store: AnnotationStore,
    images: Iterable[str | Path],
    old: str,
    new: str,
    *,
    exclude: Iterable[str | Path] = (),
    size_of: SizeOf = probe_image,
) -> ClassRenamePlan:
    """Read the saved annotations of ``images`` (not ``exclude``) and say what renaming ``old``
    to ``new`` will write. Writes nothing. Raises ``ValueError`` for a refused rename (empty
    name, line break, same name, ``new`` already a class or a label of some image)."""
    _check_names(old, new)
    if new in store.classes:
        raise ValueError(f"class {new!r} already exists; merging classes is not supported")
    plan = ClassRenamePlan(store, old, new)
    class_map = store.class_map_path()
    outcome = "left unchanged" if class_map is None else "its boxes were not counted"
    excluded = {Path(p) for p in exclude}
    # Per-image files: one visit per file, never one that an excluded image shares.
    seen = {store.annotation_path(p) for p in excluded} if class_map is None else set()
    conflicts: list[Path] = []
    for image in dict.fromkeys(Path(p) for p in images):
        target = store.annotation_path(image)
        if image in excluded or target in seen or not store.has_annotation(image):
            continue
        if class_map is None:
            seen.add(target)
        ann = _read(store, image, size_of, plan.errors, outcome)
        if ann is None:
            continue
        if new in ann.labels:
            conflicts.append(image)
        hits = ann.labels.count(old)
        if hits:
            plan.images.append(image)
            plan.boxes += hits
            if class_map is None:
                plan.files.append(target)
    if conflicts:
        named = ", ".join(p.name for p in conflicts[:_CONFLICTS_NAMED])
        more = ", ..." if len(conflicts) > _CONFLICTS_NAMED else ""
        raise ValueError(
            f"{new!r} is already a label in {len(conflicts)} image(s) ({named}{more});"
            " merging classes is not supported"
        )
    if class_map is not None and old in store.classes and class_map.is_file():
        plan.files.append(class_map)
    plan.errors = list(dict.fromkeys(plan.errors))  # a COCO file's error, once
    return plan


def apply_class_rename(
    plan: ClassRenamePlan, *, size_of: SizeOf = probe_image
) -> ClassRenameResult:
    """Write the rename planned by :func:`plan_class_rename` (files are read again: they may
    have changed since). Errors are collected, never raised, so one bad file stops nothing."""
    store, old, new = plan.store, plan.old, plan.new
    result = ClassRenameResult(errors=list(plan.errors))
    backups_before = dict(store.backups)
    by_class_map = store.class_map_path() is not None
    if not by_class_map:
        for image in plan.images:
            _rewrite(store, image, old, new, size_of, result)
    try:  # last: the reads above note old in the store's class list again
        result.files.extend(store.rename_class(old, new))
    except (AnnotationError, ValueError) as exc:
        result.errors.append(f"{exc}; {old!r} was not renamed there")
    else:
        if by_class_map and result.files:
            result.images, result.boxes = list(plan.images), plan.boxes
    result.backups = {k: v for k, v in store.backups.items() if k not in backups_before}
    return result


def _rewrite(
    store: AnnotationStore,
    image: Path,
    old: str,
    new: str,
    size_of: SizeOf,
    result: ClassRenameResult,
) -> None:
    ann = _read(store, image, size_of, result.errors, "left unchanged")
    if ann is None:
        return
    path = store.annotation_path(image)
    if new in ann.labels:  # written since the plan was made
        result.errors.append(f"{path}: already has boxes of {new!r}; left unchanged")
        return
    count = relabel_annotation(ann, old, new)
    if not count:
        return
    try:
        store.save(ann)
    except AnnotationError as exc:  # nothing written: the store writes atomically
        result.errors.append(f"{exc}; left unchanged")
        return
    result.images.append(image)
    result.boxes += count
    result.files.append(path)


def rename_class(
    store: AnnotationStore,
    images: Iterable[str | Path],
    old: str,
    new: str,
    *,
    exclude: Iterable[str | Path] = (),
    size_of: SizeOf = probe_image,
) -> ClassRenameResult:
    """Rename ``old`` to ``new`` in the saved annotations of ``images`` (see the module
    docstring): :func:`plan_class_rename` then :func:`apply_class_rename`."""
    plan = plan_class_rename(store, images, old, new, exclude=exclude, size_of=size_of)
    return apply_class_rename(plan, size_of=size_of)
