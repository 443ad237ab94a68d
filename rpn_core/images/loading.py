"""Reading images from disk: upright, RGB, with a size policy and typed errors.

Every image in RPN Studio is used in its **EXIF-upright** frame (see :mod:`rpn_core.boxes`):
:func:`load_image` applies the EXIF orientation to the pixels and :func:`probe_image` reports
the upright size, so box coordinates never depend on how a camera stored the sensor data.

Colour: whatever the file holds becomes ``uint8`` RGB ``(H, W, 3)``: grey and bilevel images
are replicated to three channels, 16-bit (and 32-bit integer) samples are scaled to 8 bits
(``v >> 8`` for 16-bit data; a min-max stretch for wider or float data), palette images are
expanded, CMYK/YCbCr/LAB are converted by Pillow, and any alpha channel (RGBA, LA, palette
transparency) is composited on **white**. ICC profiles are not applied.

Size policy
-----------
* An image of more than :data:`MAX_PIXELS` pixels (400 MP, e.g. 20000 x 20000) is refused
  before any pixel is decoded, with an :class:`ImageReadError` that names the limit. This is
  also the decompression-bomb guard: the size is read from the header, so a tiny file that
  claims a huge size never allocates memory. Pillow's own ``Image.MAX_IMAGE_PIXELS`` is set to
  the same limit when this module is imported.
* An image of more than :data:`DISPLAY_MAX_PIXELS` (50 MP) is decoded to a **downscaled display
  copy** that fits the budget, reduced by the integer factor ``ceil(sqrt(pixels / 50 MP))``
  (for JPEG rounded up to 2, 4 or 8, which the decoder does for free: a 20000 x 15000 JPEG
  loads as 5000 x 3750 in about 1 s and 200 MB, never needing its full 900 MB).
  :class:`LoadedImage` then carries ``scale`` (display pixels per
  original pixel, < 1) and a ``message`` for the user; ``width``/``height`` stay those of the
  original upright image and **box coordinates always stay in original pixels**: the viewer
  multiplies by ``scale`` to draw. A large 8-bit PNG (Pillow cannot reduce while decoding
  one) is inflated and decoded a strip of rows at a time and each strip reduced at once, so
  the whole image never sits in memory (a 19999 x 20000 RGBA PNG: 0.47 GB peak instead of
  3.3 GB).
* Memory budget: any other decode is estimated from the header before it starts
  (:func:`decode_bytes_needed`) and refused above :data:`~rpn_core.limits.MAX_DECODE_BYTES`
  with the estimate and the budget in the reason. Pillow refuses images above twice its limit
  itself; that refusal is re-worded to quote this module's 400 MP, not Pillow's 800 MP.
* Only regular files are opened (:mod:`rpn_core.files`): a FIFO or a device named like an
  image is "not a regular file", never a hang or "empty".
* Completeness (:mod:`rpn_core.images.integrity`): a PNG whose zlib stream ends before its
  last row (Pillow fills the rest with black), a JPEG whose scan stops early (libjpeg fills
  grey, warning only on ``stderr``) and a TIFF with fewer strips or tiles than its size needs
  are refused as truncated, quoting the reason.

Errors: :class:`ImageReadError` (``path``, ``reason``) for a missing, zero-byte, truncated,
non-image (whatever its suffix) or too large file. No other exception type leaves
:func:`load_image` or :func:`probe_image` for a bad file.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from rpn_core.errors import RPNStudioError
from rpn_core.files import open_regular
from rpn_core.images import png
from rpn_core.images.integrity import incomplete_reason
from rpn_core.limits import DISPLAY_MAX_PIXELS, MAX_DECODE_BYTES, MAX_IMAGE_PIXELS, describe_bytes

__all__ = [
    "DISPLAY_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "ImageReadError",
    "LoadedImage",
    "list_images",
    "load_image",
    "natural_key",
    "probe_image",
]

MAX_PIXELS = MAX_IMAGE_PIXELS  # the names this module always exported
IMAGE_SUFFIXES = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
    ".ppm",
    ".pgm",
    ".pbm",
)
_ORIENTATION_TAG = 0x0112
# Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; we refuse above it
# ourselves (with a clearer message), so its warning is noise. A module-level filter rather
# than catch_warnings(), which is not thread-safe (the app prefetches in worker threads).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageReadError(RPNStudioError):
    """An image could not be read; ``path`` names the file and ``reason`` says why."""

    path: Path


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image: ``pixels`` is the (possibly downscaled) upright RGB display copy.

    ``width``/``height`` are the original upright size, the frame of all box coordinates;
    ``scale`` is display pixels per original pixel (1.0 unless the size policy downscaled).
    """

    path: Path
    pixels: np.ndarray
    width: int
    height: int
    scale: float = 1.0
    orientation: int = 1
    mode: str = "RGB"
    message: str | None = None

    @property
    def downscaled(self) -> bool:
        return self.scale < 1.0


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8) from the header only: Pillow's ``getexif()`` on a PNG would
    decode the whole image looking for a late eXIf chunk, so PNG uses the chunks read so far
    (writers put eXIf before the pixel data). Probe and load therefore always agree."""
    try:
        if im.format == "PNG":
            exif = Image.Exif()
            raw = im.info.get("exif")
            if raw:
                exif.load(raw)
        else:
            exif = im.getexif()
        value = int(exif.get(_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block is not a reason to refuse the image
        return 1
    return value if 1 <= value <= 8 else 1


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """Open lazily (header only) and enforce the size policy; raise :class:`ImageReadError`.

    Only a regular file is opened (a FIFO named ``.jpg`` is "not a regular file", never
    "empty" and never a hang), through one descriptor that Pillow then reads."""
    f = open_regular(path, limit=None, what="an image", error=ImageReadError)
    try:
        if os.fstat(f.fileno()).st_size == 0:
            raise ImageReadError(path, "empty file (0 bytes)")
        im = _pillow_open(path, f)
        try:
            _check_size(path, im)
            yield im
        finally:
            im.close()
    finally:
        f.close()


def _pillow_open(path: Path, f: BinaryIO) -> Image.Image:
    try:
        return Image.open(f)
    except Image.DecompressionBombError as exc:
        # Pillow refuses above twice its limit with its own numbers; quote ours instead.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.0f} MP" if found else "too many pixels"
        raise ImageReadError(path, _too_large(size)) from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageReadError(path, "not an image (unknown or corrupt format)") from exc
    except Exception as exc:  # noqa: BLE001 - third-party parsers raise many types on bad bytes
        raise ImageReadError(path, f"cannot read image header: {_why(exc)}") from exc


def _too_large(size: str) -> str:
    return (
        f"image is {size}, above the limit of {MAX_PIXELS / 1e6:.0f} MP"
        " (refused to protect memory; possible decompression bomb)"
    )


def _check_size(path: Path, im: Image.Image) -> None:
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageReadError(path, f"invalid image size {w}x{h}")
    if w * h > MAX_PIXELS:
        raise ImageReadError(path, _too_large(f"{w}x{h} = {w * h / 1e6:.0f} MP"))


# -- memory budget and completeness, checked before decoding -------------------------------------

_BYTES_PER_PIXEL = {
    "1": 1,
    "L": 1,
    "P": 1,
    "LA": 2,
    "La": 2,
    "PA": 2,
    "RGB": 3,
    "YCbCr": 3,
    "LAB": 3,
    "HSV": 3,
    "RGBA": 4,
    "RGBa": 4,
    "RGBX": 4,
    "CMYK": 4,
    "I": 4,
    "F": 4,
    "I;16": 2,
    "I;16B": 2,
    "I;16L": 2,
    "I;16N": 2,
}


def decode_bytes_needed(size: tuple[int, int], mode: str, factor: int, fmt: str | None) -> int:
    """Estimated peak memory of :func:`load_image` for an image of ``size`` and Pillow
    ``mode`` reduced by ``factor``: the decoded image (a JPEG is reduced while decoding, up
    to 1/8) plus the RGB display copy."""
    w, h = size
    decode_factor = min(factor, 8) if fmt == "JPEG" else 1
    full = math.ceil(w / decode_factor) * math.ceil(h / decode_factor)
    shown = math.ceil(w / factor) * math.ceil(h / factor)
    # Measured: a whole decode peaks at about twice the decoded image (Pillow's load plus
    # its reduce/convert copies), plus the RGB display copy and its numpy twin.
    return 2 * full * _BYTES_PER_PIXEL.get(mode, 4) + shown * 3 * 2


def _check_budget(path: Path, im: Image.Image, factor: int) -> None:
    need = decode_bytes_needed(im.size, im.mode, factor, im.format)
    if need > MAX_DECODE_BYTES:
        w, h = im.size
        raise ImageReadError(
            path,
            f"decoding this {w}x{h} {im.mode} {im.format} image needs about"
            f" {describe_bytes(need)}, above the memory budget of"
            f" {describe_bytes(MAX_DECODE_BYTES)} per image",
        )


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def probe_image(path: str | Path) -> tuple[int, int]:
    """Upright ``(width, height)`` read from the header, without decoding pixels.

    Raises :class:`ImageReadError` for a missing, empty, non-image or too large file (a
    truncated file is only detected by :func:`load_image`).
    """
    path = Path(path)
    with _opened(path) as im:
        w, h = im.size
        if _orientation(im) in (5, 6, 7, 8):  # these orientations swap the axes
            w, h = h, w
        return w, h


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> ``uint8`` RGB ``(H, W, 3)``; alpha is composited on white."""
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im)
        if mode.startswith("I;16"):
            grey = (arr.astype(np.uint32) >> 8).astype(np.uint8)
        else:
            grey = _stretch(arr.astype(np.float64))
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode in ("P", "L", "RGB", "1") and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB") if mode != "RGB" else im)


