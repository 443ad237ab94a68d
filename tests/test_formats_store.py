"""AnnotationStore: detection, load/save per format, damage memory, backups, failed saves."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rpn_core import atomic
from rpn_core.annotation.data import AnnotationReadError, AnnotationWriteError, Box, ImageAnnotation
from rpn_core.annotation.formats import FORMATS, detect_format, open_store

BOXES = [Box(1, 2, 30, 20, "cat"), Box(40, 10, 60, 40, "dog", difficult=True)]


def make_images(folder, names=("a.jpg", "b.jpg")):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"not decoded by the store")
    return [folder / n for n in names]


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_through_the_store_and_detection(tmp_path, fmt):
    a, b = make_images(tmp_path)
    assert detect_format(tmp_path) is None
    store = open_store(tmp_path, fmt)
    assert not store.has_annotation(a)
    empty = store.load(a, width=60, height=40)
    assert empty.boxes == [] and (empty.width, empty.height) == (60, 40)
    store.save(ImageAnnotation(a, 60, 40, list(BOXES)))
    store.save(ImageAnnotation(b, 60, 40, [Box(0, 0, 60, 40, "bird")]))
    assert detect_format(tmp_path) == fmt
    fresh = open_store(tmp_path, fmt)
    assert fresh.has_annotation(a)
    got = fresh.load(a, width=60, height=40)
    assert [bx.label for bx in got.boxes] == ["cat", "dog"] and got.warnings == []
    np.testing.assert_allclose(got.boxes_array(), [b.xyxy for b in BOXES], atol=1e-4)
    assert fresh.load(b, width=60, height=40).labels == ["bird"]
    assert set(fresh.classes) == {"cat", "dog", "bird"}
    assert store.backups == {} and not list(tmp_path.glob("*.bak*"))


def test_damaged_file_raises_is_remembered_and_backed_up_once(tmp_path):
    (a,) = make_images(tmp_path, ["a.jpg"])
    xml = tmp_path / "a.xml"
    xml.write_bytes(b"<annotation><object>")
    store = open_store(tmp_path, "voc")
    with pytest.raises(AnnotationReadError) as info:
        store.load(a, width=60, height=40)
    assert info.value.path == xml and store.is_damaged(a)
    store.save(ImageAnnotation(a, 60, 40, [BOXES[0]]))
    assert (tmp_path / "a.xml.bak").read_bytes() == b"<annotation><object>"
    assert store.backups == {xml: tmp_path / "a.xml.bak"} and not store.is_damaged(a)
    store.save(ImageAnnotation(a, 60, 40, list(BOXES)))  # no second backup
    assert sorted(p.name for p in tmp_path.glob("a.xml*")) == ["a.xml", "a.xml.bak"]
    assert len(store.load(a, width=60, height=40).boxes) == 2


def test_partially_bad_and_foreign_files_are_backed_up_but_clean_ones_are_not(tmp_path):
    a, b = make_images(tmp_path)
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n0 nan 0 0 0\n")
    (tmp_path / "b.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    store = open_store(tmp_path, "yolo")
    ann = store.load(a, width=100, height=100)
    assert len(ann.boxes) == 1 and "line 2" in ann.warnings[0] and store.is_damaged(a)
    store.save(ann)
    assert (tmp_path / "a.txt.bak").read_text().endswith("nan 0 0 0\n")
    clean = store.load(b, width=100, height=100)
    store.save(clean)
    assert not (tmp_path / "b.txt.bak").exists()
    # A file that was never loaded through the store is foreign: backed up before overwrite.
    other = open_store(tmp_path, "yolo")
    other.save(ImageAnnotation(b, 100, 100, [Box(0, 0, 10, 10, "dog")]))
    assert (tmp_path / "b.txt.bak").exists()


def test_failed_save_keeps_the_old_file_and_raises_typed_error(tmp_path, monkeypatch):
    (a,) = make_images(tmp_path, ["a.jpg"])
    store = open_store(tmp_path, "labelme")
    store.save(ImageAnnotation(a, 60, 40, [BOXES[0]]))
    before = (tmp_path / "a.json").read_bytes()

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(AnnotationWriteError) as info:
        store.save(ImageAnnotation(a, 60, 40, list(BOXES)))
    assert info.value.path == tmp_path / "a.json" and "Permission denied" in info.value.reason
    assert (tmp_path / "a.json").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.jpg", "a.json"]


def test_unrepresentable_labels_are_typed_write_errors(tmp_path):
    (a,) = make_images(tmp_path, ["a.jpg"])
    with pytest.raises(AnnotationWriteError, match="XML cannot hold"):
        open_store(tmp_path, "voc").save(ImageAnnotation(a, 9, 9, [Box(0, 0, 1, 1, "a\x00")]))
    with pytest.raises(AnnotationWriteError, match="line break"):
        open_store(tmp_path, "yolo").save(ImageAnnotation(a, 9, 9, [Box(0, 0, 1, 1, "a\nb")]))
    nan_box = Box(float("nan"), 0, 1, 1, "x")
    for fmt in FORMATS:
        with pytest.raises(AnnotationWriteError, match="non-finite"):
            open_store(tmp_path, fmt).save(ImageAnnotation(a, 9, 9, [nan_box]))
    assert os.listdir(tmp_path) == ["a.jpg"]


def test_yolo_class_map_is_append_only_across_saves(tmp_path):
    a, b = make_images(tmp_path)
    (tmp_path / "classes.txt").write_text("dog\ncat\n")
    store = open_store(tmp_path, "yolo")
    store.save(ImageAnnotation(a, 10, 10, [Box(0, 0, 5, 5, "cat"), Box(0, 0, 5, 5, "ant")]))
    store.save(ImageAnnotation(b, 10, 10, [Box(0, 0, 5, 5, "bee")]))
    assert (tmp_path / "classes.txt").read_text() == "dog\ncat\nant\nbee\n"
    assert [line.split()[0] for line in (tmp_path / "a.txt").read_text().splitlines()] == ["1", "2"]
    assert store.classes == ["dog", "cat", "ant", "bee"]
    store.add_class("eel")  # e.g. added in the app's class list, used by no box yet
    store.save(ImageAnnotation(b, 10, 10, [Box(0, 0, 5, 5, "bee")]))
    assert (tmp_path / "classes.txt").read_text() == "dog\ncat\nant\nbee\neel\n"


def test_yolo_refuses_to_save_over_an_unreadable_class_map(tmp_path):
    (a,) = make_images(tmp_path, ["a.jpg"])
    (tmp_path / "classes.txt").write_bytes(b"\xff\xfe\xfd")
    store = open_store(tmp_path, "yolo")
    assert any("UTF-8" in w for w in store.warnings)
    with pytest.raises(AnnotationWriteError, match="class map"):
        store.save(ImageAnnotation(a, 10, 10, [Box(0, 0, 5, 5, "x")]))
    assert (tmp_path / "classes.txt").read_bytes() == b"\xff\xfe\xfd"


def test_coco_store_keeps_other_images_and_rereads_external_changes(tmp_path):
    a, b = make_images(tmp_path)
    store = open_store(tmp_path, "coco")
    store.save(ImageAnnotation(a, 60, 40, list(BOXES)))
    store.save(ImageAnnotation(b, 60, 40, [Box(0, 0, 6, 4, "cat")]))
    doc = json.loads((tmp_path / "annotations.json").read_text())
    assert [im["file_name"] for im in doc["images"]] == ["a.jpg", "b.jpg"]
    assert len(doc["annotations"]) == 3
    # Another tool edits the file: the store notices (mtime/size) and re-reads it.
    doc["annotations"] = [x for x in doc["annotations"] if x["image_id"] != 2]
    (tmp_path / "annotations.json").write_text(json.dumps(doc))
    os.utime(tmp_path / "annotations.json", ns=(1, 1))
    assert store.load(b, width=60, height=40).boxes == []
    assert len(store.load(a, width=60, height=40).boxes) == 2


def test_damaged_coco_file(tmp_path):
    a, b = make_images(tmp_path)
    (tmp_path / "annotations.json").write_text('{"images": [')
    store = open_store(tmp_path, "coco")
    for image in (a, b):
        with pytest.raises(AnnotationReadError, match="invalid JSON"):
            store.load(image, width=10, height=10)
    store.save(ImageAnnotation(a, 10, 10, [Box(0, 0, 5, 5, "x")]))
    assert (tmp_path / "annotations.json.bak").read_text() == '{"images": ['
    assert store.load(a, width=10, height=10).labels == ["x"]


def test_annotations_in_another_folder_mirror_sub_folders(tmp_path):
    images = tmp_path / "images"
    (sub,) = make_images(images / "sub", ["s.jpg"])
    out = tmp_path / "labels"
    store = open_store(out, "labelme", image_root=images)
    assert store.annotation_path(sub) == out / "sub" / "s.json"
    store.save(ImageAnnotation(sub, 10, 10, [Box(0, 0, 5, 5, "x")]))
    doc = json.loads((out / "sub" / "s.json").read_text())
    assert doc["imagePath"] == "../../images/sub/s.jpg"  # relative to the JSON, as labelme does
    coco = open_store(out, "coco", image_root=images)
    coco.save(ImageAnnotation(sub, 10, 10, [Box(0, 0, 5, 5, "x")]))
    assert json.loads((out / "annotations.json").read_text())["images"][0]["file_name"] == (
        "sub/s.jpg"
    )


def test_detect_format_prefers_the_most_common_and_finds_cvat_coco(tmp_path):
    make_images(tmp_path, ["a.jpg", "b.jpg", "c.jpg"])
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_default.json").write_text(
        json.dumps({"images": [], "annotations": [], "categories": []})
    )
    assert detect_format(tmp_path) == "coco"
    store = open_store(tmp_path, "coco")
    assert store.annotation_path(tmp_path / "a.jpg").name == "instances_default.json"
    with pytest.raises(ValueError, match="unknown annotation format"):
        open_store(tmp_path, "pascal")


def test_cvat_yolo_export_with_obj_names_in_the_parent(tmp_path):
    # CVAT "YOLO 1.1": obj.names and obj.data at the top, labels beside the frames in
    # obj_train_data/, lines "%d %.6f %.6f %.6f %.6f".
    (tmp_path / "obj.names").write_text("car\nperson\n")
    (tmp_path / "obj.data").write_text("classes = 2\nnames = data/obj.names\n")
    frames = tmp_path / "obj_train_data"
    (frame,) = make_images(frames, ["frame_000000.jpg"])
    (frames / "frame_000000.txt").write_text("1 0.250000 0.500000 0.100000 0.200000\n")
    assert detect_format(frames) == "yolo"
    store = open_store(frames, "yolo")
    ann = store.load(frame, width=640, height=480)
    # cx 0.25 * 640 = 160, w 0.1 * 640 = 64 -> x 128..192; cy 0.5 * 480 = 240, h 96 -> 192..288.
    assert ann.labels == ["person"] and ann.boxes[0].xyxy == pytest.approx((128, 192, 192, 288))
    ann.boxes.append(Box(0, 0, 10, 10, "bus"))
    store.save(ann)
    assert (tmp_path / "obj.names").read_text() == "car\nperson\nbus\n"  # appended in place
    assert not (frames / "classes.txt").exists()
