"""Generate the hostile-input corpus of issue 7 (images, annotations, weights) into a folder.

``python scripts/make_corpus.py OUT [--no-weights]`` writes::

    OUT/images/     damaged, odd and EXIF-rotated images (+ VOC files for the EXIF ones,
                    and an annotation whose image no longer exists)
    OUT/voc/ yolo/ labelme/      one small PNG per case + its broken annotation file
    OUT/coco-*/     one folder per COCO case (a COCO file covers a whole folder)
    OUT/weights/    truncated / wrong-shape / other-anchor safetensors and pickle exploits,
                    hostile RPN configurations (issue 16)
    OUT/round2/     issue 16: truncated PNG/JPEG with valid structure, bombs under and over
                    the limits, XML-unsafe image names, absurd YOLO ids, lone-surrogate
                    labels, names too long to save, a UTF-16 VOC file
    OUT/special/    issue 16: FIFOs, /dev/zero links and a folder where files are expected

Nothing here is hand-made binary: every file is built from code, so the corpus is generated
at test time (``tests/corpus_fixtures.py``) and no binaries are committed. The PNG
decompression bomb is a ~100-byte file whose IHDR *declares* 60000 x 60000; no such image
is ever allocated. The read-only folder and the symlink loop are made by the test fixtures
(they need the test's privileges and clean-up).

Box convention of the expected boxes: :mod:`rpn_core.boxes`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# -- constants the tests rely on -------------------------------------------------------------
CASE_SIZE = (100, 80)  # (width, height) of every annotation-case image
EXIF_SIZE = (60, 40)  # upright size of the EXIF scenes
EXIF_OBJECT = (10.0, 5.0, 25.0, 15.0)  # the red object, upright, 0-based continuous
RED, GREY = (220, 20, 20), (128, 128, 128)
BOMB_SIZE = 60000
NON_ASCII_NAME = "ünïcødé 名前.png"
SPACE_NAME = "with space.png"
EXPLOIT_MARKER = "EXPLOIT_RAN"  # file name an unpickled exploit would create

# The stored (sensor) image for orientation o is the upright one transformed by the inverse of
# what the EXIF tag asks a viewer to do.
_INVERSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


# -- images ----------------------------------------------------------------------------------
def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = BOMB_SIZE, height: int = BOMB_SIZE) -> bytes:
    """A valid-looking PNG that declares ``width x height`` RGB but holds a few bytes only."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def exif_scene(orientation: int) -> bytes:
    """JPEG whose upright view is the grey scene with the red object at :data:`EXIF_OBJECT`."""
    w, h = EXIF_SIZE
    arr = np.full((h, w, 3), GREY, np.uint8)
    x1, y1, x2, y2 = (int(v) for v in EXIF_OBJECT)
    arr[y1:y2, x1:x2] = RED
    stored = Image.fromarray(arr)
    if _INVERSE[orientation] is not None:
        stored = stored.transpose(_INVERSE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(stored, "JPEG", quality=100, subsampling=0, exif=exif)


def voc_xml(
    filename: str, size: tuple[int, int], objects: list[tuple[str, tuple]], *, doctype: str = ""
) -> bytes:
    """VOC XML text; each object is ``(name, (xmin, ymin, xmax, ymax))`` written verbatim."""
    objs = "".join(
        f"<object><name>{name}</name><difficult>0</difficult><bndbox>"
        f"<xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax>"
        "</bndbox></object>\n"
        for name, b in objects
    )
    return (
        f"{doctype}<annotation><filename>{filename}</filename>\n"
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>\n"
        f"{objs}</annotation>\n"
    ).encode()


def make_images(folder: Path) -> None:
    """The image cases of issue 7 in ``folder`` (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = _encode(_noise(64, 48, 1), "JPEG", quality=90)
    png = _encode(_noise(64, 48, 2), "PNG")
    files = {
        "zero-byte.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.png": png[: len(png) * 6 // 10],
        "text-named.jpg": b"This is a text file, not a JPEG.\n",
        "bomb.png": png_bomb(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    grey16 = np.zeros((20, 30), np.uint16)
    grey16[:, :15], grey16[:, 15:] = 0x1000, 0xF000  # -> 16 and 240 after >> 8
    Image.fromarray(grey16).save(folder / "grey-16bit.png")
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(folder / "cmyk.jpg", quality=95)
    pal = Image.new("P", (20, 10), 0)
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    pal.paste(1, (10, 0, 20, 10))  # right half: palette index 1 = blue; left: transparent
    pal.save(folder / "palette-transparent.png", transparency=0)
    Image.new("RGB", (1, 1), (10, 200, 30)).save(folder / "one-pixel.png")
    Image.new("RGB", (1, 5000), (200, 10, 30)).save(folder / "tall-1x5000.png")
    _noise(40, 30, 3).save(folder / NON_ASCII_NAME)
    _noise(40, 30, 4).save(folder / SPACE_NAME)
    x1, y1, x2, y2 = EXIF_OBJECT
    devkit = (int(x1) + 1, int(y1) + 1, int(x2), int(y2))  # VOC devkit: 1-based minima
    for o in range(1, 9):
        (folder / f"exif-{o}.jpg").write_bytes(exif_scene(o))
        (folder / f"exif-{o}.xml").write_bytes(
            voc_xml(f"exif-{o}.jpg", EXIF_SIZE, [("object", devkit)])
        )
    (folder / "deleted-image.xml").write_bytes(
        voc_xml("deleted-image.jpg", (100, 80), [("ghost", (11, 11, 50, 50))])
    )


# -- annotations -----------------------------------------------------------------------------
_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE annotation [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n"
)
_XXE = '<?xml version="1.0"?>\n<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'

GOOD_VOC = ("cat", (11, 21, 50, 60))  # devkit -> (10, 20, 50, 60)

VOC_CASES: dict[str, bytes] = {
    "broken": b"<annotation><object><name>cat</name>\n<bndbox><xmin>1</xmin>\n</annotation>\n",
    "billion-laughs": voc_xml("a.png", CASE_SIZE, [("&lol9;", (1, 1, 5, 5))], doctype=_LAUGHS),
    "external-entity": voc_xml("a.png", CASE_SIZE, [("&xxe;", (1, 1, 5, 5))], doctype=_XXE),
    "wrong-root": b"<html><body>not VOC</body></html>\n",
    "deep-nesting": b"<annotation>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</annotation>",
    "xmin-gt-xmax": voc_xml("a.png", CASE_SIZE, [GOOD_VOC, ("dog", (60, 10, 40, 30))]),
    "negative": voc_xml("a.png", CASE_SIZE, [GOOD_VOC, ("dog", (-20, -5, 30, 40))]),
    "nan": voc_xml("a.png", CASE_SIZE, [GOOD_VOC, ("dog", ("nan", 10, 40, 30))]),
    "huge": voc_xml(
        "a.png", CASE_SIZE, [GOOD_VOC, ("dog", (11, 11, 1e308, 60)), ("eel", (1, 1, "1e999", 9))]
    ),
}

YOLO_CLASSES = b"cat\ndog\n"
GOOD_YOLO = b"1 0.5 0.5 0.5 0.5\n"  # dog, (25, 20, 75, 60) in a 100 x 80 image
YOLO_CASES: dict[str, bytes] = {
    "too-few": b"0 0.5 0.5 0.2\n" + GOOD_YOLO,
    "too-many": b"0 0.5 0.5 0.2 0.2 0.9\n" + GOOD_YOLO,
    "nan": b"0 nan 0.5 0.2 0.2\n" + GOOD_YOLO,
    "out-of-range": b"0 1.5 0.5 0.2 0.2\n0 0.5 0.5 -0.2 0.2\n" + GOOD_YOLO,
    "unknown-class": b"7 0.5 0.5 0.2 0.2\n" + GOOD_YOLO,
    "not-text": b"\xff\xfe\x00\x01binary\x00\n",
}

_RECT = {"label": "cat", "points": [[10, 20], [50, 60]], "shape_type": "rectangle"}
LABELME_CASES: dict[str, object] = {
    "non-rectangles": {
        "shapes": [
            {"label": "poly", "points": [[1, 1], [9, 1], [5, 9]], "shape_type": "polygon"},
            {"label": "round", "points": [[20, 20], [25, 25]], "shape_type": "circle"},
            _RECT,
        ],
        "imageWidth": 100,
        "imageHeight": 80,
    },
    "wrong-types": {
        "shapes": [
            {"label": 5, "points": [[1, 1], [9, 9]], "shape_type": "rectangle"},
            {"label": "x", "points": "1,1,9,9", "shape_type": "rectangle"},
            {"label": "y", "points": [["1", "1"], ["9", "9"]], "shape_type": "rectangle"},
            "not a shape",
            _RECT,
        ],
        "imageWidth": "100",
    },
    "shapes-not-a-list": {"shapes": "rectangle", "imageWidth": 100, "imageHeight": 80},
    "top-level-array": [_RECT],
    "deep-nesting": b'{"shapes": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
}

_IMG = {"id": 1, "file_name": "img.png", "width": 100, "height": 80}
_CATS = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
_GOOD_ANN = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 40, 40]}
COCO_CASES: dict[str, object] = {
    "missing-keys": {
        "images": [_IMG, {"id": 2}],
        "annotations": [
            _GOOD_ANN,
            {"id": 2, "image_id": 1, "category_id": 2},
            {"id": 3, "image_id": 1, "bbox": [1, 1, 5, 5]},
        ],
        "categories": _CATS,
    },
    "duplicate-ids": {
        "images": [_IMG, {"id": 1, "file_name": "other.png"}],
        "annotations": [_GOOD_ANN, {**_GOOD_ANN, "bbox": [60, 10, 20, 20], "category_id": 2}],
        "categories": _CATS,
    },
    "missing-images": {
        "images": [_IMG],
        "annotations": [_GOOD_ANN, {**_GOOD_ANN, "id": 2, "image_id": 99}],
        "categories": _CATS,
    },
    "broken-json": '{"images": [{"id": 1, "file_name": "img.png"}],\n "annotations": [',
    "top-level-array": [_IMG],
}


def _case_image(path: Path) -> None:
    Image.new("RGB", CASE_SIZE, (90, 120, 150)).save(path)


def make_annotations(root: Path) -> None:
    """One folder per format with a 100 x 80 PNG per case beside its annotation file."""
    for fmt, cases, suffix in (("voc", VOC_CASES, ".xml"), ("yolo", YOLO_CASES, ".txt")):
        folder = root / fmt
        folder.mkdir(parents=True, exist_ok=True)
        for stem, data in cases.items():
            _case_image(folder / f"{stem}.png")
            (folder / f"{stem}{suffix}").write_bytes(data)
    (root / "yolo" / "classes.txt").write_bytes(YOLO_CLASSES)
    folder = root / "labelme"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, doc in LABELME_CASES.items():
        _case_image(folder / f"{stem}.png")
        data = doc if isinstance(doc, bytes) else json.dumps(doc, indent=1).encode()
        (folder / f"{stem}.json").write_bytes(data)
    for name, doc in COCO_CASES.items():
        folder = root / f"coco-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        _case_image(folder / "img.png")
        text = doc if isinstance(doc, str) else json.dumps(doc, indent=1)
        (folder / "annotations.json").write_text(text, encoding="utf-8")


# -- weights ---------------------------------------------------------------------------------
class _Exploit:
    """Unpickling this calls ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def make_weights(folder: Path) -> None:
    """Broken and foreign weights files (imports torch; ~1 s)."""
    import pickle

    import torch

    from rpn_core.anchors.grid import AnchorConfig
    from rpn_core.rpn.config import RPNConfig
    from rpn_core.rpn.loading import save_weights
    from rpn_core.rpn.model import RPNModel
    from rpn_core.rpn.weights import write_weights

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = RPNModel(RPNConfig(), device="cpu")
    save_weights(model, folder / "good.safetensors", {"note": "reference"})
    data = (folder / "good.safetensors").read_bytes()
    (folder / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (folder / "truncated-header.safetensors").write_bytes(data[:5])
    state = dict(model.state_dict())
    key = (
        "rpn.head.conv.0.0.weight"
        if "rpn.head.conv.0.0.weight" in state
        else next(k for k in state if k.startswith("rpn.head") and k.endswith("weight"))
    )
    state[key] = torch.zeros(tuple(s + 1 for s in state[key].shape))
    write_weights(folder / "wrong-shapes.safetensors", state, model.config.to_dict(), {})
    other = RPNConfig(anchors=AnchorConfig(sizes=(32.0, 64.0, 128.0, 256.0)))
    save_weights(RPNModel(other, device="cpu"), folder / "other-anchors.safetensors", {})
    marker = str(folder / EXPLOIT_MARKER)
    (folder / "exploit.pkl").write_bytes(pickle.dumps({"weights": _Exploit(marker)}, protocol=4))
    # A torch.save file (zip + pickle), named like safetensors to get past suffix checks.
    torch.save({"weights": _Exploit(marker)}, folder / "exploit.safetensors")
    torch.save({"weights": _Exploit(marker)}, folder / "exploit.pt")
    make_hostile_configs(folder, folder / "good.safetensors")


# -- round 2 (issue 16): what an independent hostile corpus still broke ------------------------
BELL_NAME = "nul_free_\x07bell.jpg"  # a control character XML cannot carry
LATIN1_NAME = os.fsdecode(b"latin1_\xe9t\xe9.jpg")  # not UTF-8: a lone surrogate in Python
LONG_STEM = "s" * 251  # image name of 255 bytes: its labelme .json name (256) cannot exist
SAVE_STEM = "t" * 240  # the .json name is legal (245); the old ".<name>.XXXXXXXX.tmp" was not
YOLO_ID_CASES: dict[str, bytes] = {  # each has one absurd line and the good dog
    "huge-id": b"99999999999 0.5 0.5 0.2 0.2\n" + GOOD_YOLO,
    "float-huge-id": b"1e300 0.5 0.5 0.2 0.2\n" + GOOD_YOLO,
    "five-million": b"5000000 0.5 0.5 0.2 0.2\n" + GOOD_YOLO,
    "float-id": b"1.0 0.5 0.5 0.2 0.2\n" + GOOD_YOLO,
}
SURROGATE_LABELME = "a\ud800"  # legal JSON ("a\\ud800"), not encodable as UTF-8
SURROGATE_COCO = "\ud800cat"
PIXEL_BOMB_SIZE = (30000, 30000)  # 900 MP: above Pillow's own refusal (2 x 400 MP)
BUDGET_BOMB_SIZE = (19999, 20000)  # 400 MP, under the pixel limit; 16-bit RGBA = 3.2 GB
HOSTILE_CONFIGS: dict[str, tuple[str, object]] = {
    # name -> (where: "header" or "sidecar", what replaces the config or its labels)
    "min-side-60000": ("header", {"min_side": 60000, "max_side": 60000}),
    "head-depth-1e7": ("header", {"head_conv_depth": 1e7}),
    "labels-int": ("sidecar", {"labels": 5}),
    "labels-list": ("sidecar", {"labels": []}),
    "labels-fg-iou-text": ("sidecar", {"labels": {"fg_iou": "x"}}),
}


def png_rows(width: int, height: int, rows: int, *, colour: int = 2, depth: int = 8) -> bytes:
    """A PNG with valid chunks whose zlib stream holds only ``rows`` of its ``height`` rows."""
    samples = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    row = b"\x00" + bytes(range(256)) * (width * samples * depth // 8 // 256 + 1)
    row = row[: 1 + width * samples * depth // 8]
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(row * rows))
        + _png_chunk(b"IEND", b"")
    )


def make_round2(root: Path) -> None:
    """The regular-file cases of issue 16 under ``root`` (FIFOs etc.: :func:`make_special`)."""
    folder = root / "truncated"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "half-rows.png").write_bytes(png_rows(64, 48, 24))
    for name, progressive in (("cut-half.jpg", False), ("cut-half-progressive.jpg", True)):
        data = _encode(_noise(64, 48, 5), "JPEG", quality=90, progressive=progressive)
        (folder / name).write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    (folder / "complete.jpg").write_bytes(_encode(_noise(64, 48, 6), "JPEG", quality=90))
    bombs = root / "bombs"
    bombs.mkdir(parents=True, exist_ok=True)
    (bombs / "900mp.png").write_bytes(png_bomb(*PIXEL_BOMB_SIZE))
    w, h = BUDGET_BOMB_SIZE
    (bombs / "rgba16-400mp.png").write_bytes(png_rows(w, h, 1, colour=6, depth=16))

    names = root / "names"
    names.mkdir(parents=True, exist_ok=True)
    for name in (BELL_NAME, LATIN1_NAME):
        _noise(40, 30, 7).save(names / name, format="JPEG")

    folder = root / "yolo-ids"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_bytes(YOLO_CLASSES)
    for stem, data in YOLO_ID_CASES.items():
        _case_image(folder / f"{stem}.png")
        (folder / f"{stem}.txt").write_bytes(data)

    folder = root / "labelme-surrogate"
    folder.mkdir(parents=True, exist_ok=True)
    _case_image(folder / "img.png")
    rect = {**_RECT, "label": SURROGATE_LABELME}
    doc = {"shapes": [rect], "imageWidth": 100, "imageHeight": 80, "imagePath": "img.png"}
    (folder / "img.json").write_text(json.dumps(doc), encoding="ascii")  # "a\\ud800"
    folder = root / "coco-surrogate"
    folder.mkdir(parents=True, exist_ok=True)
    _case_image(folder / "img.png")
    coco = {
        "images": [_IMG],
        "annotations": [_GOOD_ANN],
        "categories": [{"id": 1, "name": SURROGATE_COCO}],
    }
    (folder / "annotations.json").write_text(json.dumps(coco), encoding="ascii")

    folder = root / "long-names"
    folder.mkdir(parents=True, exist_ok=True)
    for stem in (LONG_STEM, SAVE_STEM):
        _case_image(folder / f"{stem}.png")

    folder = root / "voc-utf16"
    folder.mkdir(parents=True, exist_ok=True)
    _case_image(folder / "img.png")
    text = voc_xml("img.png", CASE_SIZE, [GOOD_VOC]).decode()
    (folder / "img.xml").write_bytes(
        ('<?xml version="1.0" encoding="UTF-16"?>\n' + text).encode("utf-16")
    )


def make_special(root: Path) -> dict[str, Path]:
    """Non-regular files where a regular one is expected: FIFOs named like annotations,
    images and weights, ``/dev/zero`` behind annotation and weights names, a folder named
    ``.safetensors``. POSIX only (``os.mkfifo``). Returns ``{case: path}``.

    Never copy or hash this folder naively: reading a FIFO blocks until a writer comes."""
    made: dict[str, Path] = {}
    for fmt, suffix in (("voc", ".xml"), ("labelme", ".json"), ("yolo", ".txt")):
        folder = root / fmt
        folder.mkdir(parents=True, exist_ok=True)
        _case_image(folder / "img.png")
        os.mkfifo(folder / f"img{suffix}")
        made[f"{fmt}-fifo"] = folder / f"img{suffix}"
        if fmt == "yolo":
            (folder / "classes.txt").write_bytes(YOLO_CLASSES)
    folder = root / "voc-zero"
    folder.mkdir(parents=True, exist_ok=True)
    _case_image(folder / "img.png")
    (folder / "img.xml").symlink_to("/dev/zero")
    made["voc-dev-zero"] = folder / "img.xml"
    folder = root / "coco-zero"
    folder.mkdir(parents=True, exist_ok=True)
    _case_image(folder / "img.png")
    (folder / "annotations.json").symlink_to("/dev/zero")
    made["coco-dev-zero"] = folder / "annotations.json"
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / "fifo.jpg")
    made["image-fifo"] = folder / "fifo.jpg"
    (folder / "zero.png").symlink_to("/dev/zero")
    made["image-dev-zero"] = folder / "zero.png"
    folder = root / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / "fifo.safetensors")
    made["weights-fifo"] = folder / "fifo.safetensors"
    (folder / "dir.safetensors").mkdir()
    made["weights-dir"] = folder / "dir.safetensors"
    (folder / "zero.safetensors").symlink_to("/dev/zero")
    made["weights-dev-zero"] = folder / "zero.safetensors"
    return made


