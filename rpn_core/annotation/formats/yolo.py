"""YOLO txt (one ``<stem>.txt`` per image) and its ``classes.txt`` class map.

A line is ``class_id cx cy w h``: the box centre and size divided by the image width/height
(so every value lies in ``[0, 1]``). With ``W x H`` the upright image size and boxes as in
:mod:`rpn_core.boxes`: reading ``x1 = (cx - w/2) W, x2 = (cx + w/2) W`` (same for y with
``H``); writing ``cx = (x1 + x2) / 2W, w = (x2 - x1) / W``, six decimals (as labelImg
writes; ultralytics' ``%g`` files read the same). The image size is therefore required to
read or write.

``classes.txt`` (or CVAT's ``obj.names``, see :func:`find_class_file`) lists one name per
line; a box's id is its label's line index (0-based).
The map is **append-only**: a writer never reorders or removes names, it appends new labels.
An id with no name in ``classes.txt`` is reported and its box kept with the id as label
(``"7"``); writing such a numeric label that is not a class name keeps its id, padding the map
with placeholder names ``"5"``, ``"6"``... so that ids never shift.

Bad lines (too few/many fields, NaN, a non-integer or negative id, values outside ``[0, 1]``
or a non-positive size) are skipped with a warning naming the file and line; YOLO has no
``difficult``/``verified`` fields, so they are not kept.
"""

from __future__ import annotations

from pathlib import Path

from rpn_core.annotation.data import AnnotationReadError, Box, ImageAnnotation
from rpn_core.annotation.formats._common import checked_box, require_finite, to_float

__all__ = [
    "CLASSES_FILE",
    "find_class_file",
    "SUFFIX",
    "format_classes",
    "format_yolo",
    "label_ids",
    "parse_classes",
    "parse_yolo",
]

SUFFIX = ".txt"
CLASSES_FILE = "classes.txt"
# Normalised values this far outside [0, 1] are float noise from other tools, not errors.
_TOLERANCE = 1e-3


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationReadError(
            path, f"not UTF-8 text ({exc.reason})", location=f"byte {exc.start}"
        ) from exc


def find_class_file(folder: str | Path) -> Path:
    """The class map of a YOLO label folder: ``classes.txt`` (labelImg), else ``obj.names`` in
    the folder or its parent (CVAT's "YOLO 1.1" export keeps labels in ``obj_train_data/``
    and the names beside it); ``folder/classes.txt`` when there is none yet."""
    folder = Path(folder)
    for candidate in (folder / CLASSES_FILE, folder / "obj.names", folder.parent / "obj.names"):
        if candidate.is_file():
            return candidate
    return folder / CLASSES_FILE


