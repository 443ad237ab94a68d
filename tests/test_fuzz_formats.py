"""Property tests over every reader and writer, through real files (issue 7).

For each annotation format, through :func:`~rpn_core.annotation.formats.folder.open_store`, files
on disk:

* **read**: arbitrary bytes, and format-shaped documents with arbitrary field contents, give
  an annotation whose boxes are valid and inside the image, or an ``AnnotationReadError``
  naming the file -- never another exception;
* **nothing lost**: whatever was read saves (or fails with ``AnnotationWriteError``) and reads
  back with the same number of boxes, the same labels and coordinates within the format's
  precision, and the content we do not edit (labelme's other shapes, COCO's foreign entries)
  kept; a second save is a fixpoint;
* **round trip**: arbitrary valid documents written and read back are equal.

Plus images (mutated PNG/JPEG bytes -> ``LoadedImage`` or ``ImageReadError``) and weights
(mutated safetensors -> tensors or ``WeightsError``). The ``ci`` profile runs 100 examples
per property, ``HYPOTHESIS_PROFILE=fuzz`` 10,000 (see ``docs/hardening.md`` for a run).
Box convention: :mod:`rpn_core.boxes`.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from PIL import Image

from rpn_core.annotation.data import AnnotationReadError, AnnotationWriteError, Box, ImageAnnotation
from rpn_core.annotation.formats.folder import open_store
from rpn_core.images.loading import ImageReadError, load_image

_PROGRESS = os.environ.get("FUZZ_PROGRESS_DIR")  # long runs: one byte per example, per test


def _count(name: str) -> None:
    if _PROGRESS:
        with open(os.path.join(_PROGRESS, name), "ab") as f:
            f.write(b".")


SUFFIX = {"voc": ".xml", "yolo": ".txt", "labelme": ".json", "coco": ".json"}
TOL = {"voc": 1.0, "yolo": 1e-2, "labelme": 0.0, "coco": 1e-9}  # pixels, per coordinate

# -- strategies ----------------------------------------------------------------------------

NUMBER_TEXT = st.one_of(
    st.integers(-50, 5000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-2.0, 2.0).map(lambda v: f"{v:.6f}"),
    st.sampled_from(["", " ", "nan", "-inf", "1e999", "0x10", "1,5", "١٢", "+7", "1_0"]),
)
TEXT = st.text(max_size=10)
FIELD = st.one_of(NUMBER_TEXT, TEXT)
JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(-1e6, 1e6),
    TEXT,
    st.floats(allow_nan=True, allow_infinity=True),
)
JSON_NUMBERISH = st.one_of(st.integers(-50, 300), st.floats(-50, 300), JSON_SCALAR)


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;")


@st.composite
def voc_docs(draw) -> bytes:
    objs = []
    for _ in range(draw(st.integers(0, 5))):
        coords = "".join(
            f"<{t}>{_xml_text(draw(FIELD))}</{t}>" for t in ("xmin", "ymin", "xmax", "ymax")
        )
        extra = draw(st.sampled_from(["", "<pose>Left</pose>", "<occluded>1</occluded>"]))
        objs.append(
            f"<object><name>{_xml_text(draw(TEXT))}</name>{extra}"
            f"<difficult>{_xml_text(draw(FIELD))}</difficult><bndbox>{coords}</bndbox></object>"
        )
    head = draw(st.sampled_from(["", "<source><database>x</database></source>", "<owner/>"]))
    size = "".join(f"<{t}>{_xml_text(draw(FIELD))}</{t}>" for t in ("width", "height"))
    verified = draw(st.sampled_from(["", ' verified="yes"', ' verified="no"']))
    text = f"<annotation{verified}>{head}<size>{size}</size>{''.join(objs)}</annotation>"
    return text.encode("utf-8", "surrogatepass")


@st.composite
def yolo_docs(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        fields = draw(st.lists(st.one_of(NUMBER_TEXT, st.integers(0, 4).map(str)), max_size=7))
        sep = draw(st.sampled_from([" ", "  ", "\t"]))
        lines.append(sep.join(fields))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return end.join(lines).encode("utf-8", "surrogatepass")


SHAPE_TYPES = st.sampled_from(["rectangle", "rectangle", "polygon", "circle", "point", None, 3])


@st.composite
def labelme_docs(draw) -> object:
    shapes = []
    for _ in range(draw(st.integers(0, 5))):
        points = draw(
            st.one_of(
                st.lists(st.lists(JSON_NUMBERISH, min_size=2, max_size=2), max_size=5),
                JSON_SCALAR,
            )
        )
        shape = {"label": draw(st.one_of(TEXT, JSON_SCALAR)), "points": points}
        kind = draw(SHAPE_TYPES)
        if kind is not None:
            shape["shape_type"] = kind
        if draw(st.booleans()):
            shape["group_id"] = draw(JSON_SCALAR)
        shapes.append(shape if draw(st.integers(0, 9)) else draw(JSON_SCALAR))
    doc = {"shapes": shapes}
    for key in draw(st.lists(st.sampled_from(["imageWidth", "imageHeight", "flags", "x"]))):
        doc[key] = draw(JSON_NUMBERISH)
    return doc


@st.composite
def coco_docs(draw) -> object:
    ids = st.one_of(st.integers(0, 4), JSON_SCALAR)
    images = [
        {"id": draw(ids), "file_name": draw(st.sampled_from(["img.png", "b.png", 5]))}
        for _ in range(draw(st.integers(0, 3)))
    ]
    cats = [
        {"id": draw(ids), "name": draw(st.one_of(TEXT, JSON_SCALAR))}
        for _ in range(draw(st.integers(0, 3)))
    ]
    anns = []
    for _ in range(draw(st.integers(0, 5))):
        ann = {
            "id": draw(ids),
            "image_id": draw(ids),
            "category_id": draw(ids),
            "bbox": draw(st.one_of(st.lists(JSON_NUMBERISH, max_size=5), JSON_SCALAR)),
        }
        for key in draw(st.lists(st.sampled_from(list(ann)), max_size=2)):
            ann.pop(key, None)  # missing keys
        if draw(st.booleans()):
            ann["segmentation"] = draw(st.lists(st.integers(0, 99), max_size=4))
        anns.append(ann)
    doc = {"images": images, "annotations": anns, "categories": cats}
    for key in draw(st.lists(st.sampled_from(list(doc)), max_size=1)):
        doc[key] = draw(JSON_SCALAR)  # a wrong type
    return doc


def _json_bytes(strategy) -> st.SearchStrategy[bytes]:
    return strategy.map(lambda d: json.dumps(d, allow_nan=True).encode())


def _damaged(strategy) -> st.SearchStrategy[bytes]:
    """``strategy``'s bytes, sometimes with a few bytes replaced (a crash, a bad sector)."""

    @st.composite
    def build(draw) -> bytes:
        data = draw(strategy)
        if draw(st.booleans()) and data:
            pos = draw(st.integers(0, len(data)))
            data = data[:pos] + draw(st.binary(max_size=3)) + data[pos + draw(st.integers(0, 4)) :]
        return data

    return build()


