"""labelme JSON: rectangles (2 or 4 points) in, other shapes and keys kept, fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpn_core.annotation.data import AnnotationReadError, Box, ImageAnnotation
from rpn_core.annotation.formats.labelme import format_labelme, parse_labelme
from rpn_core.annotation.formats.voc import format_voc, parse_voc

# As labelme 5 saves it (LabelFile.save: json.dump(..., ensure_ascii=False, indent=2)); the
# rectangle's corners are in drag order (bottom-right first here), the 4-point rectangle is
# how some exporters write it, and the polygon/circle must be kept untouched.
LABELME = {
    "version": "5.5.0",
    "flags": {"blurry": False},
    "shapes": [
        {"label": "cat", "points": [[120.5, 80.25], [30.0, 10.0]], "group_id": None,
         "description": "", "shape_type": "rectangle", "flags": {}, "mask": None},
        {"label": "tail", "points": [[1, 2], [3, 4], [5, 1]], "group_id": 1,
         "description": "curly", "shape_type": "polygon", "flags": {}, "mask": None},
        {"label": "eye", "points": [[10, 10], [12, 12]], "group_id": None, "description": "",
         "shape_type": "circle", "flags": {}, "mask": None},
        {"label": "box4", "points": [[10, 10], [50, 10], [50, 40], [10, 40]], "group_id": 2,
         "description": "from CVAT", "shape_type": "rectangle", "flags": {"x": True},
         "mask": None},
    ],
    "imagePath": "..\\images\\cat.jpg",
    "imageData": None,
    "imageHeight": 100,
    "imageWidth": 200,
    "lineColor": [0, 255, 0, 128],
}


def read(obj_or_bytes, width: int = 0, height: int = 0):
    data = obj_or_bytes if isinstance(obj_or_bytes, bytes) else json.dumps(obj_or_bytes).encode()
    return parse_labelme(data, path="cat.json", image_path="cat.jpg", width=width, height=height)


def test_rectangles_are_read_in_the_house_convention():
    ann = read(LABELME)
    # Corners (120.5, 80.25) and (30, 10) -> (min x, min y, max x, max y) = (30, 10, 120.5, 80.25).
    assert ann.boxes[0].xyxy == (30, 10, 120.5, 80.25) and ann.boxes[0].label == "cat"
    assert ann.boxes[1].xyxy == (10, 10, 50, 40) and ann.boxes[1].label == "box4"
    assert (ann.width, ann.height) == (200, 100)
    assert sum("not a box" in w for w in ann.warnings) == 2  # polygon and circle reported


def test_other_shapes_and_keys_are_written_back_untouched():
    ann = read(LABELME)
    ann.boxes.append(Box(1, 1, 5, 5, "new", difficult=True))
    ann.verified = True
    out = json.loads(format_labelme(ann, image_rel="cat.jpg"))
    assert [s for s in out["shapes"] if s["shape_type"] != "rectangle"] == LABELME["shapes"][1:3]
    box4 = next(s for s in out["shapes"] if s["label"] == "box4")
    assert box4["group_id"] == 2 and box4["description"] == "from CVAT"
    assert box4["points"] == [[10, 10], [50, 40]]  # rewritten as labelme's two corners
    new = next(s for s in out["shapes"] if s["label"] == "new")
    assert new["difficult"] is True and new["points"] == [[1, 1], [5, 5]]
    for key in ("version", "flags", "imageData", "lineColor"):
        assert out[key] == LABELME[key]
    assert out["imagePath"] == "cat.jpg"  # recomputed relative to where the JSON is written
    assert out["rpn_studio"] == {"verified": True}
    again = read(json.dumps(out).encode())
    assert again.verified and again.same_content(ann)


def test_per_box_keys_ride_on_the_box_and_other_formats_ignore_them():
    box4 = read(LABELME).boxes[1]
    # Kept on the box, but not part of its value: it equals (and hashes as) the bare box.
    assert box4.extra == {"labelme": {"group_id": 2, "description": "from CVAT",
                                      "flags": {"x": True}, "mask": None}}
    assert box4 == Box(10, 10, 50, 40, "box4") and hash(box4) == hash(Box(10, 10, 50, 40, "box4"))
    # Saved as VOC: its labelme keys are not VOC elements; written as a plain object.
    voc = format_voc(ImageAnnotation("cat.jpg", 200, 100, [box4]))
    assert b"group_id" not in voc and b"from CVAT" not in voc
    # A box read from VOC with a <pose>, saved as labelme: labelme's defaults, no <pose>.
    xml = (b"<annotation><object><name>dog</name><pose>Left</pose><bndbox><xmin>1</xmin>"
           b"<ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    dog = parse_voc(xml, path="a.xml", image_path="a.jpg", width=20, height=20).boxes[0]
    assert dog.format_extra("voc")[0].text == "Left"
    (shape,) = json.loads(format_labelme(ImageAnnotation("a.jpg", 20, 20, [dog]),
                                         image_rel="a.jpg"))["shapes"]
    # devkit (1, 1, 9, 9) -> (0, 0, 9, 9).
    assert shape == {"label": "dog", "points": [[0, 0], [9, 9]], "group_id": None,
                     "description": "", "shape_type": "rectangle", "flags": {}, "mask": None}


def test_new_file_has_labelme_keys():
    ann = ImageAnnotation("a.jpg", 30, 20, [Box(0, 0, 3, 4, "x")])
    out = json.loads(format_labelme(ann, image_rel="a.jpg"))
    assert out["imagePath"] == "a.jpg" and out["imageData"] is None
    assert (out["imageWidth"], out["imageHeight"]) == (30, 20)
    shape = out["shapes"][0]
    assert shape["shape_type"] == "rectangle" and shape["points"] == [[0, 0], [3, 4]]
    assert set(shape) >= {"label", "points", "group_id", "description", "flags", "mask"}


def test_bad_shapes_are_skipped_with_their_index():
    doc = {"shapes": [
        {"label": "ok", "points": [[0, 0], [4, 4]], "shape_type": "rectangle"},
        {"label": "three", "points": [[0, 0], [4, 4], [5, 5]], "shape_type": "rectangle"},
        {"label": "nan", "points": [[0, 0], ["nan", 4]], "shape_type": "rectangle"},
        {"label": 5, "points": [[0, 0], [4, 4]], "shape_type": "rectangle"},
        {"label": "flat", "points": [[0, 0], [4, 0]], "shape_type": "rectangle"},
        "junk",
    ]}
    ann = read(doc, width=10, height=10)
    assert ann.labels == ["ok"]
    for k in range(1, 6):
        assert any(f"shapes[{k}]" in w for w in ann.warnings), k
    out = json.loads(format_labelme(ann, image_rel="cat.jpg"))
    assert out["shapes"][1:] == doc["shapes"][1:]  # the bad ones are kept as they were


@pytest.mark.parametrize(
    "data, reason",
    [(b"", "invalid JSON"), (b'{"shapes": [}', "invalid JSON"), (b"[]", "JSON list"),
     (b'{"shapes": {}}', "'shapes' is not a list"), (b"\xff\xfe\xfa", "invalid JSON"),
     (b'{"shapes": [], "x": ' + b"[" * 500 + b"]" * 500 + b"}", "nested deeper than 64")],
)
def test_unparseable_files_raise_read_errors(data, reason):
    with pytest.raises(AnnotationReadError) as info:
        read(data)
    assert reason in info.value.reason and info.value.path.name == "cat.json"


# -- properties -----------------------------------------------------------------------------

JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 50), st.floats(), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=12,
)


@st.composite
def labelmeish(draw) -> bytes:
    shapes = []
    for _ in range(draw(st.integers(0, 4))):
        shape = {"label": draw(st.one_of(st.text(max_size=4), JSONISH)),
                 "points": draw(st.one_of(
                     st.lists(st.lists(st.one_of(st.floats(), st.integers(-5, 50), JSONISH),
                                       min_size=1, max_size=3), max_size=5), JSONISH)),
                 "shape_type": draw(st.sampled_from(["rectangle", "polygon", "circle", 3]))}
        shapes.append(shape)
    doc = {"shapes": shapes, "imageWidth": draw(JSONISH), "imageHeight": draw(JSONISH)}
    return json.dumps(doc).encode()


@given(st.one_of(st.binary(max_size=200), labelmeish()))
def test_any_bytes_give_valid_boxes_or_a_read_error(data):
    try:
        ann = read(data)
    except AnnotationReadError:
        return
    assert all(b.is_valid() for b in ann.boxes)


@st.composite
def annotations(draw) -> ImageAnnotation:
    w, h = draw(st.integers(1, 5000)), draw(st.integers(1, 5000))
    boxes = []
    for _ in range(draw(st.integers(0, 5))):
        x1, y1 = draw(st.floats(0, w - 1)), draw(st.floats(0, h - 1))
        x2 = draw(st.floats(x1, w, exclude_min=True))
        y2 = draw(st.floats(y1, h, exclude_min=True))
        label = draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8))
        boxes.append(Box(x1, y1, x2, y2, label, draw(st.booleans()), draw(st.booleans())))
    return ImageAnnotation("img.jpg", w, h, boxes, verified=draw(st.booleans()))


@given(annotations())
def test_write_read_round_trip(ann):
    back = read(format_labelme(ann, image_rel="img.jpg"))
    assert back.same_content(ann) and back.warnings == []
    assert back.boxes == ann.boxes  # labels, difficult and truncated included
