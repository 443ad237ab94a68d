"""Hostile corpus, round 2 (issue 16): what an independent corpus still broke, at the core
level, each case with the class of bug behind it (every reader checks "regular file" and a size
limit, every written annotation reads back, every name written into XML is XML-safe...).
The app-level half lives in ``test_hostile_corpus_round2_app.py``.

Boxes follow :mod:`rpn_core.boxes`; the arithmetic is in the comments.
"""

# ruff: noqa: F811 - pytest fixtures imported from corpus_fixtures are test arguments by name

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from corpus_fixtures import (  # noqa: F401 - fixtures are used by name
    corpus,
    corpus_weights,
    make_corpus,
    snapshot,
    special,
)
from PIL import Image

from rpn_core import atomic, limits
from rpn_core.annotation.data import AnnotationReadError, AnnotationWriteError, Box, ImageAnnotation
from rpn_core.annotation.formats.folder import detect_format, open_store
from rpn_core.images import loading
from rpn_core.images.loading import ImageReadError, load_image, probe_image

MC = make_corpus
W, H = MC.CASE_SIZE  # 100 x 80
DOG = ("dog", (25.0, 20.0, 75.0, 60.0))  # YOLO 1 0.5 0.5 0.5 0.5 in a 100 x 80 image


def within(seconds: float, fn, *args):
    """``fn(*args)`` run in a thread; fails the test (instead of hanging it) when it does not
    return in ``seconds`` -- the thread stays blocked until the ``special`` fixture releases
    its FIFO. Exceptions are re-raised here."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{getattr(fn, '__name__', fn)} blocked for more than {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


# -- F2: names XML cannot carry ----------------------------------------------------------------


@pytest.mark.parametrize("name", [MC.BELL_NAME, MC.LATIN1_NAME], ids=["bell", "latin1"])
def test_voc_save_of_an_image_with_an_xml_unsafe_name_reads_back(corpus, tmp_path, name):
    folder = tmp_path / "names\x07"  # the folder name goes into <folder> too
    folder.mkdir()
    shutil.copy(corpus / "round2" / "names" / name, folder / name)
    image = folder / name
    store = open_store(folder, "voc")
    ann = ImageAnnotation(image, 40, 30, boxes=[Box(1.0, 2.0, 30.0, 20.0, "cat")])
    store.save(ann)
    # Before the fix the file was written with the raw \x07 / \udce9 and never read again.
    back = open_store(folder, "voc").load(image, width=40, height=30)
    assert [(b.label, b.xyxy) for b in back.boxes] == [("cat", (1.0, 2.0, 30.0, 20.0))]
    text = (folder / Path(name).with_suffix(".xml")).read_bytes().decode("utf-8")
    expected = "nul_free_\ufffdbell.jpg" if name == MC.BELL_NAME else "latin1_été.jpg"
    assert f"<filename>{expected}</filename>" in text
    assert "<folder>names\ufffd</folder>" in text


def test_a_save_that_would_not_read_back_is_refused_and_changes_nothing(tmp_path):
    """The class of bug behind F2: every per-image file is read back before it replaces
    anything. A box entirely outside its 100 x 80 image is written by YOLO as cx = 2.5, which
    no reader keeps: the save is refused instead of losing the box on reopen."""
    MC._case_image(tmp_path / "img.png")
    store = open_store(tmp_path, "yolo")
    ann = ImageAnnotation(tmp_path / "img.png", W, H, boxes=[Box(200, 200, 300, 300, "cat")])
    with pytest.raises(AnnotationWriteError) as info:
        store.save(ann)
    assert info.value.path == tmp_path / "img.txt"
    assert "would not read back" in info.value.reason and "0 of 1 boxes" in info.value.reason
    assert not (tmp_path / "img.txt").exists()


# -- F1: truncated images that decode without an error ------------------------------------------


@pytest.mark.parametrize("name", ["half-rows.png", "cut-half.jpg", "cut-half-progressive.jpg"])
def test_truncated_image_with_valid_structure_is_refused_naming_the_file(corpus, name):
    path = corpus / "round2" / "truncated" / name
    assert probe_image(path)  # the header is fine: only decoding shows it
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert info.value.path == path
    assert info.value.reason.startswith("truncated or corrupt image data: ")
    if name.endswith(".png"):  # 24 of 48 rows: 50 % of the bytes the header declares
        assert "holds 50% of the pixel data its 64x48 header declares" in info.value.reason
    else:
        assert "premature end of data segment" in info.value.reason


def test_complete_jpeg_and_png_still_load(corpus):
    assert load_image(corpus / "round2" / "truncated" / "complete.jpg").pixels.shape == (48, 64, 3)
    assert load_image(corpus / "images" / "grey-16bit.png").pixels.shape == (20, 30, 3)


# -- F8: lone surrogates in labels ---------------------------------------------------------------


def test_lone_surrogate_labels_load_and_round_trip_in_their_own_format(corpus, tmp_path):
    folder = shutil.copytree(corpus / "round2" / "labelme-surrogate", tmp_path / "lm")
    store = open_store(folder, "labelme")
    ann = store.load(folder / "img.png", width=W, height=H)
    assert [b.label for b in ann.boxes] == [MC.SURROGATE_LABELME]
    store.save(ann)
    assert (
        open_store(folder, "labelme").load(folder / "img.png", width=W, height=H).boxes[0].label
        == MC.SURROGATE_LABELME
    )
    coco = open_store(corpus / "round2" / "coco-surrogate", "coco")
    boxes = coco.load(corpus / "round2" / "coco-surrogate" / "img.png", width=W, height=H).boxes
    assert [b.label for b in boxes] == [MC.SURROGATE_COCO]
    # VOC cannot hold it: refused with the file and the reason, nothing written.
    voc = open_store(tmp_path / "voc", "voc", image_root=folder)
    with pytest.raises(AnnotationWriteError, match="characters XML cannot hold"):
        voc.save(ann)
    assert not (tmp_path / "voc").exists() or not any((tmp_path / "voc").iterdir())


# -- F6 / F7: FIFOs, devices, folders and huge files ---------------------------------------------

PER_IMAGE = {"voc": ".xml", "labelme": ".json", "yolo": ".txt"}


@pytest.mark.parametrize("fmt", sorted(PER_IMAGE))
def test_a_fifo_named_like_an_annotation_never_blocks(special, fmt):
    fifo = special[f"{fmt}-fifo"]
    folder = fifo.parent
    assert within(5, detect_format, folder) in (fmt, None)
    store = within(5, open_store, folder, fmt)
    assert within(5, store.has_annotation, folder / "img.png") is False
    with pytest.raises(AnnotationReadError) as info:
        within(5, lambda: store.load(folder / "img.png", width=W, height=H))
    assert info.value.path == fifo
    assert info.value.reason == "not a regular file (a FIFO, i.e. a named pipe)"


def test_annotation_linked_to_dev_zero_is_refused_without_reading_it(special):
    link = special["voc-dev-zero"]
    store = open_store(link.parent, "voc")
    with pytest.raises(AnnotationReadError) as info:
        within(5, lambda: store.load(link.parent / "img.png", width=W, height=H))
    assert info.value.reason == "not a regular file (a character device)"
    zero_coco = special["coco-dev-zero"]
    coco = within(5, open_store, zero_coco.parent, "coco")  # was a MemoryError traceback
    assert coco.warnings == [f"{zero_coco}: not a regular file (a character device)"]
    # Saving replaces the link with a file; /dev/zero itself is never written into.
    ann = ImageAnnotation(link.parent / "img.png", W, H, boxes=[Box(1, 2, 30, 40, "cat")])
    store.save(ann)
    assert not link.is_symlink() and link.is_file()


@pytest.mark.parametrize(
    ("fmt", "name", "limit"),
    [
        ("voc", "img.xml", limits.MAX_ANNOTATION_BYTES),
        ("coco", "annotations.json", limits.MAX_COCO_BYTES),
    ],
)
def test_annotation_file_above_its_size_limit_names_the_file_and_the_limit(
    tmp_path, fmt, name, limit
):
    MC._case_image(tmp_path / "img.png")
    big = tmp_path / name
    with open(big, "wb") as f:  # sparse: costs no disk and is never read
        f.write(b'{"images": [] ' if fmt == "coco" else b"<annotation>")
        f.truncate(limit + 1)
    t0 = time.perf_counter()
    if fmt == "coco":
        store = open_store(tmp_path, "coco")
        with pytest.raises(AnnotationReadError) as info:
            store.load(tmp_path / "img.png", width=W, height=H)
    else:
        with pytest.raises(AnnotationReadError) as info:
            open_store(tmp_path, fmt).load(tmp_path / "img.png", width=W, height=H)
    assert time.perf_counter() - t0 < 2.0
    assert info.value.path == big
    assert f"above the limit of {limits.describe_bytes(limit)} for a" in info.value.reason


def test_images_that_are_not_regular_files_say_so(special):
    for case in ("image-fifo", "image-dev-zero"):
        path = special[case]
        for fn in (probe_image, load_image):
            with pytest.raises(ImageReadError) as info:
                within(5, fn, path)
            assert info.value.reason.startswith("not a regular file"), info.value.reason


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("weights-fifo", "not a regular file (a FIFO, i.e. a named pipe)"),
        ("weights-dir", "not a regular file (a directory)"),
        ("weights-dev-zero", "not a regular file (a character device)"),
    ],
)
def test_weights_that_are_not_regular_files_say_so(special, case, reason):
    import safetensors.torch  # noqa: F401 - imported here, not inside the timed call

    from rpn_core.rpn.weights import WeightsError, read_weights

    with pytest.raises(WeightsError) as info:
        within(5, read_weights, special[case])
    assert info.value.path == special[case] and info.value.reason == reason


def test_commands_on_folders_of_special_files_finish_and_name_them(special, tmp_path, capsys):
    from rpn_core.cli.main import main

    for fmt, case in (("voc", "voc-fifo"), ("voc", "voc-dev-zero"), ("coco", "coco-dev-zero")):
        folder = special[case].parent
        out = tmp_path / f"out-{case}"
        rc = within(
            60, main, ["convert", str(folder), "--from", fmt, "--to", "labelme", "--out", str(out)]
        )
        err = capsys.readouterr().err
        assert rc in (0, 1) and "Traceback" not in err and "MemoryError" not in err
        if fmt != "coco":
            assert f"{special[case]}" in err and "not a regular file" in err
        rc = within(60, main, ["anchors", str(folder), "--k-max", "2"])
        assert "Traceback" not in capsys.readouterr().err


# -- F5: absurd YOLO class ids -------------------------------------------------------------------

YOLO_ID_WARNINGS = {
    "huge-id": "class id '99999999999' is above the limit of 99999",
    "float-huge-id": "class id '1e300' is above the limit of 99999",
    "five-million": "class id '5000000' is above the limit of 99999",
    "float-id": "class id '1.0' is not written as an integer",
}


@pytest.mark.parametrize("stem", sorted(YOLO_ID_WARNINGS))
def test_absurd_yolo_class_ids_are_refused_and_never_pad_the_class_map(corpus, tmp_path, stem):
    folder = shutil.copytree(corpus / "round2" / "yolo-ids", tmp_path / "yolo")
    store = open_store(folder, "yolo")
    ann = store.load(folder / f"{stem}.png", width=W, height=H)
    assert [(b.label, b.xyxy) for b in ann.boxes] == [DOG]  # no renumbered box
    assert len(ann.warnings) == 1
    assert ann.warnings[0] == f"{stem}.txt: line 1: skipped, {YOLO_ID_WARNINGS[stem]}"
    store.save(ann)  # backs the damaged file up, writes the good box
    assert (folder / "classes.txt").read_bytes() == MC.YOLO_CLASSES  # not padded to the id
    assert (folder / f"{stem}.txt.bak").read_bytes() == MC.YOLO_ID_CASES[stem]


def test_convert_yolo_to_yolo_with_absurd_ids_stays_small(corpus, tmp_path, capsys):
    from rpn_core.cli.main import main

    out = tmp_path / "out"
    t0 = time.perf_counter()
    rc = main(
        [
            "convert",
            str(corpus / "round2" / "yolo-ids"),
            "--from",
            "yolo",
            "--to",
            "yolo",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "above the limit of 99999" in err and "Traceback" not in err
    assert time.perf_counter() - t0 < 30
    assert (out / "classes.txt").stat().st_size < 100  # was 6.6 GB / 39 MB


def test_a_numeric_label_above_the_id_limit_is_a_name_not_a_padding_request():
    from rpn_core.annotation.formats.yolo import label_ids

    index, classes = label_ids(["7", "99999999999"], ["cat", "dog"])
    # "7" is a missing id: padded with "2".."6" so that it keeps id 7 (the documented rule);
    # "99999999999" is above the limit: appended as a name (id 8), nothing padded for it.
    assert classes == ["cat", "dog", "2", "3", "4", "5", "6", "7", "99999999999"]
    assert index["99999999999"] == 8


# -- F3 / F4: long names -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["voc", "labelme", "yolo", "coco"])
def test_an_image_name_whose_annotation_name_is_too_long_is_just_unannotated(corpus, tmp_path, fmt):
    folder = shutil.copytree(corpus / "round2" / "long-names", tmp_path / "long")
    image = folder / f"{MC.LONG_STEM}.png"  # 255 bytes; its .json would be 256
    store = open_store(folder, fmt)
    assert store.has_annotation(image) is False  # was OSError [Errno 36]
    assert store.load(image, width=W, height=H).boxes == []
    from rpn_core.annotation.dataset import load_dataset

    data = load_dataset(folder, fmt)
    assert len(data.items) == 2 and not data.problems


@pytest.mark.parametrize("fmt", ["voc", "labelme", "yolo"])
def test_a_long_but_legal_annotation_name_can_be_saved(corpus, tmp_path, fmt):
    folder = shutil.copytree(corpus / "round2" / "long-names", tmp_path / "long")
    image = folder / f"{MC.SAVE_STEM}.png"  # annotation name 244-245 bytes: legal
    store = open_store(folder, fmt)
    store.save(ImageAnnotation(image, W, H, boxes=[Box(10, 20, 50, 60, "cat")]))
    back = open_store(folder, fmt).load(image, width=W, height=H)
    # YOLO's six decimals: 10 / 100 comes back as 9.999999999999998
    assert [(b.label, b.xyxy) for b in back.boxes] == [
        ("cat", pytest.approx((10.0, 20.0, 50.0, 60.0), abs=1e-9))
    ]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_temporary_names_are_short_whatever_the_target():
    assert len(atomic.temp_prefix("x" * 255)) == len(".rpnst-") + 13


def test_convert_include_empty_on_long_names(corpus, tmp_path, capsys):
    from rpn_core.cli.main import main

    rc = main(
        [
            "convert",
            str(corpus / "round2" / "long-names"),
            "--from",
            "voc",
            "--to",
            "labelme",
            "--out",
            str(tmp_path / "out"),
            "--include-empty",
        ]
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err and rc == 1
    assert (tmp_path / "out" / f"{MC.SAVE_STEM}.json").is_file()
    # the 256-byte .json name cannot exist: that one image fails, named, with the reason
    assert f"{MC.LONG_STEM}.json" in err and "File name too long" in err


# -- F9: hostile RPN configurations --------------------------------------------------------------

HOSTILE_REASONS = {
    "min-side-60000": "bad RPN configuration: min_side: must be in [1, 4096], got 60000",
    "head-depth-1e7": "bad RPN configuration: head_conv_depth: must be an integer, got 10000000.0",
    "labels-int": "bad RPN configuration: labels: must be a JSON object, got 5",
    "labels-list": "bad RPN configuration: labels: must be a JSON object, got []",
    "labels-fg-iou-text": "bad RPN configuration: labels.fg_iou: must be a number, got 'x'",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_REASONS))
def test_hostile_configuration_is_refused_at_load_by_every_entry_point(corpus_weights, name):
    from rpn_core.rpn.checkpoint import load_checkpoint, read_checkpoint
    from rpn_core.rpn.loading import load_model
    from rpn_core.rpn.weights import WeightsError, read_weights

    path = corpus_weights / f"{name}.safetensors"
    where, _change = MC.HOSTILE_CONFIGS[name]
    named = path if where == "header" else path.with_suffix(".json")  # the file that holds it
    for load in (
        lambda: read_weights(path),
        lambda: load_model(path, "cpu"),
        lambda: read_checkpoint(path),
        lambda: load_checkpoint(path, device="cpu"),
    ):
        t0 = time.perf_counter()
        with pytest.raises(WeightsError) as info:
            load()
        assert time.perf_counter() - t0 < 5  # refused before any allocation
        assert info.value.path == named and info.value.reason == HOSTILE_REASONS[name]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"max_side": 1e9}, "max_side: must be an integer"),
        ({"min_side": 900, "max_side": 800}, "min_side: must be <= max_side (800), got 900"),
        ({"pre_nms_top_n": True}, "pre_nms_top_n: must be an integer, got True"),
        ({"nms_iou": float("nan")}, "nms_iou: must be in"),
        ({"context": "yes"}, "context: must be true or false"),
        (
            {"anchors": {"sizes": [64] * 17, "aspect_ratios": [1], "stride": 16}},
            "anchors.sizes: must be a list of 1 to 16 numbers",
        ),
        (
            {"anchors": {"sizes": [1e9], "aspect_ratios": [1], "stride": 16}},
            "anchors.sizes: must be in",
        ),
        ({"anchors": {"sizes": [64], "aspect_ratios": [1], "stride": 8}}, "anchors.stride"),
        ({"labels": {"bg_iou": 0.9, "fg_iou": 0.5}}, "labels.bg_iou: must be <= labels.fg_iou"),
        ({"labels": {"batch_size_per_image": 10**9}}, "labels.batch_size_per_image: must be in"),
        ({"labels": {"fg_inclusive": 1}}, "labels.fg_inclusive: must be true or false"),
        ({"labels": {"x": 1}}, "labels: unknown settings ['x']"),
    ],
)
def test_every_configuration_field_is_checked_for_type_and_range(change, fragment):
    from rpn_core.rpn.config import RPNConfig
    from rpn_core.rpn.config_checks import ConfigError

    data = {**RPNConfig().to_dict(), **change}
    with pytest.raises(ConfigError, match=None) as info:
        RPNConfig.from_dict(data)
    assert fragment in str(info.value)
    assert RPNConfig.from_dict(RPNConfig().to_dict()) == RPNConfig()  # the default passes


# -- F10: bombs under and over the limit ---------------------------------------------------------


def test_a_bomb_above_pillows_own_refusal_quotes_our_limit(corpus):
    path = corpus / "round2" / "bombs" / "900mp.png"  # 30000 x 30000 = 900 MP
    for fn in (probe_image, load_image):
        with pytest.raises(ImageReadError) as info:
            fn(path)
        assert info.value.reason.startswith("image is 900 MP, above the limit of 400 MP")
        assert "800000000" not in info.value.reason  # Pillow's 2 x limit, not ours


def test_a_bomb_under_the_pixel_limit_is_refused_by_the_memory_budget_from_its_header(corpus):
    path = corpus / "round2" / "bombs" / "rgba16-400mp.png"  # 19999 x 20000 x 8 B = 3.2 GB
    assert probe_image(path) == MC.BUDGET_BOMB_SIZE  # within the pixel limit
    t0 = time.perf_counter()
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert time.perf_counter() - t0 < 2.0
    # Pillow holds 16-bit RGBA as 8-bit RGBA: 2 x 4 B x 400 MP (the measured peak of a whole
    # decode is twice the image) + 2 x 3 B x 6667 x 6667 for the display copy = 3.2 GiB.
    need = loading.decode_bytes_needed(MC.BUDGET_BOMB_SIZE, "RGBA", 3, "PNG")
    assert limits.describe_bytes(need) == "3.2 GiB"
    assert info.value.reason.endswith(
        "needs about 3.2 GiB, above the memory budget of 1 GiB per image"
    )


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P"])
def test_a_large_png_decoded_in_strips_equals_the_whole_decode(tmp_path, monkeypatch, mode):
    """F10's reduced decoding: 8-bit PNGs above the display budget are inflated and decoded a
    strip at a time (never whole in memory). Here strips of 200 kB force about 30 strips, so
    the filters that refer to the previous strip's last row are exercised (Pillow picks an
    adaptive filter per row); the result equals decoding whole and then reducing, up to
    rounding (alpha composited on white before averaging in both)."""
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (1200, 1500, 4), dtype=np.uint8)
    arr[..., 3] = np.where(rng.random((1200, 1500)) < 0.5, 255, arr[..., 3])
    im = Image.fromarray(arr, "RGBA")
    im = im.convert("RGB").quantize(64) if mode == "P" else im.convert(mode)
    path = tmp_path / f"{mode}.png"
    im.save(path)
    monkeypatch.setattr(loading, "DISPLAY_MAX_PIXELS", 200_000)  # factor ceil(sqrt(9)) = 3
    monkeypatch.setattr(loading, "_STRIP_BYTES", 200_000)
    strips = load_image(path)
    with Image.open(path) as whole:
        ref = loading._fit(loading._to_rgb(whole), (500, 400))
    assert strips.pixels.shape == (400, 500, 3) and strips.scale == 500 / 1500
    assert np.abs(strips.pixels.astype(int) - ref.astype(int)).max() <= 1


# -- F11: big annotation files -------------------------------------------------------------------


def test_an_out_of_memory_save_says_so(corpus, tmp_path, monkeypatch):
    from rpn_core.annotation.formats import coco

    folder = shutil.copytree(corpus / "coco-missing-images", tmp_path / "coco")
    before = snapshot(folder)
    store = open_store(folder, "coco")
    ann = store.load(folder / "img.png", width=W, height=H)

    def oom(self):
        raise MemoryError

    monkeypatch.setattr(coco.CocoDocument, "to_bytes", oom)
    with pytest.raises(AnnotationWriteError) as info:
        store.save(ann)
    assert info.value.reason == "out of memory while writing the COCO file"
    assert snapshot(folder) == before


def test_training_caps_the_boxes_of_one_image_and_says_so():
    from rpn_core.training.data import as_samples, cap_notes, split_samples

    n = limits.MAX_TRAIN_BOXES_PER_IMAGE + 5
    xs = np.arange(n, dtype=np.float32) % 90
    boxes = np.stack([xs, xs * 0, xs + 5, xs * 0 + 5], axis=1)
    samples = as_samples([(np.zeros((80, 100, 3), np.uint8), boxes)])
    assert len(samples[0].boxes) == limits.MAX_TRAIN_BOXES_PER_IMAGE
    assert samples[0].boxes_in_file == n
    assert cap_notes(samples) == [
        f"image 0: {n} boxes; training uses the first {limits.MAX_TRAIN_BOXES_PER_IMAGE}"
        " (the limit per image)"
    ]
    assert split_samples(1, 0.0, 0).summary(samples)["capped"] == cap_notes(samples)


# -- smaller -------------------------------------------------------------------------------------


def test_utf16_voc_is_detected_and_read(corpus):
    folder = corpus / "round2" / "voc-utf16"
    assert detect_format(folder) == "voc"  # was None: "no annotated images"
    ann = open_store(folder, "voc").load(folder / "img.png", width=W, height=H)
    assert [(b.label, b.xyxy) for b in ann.boxes] == [("cat", (10.0, 20.0, 50.0, 60.0))]


def test_saving_through_a_symlinked_annotation_writes_its_target(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    MC._case_image(tmp_path / "img.png")
    (real / "img.xml").write_bytes(MC.voc_xml("img.png", MC.CASE_SIZE, [MC.GOOD_VOC]))
    (tmp_path / "img.xml").symlink_to(Path("real") / "img.xml")  # relative link
    store = open_store(tmp_path, "voc")
    ann = store.load(tmp_path / "img.png", width=W, height=H)
    ann.boxes.append(Box(60, 10, 90, 30, "dog"))
    store.save(ann)
    assert (tmp_path / "img.xml").is_symlink()  # still a link ...
    back = open_store(real, "voc", image_root=tmp_path).load(
        tmp_path / "img.png", width=W, height=H
    )
    assert [b.label for b in back.boxes] == ["cat", "dog"]  # ... and its target was written
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_stale_temporary_files_from_a_kill_are_cleaned_and_only_ours(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_cleaned", set())
    (tmp_path / "img.xml").write_bytes(b"<annotation/>")
    old = time.time() - 2 * atomic.STALE_TEMP_AGE_S
    ours_new_form = tmp_path / f"{atomic.temp_prefix('img.xml')}abc_1234.tmp"
    ours_old_form = tmp_path / ".img.xml.k2j4h5g6.tmp"  # what earlier versions left
    fresh = tmp_path / f"{atomic.temp_prefix('img.xml')}zzzz9999.tmp"  # a save under way
    not_ours = [tmp_path / ".notes.k2j4h5g6.tmp", tmp_path / "user.tmp"]  # no such target
    for p in (ours_new_form, ours_old_form, fresh, *not_ours):
        p.write_bytes(b"partial")
    for p in (ours_new_form, ours_old_form, *not_ours):
        os.utime(p, (old, old))
    atomic.atomic_write_bytes(tmp_path / "other.xml", b"<annotation/>")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert ours_new_form.name not in left and ours_old_form.name not in left
    assert {fresh.name, *(p.name for p in not_ours)} <= set(left)


def test_limits_quoted_by_the_readme_are_the_enforced_ones():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = {
        "Largest image": f"{limits.MAX_IMAGE_PIXELS / 1e6:.0f} MP",
        "Memory per image decode": limits.describe_bytes(limits.MAX_DECODE_BYTES),
        "Per-image annotation file": limits.describe_bytes(limits.MAX_ANNOTATION_BYTES),
        "COCO file": limits.describe_bytes(limits.MAX_COCO_BYTES),
        "YOLO class id": f"{limits.MAX_CLASS_ID:,}",
        "Boxes per image in training": f"{limits.MAX_TRAIN_BOXES_PER_IMAGE:,}",
        "Anchors per image": f"{limits.MAX_ANCHORS_PER_IMAGE:,}",
        "Weights file": limits.describe_bytes(limits.MAX_WEIGHTS_BYTES),
    }
    for row, value in rows.items():
        line = next((ln for ln in readme.splitlines() if ln.startswith(f"| {row} |")), None)
        assert line is not None and f"| {value} |" in line, (row, value, line)


def test_big_json_is_read_and_written_piecewise_with_the_same_bytes_and_errors():
    """F11: a 100 MB COCO file is parsed and encoded one element of its top-level lists at a
    time (one json.loads / json.dumps call would hold the GIL for seconds and freeze the GUI
    thread during a background save). Same value, same bytes, same error position."""
    import json

    from rpn_core.annotation.formats import _common

    doc = {
        "info": {"description": "é"},
        "images": [{"id": i, "file_name": f"é{i}.png"} for i in range(3000)],
        "annotations": [
            {"id": k, "bbox": [k, 1.5, 2, 3], "segmentation": []} for k in range(60000)
        ],
        "categories": [{"id": 1, "name": "cat"}],
        "empty": [],
    }
    data = _common.json_bytes(doc, None)
    assert data == (json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8")
    doc["categories"].append({"id": 2, "name": MC.SURROGATE_COCO})  # only ASCII escapes work
    assert _common.json_bytes(doc, None) == (json.dumps(doc) + "\n").encode("ascii")
    padded = data + b" " * _common._BIG_TEXT  # above the piecewise threshold
    assert _common.json_loads(padded) == json.loads(padded)
    for cut in (100, len(data) // 2, len(data) - 3):
        broken = data[:cut] + b" " * _common._BIG_TEXT
        with pytest.raises(json.JSONDecodeError) as ours:
            _common.json_loads(broken)
        with pytest.raises(json.JSONDecodeError) as theirs:
            json.loads(broken)
        assert (ours.value.msg, ours.value.pos) == (theirs.value.msg, theirs.value.pos)