FILES = {
    "voc": st.one_of(st.binary(max_size=200), _damaged(voc_docs())),
    "yolo": st.one_of(st.binary(max_size=200), _damaged(yolo_docs())),
    "labelme": st.one_of(st.binary(max_size=200), _damaged(_json_bytes(labelme_docs()))),
    "coco": st.one_of(st.binary(max_size=200), _damaged(_json_bytes(coco_docs()))),
}
SIZES = st.tuples(st.integers(1, 3000), st.integers(1, 3000))


# -- read, then save: nothing lost -----------------------------------------------------------


def _setup(folder: Path, fmt: str, data: bytes, classes: bytes | None) -> tuple[Path, Path]:
    image = folder / "img.png"
    target = folder / ("annotations.json" if fmt == "coco" else "img" + SUFFIX[fmt])
    target.write_bytes(data)
    if classes is not None and fmt == "yolo":
        (folder / "classes.txt").write_bytes(classes)
    return image, target


def _check_read(ann: ImageAnnotation, size: tuple[int, int]) -> None:
    w, h = size
    for b in ann.boxes:
        assert b.is_valid(), b
        assert 0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h, (b, size)
        assert isinstance(b.label, str)


def _close(a: list[Box], b: list[Box], tol: float) -> bool:
    if len(a) != len(b):
        return False
    for p, q in zip(a, b, strict=True):
        if p.label != q.label or any(abs(x - y) > tol for x, y in zip(p.xyxy, q.xyxy, strict=True)):
            return False
    return True