def _lines(text: str) -> list[str]:
    """Lines as editors number them: split at ``\\n`` only, one trailing ``\\r`` dropped."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start a new one
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_classes(data: bytes, path: str | Path) -> tuple[list[str], list[str]]:
    """``classes.txt`` bytes -> (names, warnings). Every line is a name, blank ones included
    (a blank line still takes its id, reported), so ids never shift."""
    path = Path(path)
    text = _decode(data, path)
    lines = _lines(text)  # names are kept exactly (spaces included)
    warnings = []
    seen: dict[str, int] = {}
    for i, name in enumerate(lines):
        if not name:
            warnings.append(f"{path.name}: line {i + 1}: empty class name (id {i})")
        elif name in seen:
            warnings.append(
                f"{path.name}: line {i + 1}: duplicate class {name!r} (also id {seen[name]})"
            )
        else:
            seen[name] = i
    return lines, warnings


def format_classes(classes: list[str]) -> bytes:
    return "".join(f"{name}\n" for name in classes).encode("utf-8")


def parse_yolo(
    data: bytes,
    *,
    path: str | Path,
    image_path: str | Path,
    width: int,
    height: int,
    classes: list[str],
) -> ImageAnnotation:
    """Read a YOLO label file into an :class:`ImageAnnotation` (see the module docstring).

    Raises :class:`AnnotationReadError` if the bytes are not text or the image size is unknown.
    """
    path = Path(path)
    if width <= 0 or height <= 0:
        raise AnnotationReadError(path, "image size unknown: YOLO needs the image's size")
    text = _decode(data, path)
    ann = ImageAnnotation(image_path, width, height)
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        where = f"{path.name}: line {number}"
        box = _parse_line(line, where, width, height, classes, ann.warnings)
        if box is not None:
            box = checked_box(box, width, height, where, ann.warnings)
        if box is not None:
            ann.boxes.append(box)
    return ann


def _parse_line(
    line: str, where: str, width: int, height: int, classes: list[str], warnings: list[str]
) -> Box | None:
    fields = line.split()
    if len(fields) != 5:
        kind = "too few" if len(fields) < 5 else "too many"
        warnings.append(f"{where}: skipped, {kind} fields ({len(fields)}, expected 5)")
        return None
    raw_id = to_float(fields[0])
    if raw_id is None or raw_id != int(raw_id) or raw_id < 0:
        warnings.append(f"{where}: skipped, class id {fields[0]!r} is not a non-negative integer")
        return None
    values = [to_float(f) for f in fields[1:]]
    if any(v is None for v in values):
        warnings.append(f"{where}: skipped, non-numeric or non-finite value in {fields[1:]}")
        return None
    cx, cy, w, h = values  # type: ignore[misc]
    lo, hi = -_TOLERANCE, 1 + _TOLERANCE
    if not (lo <= cx <= hi and lo <= cy <= hi and 0 < w <= hi and 0 < h <= hi):
        warnings.append(f"{where}: skipped, values {fields[1:]} outside (0, 1]")
        return None
    class_id = int(raw_id)
    if class_id < len(classes):
        label = classes[class_id]
    else:
        label = str(class_id)
        warnings.append(
            f"{where}: class id {class_id} is not in classes.txt ({len(classes)} names);"
            f" kept with label {label!r}"
        )
    return Box(
        (cx - w / 2) * width,
        (cy - h / 2) * height,
        (cx + w / 2) * width,
        (cy + h / 2) * height,
        label=label,
    )


def label_ids(labels: list[str], classes: list[str]) -> tuple[dict[str, int], list[str]]:
    """Ids for ``labels`` and the (append-only) extended class list.

    Raises ``ValueError`` for a label that cannot be a ``classes.txt`` line (line breaks).
    """
    classes = list(classes)
    index = {}
    for i, name in enumerate(classes):
        index.setdefault(name, i)
    for label in labels:
        if label in index:
            continue
        if "\n" in label or "\r" in label:
            raise ValueError(f"class name {label!r} contains a line break")
        if label.isascii() and label.isdigit() and int(label) >= len(classes):
            target = int(label)
            while len(classes) < target:  # placeholders keep the unknown id stable
                pad = str(len(classes))
                classes.append(pad if pad not in index else f"class_{pad}")
                index.setdefault(classes[-1], len(classes) - 1)
        classes.append(label)
        index[label] = len(classes) - 1
    return index, classes


def format_yolo(ann: ImageAnnotation, classes: list[str]) -> tuple[bytes, list[str]]:
    """YOLO text for ``ann`` and the class list extended with its new labels (append-only)."""
    if ann.width <= 0 or ann.height <= 0:
        raise ValueError(f"{ann.image_path}: image size unknown; YOLO needs it")
    require_finite(ann)
    index, classes = label_ids(ann.labels, classes)
    lines = []
    for box in ann.boxes:
        cx = (box.x1 + box.x2) / 2 / ann.width
        cy = (box.y1 + box.y2) / 2 / ann.height
        w = box.width / ann.width
        h = box.height / ann.height
        lines.append(f"{index[box.label]} {cx:.6f} {cy:.6f} {_size_text(w)} {_size_text(h)}\n")
    return "".join(lines).encode("utf-8"), classes


def _size_text(value: float) -> str:
    """Six decimals, or six significant digits for a size that would print as 0.000000 (a
    box thinner than 5e-7 of the image would otherwise be dropped when read back)."""
    text = f"{value:.6f}"
    return text if float(text) > 0 or value <= 0 else f"{value:.6g}"
