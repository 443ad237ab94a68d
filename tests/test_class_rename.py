"""Renaming a class in a whole folder: real files written, read back and compared per format.

Every image is a real 60 x 40 PNG (the rename reads each image's upright size from its header,
as the app does). A malformed file is reported by name and left byte-identical.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from rpn_core.annotation.class_rename import plan_class_rename, rename_class
from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.annotation.formats import open_store

W, H = 60, 40


def images(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        Image.new("RGB", (W, H), (90, 120, 30)).save(folder / name)
        paths.append(folder / name)
    return paths


def voc_xml(*objects) -> bytes:
    """A labelImg-style VOC file (devkit coordinates: 1-based xmin/ymin)."""
    body = "".join(
        f"<object><name>{name}</name>{extra}<truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>"
        "</object>"
        for name, (x1, y1, x2, y2), extra in objects
    )
    return (
        f"<annotation><folder>imgs</folder><filename>x.png</filename><size><width>{W}</width>"
        f"<height>{H}</height><depth>3</depth></size>{body}</annotation>"
    ).encode()


def test_voc_files_are_rewritten_and_a_malformed_one_is_reported_and_kept(tmp_path):
    a, b, c, d = images(tmp_path, "a.png", "b.png", "c.png", "d.png")
    files = {p: p.with_suffix(".xml") for p in (a, b, c, d)}
    files[a].write_bytes(voc_xml(("dog", (1, 1, 10, 10), "")))  # the open image: excluded
    files[b].write_bytes(
        voc_xml(("dog", (11, 6, 30, 20), "<pose>Left</pose>"), ("cat", (31, 1, 50, 30), ""))
    )
    files[c].write_bytes(b"<annotation><object><name>dog</name>")  # truncated XML
    files[d].write_bytes(voc_xml(("cat", (2, 2, 9, 9), "")))  # no dog: not rewritten
    before = {p: f.read_bytes() for p, f in files.items()}
    store = open_store(tmp_path, "voc")

    result = rename_class(store, [a, b, c, d], "dog", "puppy", exclude=[a])

    assert result.images == [b] and result.boxes == 1 and result.files == [files[b]]
    assert len(result.errors) == 1
    assert "c.xml" in result.errors[0] and "malformed XML" in result.errors[0]
    for p in (a, c, d):
        assert files[p].read_bytes() == before[p]
    assert result.backups == {} and not list(tmp_path.glob("*.bak*"))
    got = open_store(tmp_path, "voc").load(b, width=W, height=H)
    # devkit: x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax -> (10, 5, 30, 20), (30, 0, 50, 30)
    assert got.boxes == [Box(10, 5, 30, 20, "puppy"), Box(30, 0, 50, 30, "cat")]
    assert got.warnings == []
    objects = ET.fromstring(files[b].read_bytes()).findall("object")
    # The renamed box's per-box data (<pose>) moved along with it.
    assert [(o.findtext("name"), o.findtext("pose")) for o in objects] == [
        ("puppy", "Left"),
        ("cat", None),
    ]
    assert "puppy" in store.classes and "dog" not in store.classes


def test_labelme_rectangles_are_renamed_with_their_keys_and_a_partly_bad_file_is_backed_up(
    tmp_path,
):
    a, b, c = images(tmp_path, "a.png", "b.png", "c.png")
    rect = {"shape_type": "rectangle", "flags": {}, "mask": None, "description": ""}
    polygon = {"label": "dog", "points": [[1, 1], [5, 1], [3, 4]], "group_id": None,
               "description": "", "shape_type": "polygon", "flags": {}, "mask": None}
    doc_a = {"version": "5.5.0", "flags": {}, "imagePath": "a.png", "imageData": None,
             "imageWidth": W, "imageHeight": H,
             "shapes": [{"label": "dog", "points": [[4, 3], [24, 13]], "group_id": 7, **rect},
                        polygon]}
    doc_b = {"version": "5.5.0", "flags": {}, "imagePath": "b.png", "imageData": None,
             "imageWidth": W, "imageHeight": H,
             "shapes": [{"label": "cat", "points": [[0, 0], [10, 10]], "group_id": None, **rect},
                        {"label": "dog", "points": [[30, 5], [50, 25]], "group_id": None, **rect}]}
    a.with_suffix(".json").write_text(json.dumps(doc_a))
    b.with_suffix(".json").write_text(json.dumps(doc_b))
    bad = c.with_suffix(".json")
    bad.write_bytes(b'{"shapes": [{"label": "dog",')  # cut off mid-file
    bad_before = bad.read_bytes()

    result = rename_class(open_store(tmp_path, "labelme"), [a, b, c], "dog", "puppy")

    assert result.images == [a, b] and result.boxes == 2
    assert result.files == [a.with_suffix(".json"), b.with_suffix(".json")]
    assert len(result.errors) == 1 and "c.json" in result.errors[0]
    assert bad.read_bytes() == bad_before
    # a.json was read with a warning (the polygon is not a box): backed up before the rewrite.
    backup = tmp_path / "a.json.bak"
    assert result.backups == {a.with_suffix(".json"): backup}
    assert json.loads(backup.read_text()) == doc_a
    out_a = json.loads(a.with_suffix(".json").read_text())
    (renamed,) = [s for s in out_a["shapes"] if s["shape_type"] == "rectangle"]
    assert renamed["label"] == "puppy" and renamed["group_id"] == 7  # its keys moved along
    assert renamed["points"] == [[4, 3], [24, 13]]
    assert polygon in out_a["shapes"]  # non-box shapes are kept untouched, label included
    out_b = json.loads(b.with_suffix(".json").read_text())
    assert [(s["label"], s["points"]) for s in out_b["shapes"]] == [
        ("cat", [[0, 0], [10, 10]]),
        ("puppy", [[30, 5], [50, 25]]),
    ]


def test_yolo_renames_the_class_map_at_the_same_id_and_leaves_label_files_alone(tmp_path):
    a, b, c, d = images(tmp_path, "a.png", "b.png", "c.png", "d.png")
    classes = tmp_path / "classes.txt"
    classes.write_text("cat\ndog\nbird\n")
    labels = {
        a: b"1 0.500000 0.500000 0.500000 0.500000\n0 0.250000 0.250000 0.100000 0.100000\n",
        b: b"1 0.200000 0.300000 0.100000 0.200000\n",
        c: b"\xff\xfe1 0.5 0.5 0.1 0.1\n",  # not UTF-8
    }
    for image, data in labels.items():
        image.with_suffix(".txt").write_bytes(data)
    store = open_store(tmp_path, "yolo")

    plan = plan_class_rename(store, [a, b, c, d], "dog", "puppy", exclude=[a])
    assert plan.images == [b] and plan.boxes == 1 and plan.files == [classes]
    assert classes.read_text() == "cat\ndog\nbird\n"  # planning writes nothing

    result = rename_class(store, [a, b, c, d], "dog", "puppy", exclude=[a])

    assert classes.read_text() == "cat\npuppy\nbird\n"  # same line, so the same id 1
    assert result.files == [classes] and result.images == [b] and result.boxes == 1
    assert len(result.errors) == 1 and "c.txt" in result.errors[0] and "UTF-8" in result.errors[0]
    for image, data in labels.items():
        assert image.with_suffix(".txt").read_bytes() == data
    fresh = open_store(tmp_path, "yolo")
    assert fresh.load(a, width=W, height=H).labels == ["puppy", "cat"]  # excluded a follows too
    # A new box of the renamed class is written with its old id.
    store.save(ImageAnnotation(d, W, H, [Box(0, 0, 30, 20, "puppy")]))
    # centre (15, 10) / (60, 40) = (0.25, 0.25); size 30/60 = 0.5, 20/40 = 0.5
    assert d.with_suffix(".txt").read_text() == "1 0.250000 0.250000 0.500000 0.500000\n"
    assert classes.read_text() == "cat\npuppy\nbird\n"


def test_coco_renames_the_category_in_place_and_keeps_every_annotation(tmp_path):
    a, b = images(tmp_path, "a.png", "b.png")
    doc = {
        "info": {"description": "CVAT"},
        "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H},
                   {"id": 2, "file_name": "b.png", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "cat", "supercategory": ""},
                       {"id": 7, "name": "dog", "supercategory": "animal"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 7, "bbox": [1, 2, 10, 20], "area": 200,
             "iscrowd": 0, "segmentation": [[1, 2, 11, 2, 11, 22]]},
            {"id": 11, "image_id": 2, "category_id": 7, "bbox": [5, 5, 5, 5], "area": 25,
             "iscrowd": 0, "segmentation": []},
            {"id": 12, "image_id": 2, "category_id": 1, "bbox": [0, 0, 4, 4], "area": 16,
             "iscrowd": 0, "segmentation": []},
        ],
    }
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(doc))
    store = open_store(tmp_path, "coco")

    result = rename_class(store, [a, b], "dog", "puppy", exclude=[a])

    assert result.files == [path] and result.errors == []
    assert result.images == [b] and result.boxes == 1  # a is excluded from the count only
    out = json.loads(path.read_text())
    assert out["categories"] == [{"id": 1, "name": "cat", "supercategory": ""},
                                 {"id": 7, "name": "puppy", "supercategory": "animal"}]
    assert out["annotations"] == doc["annotations"] and out["images"] == doc["images"]
    assert out["info"] == doc["info"]
    fresh = open_store(tmp_path, "coco")
    assert fresh.load(a, width=W, height=H).labels == ["puppy"]
    assert fresh.load(b, width=W, height=H).labels == ["puppy", "cat"]


def test_unreadable_coco_file_is_reported_and_not_written(tmp_path):
    (a,) = images(tmp_path, "a.png")
    path = tmp_path / "annotations.json"
    path.write_bytes(b'{"images": [], "annotations": [')
    result = rename_class(open_store(tmp_path, "coco"), [a], "dog", "puppy")
    assert result.files == [] and result.images == []
    assert len(result.errors) == 1 and "annotations.json" in result.errors[0]
    assert path.read_bytes() == b'{"images": [], "annotations": ['


def test_merging_into_an_existing_class_is_refused_before_anything_is_written(tmp_path):
    a, b = images(tmp_path, "a.png", "b.png")
    a.with_suffix(".xml").write_bytes(voc_xml(("dog", (1, 1, 10, 10), "")))
    b.with_suffix(".xml").write_bytes(voc_xml(("puppy", (1, 1, 10, 10), "")))
    before = a.with_suffix(".xml").read_bytes()
    with pytest.raises(ValueError, match=r"'puppy' is already a label in 1 image\(s\) \(b.png\)"):
        rename_class(open_store(tmp_path, "voc"), [a, b], "dog", "puppy")
    assert a.with_suffix(".xml").read_bytes() == before

    yolo_dir = tmp_path / "yolo"
    (c,) = images(yolo_dir, "c.png")
    (yolo_dir / "classes.txt").write_text("cat\ndog\n")
    with pytest.raises(ValueError, match="'cat' already exists"):
        rename_class(open_store(yolo_dir, "yolo"), [c], "dog", "cat")
    assert (yolo_dir / "classes.txt").read_text() == "cat\ndog\n"


@pytest.mark.parametrize("new", ["", "  ", "a\nb", "dog"])
def test_bad_new_names_are_refused(tmp_path, new):
    (a,) = images(tmp_path, "a.png")
    with pytest.raises(ValueError):
        plan_class_rename(open_store(tmp_path, "voc"), [a], "dog", new)


def test_an_image_sharing_the_excluded_images_file_is_not_rewritten(tmp_path):
    """a.png and a.jpg share a.xml (as in labelImg): excluding one protects the file."""
    png, jpg = images(tmp_path, "a.png", "a.jpg")
    xml = tmp_path / "a.xml"
    xml.write_bytes(voc_xml(("dog", (1, 1, 10, 10), "")))
    result = rename_class(open_store(tmp_path, "voc"), [png, jpg], "dog", "puppy", exclude=[png])
    assert result.files == [] and xml.read_bytes() == voc_xml(("dog", (1, 1, 10, 10), ""))
