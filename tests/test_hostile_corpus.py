"""The hostile-input corpus (issue 7) at the core level: every bad file gives a typed error that
names the file and the reason, partial reads keep the good boxes, and nothing on disk changes
unless a save was asked for. The app-level half lives in ``test_hostile_corpus_app.py``.

Expected boxes follow :mod:`rpn_core.boxes`; the arithmetic is in the comments.
"""

# ruff: noqa: F811 - pytest fixtures imported from corpus_fixtures are test arguments by name

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from corpus_fixtures import (  # noqa: F401 - fixtures are used by name
    corpus,
    corpus_weights,
    fresh_copy,
    make_corpus,
    readonly_folder,
    snapshot,
)

from rpn_core.annotation.data import (
    AnnotationReadError,
    AnnotationWriteError,
    Box,
    ImageAnnotation,
)
from rpn_core.annotation.dataset import load_dataset
from rpn_core.annotation.formats.folder import open_store
from rpn_core.images.loading import ImageReadError, list_images, load_image, probe_image

MC = make_corpus
W, H = MC.CASE_SIZE  # 100 x 80

# -- images --------------------------------------------------------------------------------

UNREADABLE = {
    "zero-byte.jpg": "empty file (0 bytes)",
    "truncated.jpg": "truncated or corrupt image data",
    "truncated.png": "truncated or corrupt image data",
    "text-named.jpg": "not an image",
    "bomb.png": "decompression bomb",
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_unreadable_image_gives_a_typed_error_naming_file_and_reason(corpus, name):
    path = corpus / "images" / name
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")
    assert UNREADABLE[name] in info.value.reason


def test_decompression_bomb_is_refused_from_its_header_without_allocating(corpus):
    path = corpus / "images" / "bomb.png"
    assert path.stat().st_size < 200  # declares 60000 x 60000 x 3 = 10.8 GB of pixels
    t0 = time.perf_counter()
    for fn in (probe_image, load_image):
        with pytest.raises(ImageReadError, match="decompression bomb"):
            fn(path)
    assert time.perf_counter() - t0 < 2.0  # decoding 10.8 GB would take minutes (or die)


def test_odd_but_valid_images_load_as_upright_rgb(corpus):
    img = corpus / "images"
    grey = load_image(img / "grey-16bit.png")  # 0x1000 >> 8 = 16, 0xF000 >> 8 = 240
    assert (grey.width, grey.height) == (30, 20)
    assert grey.pixels[0, 0].tolist() == [16] * 3 and grey.pixels[0, 29].tolist() == [240] * 3
    cmyk = load_image(img / "cmyk.jpg")  # C=0, M=Y=255, K=0 is red
    r, g, b = cmyk.pixels[12, 16].astype(int)
    assert cmyk.mode == "CMYK" and r > 200 and g < 50 and b < 50
    pal = load_image(img / "palette-transparent.png")  # left transparent -> white; right blue
    assert pal.pixels[5, 2].tolist() == [255, 255, 255]
    assert pal.pixels[5, 15].tolist() == [0, 0, 255]
    one = load_image(img / "one-pixel.png")
    assert one.pixels.shape == (1, 1, 3) and one.pixels[0, 0].tolist() == [10, 200, 30]
    tall = load_image(img / "tall-1x5000.png")
    assert (tall.width, tall.height, tall.pixels.shape) == (1, 5000, (5000, 1, 3))
    for name in (MC.NON_ASCII_NAME, MC.SPACE_NAME):
        loaded = load_image(img / name)
        assert (loaded.width, loaded.height) == (40, 30) and loaded.path.name == name


def _red_bbox(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (exclusive max) of the red pixels: r - g is 200 on red, 0 on grey."""
    ys, xs = np.nonzero(pixels[..., 0].astype(int) - pixels[..., 1].astype(int) > 100)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_box_lands_on_the_same_object_in_every_orientation(corpus, orientation):
    folder = corpus / "images"
    image = folder / f"exif-{orientation}.jpg"
    assert probe_image(image) == MC.EXIF_SIZE  # upright size, axes swapped for 5-8
    loaded = load_image(image)
    ann = open_store(folder, "voc").load(image, width=loaded.width, height=loaded.height)
    # The VOC file says xmin=11, ymin=6, xmax=25, ymax=15 (devkit) = (10, 5, 25, 15).
    assert [b.xyxy for b in ann.boxes] == [MC.EXIF_OBJECT] and not ann.warnings
    assert _red_bbox(loaded.pixels) == tuple(int(v) for v in MC.EXIF_OBJECT)


def test_a_folder_of_bad_images_lists_everything_and_reports_each_unreadable_one(corpus):
    folder = corpus / "images"
    before = snapshot(folder)
    data = load_dataset(folder)
    assert data.fmt == "voc"
    # load_dataset reads headers only: a truncated file has a valid header and is only caught
    # when its pixels are decoded (load_image, tested above).
    header_bad = {"zero-byte.jpg", "text-named.jpg", "bomb.png"}
    assert {p.name for p, _ in data.unreadable} == header_bad
    for path, reason in data.unreadable:
        assert UNREADABLE[path.name] in reason
    names = [it.image_path.name for it in data.items]
    # 8 EXIF + 16-bit, CMYK, palette, 1x1, 1x5000, non-ASCII, space, 2 truncated = 17.
    assert len(names) == 17 and MC.NON_ASCII_NAME in names and MC.SPACE_NAME in names
    assert data.num_boxes == 8  # one per EXIF image; the orphan deleted-image.xml is ignored
    assert not data.problems
    assert snapshot(folder) == before  # reading never writes


def test_symlink_loop_is_listed_once_and_terminates(tmp_path):
    folder = tmp_path / "loop"
    (folder / "sub").mkdir(parents=True)
    MC._case_image(folder / "sub" / "a.png")
    (folder / "sub" / "back").symlink_to(folder, target_is_directory=True)
    (folder / "self").symlink_to(folder / "self")  # a link to itself: stat() fails (ELOOP)
    errors: list[str] = []
    found = list_images(folder, recursive=True, errors=errors)
    assert [p.relative_to(folder).as_posix() for p in found] == ["sub/a.png"]
    data = load_dataset(folder, recursive=True)
    assert [it.image_path.name for it in data.items] == ["a.png"] and not data.unreadable


def test_readonly_folder_reads_fine_and_a_save_fails_typed_with_the_file_intact(readonly_folder):
    image = readonly_folder / "img.png"
    store = open_store(readonly_folder, "voc")
    ann = store.load(image, width=W, height=H)
    assert [b.xyxy for b in ann.boxes] == [(10.0, 20.0, 50.0, 60.0)]
    before = snapshot(readonly_folder)
    ann.boxes.append(Box(1, 2, 3, 4, "new"))
    with pytest.raises(AnnotationWriteError) as info:
        store.save(ann)
    assert info.value.path == readonly_folder / "img.xml"
    assert "Read-only" in info.value.reason or "Permission denied" in info.value.reason
    assert snapshot(readonly_folder) == before  # no temp file left, the old file untouched


# -- annotations ---------------------------------------------------------------------------

CAT = ("cat", (10.0, 20.0, 50.0, 60.0))  # VOC devkit (11, 21, 50, 60) -> minus 1 on minima
DOG_YOLO = ("dog", (25.0, 20.0, 75.0, 60.0))  # 0.5 +- 0.25 of 100 wide, 0.5 +- 0.25 of 80 high

# case -> ("error", reason, location) or ("boxes", [(label, xyxy)], [warning fragments])
PER_IMAGE_CASES = {
    ("voc", "broken"): ("error", "malformed XML: mismatched tag", "line 3, column 2"),
    ("voc", "billion-laughs"): ("error", "refused unsafe XML (EntitiesForbidden)", None),
    ("voc", "external-entity"): ("error", "refused unsafe XML (EntitiesForbidden)", None),
    ("voc", "deep-nesting"): ("error", "XML nested deeper than 64 levels", None),
    ("voc", "wrong-root"): ("error", "root element is <html>, expected <annotation>", "line 1"),
    ("voc", "xmin-gt-xmax"): ("boxes", [CAT], ["object #2: skipped, xmin > xmax"]),
    # (-20, -5, 30, 40) devkit -> (-21, -6, 30, 40) -> clamped to the image: (0, 0, 30, 40)
    ("voc", "negative"): (
        "boxes",
        [CAT, ("dog", (0.0, 0.0, 30.0, 40.0))],
        [
            "object #2: box (-21, -6, 30, 40) extends outside the 100x80 image;"
            " clamped to (0, 0, 30, 40)"
        ],
    ),
    ("voc", "nan"): ("boxes", [CAT], ["object #2: skipped, <xmin> is 'nan'"]),
    # xmax = 1e308 is clamped to the width 100; xmax = 1e999 overflows to inf and is skipped
    ("voc", "huge"): (
        "boxes",
        [CAT, ("dog", (10.0, 10.0, 100.0, 60.0))],
        ["object #2: box (10, 10, 1e+308, 60)", "object #3: skipped, <xmax>"],
    ),
    ("yolo", "too-few"): ("boxes", [DOG_YOLO], ["line 1: skipped, too few fields (4, expected 5)"]),
    ("yolo", "too-many"): ("boxes", [DOG_YOLO], ["line 1: skipped, too many fields (6"]),
    ("yolo", "nan"): ("boxes", [DOG_YOLO], ["line 1: skipped, non-numeric or non-finite"]),
    ("yolo", "out-of-range"): ("boxes", [DOG_YOLO], ["line 1: skipped, values", "line 2: skip"]),
    # id 7 of 2 classes: kept as label "7", box 0.5 +- 0.1 -> (40, 32, 60, 48)
    ("yolo", "unknown-class"): (
        "boxes",
        [("7", (40.0, 32.0, 60.0, 48.0)), DOG_YOLO],
        ["line 1: class id 7 is not in classes.txt"],
    ),
    ("yolo", "not-text"): ("error", "not UTF-8 text", "byte 0"),
    ("labelme", "non-rectangles"): (
        "boxes",
        [CAT],
        ["shapes[0]: 'polygon' shape is not a box", "shapes[1]: 'circle' shape"],
    ),
    ("labelme", "wrong-types"): (
        "boxes",
        [CAT],
        [
            "imageWidth/imageHeight are not positive",
            "shapes[0]: label 5 is not a string",
            "shapes[1]: rectangle needs 2 or 4",
            "shapes[2]: rectangle needs 2 or 4",
            "shapes[3]: not an object",
        ],
    ),
    ("labelme", "shapes-not-a-list"): ("error", "'shapes' is not a list", "shapes"),
    ("labelme", "top-level-array"): ("error", "top level is a JSON list", None),
    ("labelme", "deep-nesting"): ("error", "invalid JSON: maximum recursion depth exceeded", None),
}


def _check_outcome(load, expected, annotation_file: Path) -> None:
    kind = expected[0]
    if kind == "error":
        with pytest.raises(AnnotationReadError) as info:
            load()
        err = info.value
        assert err.path == annotation_file and expected[1] in err.reason
        assert err.location == expected[2]
        assert str(err).startswith(str(annotation_file))
        return
    ann = load()
    assert [(b.label, b.xyxy) for b in ann.boxes] == expected[1]
    assert len(ann.warnings) == len(expected[2]), ann.warnings
    for fragment, warning in zip(expected[2], ann.warnings, strict=True):
        assert fragment in warning
    for warning in ann.warnings:  # every warning names the file it is about
        assert warning.startswith(annotation_file.name)


@pytest.mark.parametrize("case", sorted(PER_IMAGE_CASES), ids="-".join)
def test_per_image_annotation_case(corpus, case):
    fmt, stem = case
    folder = corpus / fmt
    suffix = {"voc": ".xml", "yolo": ".txt", "labelme": ".json"}[fmt]
    before = snapshot(folder)
    store = open_store(folder, fmt)

    def load():
        return store.load(folder / f"{stem}.png", width=W, height=H)

    _check_outcome(load, PER_IMAGE_CASES[case], folder / f"{stem}{suffix}")
    assert store.is_damaged(folder / f"{stem}.png")  # so a later save backs it up first
    assert snapshot(folder) == before


COCO_EXPECTED = {
    "missing-keys": (
        "boxes",
        [CAT, ("", (1.0, 1.0, 6.0, 6.0))],
        ["annotations[1]: skipped, 'bbox' None", "annotations[2]: unknown category"],
        ["images[1]: missing 'file_name'; dropped"],
    ),
    # [60, 10, 20, 20] -> (60, 10, 80, 30)
    "duplicate-ids": (
        "boxes",
        [CAT, ("dog", (60.0, 10.0, 80.0, 30.0))],
        ["annotations[1]: duplicate id 1; a new id is given on save"],
        ["images[1]: duplicate id 1; dropped"],
    ),
    "missing-images": ("boxes", [CAT], [], ["annotations[1]: unknown image_id 99; kept"]),
    "broken-json": ("error", "invalid JSON: Expecting value", "line 2, column 18"),
    "top-level-array": ("error", "top level is a JSON list, not an object", None),
}


@pytest.mark.parametrize("case", sorted(COCO_EXPECTED))
def test_coco_case(corpus, case):
    folder = corpus / f"coco-{case}"
    before = snapshot(folder)
    store = open_store(folder, "coco")
    expected = COCO_EXPECTED[case]

    def load():
        return store.load(folder / "img.png", width=W, height=H)

    _check_outcome(load, expected[:3], folder / "annotations.json")
    if expected[0] == "boxes":
        assert len(store.warnings) == len(expected[3])
        for fragment, warning in zip(expected[3], store.warnings, strict=True):
            assert warning.startswith("annotations.json: ") and fragment in warning
    else:  # the store itself reports the broken file once, with its full path
        assert len(store.warnings) == 1 and store.warnings[0].startswith(str(store.path))
    assert snapshot(folder) == before


def test_saving_over_a_damaged_file_backs_up_the_original_bytes_first(corpus, tmp_path):
    folder = fresh_copy(corpus / "voc", tmp_path / "voc")
    original = (folder / "broken.xml").read_bytes()
    store = open_store(folder, "voc")
    with pytest.raises(AnnotationReadError):
        store.load(folder / "broken.png", width=W, height=H)
    ann = ImageAnnotation(folder / "broken.png", W, H, boxes=[Box(1.0, 2.0, 30.0, 40.0, "new")])
    store.save(ann)
    assert (folder / "broken.xml.bak").read_bytes() == original  # nothing lost
    assert [b.xyxy for b in store.load(folder / "broken.png", width=W, height=H).boxes] == [
        (1.0, 2.0, 30.0, 40.0)
    ]


def test_labelme_non_rectangles_survive_an_edit_and_save(corpus, tmp_path):
    folder = fresh_copy(corpus / "labelme", tmp_path / "labelme")
    store = open_store(folder, "labelme")
    ann = store.load(folder / "non-rectangles.png", width=W, height=H)
    ann.boxes.append(Box(60.0, 10.0, 90.0, 30.0, "dog"))
    store.save(ann)
    shapes = json.loads((folder / "non-rectangles.json").read_text())["shapes"]
    kinds = sorted((s["shape_type"], s["label"]) for s in shapes)
    assert kinds == [
        ("circle", "round"),
        ("polygon", "poly"),
        ("rectangle", "cat"),
        ("rectangle", "dog"),
    ]
    assert (folder / "non-rectangles.json.bak").exists()  # read with warnings -> backed up


def test_coco_boxes_of_missing_images_are_written_back_on_save(corpus, tmp_path):
    folder = fresh_copy(corpus / "coco-missing-images", tmp_path / "coco")
    store = open_store(folder, "coco")
    ann = store.load(folder / "img.png", width=W, height=H)
    ann.boxes.append(Box(60.0, 10.0, 90.0, 30.0, "dog"))
    store.save(ann)
    doc = json.loads((folder / "annotations.json").read_text())
    orphans = [a for a in doc["annotations"] if a["image_id"] == 99]
    assert len(orphans) == 1 and orphans[0]["bbox"] == [10, 20, 40, 40]
    assert sorted(tuple(a["bbox"]) for a in doc["annotations"] if a["image_id"] == 1) == [
        (10.0, 20.0, 40.0, 40.0),
        (60.0, 10.0, 30.0, 20.0),  # x, y, w, h
    ]


# -- weights -------------------------------------------------------------------------------

WEIGHT_CASES = {
    "truncated.safetensors": "not a valid safetensors file (truncated?)",
    "truncated-header.safetensors": "truncated: only 5 bytes",
    "wrong-shapes.safetensors": "rpn.head.conv.0.0.weight",
    "exploit.pkl": "a pickle file, not safetensors: pickle can run code",
    "exploit.pt": "a zip archive (a torch.save checkpoint, which holds pickle)",
    "exploit.safetensors": "a zip archive (a torch.save checkpoint, which holds pickle)",
}


@pytest.mark.parametrize("name", sorted(WEIGHT_CASES))
def test_bad_weights_give_a_typed_error_and_never_run_code(corpus_weights, name):
    from rpn_core.anchors.grid import AnchorConfig
    from rpn_core.rpn.checkpoint import load_checkpoint
    from rpn_core.rpn.loading import load_model
    from rpn_core.rpn.weights import WeightsError

    path = corpus_weights / name
    marker = corpus_weights / MC.EXPLOIT_MARKER
    for load in (
        lambda: load_model(path, "cpu"),
        lambda: load_checkpoint(path, expected_anchors=AnchorConfig(), device="cpu"),
    ):
        with pytest.raises(WeightsError) as info:
            load()
        assert info.value.path == path and WEIGHT_CASES[name] in info.value.reason
    assert not marker.exists()


def test_the_exploit_payload_is_real(tmp_path):
    """Control for the test above: unpickling the payload does create its marker file."""
    marker = tmp_path / "ran"
    payload = pickle.dumps(MC._Exploit(str(marker)), protocol=4)
    code = f"import pickle; pickle.loads({payload!r})"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert marker.exists()


def test_checkpoint_from_another_anchor_configuration_is_explained(corpus_weights):
    from rpn_core.anchors.grid import AnchorConfig
    from rpn_core.rpn.checkpoint import CheckpointError, load_checkpoint

    path = corpus_weights / "other-anchors.safetensors"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, expected_anchors=AnchorConfig(), device="cpu")
    assert info.value.path == path
    assert info.value.reason == (
        "anchor configuration differs: the checkpoint has 12 anchors per location "
        "(4 sizes x 3 ratios), the current configuration 9 (3 sizes x 3 ratios); "
        "anchor sizes 32, 64, 128, 256 in the checkpoint, 64, 128, 256 now"
    )
    model, info2 = load_checkpoint(path, device="cpu")  # without a current config: usable
    assert info2.config.anchors.num_anchors_per_location == 12


# -- the headless commands on the corpus -------------------------------------------------------

CLI_FOLDERS = {
    "voc": "voc",
    "yolo": "yolo",
    "labelme": "labelme",
    "images": "voc",
    "coco-missing-keys": "coco",
    "coco-broken-json": "coco",
}


@pytest.mark.parametrize("name", sorted(CLI_FOLDERS))
def test_convert_and_anchors_report_every_bad_file_and_change_nothing(
    corpus, tmp_path, capsys, name
):
    from rpn_core.cli.main import main

    folder = corpus / name
    before = snapshot(folder)
    out = tmp_path / "out"
    rc = main(
        ["convert", str(folder), "--from", CLI_FOLDERS[name], "--to", "labelme", "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err  # 1: converted, with problems reported
    bad = [
        p
        for p in folder.iterdir()
        if p.stem in {s for (_f, s) in PER_IMAGE_CASES}
        and p.suffix in (".xml", ".txt", ".json")
        and p.stem != "classes"
    ]
    for p in bad:
        assert str(p) in err, p
    rc = main(["anchors", str(folder), "--k-max", "2"])
    captured = capsys.readouterr()
    assert rc in (0, 1) and "Traceback" not in captured.err
    assert snapshot(folder) == before


@pytest.mark.parametrize("name", ["exploit.pt", "truncated.safetensors"])
def test_propose_with_bad_weights_exits_with_the_reason(corpus, corpus_weights, capsys, name):
    from rpn_core.cli.main import main

    path = corpus_weights / name
    rc = main(["propose", str(corpus / "images" / "exif-1.jpg"), "--weights", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"error: {path}: ") and WEIGHT_CASES[name] in err
    assert not (corpus_weights / MC.EXPLOIT_MARKER).exists()
