"""Pascal VOC XML: both conventions, labelImg/CVAT interop, partial reads, hostile XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpn_core.annotation.data import AnnotationReadError, Box, ImageAnnotation
from rpn_core.annotation.formats.voc import format_voc, parse_voc

# Exactly what labelImg (HumanSignal/labelImg, pascal_voc_io.py) writes: lxml pretty print
# with tabs, no XML declaration for UTF-8, verified="yes" on the root, the absolute <path>,
# <pose>/<truncated>/<difficult> per object, and xmin/ymin never below 1 (0 is written as 1).
LABELIMG_XML = b"""<annotation verified="yes">
\t<folder>images</folder>
\t<filename>cat.jpg</filename>
\t<path>/home/user/images/cat.jpg</path>
\t<source>
\t\t<database>Unknown</database>
\t</source>
\t<size>
\t\t<width>500</width>
\t\t<height>375</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>cat</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>1</xmin>
\t\t\t<ymin>48</ymin>
\t\t\t<xmax>200</xmax>
\t\t\t<ymax>375</ymax>
\t\t</bndbox>
\t</object>
\t<object>
\t\t<name>dog</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>1</difficult>
\t\t<bndbox>
\t\t\t<xmin>210</xmin>
\t\t\t<ymin>60</ymin>
\t\t\t<xmax>480</xmax>
\t\t\t<ymax>300</ymax>
\t\t</bndbox>
\t</object>
</annotation>
"""

# CVAT's "PASCAL VOC 1.1" export (datumaro): unshifted float corners, <occluded>, <attributes>.
CVAT_XML = b"""<?xml version="1.0" encoding="utf-8"?>
<annotation>
  <folder></folder>
  <filename>frame_000000.jpg</filename>
  <source><database>Unknown</database><annotation>Unknown</annotation><image>Unknown</image></source>
  <size><width>640</width><height>480</height><depth></depth></size>
  <segmented>0</segmented>
  <object>
    <name>car</name>
    <occluded>0</occluded>
    <bndbox><xmin>12.5</xmin><ymin>20.25</ymin><xmax>100.0</xmax><ymax>80.75</ymax></bndbox>
    <attributes><attribute><name>rotation</name><value>0.0</value></attribute></attributes>
  </object>