def _stretch(arr: np.ndarray) -> np.ndarray:
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return np.zeros(arr.shape, np.uint8)
    lo, hi = float(finite.min()), float(finite.max())
    if lo >= 0 and hi <= 255:
        return np.nan_to_num(arr).astype(np.uint8)
    if lo >= 0 and hi <= 65535:
        return (np.nan_to_num(arr) / 257.0).round().astype(np.uint8)
    if hi == lo:
        return np.zeros(arr.shape, np.uint8)
    return ((np.nan_to_num(arr, nan=lo) - lo) * (255.0 / (hi - lo))).round().astype(np.uint8)


# -- large PNGs in strips ---------------------------------------------------------------

_STRIP_BYTES = 32 * 1024**2  # raw bytes of one strip (its decoded copies are a few times that)


def _png_in_strips(path: Path, im: Image.Image, factor: int) -> np.ndarray:
    """Decode a large 8-bit PNG ``factor`` times smaller with a bounded memory footprint.

    The IDAT stream is inflated here, a strip of rows at a time (a multiple of ``factor``
    rows, about :data:`_STRIP_BYTES`); each strip becomes a small PNG of its own -- the
    strip's filtered rows after the previous strip's last row, unfiltered (filter 0), which the
    filters of the first row refer to -- that Pillow decodes and converts as usual; the strip
    is then area-averaged by ``factor``. Peak memory is a few strips plus the display copy,
    instead of the whole image (a 19999 x 20000 RGBA PNG: 1.6 GB decoded, 3.3 GB at the peak).
    A stream that ends before the last row raises :class:`ImageReadError` (truncated).
    """
    w, h, _depth, colour, _interlace = png.png_header(im)  # type: ignore[misc]
    fp = im.fp
    channels = png.CHANNELS[colour]
    row_len = 1 + w * channels
    rows_per_strip = max(factor, (_STRIP_BYTES // row_len) // factor * factor)
    fp.seek(0)
    extra = png.chunks_before_idat(fp)
    inflater, pending, done = zlib.decompressobj(), bytearray(), 0
    previous: bytes | None = None  # the last unfiltered row of the previous strip
    out: list[np.ndarray] = []
    out_w = math.ceil(w / factor)

    def emit(raw: memoryview, rows: int) -> None:
        nonlocal previous
        head_rows = 0 if previous is None else 1
        body = b"".join((b"\x00", previous, raw)) if previous is not None else raw
        ihdr = struct.pack(">IIBBBBB", w, rows + head_rows, 8, colour, 0, 0, 0)
        strip_png = b"".join(
            (
                b"\x89PNG\r\n\x1a\n",
                png.chunk(b"IHDR", ihdr),
                extra,
                png.chunk(b"IDAT", zlib.compress(body, 0), crc=False),
                png.chunk(b"IEND", b""),
            )
        )
        del body
        with Image.open(io.BytesIO(strip_png)) as strip:
            strip.load()
            arr = np.asarray(strip)
            previous = arr[-1].tobytes()
            size = (out_w, math.ceil(rows / factor))
            if strip.mode in ("RGBA", "LA"):
                out.append(_reduce_on_white(arr[head_rows:], size))
            else:
                out.append(_fit(_to_rgb(strip)[head_rows:], size))

    view_start = 0
    for piece in png.idat_pieces(fp):
        try:
            data = piece
            while data and not inflater.eof:
                pending += inflater.decompress(data, _STRIP_BYTES)
                data = inflater.unconsumed_tail
                whole = min((len(pending) - view_start) // row_len, h - done)
                while whole >= rows_per_strip or (whole and done + whole == h):
                    take = min(whole, rows_per_strip)
                    with memoryview(pending) as view:
                        emit(view[view_start : view_start + take * row_len], take)
                    view_start += take * row_len
                    done += take
                    whole -= take
                if view_start > _STRIP_BYTES:  # drop the rows already emitted, now and then
                    del pending[:view_start]
                    view_start = 0
        except zlib.error as exc:
            raise ImageReadError(path, f"truncated or corrupt image data: {exc}") from exc
        if inflater.eof or done == h:
            break
    if done < h:
        raise ImageReadError(
            path,
            f"truncated or corrupt image data: the PNG holds {done * 100 // h}% of the pixel"
            f" data its {w}x{h} header declares (libpng: not enough image data)",
        )
    return np.concatenate(out, axis=0)


def _reduce_on_white(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 2|4)`` grey/RGB + alpha -> RGB composited on white and area-reduced to
    ``size``: premultiplied averages, so it equals compositing each pixel first."""
    import cv2

    alpha = arr[..., -1]
    if alpha.min() == 255:  # opaque (the common case): reduce first, then drop the alpha
        small = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
        small = small.reshape(size[1], size[0], -1)
        small = small[..., :3] if arr.shape[-1] == 4 else np.repeat(small[..., :1], 3, axis=2)
        return np.ascontiguousarray(small)
    colour = arr[..., :-1] if arr.shape[-1] == 4 else np.repeat(arr[..., :1], 3, axis=2)

    a = alpha.astype(np.float32) * (1 / 255)
    premult = colour.astype(np.float32) * a[..., None]
    a_small = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
    c_small = cv2.resize(premult, size, interpolation=cv2.INTER_AREA)
    c_small = c_small.reshape(size[1], size[0], 3)
    return np.clip(c_small + 255.0 * (1.0 - a_small[..., None]) + 0.5, 0, 255).astype(np.uint8)


def _decode(im: Image.Image, factor: int) -> Image.Image:
    """Decode pixels; a JPEG reduced by ``factor`` is reduced while decoding (1/2, 1/4, 1/8)."""
    w, h = im.size
    if factor > 1 and im.format == "JPEG":
        im.draft(im.mode, (math.ceil(w / factor), math.ceil(h / factor)))
    im.load()
    if factor > 1 and im.size == (w, h):
        try:  # shrink inside Pillow before the (copying) conversion to numpy
            return im.reduce(factor)
        except ValueError:  # modes reduce() does not support; _fit() resizes later
            pass
    return im


def _fit(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average ``rgb`` down to ``size = (width, height)`` if it is not that size yet."""
    if (rgb.shape[1], rgb.shape[0]) == size:
        return rgb
    import cv2

    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _cv2_fallback(path: Path) -> np.ndarray:
    """Decode with OpenCV (deep TIFFs and other modes Pillow cannot convert)."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    flags = cv2.IMREAD_UNCHANGED  # keeps depth; does not apply EXIF orientation
    try:
        img = cv2.imdecode(data, flags)
    except cv2.error:
        img = None
    if img is None:
        raise ImageReadError(path, "image data could not be decoded (OpenCV fallback failed)")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.dtype != np.uint8:
        img = _stretch(img.astype(np.float64)) if img.dtype != np.uint16 else (img >> 8)
        img = img.astype(np.uint8)
    channels = img.shape[2]
    if channels == 1:
        rgb = np.repeat(img, 3, axis=2)
    elif channels == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        bgr = img[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        rgb = bgr.round().astype(np.uint8)[:, :, ::-1]
    else:
        rgb = img[:, :, 2::-1]
    return np.ascontiguousarray(rgb)


_TRANSPOSE: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, k=1),
}


def load_image(path: str | Path) -> LoadedImage:
    """Decode ``path`` into an upright RGB :class:`LoadedImage` under the module's size policy.

    Raises :class:`ImageReadError` (with the reason) for anything that is not a readable image.
    """
    path = Path(path)
    with _opened(path) as im:
        orientation = _orientation(im)
        mode = im.mode
        w, h = im.size
        factor = max(1, math.ceil(math.sqrt(w * h / DISPLAY_MAX_PIXELS)))
        if 1 < factor <= 8 and im.format == "JPEG":
            factor = 1 << (factor - 1).bit_length()  # JPEG decodes 1/2, 1/4, 1/8 for free
        target = (math.ceil(w / factor), math.ceil(h / factor))
        strips = factor > 1 and png.strippable(im)
        if not strips:
            _check_budget(path, im, factor)
            reason = incomplete_reason(path, im)
            if reason:
                raise ImageReadError(path, f"truncated or corrupt image data: {reason}")
        try:
            if strips:  # a large PNG: never whole in memory (checks completeness itself)
                rgb = _fit(_png_in_strips(path, im, factor), target)
            else:
                rgb = _fit(_to_rgb(_decode(im, factor)), target)
        except (ValueError, KeyError, NotImplementedError) as exc:
            # Pillow opened the header but cannot handle this mode/compression.
            try:
                rgb = _fit(_cv2_fallback(path), target)
            except Exception:  # noqa: BLE001 - the fallback failing is the same verdict
                raise ImageReadError(path, f"unsupported image data: {_why(exc)}") from exc
        except MemoryError as exc:
            raise ImageReadError(path, f"not enough memory to decode {w}x{h}") from exc
        except Exception as exc:  # noqa: BLE001 - decoders raise OSError, SyntaxError, ...
            raise ImageReadError(path, f"truncated or corrupt image data: {_why(exc)}") from exc
    rgb = np.ascontiguousarray(_TRANSPOSE[orientation](rgb))
    uw, uh = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    scale = 1.0
    message = None
    if factor > 1:
        scale = rgb.shape[1] / uw
        message = (
            f"{path.name} is {uw}x{uh} ({uw * uh / 1e6:.0f} MP): shown at 1/{factor} scale "
            f"({rgb.shape[1]}x{rgb.shape[0]}); boxes stay in original pixels"
        )
    return LoadedImage(path, rgb, uw, uh, scale, orientation, mode, message)


def natural_key(text: str) -> tuple:
    """Sort key that orders ``img2`` before ``img10`` (case-insensitive)."""
    parts = re.split(r"(\d+)", text)
    folded = tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold()) for p in parts)
    return (folded, text)  # the exact text only breaks ties


def list_images(
    folder: str | Path, recursive: bool = False, *, errors: list[str] | None = None
) -> list[Path]:
    """Image files (by :data:`IMAGE_SUFFIXES`, any case) in ``folder``, naturally sorted.

    Hidden names (starting with ``.``) are skipped. With ``recursive`` sub-folders are walked;
    symlink loops are visited once and unreadable sub-folders are skipped, each noted in
    ``errors`` when given. An unreadable ``folder`` itself raises :class:`ImageReadError`.
    """
    root = Path(folder)
    seen: set[tuple[int, int]] = set()
    found: list[Path] = []
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            st = current.stat()
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            entries = list(os.scandir(current))
        except OSError as exc:
            if current == root:
                raise ImageReadError(root, f"cannot list folder: {exc.strerror or exc}") from exc
            if errors is not None:
                errors.append(f"{current}: skipped, cannot list folder ({exc.strerror or exc})")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError:
                continue
            if is_dir and recursive:
                stack.append(Path(entry.path))
            elif is_file and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                found.append(Path(entry.path))
    return sorted(found, key=lambda p: tuple(natural_key(s) for s in p.relative_to(root).parts))
