"""``rpn-studio convert``: a full cycle through every format, summaries and exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.annotation.dataset import load_dataset
from rpn_core.annotation.formats import open_store
from rpn_core.cli.main import main

BOXES = {
    "a.jpg": [Box(0, 0, 10, 20, "cat"), Box(30, 5, 64, 48, "dog")],
    "b.png": [Box(2, 3, 40, 30, "cat")],
}


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    Image.new("RGB", (64, 48)).save(folder / "a.jpg")
    Image.new("RGB", (40, 30)).save(folder / "b.png")
    Image.new("RGB", (10, 10)).save(folder / "c.png")  # no annotation
    store = open_store(folder, "voc")
    for name, boxes in BOXES.items():
        w, h = Image.open(folder / name).size
        store.save(ImageAnnotation(folder / name, w, h, boxes))
    return folder


def boxes_of(folder, fmt, image_root):
    store = open_store(folder, fmt, image_root=image_root)
    data = load_dataset(image_root, store=store)
    return {it.image_path.name: it.annotation for it in data if it.annotation.boxes}


def test_cycle_through_every_format_keeps_the_boxes(src, tmp_path, capsys):
    steps = [("voc", "yolo"), ("yolo", "coco"), ("coco", "labelme"), ("labelme", "voc")]
    current = src
    for k, (a, b) in enumerate(steps):
        out = tmp_path / f"step{k}_{b}"
        # The annotations live in `current`, the images stay in `src`.
        args = ["convert", str(current), "--from", a, "--to", b, "--out", str(out)]
        assert main([*args, "--images", str(src)]) == 0
        err = capsys.readouterr().err
        assert f"converted 2 of 3 images (3 boxes) from {a} to {b}" in err
        assert "skipped 1 images without annotations" in err
        current = out
    final = boxes_of(current, "voc", src)
    for name, boxes in BOXES.items():
        got = final[name]
        assert got.labels == [b.label for b in boxes]
        # YOLO's 6 decimals cost < 0.001 px here; VOC then rounds back to the exact integers.
        np.testing.assert_array_equal(got.boxes_array(), [b.xyxy for b in boxes])
        assert not any(b.difficult for b in got.boxes)  # nothing invented on the way


def test_coco_output_loads_in_pycocotools(src, tmp_path):
    out = tmp_path / "coco"
    assert main(["convert", str(src), "--from", "voc", "--to", "coco", "--out", str(out),
                 "--include-empty", "--quiet"]) == 0
    api = COCO(str(out / "annotations.json"))
    assert sorted(im["file_name"] for im in api.imgs.values()) == ["a.jpg", "b.png", "c.png"]
    a_id = next(i for i, im in api.imgs.items() if im["file_name"] == "a.jpg")
    bboxes = [ann["bbox"] for ann in api.loadAnns(api.getAnnIds(imgIds=[a_id]))]
    # (0, 0, 10, 20) -> [0, 0, 10, 20];
    # (30, 5, 64, 48) -> [30, 5, 64 - 30, 48 - 5] = [30, 5, 34, 43].
    assert bboxes == [[0, 0, 10, 20], [30, 5, 34, 43]]


def test_summary_names_unreadable_images_and_bad_annotations(src, tmp_path, capsys):
    (src / "zero.jpg").write_bytes(b"")
    (src / "c.xml").write_text("<annotation><object><name>x</name></object></annotation>")
    (src / "b.xml").write_text("<annotation>")  # broken
    out = tmp_path / "out"
    code = main(["convert", str(src), "--from", "voc", "--to", "labelme", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "skipped 1 unreadable images" in err and "zero.jpg: empty file" in err
    assert "b.xml" in err and "malformed XML" in err
    assert "c.xml" in err and "no <bndbox>" in err
    assert "skipped 1 images whose annotation could not be read" in err
    assert json.loads((out / "a.json").read_text())["shapes"][0]["label"] == "cat"
    # c.xml exists (no valid box) and is written as an empty file; b.xml could not be read.
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "c.json"]


def test_bad_arguments(src, tmp_path, capsys):
    assert main(["convert", str(src), "--from", "voc", "--to", "voc", "--out", str(src)]) == 2
    assert "same folder and format" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "nope"), "--from", "voc", "--to", "yolo",
                 "--out", str(tmp_path / "o")]) == 2
    with pytest.raises(SystemExit):
        main(["convert", str(src), "--from", "pascal", "--to", "yolo", "--out", "x"])


def test_voc_conventions_convert_into_each_other(src, tmp_path):
    out = tmp_path / "labelimg"
    assert main(["convert", str(src), "--from", "voc", "--to", "voc", "--out", str(out),
                 "--voc-out", "labelimg", "--quiet"]) == 0
    text = (out / "a.xml").read_text()
    # Box (0, 0, 10, 20): devkit wrote xmin = 1; labelImg-style values are unshifted: 0.
    assert "<xmin>0</xmin>" in text and "<xmax>10</xmax>" in text
    assert "<xmin>1</xmin>" in (src / "a.xml").read_text()
