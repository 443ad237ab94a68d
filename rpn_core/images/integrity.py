"""Is an image file complete? Decoders fill what a damaged file lacks without a word --
black rows for a PNG whose zlib stream ends early, grey for a JPEG cut short with an end
marker appended, black for a TIFF with fewer strips or tiles than its size needs -- so
:mod:`rpn_core.images.loading` asks here first and refuses such a file as truncated.
"""

from __future__ import annotations

import math
import os
import struct
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from rpn_core.images import png

__all__ = ["incomplete_reason", "jpeg_incomplete", "tiff_incomplete"]


def incomplete_reason(path: Path, im: Image.Image) -> str | None:
    """Why the opened PNG, JPEG or TIFF ``im`` (of ``path``) lacks pixel data, or None
    (also for other formats, whose decoders refuse damage themselves)."""
    fp = im.fp
    if fp is None or im.format not in ("PNG", "JPEG", "TIFF"):
        return None
    if im.format == "TIFF":
        return tiff_incomplete(im, path.stat().st_size)
    pos = fp.tell()
    try:
        fp.seek(0)
        return png.incomplete(fp) if im.format == "PNG" else jpeg_incomplete(fp.read())
    except (OSError, ValueError, struct.error) as exc:
        text = str(exc)
        return f"unreadable: {type(exc).__name__}" + (f": {text}" if text else "")
    finally:
        fp.seek(pos)


def tiff_incomplete(im: Image.Image, file_size: int) -> str | None:
    """Whether the TIFF's strips (or tiles) cover its size and lie inside the file: what
    libtiff checks before it reads them (TIFF 6.0: ``StripsPerImage = ceil(ImageLength /
    RowsPerStrip)``, times ``SamplesPerPixel`` when the planes are separate)."""
    tags = im.tag_v2
    w, h = im.size
    planes = int(tags.get(277, 1)) if tags.get(284, 1) == 2 else 1
    if 324 in tags:  # TileOffsets
        tw, th = int(tags.get(322, 0) or 0), int(tags.get(323, 0) or 0)
        if tw < 1 or th < 1:
            return "a tiled TIFF without a tile size"
        need, unit = math.ceil(w / tw) * math.ceil(h / th) * planes, "tiles"
        offsets, counts = tags.get(324), tags.get(325)
    else:
        rows = int(tags.get(278, h) or h)  # RowsPerStrip; absent: one strip
        need, unit = math.ceil(h / max(1, min(rows, h))) * planes, "strips"
        offsets, counts = tags.get(273), tags.get(279)
    offsets = (offsets,) if isinstance(offsets, int) else tuple(offsets or ())
    counts = (counts,) if isinstance(counts, int) else tuple(counts or ())
    if len(offsets) < need:
        return f"the TIFF holds {len(offsets)} of the {need} {unit} its {w}x{h} pixels need"
    for k, (start, count) in enumerate(zip(offsets, counts, strict=False)):
        if start + count > file_size:
            return f"{unit[:-1]} {k + 1} of {need} ends past the end of the file"
    return None


_JPEG_LOCK = threading.Lock()
# libjpeg warnings that mean pixels are missing or garbage (not the benign "extraneous bytes").
_JPEG_FATAL = ("premature end", "bad huffman", "corrupt jpeg data: found marker")


def jpeg_incomplete(data: bytes) -> str | None:
    """libjpeg's own verdict: decode at 1/8 scale in grey (cheap: a 24 MP JPEG takes 0.2 s,
    but every byte of the scan is still entropy-decoded) and collect the warnings libjpeg
    prints. libjpeg reports them only on the C ``stderr``, so it is captured for the call
    (under a lock; anything else written meanwhile is passed on)."""
    import cv2

    with _JPEG_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            return None
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
            except cv2.error:
                pass
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
    bad = [line for line in text.splitlines() if any(k in line.lower() for k in _JPEG_FATAL)]
    others = [line for line in text.splitlines() if line not in bad]
    if others:
        print("\n".join(others), file=sys.stderr)
    return f"the JPEG decoder reports {bad[0].strip()!r}" if bad else None
