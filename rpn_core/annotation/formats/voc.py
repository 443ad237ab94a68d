"""Pascal VOC XML, one ``<stem>.xml`` per image, in two documented coordinate conventions.

Boxes in memory follow :mod:`rpn_core.boxes`. A file's ``<bndbox>`` maps to them as follows:

``"devkit"`` (default) -- the VOC devkit's 1-based *inclusive pixel indices*: a box covering
    pixel columns 0..9 (0-based) is written ``xmin=1, xmax=10``. Reading:
    ``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`` (so ``width = xmax - xmin + 1``);
    writing: ``xmin = round(x1) + 1, ymin = round(y1) + 1, xmax = round(x2), ymax = round(y2)``.
    Same as detectron2's and mmdetection's VOC loaders (they subtract 1 from the minima only).

``"labelimg"`` -- the values as labelImg writes and reads them: labelImg stores its canvas
    corner coordinates (0-based continuous) truncated to integers, and never writes a minimum
    below 1 (it replaces 0 by 1). Reading: ``x1 = xmin, y1 = ymin, x2 = xmax, y2 = ymax``;
    writing the same, rounded, and **without** labelImg's 0 -> 1 replacement (labelImg reads
    a 0 fine). CVAT's VOC export (datumaro) uses the same unshifted values, as floats.

Both write integers (VOC is an integer format; ``round`` is half-up); a box narrower than one
pixel is widened to one. Readers accept floats. ``difficult``/``truncated`` round-trip, as does
``verified="yes"`` on ``<annotation>`` (labelImg's flag). Unknown elements (``<source>``,
``<owner>``, per-object ``<pose>``, ``<occluded>``, ``<attributes>``...) are kept in
``ImageAnnotation.extra["voc"]`` and written back; an object's own ones ride on its box
(``Box.extra["voc"]``), so they survive its relabel, move and resize.
XML is parsed with defusedxml: entity expansion and external references are refused.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as SafeET

from rpn_core.annotation.data import AnnotationReadError, Box, ImageAnnotation
from rpn_core.annotation.formats._common import (
    MAX_DEPTH,
    checked_box,
    require_finite,
    round_half_up,
    to_float,
    xml_depth,
)

__all__ = ["CONVENTIONS", "SUFFIX", "format_voc", "parse_voc"]

SUFFIX = ".xml"
CONVENTIONS = ("devkit", "labelimg")
_OBJECT_KNOWN = {"name", "bndbox", "difficult", "truncated"}
_HEAD_OWN = {"size", "object"}
# Characters XML 1.0 cannot carry at all (a file holding them could never be read back).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _check_convention(convention: str) -> int:
    if convention not in CONVENTIONS:
        raise ValueError(f"VOC convention must be one of {CONVENTIONS}, got {convention!r}")
    return 1 if convention == "devkit" else 0


def _parse_root(data: bytes, path: Path) -> ET.Element:
    try:
        root = SafeET.fromstring(data)
    except ET.ParseError as exc:
        line, col = getattr(exc, "position", (0, 0))
        raise AnnotationReadError(
            path, f"malformed XML: {exc}", location=f"line {line}, column {col}"
        ) from exc
    except defusedxml.DefusedXmlException as exc:
        raise AnnotationReadError(path, f"refused unsafe XML ({type(exc).__name__})") from exc
    except (ValueError, RecursionError, LookupError) as exc:  # bad encoding declarations etc.
        raise AnnotationReadError(path, f"unreadable XML: {exc}") from exc
    if xml_depth(root) > MAX_DEPTH:
        raise AnnotationReadError(path, f"XML nested deeper than {MAX_DEPTH} levels")
    if root.tag != "annotation":
        raise AnnotationReadError(
            path, f"root element is <{root.tag}>, expected <annotation>", location="line 1"
        )
    return root


def _flag(obj: ET.Element, tag: str, where: str, warnings: list[str]) -> bool:
    text = (obj.findtext(tag) or "").strip().lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    value = to_float(text)
    if value is None:
        warnings.append(f"{where}: <{tag}> {text!r} is not 0/1; read as 0")
        return False
    return value != 0


def _size(root: ET.Element, warnings: list[str]) -> tuple[int, int]:
    size = root.find("size")
    if size is None:
        return 0, 0
    w, h = to_float(size.findtext("width")), to_float(size.findtext("height"))
    if w is None or h is None or w < 0 or h < 0 or w != int(w) or h != int(h):
        warnings.append("<size>: width/height are not non-negative integers; ignored")
        return 0, 0
    return int(w), int(h)


def parse_voc(
    data: bytes,
    *,
    path: str | Path,
    image_path: str | Path,
    width: int = 0,
    height: int = 0,
    convention: str = "devkit",
) -> ImageAnnotation:
    """Read VOC XML ``data`` (from ``path``) into an :class:`ImageAnnotation`.

    ``width``/``height`` (the upright image, 0 if unknown) win over the file's ``<size>``; a
    mismatch is reported. Bad objects are skipped with a warning naming ``object #k``;
    unparseable or unsafe XML raises :class:`AnnotationReadError`.
    """
    path = Path(path)
    shift = _check_convention(convention)
    root = _parse_root(data, path)
    warnings: list[str] = []
    file_w, file_h = _size(root, warnings)
    if width and height and file_w and file_h and (file_w, file_h) != (width, height):
        hint = ""
        if (file_w, file_h) == (height, width):
            hint = (
                " (axes swapped: the file was probably written by a tool that ignores EXIF"
                " orientation, e.g. labelImg; its boxes may be misplaced)"
            )
        warnings.append(
            f"<size> says {file_w}x{file_h} but the upright image is {width}x{height};"
            f" using the image{hint}"
        )
    width, height = (width, height) if width and height else (file_w, file_h)
    ann = ImageAnnotation(image_path, width, height, warnings=warnings)
    ann.verified = root.get("verified", "").lower() in ("yes", "1", "true")
    head = [copy.deepcopy(el) for el in root if el.tag not in _HEAD_OWN]
    depth = root.findtext("size/depth")
    for k, obj in enumerate(root.findall("object"), start=1):
        where = f"{path.name}: object #{k}"
        box = _read_object(obj, shift, where, warnings)
        if box is None:
            continue
        box = checked_box(box, width, height, where, warnings)
        if box is None:
            continue
        others = [copy.deepcopy(el) for el in obj if el.tag not in _OBJECT_KNOWN]
        ann.boxes.append(replace(box, extra={"voc": others}) if others else box)
    ann.extra["voc"] = {"head": head, "depth": depth}
    return ann


def _read_object(obj: ET.Element, shift: int, where: str, warnings: list[str]) -> Box | None:
    name = obj.findtext("name")
    if name is None:
        warnings.append(f"{where}: no <name>; read with an empty label")
    bnd = obj.find("bndbox")
    if bnd is None:
        warnings.append(f"{where}: skipped, no <bndbox>")
        return None
    values = []
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        text = bnd.findtext(tag)
        value = to_float(text)
        if value is None:
            warnings.append(f"{where}: skipped, <{tag}> is {text!r}, not a finite number")
            return None
        values.append(value)
    xmin, ymin, xmax, ymax = values
    if xmin > xmax or ymin > ymax:
        warnings.append(f"{where}: skipped, xmin > xmax or ymin > ymax {tuple(values)}")
        return None
    return Box(
        xmin - shift,
        ymin - shift,
        xmax,
        ymax,
        label=(name or "").strip(),
        difficult=_flag(obj, "difficult", where, warnings),
        truncated=_flag(obj, "truncated", where, warnings),
    )


def _int_corners(box: Box, shift: int) -> tuple[int, int, int, int]:
    x1, y1 = round_half_up(box.x1), round_half_up(box.y1)
    x2, y2 = max(round_half_up(box.x2), x1 + 1), max(round_half_up(box.y2), y1 + 1)
    return x1 + shift, y1 + shift, x2, y2


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = text
    return el


def format_voc(ann: ImageAnnotation, *, convention: str = "devkit") -> bytes:
    """Serialise ``ann`` as VOC XML (UTF-8) in ``convention`` (see the module docstring).

    Raises ``ValueError`` for a label XML cannot hold (control characters) or a box with a
    non-finite corner.
    """
    shift = _check_convention(convention)
    require_finite(ann)
    for label in ann.labels:
        if _NOT_XML.search(label):
            raise ValueError(f"label {label!r} has characters XML cannot hold")
    kept = ann.extra.get("voc", {})
    root = ET.Element("annotation")
    if ann.verified:
        root.set("verified", "yes")
    head = [copy.deepcopy(el) for el in kept.get("head", [])]
    if not head:
        _sub(root, "folder", ann.image_path.parent.name)
        _sub(root, "filename", ann.image_path.name)
        source = ET.SubElement(root, "source")
        _sub(source, "database", "Unknown")
    for el in head:
        if el.tag == "segmented":
            continue  # written after <size>, as in the devkit
        root.append(el)
    size = ET.SubElement(root, "size")
    _sub(size, "width", str(ann.width))
    _sub(size, "height", str(ann.height))
    _sub(size, "depth", str(kept.get("depth") or "3"))
    segmented = next((el for el in head if el.tag == "segmented"), None)
    root.append(segmented if segmented is not None else _segmented())
    for box in ann.boxes:
        obj = ET.SubElement(root, "object")
        _sub(obj, "name", box.label)
        for el in box.format_extra("voc", ()):
            obj.append(copy.deepcopy(el))
        _sub(obj, "truncated", "1" if box.truncated else "0")
        _sub(obj, "difficult", "1" if box.difficult else "0")
        bnd = ET.SubElement(obj, "bndbox")
        corners = _int_corners(box, shift)
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), corners, strict=True):
            _sub(bnd, tag, str(value))
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


def _segmented() -> ET.Element:
    el = ET.Element("segmented")
    el.text = "0"
    return el
