"""Per-box format data the app does not model (VOC ``<pose>``, labelme ``group_id``, COCO
annotation ids and segmentation...) follows its box through every edit of the real document and
undo commands -- relabel, move, resize, undo, redo, delete and its undo -- and is written back
on save; a copy of a box starts without it. Real files written and read back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from app_testing import make_folder, open_window
from PySide6.QtCore import Qt

from app.annotate.edit_controller import EditController
from app.state.qdocument import AnnotationDocument
from app.state.undo import (
    DeleteBoxesCommand,
    EditBoxesCommand,
    RelabelBoxesCommand,
    duplicate_command,
    paste_command,
)
from rpn_core.annotation.formats import open_store

W, H = 320, 240  # make_folder's image size

VOC_XML = b"""<annotation>
  <folder>imgs</folder><filename>img0.png</filename>
  <size><width>320</width><height>240</height><depth>3</depth></size>
  <object><name>dog</name><pose>Left</pose><occluded>1</occluded>
    <truncated>0</truncated><difficult>0</difficult>
    <bndbox><xmin>11</xmin><ymin>21</ymin><xmax>110</xmax><ymax>120</ymax></bndbox></object>
  <object><name>cat</name><pose>Frontal</pose>
    <bndbox><xmin>151</xmin><ymin>51</ymin><xmax>200</xmax><ymax>100</ymax></bndbox></object>
</annotation>
"""


def _rect(label, points, **keys):
    shape = {"label": label, "points": points, "group_id": None, "description": "",
             "shape_type": "rectangle", "flags": {}, "mask": None}
    return {**shape, **keys}


# Two rectangles with the same corners and label but their own group_id/description: per-box
# data keyed by (corners, label) could not tell them apart.
LABELME = {
    "version": "5.5.0", "flags": {}, "imagePath": "img0.png", "imageData": None,
    "imageWidth": W, "imageHeight": H,
    "shapes": [
        _rect("dog", [[10, 20], [110, 120]], group_id=3, description="front",
              flags={"occluded": True}),
        _rect("cat", [[150, 50], [200, 100]], group_id=4, description="left twin"),
        _rect("cat", [[150, 50], [200, 100]], group_id=5, description="right twin"),
    ],
}

COCO = {
    "info": {"description": "test"},
    "images": [{"id": 1, "file_name": "img0.png", "width": W, "height": H},
               {"id": 2, "file_name": "img1.png", "width": W, "height": H}],
    "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}],
    "annotations": [
        {"id": 7, "image_id": 1, "category_id": 1, "bbox": [10, 20, 100, 100], "area": 10000,
         "iscrowd": 0, "segmentation": [[10, 20, 110, 20, 60, 120]],
         "attributes": {"occluded": True}},
        {"id": 9, "image_id": 1, "category_id": 2, "bbox": [150, 50, 50, 50], "area": 2500,
         "iscrowd": 0, "segmentation": []},
        {"id": 12, "image_id": 2, "category_id": 2, "bbox": [0, 0, 5, 5], "area": 25,
         "iscrowd": 0, "segmentation": []},
    ],
}


@pytest.fixture
def folder(tmp_path):
    make_folder(tmp_path / "imgs", n=2)
    return tmp_path / "imgs"


def open_doc(folder, fmt):
    """The real document holding img0's annotation as the store reads it, and a save()."""
    store = open_store(folder, fmt)
    doc = AnnotationDocument()
    doc.set_image(None, store.load(folder / "img0.png", width=W, height=H))

    def save():
        open_store(folder, fmt).save(doc.core.copy_annotation())  # a fresh store: a new app

    return doc, save


