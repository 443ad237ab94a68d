"""Image loading: EXIF orientation, colour modes, size policy, typed errors, folder listing."""

from __future__ import annotations

import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image, ImageOps

from rpn_core.images import loading as imageio
from rpn_core.images.loading import ImageReadError, list_images, load_image, probe_image

# Upright test scene: 60 wide x 40 high, grey, with a red object covering the
# 0-based continuous box (x1, y1, x2, y2) = (10, 5, 25, 15): columns 10..24, rows 5..14.
W, H = 60, 40
OBJ = (10, 5, 25, 15)
RED, GREY = (220, 20, 20), (128, 128, 128)

# The stored (sensor) image for orientation o is the upright one transformed by the inverse
# of what the EXIF tag asks a viewer to do (6 asks for ROTATE_270, undone by ROTATE_90 ...).
INVERSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def upright_scene() -> Image.Image:
    arr = np.full((H, W, 3), GREY, np.uint8)
    x1, y1, x2, y2 = OBJ
    arr[y1:y2, x1:x2] = RED
    return Image.fromarray(arr)


def red_bbox(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (0-based, exclusive max) of the red pixels: red-ness r - g is 200 on the
    object and 0 on the background, so 100 is the midpoint threshold."""
    r, g = pixels[..., 0].astype(int), pixels[..., 1].astype(int)
    ys, xs = np.nonzero(r - g > 100)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_puts_the_object_in_the_same_upright_place(tmp_path, orientation, suffix):
    stored = upright_scene()
    if INVERSE[orientation] is not None:
        stored = stored.transpose(INVERSE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}{suffix}"
    if suffix == ".jpg":
        stored.save(path, quality=100, subsampling=0, exif=exif)  # 4:4:4 keeps edges sharp
    else:
        stored.save(path, exif=exif)

    assert probe_image(path) == (W, H)
    img = load_image(path)
    assert (img.width, img.height, img.scale, img.orientation) == (W, H, 1.0, orientation)
    assert img.pixels.shape == (H, W, 3) and img.pixels.dtype == np.uint8
    # The red object lands on the same upright box for every orientation.
    assert red_bbox(img.pixels) == OBJ
    # Parity with Pillow's own EXIF transpose of the same decoded data.
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(img.pixels, expected)


def save_mode(tmp_path, name, im, **kw):
    path = tmp_path / name
    im.save(path, **kw)
    return load_image(path)


def test_cmyk_jpeg_and_tiff_become_rgb(tmp_path):
    # CMYK (0, 255, 255, 0) is pure red: no cyan, full magenta and yellow, no black.
    cmyk = Image.new("CMYK", (8, 6), (0, 255, 255, 0))
    for name in ("c.jpg", "c.tif"):
        img = save_mode(tmp_path, name, cmyk)
        assert img.mode == "CMYK" and img.pixels.shape == (6, 8, 3)
        r, g, b = img.pixels.reshape(-1, 3).mean(axis=0)
        assert r > 240 and g < 15 and b < 15


def test_palette_transparency_and_alpha_composite_on_white(tmp_path):
    pal = Image.new("P", (4, 2), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black, index 1 red
    pal.putpixel((3, 1), 1)
    img = save_mode(tmp_path, "p.png", pal, transparency=0)
    assert img.pixels[0, 0].tolist() == [255, 255, 255]  # transparent index -> white
    assert img.pixels[1, 3].tolist() == [255, 0, 0]

    rgba = Image.new("RGBA", (2, 2), (0, 0, 0, 128))
    img = save_mode(tmp_path, "a.png", rgba)
    # 50 % black over white: 255 * (1 - 128/255) = 127.
    assert img.pixels[0, 0].tolist() == [127, 127, 127]
    la = Image.new("LA", (2, 2), (0, 0))
    assert save_mode(tmp_path, "la.png", la).pixels[0, 0].tolist() == [255, 255, 255]


def test_grey_bilevel_and_16_bit(tmp_path):
    grey = save_mode(tmp_path, "g.png", Image.new("L", (3, 2), 77))
    assert grey.pixels[1, 2].tolist() == [77] * 3
    bilevel = save_mode(tmp_path, "b.png", Image.new("1", (3, 2), 1))
    assert bilevel.pixels[0, 0].tolist() == [255] * 3
    # 16-bit grey 0x8000 = 32768 -> 32768 >> 8 = 128; 0xFFFF -> 255.
    arr = np.array([[0x8000, 0xFFFF]], np.uint16)
    img = save_mode(tmp_path, "g16.png", Image.fromarray(arr))
    assert img.mode.startswith("I;16")
    assert img.pixels[0, :, 0].tolist() == [128, 255]
    # 16-bit colour (written by OpenCV as BGR): B=0x4000 -> 64, G=0, R=0xFFFF -> 255.
    bgr16 = np.zeros((2, 3, 3), np.uint16)
    bgr16[..., 0], bgr16[..., 2] = 0x4000, 0xFFFF
    path = tmp_path / "c16.png"
    cv2.imwrite(str(path), bgr16)
    assert load_image(path).pixels[0, 0].tolist() == [255, 0, 64]


def test_one_pixel_and_non_ascii_path(tmp_path):
    folder = tmp_path / "données 画像"
    folder.mkdir()
    path = folder / "ünïcødé_写真.png"
    Image.new("RGB", (1, 1), (1, 2, 3)).save(path)
    img = load_image(path)
    assert (img.width, img.height) == (1, 1) and img.pixels.tolist() == [[[1, 2, 3]]]
    assert probe_image(path) == (1, 1)


def test_png_content_with_a_jpg_suffix_still_loads(tmp_path):
    path = tmp_path / "really_png.jpg"
    Image.new("RGB", (5, 4), (9, 9, 9)).save(path, format="PNG")
    assert load_image(path).pixels.shape == (4, 5, 3)


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty"), (b"hello, not an image\n" * 5, "not an image")],
)
def test_empty_and_non_image_files_raise_typed_errors(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    for fn in (load_image, probe_image):
        with pytest.raises(ImageReadError) as info:
            fn(path)
        assert info.value.path == path and reason in info.value.reason


def test_missing_file_raises_typed_error(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        load_image(tmp_path / "nope.png")


@pytest.mark.parametrize("name", ["t.jpg", "t.png"])
def test_truncated_image_raises_typed_error(tmp_path, name):
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    path = tmp_path / name
    noisy.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert probe_image(path) == (64, 64)  # the header is intact
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        load_image(path)


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR is patched to claim ``width x height`` (a tiny 'bomb')."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    raw = zlib.compress(b"\x00\x00\x00\x00")
    idat = b"IDAT" + raw
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(raw))
        + idat
        + struct.pack(">I", zlib.crc32(idat))
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )


@pytest.mark.parametrize("size", [(30_000, 30_000), (100_000, 100_000)])
def test_decompression_bomb_is_refused_before_decoding(tmp_path, size):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(*size))
    assert path.stat().st_size < 100
    for fn in (load_image, probe_image):
        with pytest.raises(ImageReadError) as info:
            fn(path)
        assert "400 MP" in info.value.reason or "decompression bomb" in info.value.reason


@pytest.mark.parametrize(
    "name, factor, size",
    [
        # A 300 x 200 image under a 10,000-pixel display budget: 60,000 / 10,000 = 6 ->
        # factor ceil(sqrt(6)) = 3: display ceil(300/3) x ceil(200/3) = 100 x 67, scale 1/3.
        ("big.png", 3, (100, 67)),
        # JPEG rounds the factor up to a power of two (free in the decoder): 4 -> 75 x 50.
        ("big.jpg", 4, (75, 50)),
    ],
)
def test_large_image_gets_a_downscaled_copy_in_original_coordinates(
    tmp_path, monkeypatch, name, factor, size
):
    monkeypatch.setattr(imageio, "DISPLAY_MAX_PIXELS", 10_000)
    arr = np.full((200, 300, 3), GREY, np.uint8)
    arr[30:90, 150:240] = RED  # object (150, 30, 240, 90) in original pixels
    path = tmp_path / name
    Image.fromarray(arr).save(path, quality=95)
    img = load_image(path)
    assert (img.width, img.height) == (300, 200) and img.downscaled
    assert (img.pixels.shape[1], img.pixels.shape[0]) == size
    assert img.scale == pytest.approx(size[0] / 300) and f"1/{factor} scale" in img.message
    assert "300x200" in img.message and "original pixels" in img.message
    x1, y1, x2, y2 = (v / img.scale for v in red_bbox(img.pixels))
    assert (x1, y1, x2, y2) == pytest.approx((150, 30, 240, 90), abs=3)


def test_downscaled_rotated_image(tmp_path, monkeypatch):
    monkeypatch.setattr(imageio, "DISPLAY_MAX_PIXELS", 600)  # 2400 / 600 -> factor 2
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "r.jpg"
    upright_scene().transpose(INVERSE[6]).save(path, quality=95, exif=exif)
    img = load_image(path)
    assert (img.width, img.height, img.scale) == (W, H, 0.5)
    assert img.pixels.shape == (H // 2, W // 2, 3)


def test_list_images_natural_order_hidden_and_case(tmp_path):
    for name in ("img10.jpg", "img2.PNG", "img1.jpeg", ".hidden.jpg", "notes.txt", "IMG3.bmp"):
        (tmp_path / name).write_bytes(b"x")
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["img1.jpeg", "img2.PNG", "IMG3.bmp", "img10.jpg"]


def test_list_images_recursive_survives_symlink_loops_and_unreadable_folders(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x2.jpg").write_bytes(b"x")
    (tmp_path / "a" / "x10.jpg").write_bytes(b"x")
    (tmp_path / "top.png").write_bytes(b"x")
    os.symlink(tmp_path, tmp_path / "a" / "b" / "loop")  # points back to the root
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "secret.jpg").write_bytes(b"x")
    real_scandir = os.scandir

    def scandir(path):  # the tests run as root, where chmod 000 would not block reading
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(imageio.os, "scandir", scandir)
    errors: list[str] = []
    found = list_images(tmp_path, recursive=True, errors=errors)
    rel = [p.relative_to(tmp_path).as_posix() for p in found]
    assert rel == ["a/b/x2.jpg", "a/x10.jpg", "top.png"]
    assert len(errors) == 1 and "locked" in errors[0] and "Permission denied" in errors[0]
    assert list_images(tmp_path) == [tmp_path / "top.png"]


def test_list_images_of_a_missing_folder_raises(tmp_path):
    with pytest.raises(ImageReadError, match="cannot list"):
        list_images(tmp_path / "missing")


def _seed_images() -> list[tuple[str, bytes]]:
    import io

    out = []
    base = upright_scene().resize((12, 8))
    for fmt, mode in (
        ("PNG", "RGBA"),
        ("JPEG", "RGB"),
        ("GIF", "P"),
        ("BMP", "RGB"),
        ("TIFF", "CMYK"),
        ("WEBP", "RGB"),
        ("PNG", "I;16"),
    ):
        buf = io.BytesIO()
        im = base.convert("L").convert("I;16") if mode == "I;16" else base.convert(mode)
        im.save(buf, format=fmt)
        out.append((fmt.lower(), buf.getvalue()))
    return out


SEEDS = _seed_images()


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on corrupt TIFF/EXIF tags
@given(
    st.sampled_from(range(len(SEEDS))),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    st.integers(0, 10_000),
)
# A CMYK TIFF whose height became 16777226 (0x0100000A) and whose SamplesPerPixel tag was
# overwritten: it loads as a 12 x 16777226 grey image, shown at 1/3 scale.
@example(seed=4, edits=[(30, 0x0A), (33, 0x01), (65, 88), (82, 73)], cut=0)
def test_damaged_image_bytes_load_or_raise_the_typed_error(tmp_path_factory, seed, edits, cut):
    name, data = SEEDS[seed]
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    path = tmp_path_factory.mktemp("fuzz") / f"x.{name}"
    path.write_bytes(bytes(buf[: max(1, len(buf) - cut % len(buf))]))
    for fn in (probe_image, load_image):
        try:
            result = fn(path)
        except ImageReadError as exc:
            assert exc.path == path and exc.reason
            continue
        if fn is load_image:
            assert result.pixels.dtype == np.uint8 and result.pixels.shape[2] == 3
            assert display_copy_fits(result), (
                result.pixels.shape,
                result.width,
                result.height,
                result.scale,
            )


def display_copy_fits(loaded) -> bool:
    """The display copy is the upright image, or -- above the size policy's limit -- the image
    reduced by a whole factor (each side rounded up) with ``scale`` its width ratio. (A damaged
    header may declare 10^8 pixels: such an image loads reduced, not at its full size.)"""
    h, w = loaded.pixels.shape[:2]
    factors = [f for f in range(1, 9) if (h, w) == (-(-loaded.height // f), -(-loaded.width // f))]
    full = bool(factors) and factors[0] == 1
    return bool(factors) and full == (loaded.scale == 1.0) and loaded.scale == w / loaded.width


def _set_tiff_tag(data: bytes, tag: int, value: int) -> bytes:
    """``data`` (a little-endian TIFF whose first IFD follows the header) with one LONG or
    SHORT tag's value replaced in place."""
    out = bytearray(data)
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    for k in range(count):
        entry = ifd + 2 + 12 * k
        found, kind = struct.unpack("<HH", data[entry : entry + 4])
        if found == tag:
            fmt = "<H" if kind == 3 else "<I"
            out[entry + 8 : entry + 8 + struct.calcsize(fmt)] = struct.pack(fmt, value)
            return bytes(out)
    raise AssertionError(f"tag {tag} not in the IFD")


@pytest.mark.parametrize("compression", ["raw", "tiff_deflate"])
def test_a_tiff_with_fewer_strips_than_its_rows_need_is_refused(tmp_path, compression):
    # Pillow fills the rows of missing strips with black and says nothing: one strip of
    # the whole image, relabelled as 8 rows per strip, leaves 392 of 400 rows black.
    path = tmp_path / "strips.tif"
    pixels = np.full((400, 300, 3), 200, np.uint8)
    Image.fromarray(pixels).save(path, compression=compression, tiffinfo={278: 400})
    assert load_image(path).pixels.mean() == 200  # intact: it loads whole
    path.write_bytes(_set_tiff_tag(path.read_bytes(), 278, 8))  # RowsPerStrip
    with pytest.raises(ImageReadError, match="holds 1 of the 50 strips its 300x400 pixels"):
        load_image(path)
    # A strip that ends past the end of the file is refused too.
    whole = tmp_path / "cut.tif"
    Image.fromarray(pixels).save(whole, compression="raw", tiffinfo={278: 400})
    whole.write_bytes(whole.read_bytes()[:200_000])
    with pytest.raises(ImageReadError, match="truncated"):
        load_image(whole)
