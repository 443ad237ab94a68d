"""labelme JSON (one ``<stem>.json`` beside each image), rectangles in, everything else kept.

labelme stores ``points`` in pixel coordinates of the EXIF-upright image (it applies the
orientation when loading), 0-based and continuous -- the convention of :mod:`rpn_core.boxes`
-- so no shift is applied. A ``"rectangle"`` shape has two opposite corners (in any order) or,
as some exporters write it, four corners; the box is their bounding box. Every other shape
(polygon, circle, line, point, linestrip, mask...) is reported and kept untouched in
``ImageAnnotation.extra["labelme"]["shapes"]`` and written back. Top-level keys (``version``,
``flags``, ``imagePath``, ``imageData``...) and per-rectangle keys (``group_id``,
``description``, ``flags``...) are kept too, the latter on their box (``Box.extra["labelme"]``)
so that they survive its relabel, move and resize. ``difficult``/``truncated`` are kept as
per-shape ``"difficult"``/``"truncated"`` keys and ``verified`` as a top-level
``"rpn_studio": {"verified": true}`` -- labelme keeps unknown keys, so they survive a round
trip through labelme.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

from rpn_core.annotation.data import AnnotationReadError, Box, ImageAnnotation
from rpn_core.annotation.formats._common import (
    MAX_DEPTH,
    checked_box,
    json_bytes,
    json_depth,
    require_finite,
    to_float,
)

__all__ = ["SUFFIX", "format_labelme", "parse_json", "parse_labelme"]

SUFFIX = ".json"
_OWN_TOP = {"shapes", "imageWidth", "imageHeight", "rpn_studio"}
_OWN_SHAPE = {"label", "points", "shape_type", "difficult", "truncated"}
_VERSION = "5.5.0"  # the labelme file version we write for new files


def parse_json(data: bytes, path: Path) -> object:
    """JSON bytes -> Python value, or :class:`AnnotationReadError` with line and column."""
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise AnnotationReadError(
            path, f"invalid JSON: {exc.msg}", location=f"line {exc.lineno}, column {exc.colno}"
        ) from exc
    except (ValueError, RecursionError) as exc:  # bad encoding, huge ints, deep nesting
        raise AnnotationReadError(path, f"invalid JSON: {exc}") from exc
    if json_depth(value) > MAX_DEPTH:
        raise AnnotationReadError(path, f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _size(doc: dict, width: int, height: int, path: Path, warnings: list[str]) -> tuple[int, int]:
    fw, fh = doc.get("imageWidth"), doc.get("imageHeight")
    valid = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (fw, fh))
    if (fw is not None or fh is not None) and not valid:
        warnings.append(f"{path.name}: imageWidth/imageHeight are not positive integers")
    if width and height:
        if valid and (fw, fh) != (width, height):
            warnings.append(
                f"{path.name}: file says {fw}x{fh} but the image is {width}x{height};"
                " using the image"
            )
        return width, height
    return (fw, fh) if valid else (0, 0)  # type: ignore[return-value]


def parse_labelme(
    data: bytes, *, path: str | Path, image_path: str | Path, width: int = 0, height: int = 0
) -> ImageAnnotation:
    """Read labelme JSON into an :class:`ImageAnnotation` (see the module docstring).

    Raises :class:`AnnotationReadError` for invalid JSON or a top level that is not an object
    with a ``shapes`` list; bad shapes are skipped (kept in ``extra``) with a warning.
    """
    path = Path(path)
    doc = parse_json(data, path)
    if not isinstance(doc, dict):
        raise AnnotationReadError(
            path, f"top level is a JSON {type(doc).__name__}, expected an object"
        )
    shapes = doc.get("shapes", [])
    if not isinstance(shapes, list):
        raise AnnotationReadError(path, "'shapes' is not a list", location="shapes")
    warnings: list[str] = []
    width, height = _size(doc, width, height, path, warnings)
    ann = ImageAnnotation(image_path, width, height, warnings=warnings)
    studio = doc.get("rpn_studio")
    ann.verified = isinstance(studio, dict) and studio.get("verified") is True
    others: list = []
    for k, shape in enumerate(shapes):
        where = f"{path.name}: shapes[{k}]"
        box = _rectangle(shape, where, warnings)
        if box is not None:
            box = checked_box(box, width, height, where, warnings)
        if box is None:
            others.append(shape)  # kept untouched, written back
            continue
        kept = {key: value for key, value in shape.items() if key not in _OWN_SHAPE}
        ann.boxes.append(replace(box, extra={"labelme": kept}) if kept else box)
    top = {key: value for key, value in doc.items() if key not in _OWN_TOP}
    ann.extra["labelme"] = {"top": top, "shapes": others}
    return ann


def _rectangle(shape: object, where: str, warnings: list[str]) -> Box | None:
    if not isinstance(shape, dict):
        warnings.append(f"{where}: not an object; kept untouched")
        return None
    kind = shape.get("shape_type", "polygon")  # labelme's default when the key is missing
    if kind != "rectangle":
        warnings.append(f"{where}: {kind!r} shape is not a box; kept untouched, not editable")
        return None
    points = shape.get("points")
    label = shape.get("label", "")
    if not isinstance(label, str):
        warnings.append(f"{where}: label {label!r} is not a string; kept untouched")
        return None
    coords = _points(points)
    if coords is None or len(coords) not in (2, 4):
        warnings.append(f"{where}: rectangle needs 2 or 4 [x, y] points; kept untouched")
        return None
    xs = [p[0] for p in coords]
    ys = [p[1] for p in coords]
    if len(coords) == 4 and (len(set(xs)) > 2 or len(set(ys)) > 2):
        warnings.append(f"{where}: 4-point rectangle is not axis-aligned; using its bounds")
    difficult = shape.get("difficult") is True
    truncated = shape.get("truncated") is True
    return Box(min(xs), min(ys), max(xs), max(ys), label, difficult, truncated)


def _points(points: object) -> list[tuple[float, float]] | None:
    if not isinstance(points, list):
        return None
    out = []
    for p in points:
        if not isinstance(p, list) or len(p) != 2:
            return None
        x, y = to_float(p[0]), to_float(p[1])
        if x is None or y is None or isinstance(p[0], str) or isinstance(p[1], str):
            return None
        out.append((x, y))
    return out


def format_labelme(ann: ImageAnnotation, *, image_rel: str) -> bytes:
    """labelme JSON for ``ann``; ``image_rel`` is the image path relative to the JSON file,
    written as ``imagePath`` (posix separators)."""
    require_finite(ann)
    kept = ann.extra.get("labelme", {})
    top = copy.deepcopy(kept.get("top", {}))
    top.pop("imagePath", None)  # recomputed: the JSON may be written somewhere new
    doc: dict = {
        "version": top.pop("version", _VERSION),
        "flags": top.pop("flags", {}),
        "shapes": [],
        "imagePath": image_rel,
        "imageData": top.pop("imageData", None),
        "imageHeight": ann.height,
        "imageWidth": ann.width,
    }
    for box in ann.boxes:
        shape = {
            "label": box.label,
            "points": [[box.x1, box.y1], [box.x2, box.y2]],
            "group_id": None,
            "description": "",
            "shape_type": "rectangle",
            "flags": {},
            "mask": None,
        }
        shape.update(copy.deepcopy(box.format_extra("labelme", {})))
        if box.difficult:
            shape["difficult"] = True
        if box.truncated:
            shape["truncated"] = True
        doc["shapes"].append(shape)
    doc["shapes"].extend(copy.deepcopy(kept.get("shapes", [])))
    doc.update(top)
    if ann.verified:
        doc["rpn_studio"] = {"verified": True}
    return json_bytes(doc, indent=2)