def voc_objects(folder):
    root = ET.parse(folder / "img0.xml").getroot()
    return [
        (o.findtext("name"), o.findtext("pose"), o.findtext("occluded"),
         tuple(int(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")))
        for o in root.iter("object")
    ]


def labelme_shapes(folder):
    doc = json.loads((folder / "img0.json").read_text())
    return [(s["label"], s["group_id"], s["description"], s["flags"], s["points"])
            for s in doc["shapes"]]


def coco_entries(folder):
    doc = json.loads((folder / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    return [(a["id"], names[a["category_id"]], a["bbox"], a["segmentation"], a.get("attributes"))
            for a in doc["annotations"] if a["image_id"] == 1]


def move(doc, i, dx, dy):
    return EditBoxesCommand(doc, {i: doc.boxes[i].moved(dx, dy)}, "Move box", "move")


def test_voc_pose_follows_relabel_move_undo_redo_and_delete(folder):
    (folder / "img0.xml").write_bytes(VOC_XML)
    doc, save = open_doc(folder, "voc")
    stack = doc.undo_stack
    dog = ("Left", "1")  # the dog's <pose>, <occluded>

    stack.push(RelabelBoxesCommand(doc, [0], "puppy"))
    save()
    # devkit: (11, 21, 110, 120) read as (10, 20, 110, 120), written back the same.
    assert voc_objects(folder) == [("puppy", *dog, (11, 21, 110, 120)),
                                   ("cat", "Frontal", None, (151, 51, 200, 100))]
    stack.push(move(doc, 0, 5, 5))
    stack.push(move(doc, 0, 1, 0))  # merged with the move above: one step of (6, 5)
    save()
    assert voc_objects(folder)[0] == ("puppy", *dog, (17, 26, 116, 125))

    stack.undo()  # the move
    stack.undo()  # the relabel
    save()
    assert voc_objects(folder) == [("dog", *dog, (11, 21, 110, 120)),
                                   ("cat", "Frontal", None, (151, 51, 200, 100))]
    stack.redo()
    stack.redo()
    save()
    assert voc_objects(folder)[0] == ("puppy", *dog, (17, 26, 116, 125))

    stack.push(DeleteBoxesCommand(doc, [0]))
    save()
    assert voc_objects(folder) == [("cat", "Frontal", None, (151, 51, 200, 100))]
    stack.undo()
    save()
    assert voc_objects(folder)[0] == ("puppy", *dog, (17, 26, 116, 125))


def test_core_set_labels_keeps_the_pose(folder):
    (folder / "img0.xml").write_bytes(VOC_XML)
    doc, save = open_doc(folder, "voc")
    old = doc.core.set_labels([0, 1], "animal")
    save()
    assert [o[:3] for o in voc_objects(folder)] == [("animal", "Left", "1"),
                                                    ("animal", "Frontal", None)]
    doc.core.replace_boxes(old)  # the documented undo
    save()
    assert [o[:3] for o in voc_objects(folder)] == [("dog", "Left", "1"),
                                                    ("cat", "Frontal", None)]


def test_labelme_keys_follow_resize_and_relabel_and_twins_keep_their_own(folder):
    (folder / "img0.json").write_text(json.dumps(LABELME))
    doc, save = open_doc(folder, "labelme")
    stack = doc.undo_stack
    dog = (3, "front", {"occluded": True})
    twins = [("cat", 4, "left twin", {}, [[150, 50], [200, 100]]),
             ("cat", 5, "right twin", {}, [[150, 50], [200, 100]])]

    save()  # unedited: each twin keeps its own keys
    assert labelme_shapes(folder) == [("dog", *dog, [[10, 20], [110, 120]]), *twins]
    resized = doc.boxes[0].with_coords(10, 20, 130, 150)
    stack.push(EditBoxesCommand(doc, {0: resized}, "Resize box", "resize"))
    stack.push(RelabelBoxesCommand(doc, [0, 2], "pet"))
    save()
    assert labelme_shapes(folder) == [
        ("pet", *dog, [[10, 20], [130, 150]]),
        twins[0],
        ("pet", 5, "right twin", {}, [[150, 50], [200, 100]]),
    ]
    stack.undo()
    stack.undo()
    save()
    assert labelme_shapes(folder) == [("dog", *dog, [[10, 20], [110, 120]]), *twins]


def test_coco_id_and_segmentation_follow_edits_and_a_copy_gets_a_new_id(folder):
    (folder / "annotations.json").write_text(json.dumps(COCO))
    doc, save = open_doc(folder, "coco")
    stack = doc.undo_stack
    seg, occluded = [[10, 20, 110, 20, 60, 120]], {"occluded": True}

    stack.push(RelabelBoxesCommand(doc, [0], "puppy"))
    stack.push(move(doc, 0, 5, 0))
    save()
    # (10, 20, 110, 120) moved by (5, 0) -> bbox [15, 20, 100, 100]. The segmentation is kept
    # as it was: the app does not edit it (it is not moved with the box).
    assert coco_entries(folder) == [(7, "puppy", [15, 20, 100, 100], seg, occluded),
                                    (9, "cat", [150, 50, 50, 50], [], None)]

    stack.push(duplicate_command(doc, [0]))  # +10 px: (25, 30, 125, 130)
    save()
    # The copy is a new annotation: id max(7, 9, 12) + 1 = 13, no segmentation, no attributes.
    assert coco_entries(folder) == [(7, "puppy", [15, 20, 100, 100], seg, occluded),
                                    (9, "cat", [150, 50, 50, 50], [], None),
                                    (13, "puppy", [25, 30, 100, 100], [], None)]
    stack.undo()  # the duplicate
    stack.undo()  # the move
    stack.undo()  # the relabel
    save()
    assert coco_entries(folder) == [(7, "dog", [10, 20, 100, 100], seg, occluded),
                                    (9, "cat", [150, 50, 50, 50], [], None)]


def test_pasted_box_claims_nothing_of_the_original(folder):
    (folder / "img0.xml").write_bytes(VOC_XML)
    doc, save = open_doc(folder, "voc")
    copied = [replace(doc.boxes[0], label="dog")]  # as Ctrl+C keeps it
    doc.undo_stack.push(DeleteBoxesCommand(doc, [0]))
    doc.undo_stack.push(paste_command(doc, copied))
    save()
    assert voc_objects(folder) == [("cat", "Frontal", None, (151, 51, 200, 100)),
                                   ("dog", None, None, (11, 21, 110, 120))]


def test_yolo_has_no_per_box_data_and_edits_write_the_golden_lines(folder):
    (folder / "classes.txt").write_text("dog\ncat\n")
    # dog: centre (60, 70), size 100 x 100 in 320 x 240.
    (folder / "img0.txt").write_text("0 0.1875 0.2916666666666667 0.3125 0.4166666666666667\n")
    doc, save = open_doc(folder, "yolo")
    assert doc.boxes[0].label == "dog" and not doc.boxes[0].extra
    doc.undo_stack.push(RelabelBoxesCommand(doc, [0], "cat"))
    doc.undo_stack.push(move(doc, 0, 20, 0))
    save()
    # (30, 20, 130, 120) as class 1: centre x 80 / 320 = 0.25, centre y 70 / 240 = 0.291667,
    # w 100 / 320 = 0.3125, h 100 / 240 = 0.416667 (six decimals).
    assert (folder / "img0.txt").read_text() == "1 0.250000 0.291667 0.312500 0.416667\n"


def test_class_rename_of_the_open_image_keeps_its_boxes_data(qtbot, folder, app_settings):
    """EditController.rename_class relabels the open image as an undo step."""
    (folder / "img0.json").write_text(json.dumps(LABELME))
    app_settings.save_format = "labelme"
    window = open_window(qtbot, app_settings, [folder], fmt="labelme")
    controller: EditController = window.edits
    assert controller.rename_class("cat", "kitten") is None
    assert window.workspace.save_current()
    assert [s[:3] for s in labelme_shapes(folder)] == [
        ("dog", 3, "front"), ("kitten", 4, "left twin"), ("kitten", 5, "right twin")]


def test_class_key_then_ctrl_s_in_the_main_window_keeps_the_pose(qtbot, folder, app_settings):
    (folder / "img0.xml").write_bytes(VOC_XML)
    app_settings.autosave = False  # the file changes only on Ctrl+S
    window = open_window(qtbot, app_settings, [folder])
    assert window.workspace.classes.names[:2] == ["dog", "cat"]  # keys 1 and 2
    window.document.select([0])
    qtbot.keyClick(window.canvas, Qt.Key.Key_2)
    assert (folder / "img0.xml").read_bytes() == VOC_XML  # not saved yet
    qtbot.keyClick(window.canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert voc_objects(folder) == [("cat", "Left", "1", (11, 21, 110, 120)),
                                   ("cat", "Frontal", None, (151, 51, 200, 100))]
    assert not window.document.dirty
