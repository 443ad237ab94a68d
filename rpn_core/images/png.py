"""The PNG container, read chunk by chunk without decoding pixels: the header, the IDAT
stream a piece at a time, a completeness check and chunk writing. Used by
:mod:`rpn_core.images.loading` (strip decoding of large PNGs) and
:mod:`rpn_core.images.integrity` (truncated files). Pillow decodes the pixels.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from PIL import Image

__all__ = [
    "CHANNELS",
    "chunk",
    "chunks_before_idat",
    "idat_pieces",
    "incomplete",
    "png_header",
    "raw_size",
    "strippable",
]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
_PIECE = 1 << 22  # 4 MB


def raw_size(w: int, h: int, depth: int, colour: int, interlace: int) -> int:
    """Bytes of the inflated IDAT stream (filter byte per row, Adam7 passes) of a header."""
    bits = depth * CHANNELS.get(colour, 4)

    def rows(pw: int, ph: int) -> int:
        return ph * (1 + (pw * bits + 7) // 8) if pw > 0 and ph > 0 else 0

    if not interlace:
        return rows(w, h)
    return sum(rows((w - x0 + dx - 1) // dx, (h - y0 + dy - 1) // dy) for x0, y0, dx, dy in _ADAM7)


def png_header(im: Image.Image) -> tuple[int, int, int, int, int] | None:
    """``(width, height, depth, colour type, interlace)`` from the file's IHDR."""
    fp = im.fp
    if fp is None:
        return None
    pos = fp.tell()
    try:
        fp.seek(0)
        head = fp.read(8 + 8 + 13)
    finally:
        fp.seek(pos)
    if len(head) < 29 or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">IIBBxxB", head[16:29])  # type: ignore[return-value]


def strippable(im: Image.Image) -> bool:
    """8-bit, non-interlaced PNGs (grey, RGB, palette, with or without alpha) can be decoded
    a strip of rows at a time; others are decoded whole under the memory budget."""
    if im.format != "PNG":
        return False
    header = png_header(im)
    return header is not None and header[2] == 8 and header[3] in CHANNELS and not header[4]


def chunks_before_idat(fp: BinaryIO) -> bytes:
    """The PLTE/tRNS chunks (raw, with their CRC) that a strip needs to decode alike."""
    fp.seek(8)
    kept = b""
    while True:
        head = fp.read(8)
        if len(head) < 8:
            return kept
        length, kind = struct.unpack(">I4s", head)
        if kind in (b"IDAT", b"IEND"):
            fp.seek(-8, 1)
            return kept
        body = fp.read(length + 4)
        if kind in (b"PLTE", b"tRNS"):
            kept += head + body


def idat_pieces(fp: BinaryIO) -> Iterator[bytes]:
    """The IDAT payloads from the current position (a chunk boundary), 4 MB at a time."""
    while True:
        head = fp.read(8)
        if len(head) < 8:
            return
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND":
            return
        if kind != b"IDAT":
            fp.seek(length + 4, 1)
            continue
        left = length
        while left > 0:
            piece = fp.read(min(left, _PIECE))
            if not piece:
                return
            left -= len(piece)
            yield piece
        fp.seek(4, 1)


def incomplete(fp: BinaryIO) -> str | None:
    """Inflate the IDAT stream without keeping it (4 MB at a time) and compare its length
    with what the header's size needs -- libpng's "Not enough image data". None when
    complete (or not a PNG with a header: the decoder says what is wrong then)."""
    if fp.read(8) != SIGNATURE:
        return None
    head = fp.read(8)
    if len(head) < 8 or head[4:8] != b"IHDR":
        return None
    (length,) = struct.unpack(">I", head[:4])
    w, h, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", fp.read(13))
    fp.seek(length - 13 + 4, 1)  # the rest of IHDR and its CRC
    need = raw_size(w, h, depth, colour, interlace)
    inflater, got = zlib.decompressobj(), 0
    for piece in idat_pieces(fp):
        try:
            while piece and not inflater.eof:
                got += len(inflater.decompress(piece, _PIECE))
                piece = inflater.unconsumed_tail
        except zlib.error as exc:
            return f"PNG pixel data is corrupt ({exc})"
        if inflater.eof:
            break
    if got >= need:
        return None
    rows = f"{got * 100 // need}% of the pixel data" if need else "no pixel data"
    return f"the PNG holds {rows} its {w}x{h} header declares (libpng: not enough image data)"


def chunk(kind: bytes, body: bytes, *, crc: bool = True) -> bytes:
    """A PNG chunk; ``crc=False`` writes a zero CRC (Pillow does not check IDAT's, and the
    strips of :mod:`rpn_core.images.loading` never leave it: 32 MB of CRC per strip is time
    for nothing)."""
    value = zlib.crc32(body, zlib.crc32(kind)) if crc else 0
    return b"".join((struct.pack(">I", len(body)), kind, body, struct.pack(">I", value)))