def make_hostile_configs(folder: Path, good: Path) -> None:
    """Weights whose tensors are ``good``'s but whose RPN configuration is hostile
    (:data:`HOSTILE_CONFIGS`), in the safetensors header or in a valid-sha256 sidecar."""
    from safetensors.torch import load, save

    from rpn_core.rpn.weights import FORMAT, FORMAT_VERSION

    state = load(good.read_bytes())
    config = json.loads(good.with_suffix(".json").read_text())["config"]
    for name, (where, change) in HOSTILE_CONFIGS.items():
        bad = {**config, **change}
        header_config = bad if where == "header" else config
        data = save(state, metadata={"format": FORMAT, "config": json.dumps(header_config)})
        (folder / f"{name}.safetensors").write_bytes(data)
        if where == "sidecar":
            side = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "config": bad,
                "metadata": {},
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            (folder / f"{name}.json").write_text(json.dumps(side))


def make_corpus(root: str | Path, *, weights: bool = True) -> Path:
    """Write the whole corpus under ``root`` and return it."""
    root = Path(root)
    make_images(root / "images")
    make_annotations(root)
    make_round2(root / "round2")
    if weights:
        make_weights(root / "weights")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the corpus into")
    parser.add_argument("--no-weights", action="store_true", help="skip the weights (no torch)")
    args = parser.parse_args(argv)
    make_corpus(args.out, weights=not args.no_weights)
    if hasattr(os, "mkfifo"):
        make_special(args.out / "special")
    print(f"corpus written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
