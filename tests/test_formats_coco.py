"""COCO JSON: golden bbox conversion, pycocotools interop, CVAT files, stable ids, fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycocotools.coco import COCO

from rpn_core.annotation.data import AnnotationReadError, Box, ImageAnnotation
from rpn_core.annotation.formats.coco import CocoDocument, parse_coco

# What CVAT's "COCO 1.0" export writes (bare file names, empty segmentation, attributes).
CVAT_COCO = {
    "licenses": [{"name": "", "id": 0, "url": ""}],
    "info": {
        "contributor": "",
        "date_created": "",
        "description": "",
        "url": "",
        "version": "",
        "year": "",
    },
    "categories": [
        {"id": 1, "name": "car", "supercategory": ""},
        {"id": 2, "name": "person", "supercategory": ""},
    ],
    "images": [
        {
            "id": 1,
            "width": 640,
            "height": 480,
            "file_name": "frame_000000.jpg",
            "license": 0,
            "flickr_url": "",
            "coco_url": "",
            "date_captured": 0,
        },
        {
            "id": 2,
            "width": 640,
            "height": 480,
            "file_name": "frame_000001.jpg",
            "license": 0,
            "flickr_url": "",
            "coco_url": "",
            "date_captured": 0,
        },
    ],
    "annotations": [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "segmentation": [],
            "area": 1200.0,
            "bbox": [10.0, 20.0, 30.0, 40.0],
            "iscrowd": 0,
            "attributes": {"occluded": False, "rotation": 0.0},
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 2,
            "segmentation": [],
            "area": 100.0,
            "bbox": [100.5, 50.25, 10.0, 10.0],
            "iscrowd": 1,
            "attributes": {"occluded": True},
        },
        {
            "id": 3,
            "image_id": 2,
            "category_id": 1,
            "segmentation": [],
            "area": 4.0,
            "bbox": [0, 0, 2, 2],
            "iscrowd": 0,
        },
    ],
}


def doc_from(obj) -> CocoDocument:
    return parse_coco(json.dumps(obj).encode(), path="instances_default.json")


def test_golden_read_of_a_cvat_export():
    coco = doc_from(CVAT_COCO)
    ann = coco.annotation_for("images/frame_000000.jpg", "images/frame_000000.jpg", 640, 480)
    # [x, y, w, h] = [10, 20, 30, 40] -> (x1, y1, x2, y2) = (10, 20, 10 + 30, 20 + 40).
    assert ann.boxes[0].xyxy == (10, 20, 40, 60) and ann.boxes[0].label == "car"
    # [100.5, 50.25, 10, 10] -> (100.5, 50.25, 110.5, 60.25); iscrowd = 1 -> difficult.
    assert ann.boxes[1].xyxy == (100.5, 50.25, 110.5, 60.25) and ann.boxes[1].difficult
    assert ann.warnings == [] and coco.warnings == []


def test_unedited_entries_keep_unknown_fields_and_other_images(tmp_path):
    coco = doc_from(CVAT_COCO)
    ann = coco.annotation_for("frame_000000.jpg", "frame_000000.jpg", 640, 480)
    ann.boxes.append(Box(1, 2, 3, 4, "bicycle"))
    coco.set_annotation("frame_000000.jpg", ann)
    out = json.loads(coco.to_bytes())
    assert out["licenses"] == CVAT_COCO["licenses"] and out["info"] == CVAT_COCO["info"]
    assert out["images"] == CVAT_COCO["images"]
    by_id = {a["id"]: a for a in out["annotations"]}
    assert by_id[1]["attributes"] == {"occluded": False, "rotation": 0.0}
    assert by_id[3] == CVAT_COCO["annotations"][2]  # the other image's box, untouched
    new = by_id[4]  # max id 3 + 1
    # (1, 2, 3, 4) -> bbox [1, 2, 3 - 1, 4 - 2] = [1, 2, 2, 2], area 4.
    assert new["bbox"] == [1, 2, 2, 2] and new["area"] == 4 and new["iscrowd"] == 0
    # Stable category ids: car 1, person 2 unchanged; bicycle gets max + 1 = 3.
    assert {c["name"]: c["id"] for c in out["categories"]} == {"car": 1, "person": 2, "bicycle": 3}
    assert new["category_id"] == 3


def test_pycocotools_loads_our_output_with_the_right_boxes(tmp_path):
    coco = CocoDocument(tmp_path / "annotations.json")
    coco.set_annotation(
        "a.jpg",
        ImageAnnotation(
            "a.jpg",
            100,
            80,
            [Box(10, 20, 40, 60, "cat"), Box(0, 0, 100, 80, "dog", difficult=True)],
        ),
    )
    coco.set_annotation(
        "sub/b.png", ImageAnnotation("sub/b.png", 50, 50, [Box(5.5, 6.25, 7.5, 9.25, "cat")])
    )
    path = tmp_path / "annotations.json"
    path.write_bytes(coco.to_bytes())
    api = COCO(str(path))
    assert sorted(api.getImgIds()) == [1, 2]
    cat = api.getCatIds(catNms=["cat"])[0]
    boxes = {
        api.imgs[a["image_id"]]["file_name"]: a["bbox"]
        for a in api.loadAnns(api.getAnnIds(catIds=[cat]))
    }
    # (10, 20, 40, 60) -> [10, 20, 30, 40]; (5.5, 6.25, 7.5, 9.25) -> [5.5, 6.25, 2, 3].
    assert boxes == {"a.jpg": [10, 20, 30, 40], "sub/b.png": [5.5, 6.25, 2.0, 3.0]}
    crowd = api.loadAnns(api.getAnnIds(iscrowd=True))
    assert [a["bbox"] for a in crowd if a["iscrowd"]] == [[0, 0, 100, 80]]


def test_partial_read_reports_keys_and_ids():
    bad = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 10, "height": 10},
            {"id": 1, "file_name": "dup.jpg"},
            {"file_name": "noid.jpg"},
            "junk",
        ],
        "categories": [{"id": 1, "name": "x"}, {"name": "noid"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]},
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 2, 2]},
            {"id": 2, "image_id": 99, "category_id": 1, "bbox": [1, 1, 2, 2]},
            {"id": 3, "image_id": 1, "category_id": 1},
            {"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 1, "nan", 2]},
            {"id": 5, "image_id": 1, "category_id": 5, "bbox": [1, 1, -2, 2]},
            {"id": 6, "image_id": 1, "category_id": 42, "bbox": [0, 0, 3, 3]},
        ],
    }
    coco = doc_from(bad)
    file_level = "\n".join(coco.warnings)
    for part in (
        "images[1]: duplicate id 1",
        "images[2]: missing 'id'",
        "images[3]",
        "categories[1]: missing 'id'",
        "annotations[2]: unknown image_id 99",
    ):
        assert part in file_level, part
    ann = coco.annotation_for("a.jpg", "a.jpg", 10, 10)
    assert [b.xyxy for b in ann.boxes] == [(1, 1, 3, 3), (2, 2, 4, 4), (0, 0, 3, 3)]
    assert ann.boxes[2].label == "42"
    text = "\n".join(ann.warnings)
    for part in (
        "annotations[1]: duplicate id 1",
        "annotations[3]: skipped",
        "annotations[4]: skipped",
        "annotations[5]: skipped",
        "annotations[6]: unknown category_id 42",
    ):
        assert part in text, part
    # Writing back: the unknown-image annotation survives, the duplicate id is renumbered.
    coco.set_annotation("a.jpg", ann)
    out = json.loads(coco.to_bytes())
    ids = [a["id"] for a in out["annotations"]]
    assert len(ids) == len(set(ids)) and any(a["image_id"] == 99 for a in out["annotations"])
    assert {c["name"]: c["id"] for c in out["categories"]}["42"] == 42


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "top level is a JSON list"),
        (b'{"images": 3}', "'images' is not a list"),
        (b'{"info": {}}', "not a COCO file"),
        (b"[" * 100_000, "invalid JSON"),
    ],
)
def test_unparseable_files_raise_read_errors(data, reason):
    with pytest.raises(AnnotationReadError) as info:
        parse_coco(data, path="c.json")
    assert reason in info.value.reason


def test_invalid_json_error_names_line_and_column():
    with pytest.raises(AnnotationReadError) as info:
        parse_coco(b'{\n "images": [\n  {"id": 1,,}\n]}', path="c.json")
    # Line 3 is '  {"id": 1,,}': two spaces, then '{"id": 1,' fills columns 3-11, so the
    # second comma is at column 12.
    assert info.value.location == "line 3, column 12"


# -- properties -----------------------------------------------------------------------------

JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(), st.text(max_size=6)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
KEY_VALUES = st.one_of(JSONISH, st.integers(0, 3), st.sampled_from(["a.jpg", "cat"]))


@st.composite
def cocoish(draw) -> dict:
    def entry(keys):
        return {k: draw(KEY_VALUES) for k in keys if draw(st.booleans()) or k == "id"}

    return {
        "images": [
            entry(("id", "file_name", "width", "height")) for _ in range(draw(st.integers(0, 3)))
        ],
        "categories": [entry(("id", "name")) for _ in range(draw(st.integers(0, 3)))],
        "annotations": [
            entry(("id", "image_id", "category_id", "bbox", "iscrowd"))
            for _ in range(draw(st.integers(0, 4)))
        ],
    }


@given(st.one_of(st.binary(max_size=200), cocoish().map(lambda d: json.dumps(d).encode())))
def test_any_bytes_give_valid_boxes_or_a_read_error(data):
    try:
        coco = parse_coco(data, path="c.json")
        anns = [coco.annotation_for(im["file_name"], "x.jpg", 0, 0) for im in coco.images]
    except AnnotationReadError:
        return
    assert all(b.is_valid() for ann in anns for b in ann.boxes)
    coco.set_annotation("new.jpg", ImageAnnotation("new.jpg", 5, 5, [Box(0, 0, 1, 1, "z")]))
    json.loads(coco.to_bytes())


LABEL = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


@st.composite
def annotations(draw) -> ImageAnnotation:
    w, h = draw(st.integers(1, 5000)), draw(st.integers(1, 5000))
    boxes = []
    for _ in range(draw(st.integers(0, 5))):
        x1, y1 = draw(st.floats(0, w - 1)), draw(st.floats(0, h - 1))
        # Choose w, h so that x1 + w lands exactly on a float that reads back as x2.
        bw, bh = draw(st.integers(1, w)), draw(st.integers(1, h))
        x2, y2 = min(x1 + bw, w), min(y1 + bh, h)
        boxes.append(Box(x1, y1, x2, y2, draw(LABEL), draw(st.booleans()), draw(st.booleans())))
    return ImageAnnotation("img.jpg", w, h, boxes)


@given(st.lists(annotations(), min_size=1, max_size=3))
def test_write_read_round_trip(anns):
    coco = CocoDocument("c.json")
    for k, ann in enumerate(anns):
        coco.set_annotation(f"dir/{k}.jpg", ann)
    back = parse_coco(coco.to_bytes(), path="c.json")
    for k, ann in enumerate(anns):
        got = back.annotation_for(f"dir/{k}.jpg", f"dir/{k}.jpg", ann.width, ann.height)
        assert got.labels == ann.labels and got.warnings == []
        for a, b in zip(ann.boxes, got.boxes, strict=True):
            # x2 is rebuilt as x + w, exact up to one rounding of the float sum.
            assert b.xyxy == pytest.approx(a.xyxy, abs=1e-9 * ann.width + 1e-9)
            assert (b.difficult, b.truncated) == (a.difficult, a.truncated)


def test_warnings_name_file_positions_before_and_list_positions_after_an_edit():
    """The index keeps each annotation's place in the file (an entry that is not an object is
    dropped on read, so later places differ from list positions) until the list is edited;
    then warnings name the place the entry will have in the file written next."""
    raw = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [
            "junk",
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [1, 1, -2, 2]},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 3, 3]},
        ],
    }
    coco = doc_from(raw)
    b = coco.annotation_for("b.jpg", "b.jpg", 10, 10)
    assert [x.xyxy for x in b.boxes] == [(0, 0, 3, 3)]
    assert any("annotations[2]: skipped" in w for w in b.warnings), b.warnings
    a = coco.annotation_for("a.jpg", "a.jpg", 10, 10)
    coco.set_annotation("a.jpg", a)  # list now: b's two entries, then a's
    assert [e["id"] for e in json.loads(coco.to_bytes())["annotations"]] == [2, 3, 1]
    b = coco.annotation_for("b.jpg", "b.jpg", 10, 10)
    assert any("annotations[0]: skipped" in w for w in b.warnings), b.warnings
    coco.set_annotation("c.jpg", ImageAnnotation("c.jpg", 5, 5, [Box(0, 0, 1, 1, "x")]))
    assert coco.find_image("c.jpg")["id"] == 3  # a new image entry is found at once


def test_a_box_keeps_its_id_unless_another_annotation_has_it():
    raw = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [
            {"id": -7, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]},
            {"id": -9, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2]},
            {"id": -5, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2]},
        ],
    }
    coco = doc_from(raw)
    a = coco.annotation_for("a.jpg", "a.jpg", 10, 10)
    taken = Box(0, 0, 1, 1, "x", extra={"coco": {"id": -9}})  # b's annotation has -9
    a.boxes += [taken, Box(0, 0, 2, 2, "x"), Box(0, 0, 3, 3, "x", extra={"coco": {"id": 40}})]
    coco.set_annotation("a.jpg", a)
    ids = [e["id"] for e in json.loads(coco.to_bytes())["annotations"] if e["image_id"] == 1]
    # -7 kept; the highest other id is -5 (b's): -9 is taken -> -4, the new box -> -3; 40 kept.
    assert ids == [-7, -4, -3, 40]


def test_an_edit_of_a_big_file_allocates_nothing_per_annotation_at_once():
    """Issue 16: the autosave of a 100 MB COCO file (750,000 annotations) on the store thread
    still froze the GUI 157-299 ms. Its index held a tuple per annotation, dropped after each
    edit -- freeing 750,000 tuples is one C call holding the GIL about 100 ms -- and the ids
    in use were a set of every id, built and subtracted (``set - {None}``) in single C calls.
    Now the index keeps positions in arrays (a few objects per *image*) and only the ids the
    edited boxes would keep are collected: neither grows with the file's annotations."""
    import gc
    import sys
    import tracemalloc

    n_images, n = 50, 100_000
    raw = {
        "images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(1, n_images + 1)],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [
            {"id": k + 1, "image_id": 1 + k % n_images, "category_id": 1, "bbox": [1, 1, 2, 2]}
            for k in range(n)
        ],
    }
    coco = doc_from(raw)
    gc.disable()
    try:
        before = sys.getallocatedblocks()
        ann = coco.annotation_for("1.jpg", "1.jpg", 10, 10)  # builds the index
        index_blocks = sys.getallocatedblocks() - before - 12 * len(ann.boxes)
        ann.boxes.append(Box(0, 0, 5, 5, "x"))
        tracemalloc.start()
        coco.set_annotation("1.jpg", ann)
        _now, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        gc.enable()
    assert index_blocks < 10 * n_images, index_blocks  # was about one per annotation
    # The one per-annotation structure is the new list of annotations (a pointer each; it
    # grows by reallocation, so old and new buffers may coexist). A set of every id alone
    # takes over 5 times its size (the peak was 11 times it).
    assert peak < 4 * sys.getsizeof(coco.annotations), peak / sys.getsizeof(coco.annotations)
