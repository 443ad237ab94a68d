"""Helpers shared by the format readers/writers (box checks, number text, nesting depth)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rpn_core.annotation.data import AnnotationReadError, Box, ImageAnnotation

# Boxes that overshoot the image by at most this many pixels are clamped without a warning
# (other tools round outwards); larger overshoots are clamped and reported.
CLAMP_SILENT_PX = 1.0


def to_float(text: object) -> float | None:
    """``float(text)`` or ``None`` if it is not a finite number (bool is not a number)."""
    if isinstance(text, bool) or text is None:
        return None
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def checked_box(
    box: Box, width: float, height: float, where: str, warnings: list[str]
) -> Box | None:
    """Validate ``box`` (convention of :mod:`rpn_core.boxes`) against the image size.

    Returns the box (clamped to the image when the size is known) or ``None`` after appending
    a warning that starts with ``where`` when it cannot be kept.
    """
    if not all(math.isfinite(v) for v in box.xyxy):
        warnings.append(f"{where}: skipped, non-finite coordinate {box.xyxy}")
        return None
    if box.x2 <= box.x1 or box.y2 <= box.y1:
        warnings.append(f"{where}: skipped, empty or inverted box {_fmt_xyxy(box)}")
        return None
    if width <= 0 or height <= 0:
        return box
    if box.x1 >= 0 and box.y1 >= 0 and box.x2 <= width and box.y2 <= height:
        return box  # the common case, without building a new Box
    clamped = box.clamped(width, height)
    if clamped.x2 <= clamped.x1 or clamped.y2 <= clamped.y1:
        warnings.append(
            f"{where}: skipped, box {_fmt_xyxy(box)} lies outside the {width}x{height} image"
        )
        return None
    overshoot = max(abs(a - b) for a, b in zip(box.xyxy, clamped.xyxy, strict=True))
    if overshoot > CLAMP_SILENT_PX:
        warnings.append(
            f"{where}: box {_fmt_xyxy(box)} extends outside the {width}x{height} image;"
            f" clamped to {_fmt_xyxy(clamped)}"
        )
    return clamped


def _fmt_xyxy(box: Box) -> str:
    return "(" + ", ".join(num_text(v) for v in box.xyxy) + ")"


def num_text(value: float) -> str:
    """Shortest faithful text: ``12`` for integral values, ``repr`` otherwise."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def require_finite(ann: ImageAnnotation) -> None:
    """Raise ``ValueError`` if a box of ``ann`` has a non-finite corner (writers call it so
    that no format ever stores NaN or infinity for a box)."""
    for k, box in enumerate(ann.boxes):
        if not all(math.isfinite(v) for v in box.xyxy):
            raise ValueError(f"box #{k + 1} has a non-finite corner {box.xyxy}")


MAX_DEPTH = 64  # deeper XML/JSON is refused: annotation files are < 10 levels deep, and
# copying or writing a 100,000-level tree overflows the C stack (a crash, not an exception).


def xml_depth(root: object) -> int:
    """Nesting depth of an ElementTree element, computed without recursion."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        el, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:
            stack.extend((child, depth + 1) for child in el)  # type: ignore[attr-defined]
    return deepest


def json_depth(value: object) -> int:
    """Nesting depth of a parsed JSON value (containers only), computed without recursion."""
    containers = (dict, list)
    deepest, stack = 0, [(value, 1)] if isinstance(value, containers) else []
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if depth > MAX_DEPTH:
                break
        values = item.values() if isinstance(item, dict) else item
        stack.extend((v, depth + 1) for v in values if isinstance(v, containers))
    return deepest


def json_bytes(obj: object, indent: int | None) -> bytes:
    """UTF-8 JSON, readable (non-ASCII kept) unless the data holds lone surrogates (possible
    via ``\\ud800`` escapes in a foreign file): then ASCII escapes keep it writable and exact.
    NaN/Infinity read from a foreign file are written back as they were."""
    try:
        return (json.dumps(obj, ensure_ascii=False, indent=indent) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(obj, ensure_ascii=True, indent=indent) + "\n").encode("ascii")


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AnnotationReadError(path, f"cannot read file: {exc.strerror or exc}") from exc
