"""YOLO txt + classes.txt: golden conversions, append-only class map, partial reads."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpn_core.annotation.data import AnnotationReadError, Box, ImageAnnotation
from rpn_core.annotation.formats.yolo import (
    format_classes,
    format_yolo,
    label_ids,
    parse_classes,
    parse_yolo,
)


def read(data: bytes, classes=("cat", "dog"), width: int = 200, height: int = 100):
    return parse_yolo(
        data, path="a.txt", image_path="a.jpg", width=width, height=height, classes=list(classes)
    )


def test_golden_read():
    # 200 x 100 image, "0 0.5 0.5 0.2 0.4": x1 = (0.5 - 0.1) * 200 = 80, x2 = (0.5 + 0.1) * 200
    # = 120, y1 = (0.5 - 0.2) * 100 = 30, y2 = (0.5 + 0.2) * 100 = 70.
    ann = read(b"0 0.5 0.5 0.2 0.4\n1 0.25 0.75 0.5 0.5\n")
    assert ann.boxes[0].xyxy == pytest.approx((80, 30, 120, 70))
    # "1 0.25 0.75 0.5 0.5": x1 = (0.25 - 0.25) * 200 = 0, x2 = 100, y1 = 50, y2 = 100.
    assert ann.boxes[1].xyxy == pytest.approx((0, 50, 100, 100))
    assert ann.labels == ["cat", "dog"] and ann.warnings == []


def test_golden_write_matches_labelimg_formatting():
    ann = ImageAnnotation("a.jpg", 200, 100, [Box(80, 30, 120, 70, "dog")])
    data, classes = format_yolo(ann, ["cat", "dog"])
    # cx = (80 + 120) / 2 / 200 = 0.5, cy = (30 + 70) / 2 / 100 = 0.5, w = 40 / 200 = 0.2,
    # h = 40 / 100 = 0.4; six decimals like labelImg's "%d %.6f %.6f %.6f %.6f".
    assert data == b"1 0.500000 0.500000 0.200000 0.400000\n"
    assert classes == ["cat", "dog"]


def test_ultralytics_and_windows_line_endings_are_read():
    # ultralytics writes "%g" values; Windows tools add \r\n and a BOM.
    ann = read(b"\xef\xbb\xbf0 0.5 0.5 0.2 0.4\r\n\r\n1 0.1 0.1 0.2 0.2\r\n")
    assert len(ann.boxes) == 2 and ann.warnings == []


def test_class_map_is_append_only():
    ann = ImageAnnotation("a.jpg", 10, 10, [Box(0, 0, 5, 5, "a"), Box(1, 1, 6, 6, "c")])
    data, classes = format_yolo(ann, ["b", "a"])
    assert classes == ["b", "a", "c"]  # existing ids untouched, "c" appended as id 2
    assert [line.split()[0] for line in data.decode().splitlines()] == ["1", "2"]


def test_unknown_class_id_is_reported_kept_and_written_back_with_the_same_id():
    ann = read(b"7 0.5 0.5 0.2 0.2\n")
    assert ann.labels == ["7"]
    assert "class id 7" in ann.warnings[0] and "line 1" in ann.warnings[0]
    data, classes = format_yolo(ann, ["cat", "dog"])
    assert data.startswith(b"7 ")
    # Placeholders keep ids 2..6 free of meaning; 7 keeps its id.
    assert classes == ["cat", "dog", "2", "3", "4", "5", "6", "7"]
    index, _ = label_ids(["7"], classes)
    assert index["7"] == 7


def test_partial_read_names_each_bad_line():
    data = (
        b"0 0.5 0.5 0.2 0.2\n"  # 1 ok
        b"0 nan 0.5 0.2 0.2\n"  # 2 NaN
        b"0 0.5 0.5 0.2\n"  # 3 too few
        b"0 0.5 0.5 0.2 0.2 0.9\n"  # 4 too many (a prediction with a score)
        b"-1 0.5 0.5 0.2 0.2\n"  # 5 negative id
        b"0 1.5 0.5 0.2 0.2\n"  # 6 out of range
        b"x 0.5 0.5 0.2 0.2\n"  # 7 non-numeric id
        b"0 0.5 0.5 -0.2 0.2\n"  # 8 negative size
        b"1 0.95 0.5 0.2 0.2\n"  # 9 ok but overshoots: x2 = 1.05 * 200 = 210 -> clamped to 200
    )
    ann = read(data)
    assert ann.labels == ["cat", "dog"]
    assert ann.boxes[1].x2 == 200
    for n in range(2, 10):
        assert any(f"line {n}:" in w for w in ann.warnings), n
    assert not any("line 1:" in w for w in ann.warnings)


def test_size_is_required_and_bad_text_is_a_read_error():
    with pytest.raises(AnnotationReadError, match="image size unknown"):
        read(b"0 0.5 0.5 0.1 0.1\n", width=0, height=0)
    with pytest.raises(AnnotationReadError, match="UTF-8"):
        read(b"\xff\xfe\x00bad")


def test_classes_file_keeps_ids_for_blank_and_duplicate_lines():
    names, warnings = parse_classes(b"cat\n\ndog\ncat\n", "classes.txt")
    assert names == ["cat", "", "dog", "cat"]
    assert any("line 2" in w for w in warnings) and any("line 4" in w for w in warnings)
    assert parse_classes(format_classes(names), "c.txt")[0] == names


def test_class_names_with_line_breaks_are_refused():
    with pytest.raises(ValueError, match="line break"):
        label_ids(["two\nlines"], [])


# -- properties -----------------------------------------------------------------------------

NUM = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=5),
                st.integers(-3, 12).map(str))


@st.composite
def yololike(draw) -> bytes:
    count = draw(st.integers(0, 5))
    lines = [" ".join(draw(st.lists(NUM, min_size=3, max_size=7))) for _ in range(count)]
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@given(st.one_of(st.binary(max_size=200), yololike()), st.integers(1, 5000), st.integers(1, 5000))
def test_any_bytes_give_valid_boxes_or_a_read_error(data, w, h):
    try:
        ann = read(data, width=w, height=h)
    except AnnotationReadError:
        return
    assert all(b.is_valid() and b.x2 <= w and b.y2 <= h and b.x1 >= 0 for b in ann.boxes)


@st.composite
def annotations(draw) -> ImageAnnotation:
    w, h = draw(st.integers(1, 8000)), draw(st.integers(1, 8000))
    boxes = []
    for _ in range(draw(st.integers(0, 6))):
        x1 = draw(st.floats(0, w - 1))
        y1 = draw(st.floats(0, h - 1))
        x2 = draw(st.floats(min(x1 + 1, w), w))
        y2 = draw(st.floats(min(y1 + 1, h), h))
        labels = ["cat", "dog", "7", "é v", "form\x0cfeed", " padded ", ""]
        boxes.append(Box(x1, y1, x2, y2, draw(st.sampled_from(labels))))
    return ImageAnnotation("a.jpg", w, h, boxes)


@given(annotations(), st.lists(st.sampled_from(["cat", "dog", "bird"]), unique=True))
def test_write_read_round_trip(ann, classes):
    data, new_classes = format_yolo(ann, classes)
    assert new_classes[: len(classes)] == classes  # append-only
    back = parse_yolo(data, path="a.txt", image_path="a.jpg", width=ann.width,
                      height=ann.height, classes=new_classes)
    assert back.labels == ann.labels
    # Six decimals of a value normalised by W: error <= 0.5e-6 * W per centre/size term.
    tol = 1.1e-6 * max(ann.width, ann.height)
    for a, b in zip(ann.boxes, back.boxes, strict=True):
        assert all(math.isclose(u, v, abs_tol=tol) for u, v in zip(a.xyxy, b.xyxy, strict=True))