def read_save_read(fmt: str, data: bytes, size: tuple[int, int], classes: bytes | None) -> None:
    _count(f"{fmt}-read-save-read")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image, target = _setup(folder, fmt, data, classes)
        store = open_store(folder, fmt)  # never raises for a bad file (COCO reads it here)
        try:
            first = store.load(image, width=size[0], height=size[1])
        except AnnotationReadError as exc:
            assert exc.path in (target, folder / "classes.txt")
            assert str(exc).startswith(str(exc.path))
            return
        _check_read(first, size)
        damaged = store.is_damaged(image)
        assert damaged == bool(first.warnings or (fmt == "coco" and store.warnings))
        try:
            store.save(first)
        except AnnotationWriteError as exc:
            assert exc.path in (target, folder / "classes.txt")
            return
        backup = target.with_name(target.name + ".bak")
        if damaged:  # read with warnings: backed up byte for byte before the overwrite
            assert backup.read_bytes() == data
        else:
            assert not backup.exists()
        second = open_store(folder, fmt).load(image, width=size[0], height=size[1])
        _check_read(second, size)
        assert _close(first.boxes, second.boxes, TOL[fmt]), (first.boxes, second.boxes)
        if fmt == "labelme":
            assert second.extra["labelme"]["shapes"] == first.extra["labelme"]["shapes"]
        open_store(folder, fmt).save(second)
        third = open_store(folder, fmt).load(image, width=size[0], height=size[1])
        assert _close(second.boxes, third.boxes, TOL[fmt] / 2 if fmt == "yolo" else 0.0)


CLASSES = st.one_of(st.none(), st.just(b"cat\ndog\n"), st.binary(max_size=30))


@given(FILES["voc"], SIZES)
def test_voc_read_save_read(data, size):
    read_save_read("voc", data, size, None)


@given(FILES["yolo"], SIZES, CLASSES)
def test_yolo_read_save_read(data, size, classes):
    read_save_read("yolo", data, size, classes)


@given(FILES["labelme"], SIZES)
def test_labelme_read_save_read(data, size):
    read_save_read("labelme", data, size, None)


@given(FILES["coco"], SIZES)
def test_coco_read_save_read(data, size):
    read_save_read("coco", data, size, None)


# -- round trips of valid documents ----------------------------------------------------------

LABELS = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Zl", "Zp")), min_size=1, max_size=10
).filter(lambda s: s == s.strip())


# Found by this test: YOLO wrote six decimals, so a box thinner than 5e-7 of the image (e.g.
# 0.002 px of 5000 px) was written as size 0.000000 and dropped on re-read; fixed in
# rpn_core/annotation/formats/yolo.py (six significant digits for such sizes). Boxes here are at
# least
# MIN_SIDE wide: smaller than that, YOLO's six decimals of the centre move the box more than
# the round trip's tolerance.
MIN_SIDE = 1e-9


@st.composite
def valid_docs(draw, integer: bool) -> ImageAnnotation:
    w, h = draw(st.integers(1, 5000)), draw(st.integers(1, 5000))
    boxes = []
    for _ in range(draw(st.integers(0, 6))):
        if integer:
            x1, y1 = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
            x2, y2 = draw(st.integers(x1 + 1, w)), draw(st.integers(y1 + 1, h))
        else:  # at least MIN_SIDE wide and high (see the note there)
            x1, y1 = draw(st.floats(0, w - MIN_SIDE)), draw(st.floats(0, h - MIN_SIDE))
            x2, y2 = draw(st.floats(x1 + MIN_SIDE, w)), draw(st.floats(y1 + MIN_SIDE, h))
        boxes.append(
            Box(
                float(x1),
                float(y1),
                float(x2),
                float(y2),
                draw(LABELS),
                difficult=draw(st.booleans()),
            )
        )
    return ImageAnnotation("img.png", w, h, boxes)


