"""Helpers shared by the format readers/writers (box checks, number text, nesting depth)."""

from __future__ import annotations

import codecs
import json
import math
import re
from pathlib import Path

from rpn_core.annotation.data import AnnotationReadError, Box, ImageAnnotation
from rpn_core.files import read_regular
from rpn_core.limits import MAX_ANNOTATION_BYTES

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
    NaN/Infinity read from a foreign file are written back as they were.

    A big one-line document (a COCO file of 10^5+ annotations) is encoded element by element
    of its top-level lists -- the same bytes as ``json.dumps`` -- because one ``json.dumps``
    call holds the GIL for seconds and a background save would freeze the GUI thread."""
    if indent is None and _big_document(obj):
        try:
            return _json_pieces(obj, ensure_ascii=False)  # type: ignore[arg-type]
        except UnicodeEncodeError:
            return _json_pieces(obj, ensure_ascii=True)  # type: ignore[arg-type]
    try:
        return (json.dumps(obj, ensure_ascii=False, indent=indent) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(obj, ensure_ascii=True, indent=indent) + "\n").encode("ascii")


_BIG_LIST = 20_000  # elements of top-level lists above which JSON is handled piecewise
_BIG_TEXT = 4 * 1024**2  # bytes above which JSON text is parsed piecewise


def _big_document(obj: object) -> bool:
    if not isinstance(obj, dict):
        return False
    return sum(len(v) for v in obj.values() if isinstance(v, list)) > _BIG_LIST


def _json_pieces(obj: dict, *, ensure_ascii: bool) -> bytes:
    def enc(value: object) -> bytes:
        text = json.dumps(value, ensure_ascii=ensure_ascii)
        return text.encode("ascii" if ensure_ascii else "utf-8")

    parts = [b"{"]
    for n, (key, value) in enumerate(obj.items()):
        parts.append(b", " if n else b"")
        parts += (enc(key), b": ")
        if isinstance(value, list):  # joined 4096 items at a time: no long GIL-holding join
            groups = [
                b", ".join([enc(item) for item in value[k : k + 4096]])
                for k in range(0, len(value), 4096)
            ]
            parts += (b"[", b", ".join(groups), b"]")
        else:
            parts.append(enc(value))
    parts.append(b"}\n")
    return b"".join(parts)


_WS = re.compile(r"[ \t\n\r]*")


def json_loads(data: bytes) -> object:
    """``json.loads(data)``; a big document whose top level is an object is parsed one
    element of its top-level lists at a time (same result, same errors), so that the GIL is
    released between elements: one ``json.loads`` of a 100 MB COCO file holds it for seconds,
    freezing the GUI thread even when the parse runs in the background."""
    if len(data) < _BIG_TEXT:
        return json.loads(data)
    try:
        decoder = codecs.getincrementaldecoder("utf-8")()
        step = 1 << 22
        text = "".join([decoder.decode(data[i : i + step]) for i in range(0, len(data), step)])
        text += decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return json.loads(data)  # its own message (or another encoding it detects)
    i = _WS.match(text, 0).end()
    if text[i : i + 1] != "{":
        return json.loads(text)
    return _parse_object(text, i)


def _parse_object(text: str, i: int) -> dict:
    dec = json.JSONDecoder()
    err = json.JSONDecodeError
    out: dict = {}
    i = _WS.match(text, i + 1).end()
    if text[i : i + 1] == "}":
        i += 1
    else:
        while True:
            if text[i : i + 1] != '"':
                raise err("Expecting property name enclosed in double quotes", text, i)
            key, i = dec.raw_decode(text, i)
            i = _WS.match(text, i).end()
            if text[i : i + 1] != ":":
                raise err("Expecting ':' delimiter", text, i)
            i = _WS.match(text, i + 1).end()
            if text[i : i + 1] == "[":
                value: object = []
                i = _WS.match(text, i + 1).end()
                if text[i : i + 1] == "]":
                    i += 1
                else:
                    while True:
                        item, i = _raw(dec, text, i)
                        value.append(item)  # type: ignore[attr-defined]
                        i = _WS.match(text, i).end()
                        c = text[i : i + 1]
                        if c == "]":
                            i += 1
                            break
                        if c != ",":
                            raise err("Expecting ',' delimiter", text, i)
                        i = _WS.match(text, i + 1).end()
            else:
                value, i = _raw(dec, text, i)
            out[key] = value
            i = _WS.match(text, i).end()
            c = text[i : i + 1]
            if c == "}":
                i += 1
                break
            if c != ",":
                raise err("Expecting ',' delimiter", text, i)
            i = _WS.match(text, i + 1).end()
    i = _WS.match(text, i).end()
    if i != len(text):
        raise err("Extra data", text, i)
    return out


def _raw(dec: json.JSONDecoder, text: str, i: int) -> tuple[object, int]:
    try:
        return dec.raw_decode(text, i)
    except StopIteration as exc:  # raw_decode's "no value here"
        raise json.JSONDecodeError("Expecting value", text, exc.value) from None


def read_bytes(
    path: Path, *, limit: int = MAX_ANNOTATION_BYTES, what: str = "an annotation file"
) -> bytes:
    """The bytes of an annotation file: a regular file no larger than ``limit`` (see
    :mod:`rpn_core.files`), else :class:`AnnotationReadError` naming the file and the limit."""
    return read_regular(path, limit=limit, what=what, error=AnnotationReadError)
