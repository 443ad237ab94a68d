"""load_dataset: images paired with annotations, problems collected instead of raised."""

from __future__ import annotations

import numpy as np
from PIL import Image

from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.annotation.dataset import load_dataset
from rpn_core.annotation.formats import open_store


def make_folder(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 x 30, upright 30 x 40
    Image.new("RGB", (40, 30)).save(tmp_path / "img1.jpg", exif=exif)
    Image.new("RGB", (50, 20)).save(tmp_path / "img2.png")
    Image.new("L", (8, 8)).save(tmp_path / "img10.png")
    (tmp_path / "broken.jpg").write_bytes(b"")
    store = open_store(tmp_path, "voc")
    store.save(ImageAnnotation(tmp_path / "img1.jpg", 30, 40, [Box(0, 0, 10, 20, "a")]))
    store.save(ImageAnnotation(tmp_path / "img2.png", 50, 20, [Box(5, 5, 9, 9, "b"),
                                                               Box(1, 1, 2, 2, "a")]))
    (tmp_path / "img10.xml").write_text("<annotation><object>")  # damaged
    return tmp_path


def test_dataset_pairs_images_and_reports_problems(tmp_path):
    calls = []
    data = load_dataset(make_folder(tmp_path), progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]  # broken.jpg counts too
    assert data.fmt == "voc"
    assert [it.image_path.name for it in data] == ["img1.jpg", "img2.png", "img10.png"]
    # Upright size from the header: EXIF 6 swaps 40 x 30 to 30 x 40.
    assert [(it.width, it.height) for it in data] == [(30, 40), (50, 20), (8, 8)]
    np.testing.assert_array_equal(data.items[0].boxes, [[0, 0, 10, 20]])
    assert data.num_boxes == 3 and len(data.annotated) == 2
    assert data.all_boxes().shape == (3, 4)
    assert [(p.name, r) for p, r in data.unreadable] == [("broken.jpg", "empty file (0 bytes)")]
    assert len(data.problems) == 1
    path, reason = data.problems[0]
    assert path.name == "img10.xml" and "malformed XML" in reason
    assert data.items[2].annotation.boxes == []  # its image is still there
    assert data.classes == ["a", "b"]


def test_dataset_without_annotations_and_recursive(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (4, 3)).save(tmp_path / "sub" / "x.png")
    Image.new("RGB", (4, 3)).save(tmp_path / "y.png")
    flat = load_dataset(tmp_path)
    assert flat.fmt is None and [it.image_path.name for it in flat] == ["y.png"]
    deep = load_dataset(tmp_path, recursive=True)
    assert [it.image_path.name for it in deep] == ["x.png", "y.png"]
    assert deep.num_boxes == 0 and deep.all_boxes().shape == (0, 4)
    # Annotations only in the sub-folder: the recursive scan finds their format.
    open_store(tmp_path, "labelme").save(
        ImageAnnotation(tmp_path / "sub" / "x.png", 4, 3, [Box(0, 0, 2, 2, "k")])
    )
    deep = load_dataset(tmp_path, recursive=True)
    assert deep.fmt == "labelme" and deep.num_boxes == 1
    assert load_dataset(tmp_path).fmt is None


def test_yolo_dataset_uses_probed_sizes(tmp_path):
    Image.new("RGB", (200, 100)).save(tmp_path / "a.png")
    (tmp_path / "classes.txt").write_text("cat\n")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n3 0.5 0.5 0.1 0.1\n")
    data = load_dataset(tmp_path)
    assert data.fmt == "yolo"
    # (0.5 - 0.1) * 200 = 80, (0.5 - 0.2) * 100 = 30, (0.5 + 0.1) * 200 = 120, 70.
    np.testing.assert_allclose(data.items[0].boxes[0], [80, 30, 120, 70])
    assert len(data.problems) == 1 and "class id 3" in data.problems[0][1]