@pytest.mark.parametrize("fmt", ["voc", "yolo", "labelme", "coco"])
@given(data=st.data())
def test_valid_documents_round_trip_through_files(fmt, data):
    _count(f"{fmt}-round-trip")
    ann = data.draw(valid_docs(integer=fmt == "voc"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ann.image_path = folder / "img.png"
        open_store(folder, fmt).save(ann)
        back = open_store(folder, fmt).load(ann.image_path, width=ann.width, height=ann.height)
    # YOLO: six decimals of the size; COCO: x2 = x + (x2 - x1) may differ by an ulp.
    tol = {"yolo": 1e-6, "coco": 1e-12}.get(fmt, 0.0) * max(ann.width, ann.height)
    assert _close(back.boxes, ann.boxes, tol) and not back.warnings
    if fmt != "yolo":  # YOLO has no difficult flag
        assert [b.difficult for b in back.boxes] == [b.difficult for b in ann.boxes]


# -- images and weights ----------------------------------------------------------------------


def _seed_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    out = []
    for fmt, mode, kw in (
        ("PNG", "RGB", {}),
        ("JPEG", "RGB", {"quality": 80}),
        ("PNG", "P", {}),
        ("PNG", "I;16", {}),
        ("JPEG", "CMYK", {}),
    ):
        im = (
            Image.fromarray(arr).convert(mode)
            if mode not in ("I;16",)
            else Image.fromarray(arr[..., 0].astype(np.uint16) * 257)
        )
        buf = io.BytesIO()
        im.save(buf, format=fmt, **kw)
        out.append(buf.getvalue())
    return out


SEED_IMAGES = _seed_images()


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@given(
    st.one_of(mutated(SEED_IMAGES), st.binary(max_size=100)),
    st.sampled_from([".png", ".jpg", ".tif"]),
)
def test_images_load_or_give_a_typed_error(data, suffix):
    _count("images")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x{suffix}"
        path.write_bytes(data)
        try:
            loaded = load_image(path)
        except ImageReadError as exc:
            assert exc.path == path and exc.reason
            return
        assert loaded.pixels.dtype == np.uint8 and loaded.pixels.ndim == 3
        assert loaded.pixels.shape[2] == 3 and loaded.width >= 1 and loaded.height >= 1
        # Full size, or (a header grown by the mutation) reduced by a whole factor for display.
        h, w = loaded.pixels.shape[:2]
        factors = [
            f for f in range(1, 9) if (h, w) == (-(-loaded.height // f), -(-loaded.width // f))
        ]
        assert factors and (factors[0] == 1) == (loaded.scale == 1.0), (h, w, loaded.scale)
        assert loaded.scale == w / loaded.width


@pytest.fixture(scope="module")
def weights_seed() -> bytes:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save

    g = torch.Generator().manual_seed(0)
    tensors = {"rpn.head.a": torch.randn(3, 4, generator=g), "b": torch.arange(5)}
    return save(tensors, metadata={"config": json.dumps({"anchors": {}})})


@given(data=st.data())
def test_weights_bytes_load_or_give_a_typed_error(weights_seed, data):
    from rpn_core.rpn.weights import WeightsError, read_weights

    _count("weights")
    blob = data.draw(st.one_of(mutated([weights_seed]), st.binary(max_size=64)))
    assume(blob != weights_seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.safetensors"
        path.write_bytes(blob)
        try:
            state, config, _meta = read_weights(path)
        except WeightsError as exc:
            assert exc.path == path and exc.reason
            return
        assert isinstance(config, dict) and isinstance(state, dict)
        assert all(hasattr(v, "shape") for v in state.values())