</annotation>
"""


def read(data: bytes, convention: str = "devkit", width: int = 0, height: int = 0):
    return parse_voc(
        data, path="a.xml", image_path="a.jpg", width=width, height=height, convention=convention
    )


def test_labelimg_file_in_both_conventions():
    ann = read(LABELIMG_XML, "labelimg")
    # labelImg values are its 0-based canvas corners: read unshifted.
    assert [b.xyxy for b in ann.boxes] == [(1, 48, 200, 375), (210, 60, 480, 300)]
    assert (ann.width, ann.height, ann.verified) == (500, 375, True)
    assert ann.boxes[0].truncated and not ann.boxes[0].difficult
    assert ann.boxes[1].difficult and ann.labels == ["cat", "dog"]
    assert ann.warnings == []
    # devkit reads the same numbers as 1-based inclusive indices: x1 = xmin - 1 = 0,
    # y1 = 48 - 1 = 47, x2 = xmax = 200, y2 = 375 -> width 200 - 0 = 200 = xmax - xmin + 1.
    assert read(LABELIMG_XML).boxes[0].xyxy == (0, 47, 200, 375)


def test_cvat_export_floats_and_extra_elements_survive_a_round_trip():
    ann = read(CVAT_XML, "labelimg")
    assert ann.boxes[0].xyxy == (12.5, 20.25, 100.0, 80.75)
    out = format_voc(ann, convention="labelimg")
    # Integers on write, half-up: 12.5 -> 13, 20.25 -> 20, 100 -> 100, 80.75 -> 81.
    assert b"<xmin>13</xmin>" in out and b"<ymin>20</ymin>" in out and b"<ymax>81</ymax>" in out
    assert b"<occluded>0</occluded>" in out and b"<name>rotation</name>" in out
    assert b"<annotation>Unknown</annotation>" in out  # <source> kept whole


def test_golden_writes_in_both_conventions():
    ann = ImageAnnotation("img.jpg", 100, 50, [Box(0, 0, 10, 20, "a")])
    devkit, labelimg = format_voc(ann), format_voc(ann, convention="labelimg")
    # devkit: xmin = 0 + 1 = 1, ymin = 1, xmax = 10, ymax = 20 (pixels 1..10 inclusive).
    assert b"<xmin>1</xmin>" in devkit and b"<xmax>10</xmax>" in devkit
    assert b"<ymin>1</ymin>" in devkit and b"<ymax>20</ymax>" in devkit
    # labelimg: the corners as they are (no 0 -> 1 replacement).
    assert b"<xmin>0</xmin>" in labelimg and b"<xmax>10</xmax>" in labelimg
    assert b"<width>100</width>" in devkit and b"<filename>img.jpg</filename>" in devkit
    # A sliver narrower than a pixel is widened to one: 5.2..5.4 -> x1 = 5, x2 = max(5, 6) = 6.
    thin = ImageAnnotation("t.jpg", 100, 50, [Box(5.2, 1, 5.4, 9, "a")])
    assert read(format_voc(thin)).boxes[0].xyxy == (5, 1, 6, 9)


def test_edited_box_keeps_its_own_elements_and_a_new_box_has_none():
    ann = read(LABELIMG_XML.replace(b"<pose>Unspecified</pose>\n\t\t<truncated>0", b"<pose>Left"
                                    b"</pose><occluded>1</occluded>\n\t\t<truncated>0"),
               "labelimg")
    ann.boxes[0] = ann.boxes[0].moved(1, 0)
    ann.boxes[1] = replace(ann.boxes[1], label="puppy")
    ann.boxes.append(Box(10, 10, 20, 20, "new"))
    root = ET.fromstring(format_voc(ann, convention="labelimg"))
    got = [(o.findtext("name"), o.findtext("pose"), o.findtext("occluded"),
            o.findtext("bndbox/xmin")) for o in root.iter("object")]
    # The moved cat: xmin 1 + 1 = 2, its pose kept; the relabelled dog keeps both elements.
    assert got == [("cat", "Unspecified", None, "2"), ("puppy", "Left", "1", "210"),
                   ("new", None, None, "10")]
    assert root.findtext("path") == "/home/user/images/cat.jpg"
    assert root.get("verified") == "yes"


def test_partial_read_skips_bad_objects_with_warnings():
    xml = b"""<annotation><size><width>100</width><height>100</height></size>
    <object><name>ok</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>
    </bndbox></object>
    <object><name>inverted</name><bndbox><xmin>50</xmin><ymin>1</ymin><xmax>9</xmax>
    <ymax>9</ymax></bndbox></object>
    <object><name>nan</name><bndbox><xmin>nan</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>
    </bndbox></object>
    <object><name>nobox</name></object>
    <object><name>outside</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>150</xmax>
    <ymax>9</ymax></bndbox><difficult>maybe</difficult></object>
    </annotation>"""
    ann = read(xml)
    assert ann.labels == ["ok", "outside"]
    assert ann.boxes[1].xyxy == (0, 0, 100, 9)  # clamped to the 100-wide image
    text = "\n".join(ann.warnings)
    for part in ("object #2", "xmin > xmax", "object #3", "'nan'", "object #4", "no <bndbox>",
                 "object #5", "clamped", "'maybe'"):
        assert part in text


def test_image_size_wins_over_the_file_and_the_mismatch_is_reported():
    ann = read(LABELIMG_XML, "labelimg", width=375, height=500)
    assert (ann.width, ann.height) == (375, 500)
    assert any("500x375" in w and "EXIF orientation" in w for w in ann.warnings)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"<annotation><object>", "malformed XML"),
        (b"", "malformed XML"),
        (b"<html><body/></html>", "expected <annotation>"),
        (
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx">'
            b'<!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;&x;&x;">]><annotation>&y;</annotation>',
            "unsafe XML",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b"<annotation><object><name>&e;</name></object></annotation>",
            "unsafe XML",
        ),
    ],
)
def test_unparseable_or_hostile_xml_raises_read_error(data, reason):
    with pytest.raises(AnnotationReadError) as info:
        read(data)
    assert reason in info.value.reason and info.value.path.name == "a.xml"


def test_deeply_nested_xml_is_refused_not_a_crash():
    # 200,000 nested elements: copying such a tree overflows the C stack (a segfault), so the
    # reader refuses anything deeper than 64 levels before touching it.
    n = 200_000
    nested = b"<a>" * n + b"</a>" * n
    deep = b"<annotation><object><pose>" + nested + b"</pose></object></annotation>"
    with pytest.raises(AnnotationReadError, match="nested deeper than 64"):
        read(deep)


def test_broken_xml_error_names_the_line():
    with pytest.raises(AnnotationReadError) as info:
        read(b"<annotation>\n<object>\n<name>x</nam>\n</annotation>")
    assert info.value.location.startswith("line 3")


# -- properties -----------------------------------------------------------------------------

FIELD = st.one_of(
    st.text(max_size=8), st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-10, 10_000).map(str),
)


@st.composite
def xmlish(draw) -> bytes:
    """VOC-shaped documents with arbitrary field contents, sometimes damaged by byte edits."""
    objs = []
    for _ in range(draw(st.integers(0, 4))):
        vals = [draw(FIELD) for _ in range(4)]
        name, diff = draw(FIELD), draw(FIELD)
        tags = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), vals,
                                                          strict=True))
        objs.append(f"<object><name>{name}</name><difficult>{diff}</difficult>"
                    f"<bndbox>{tags}</bndbox></object>")
    size = f"<size><width>{draw(FIELD)}</width><height>{draw(FIELD)}</height></size>"
    data = f"<annotation>{size}{''.join(objs)}</annotation>".encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + draw(st.binary(max_size=4)) + data[pos + draw(st.integers(0, 3)):]
    return data


@given(st.one_of(st.binary(max_size=300), xmlish()))
def test_any_bytes_give_valid_boxes_or_a_read_error(data):
    try:
        ann = read(data, width=0, height=0)
    except AnnotationReadError:
        return
    assert all(b.is_valid() for b in ann.boxes)


LABEL = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Zl", "Zp")), max_size=12
).filter(lambda s: s == s.strip())


@st.composite
def annotations(draw) -> ImageAnnotation:
    w, h = draw(st.integers(1, 4000)), draw(st.integers(1, 4000))
    boxes = []
    for _ in range(draw(st.integers(0, 6))):
        x1, y1 = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
        x2, y2 = draw(st.integers(x1 + 1, w)), draw(st.integers(y1 + 1, h))
        boxes.append(Box(x1, y1, x2, y2, draw(LABEL), draw(st.booleans()), draw(st.booleans())))
    return ImageAnnotation("img.png", w, h, boxes, verified=draw(st.booleans()))


@given(annotations(), st.sampled_from(["devkit", "labelimg"]))
def test_write_read_round_trip(ann, convention):
    back = read(format_voc(ann, convention=convention), convention)
    assert back.same_content(ann) and back.warnings == []
