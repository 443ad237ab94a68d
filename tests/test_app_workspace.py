"""Files and navigation: autosave to real files read back with the store, failed saves that
lose nothing, unreadable images, D/A navigation with prefetch, copy/paste across images."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_testing import drag_image, make_folder, make_image, open_window, show_zoom
from PIL import Image
from PySide6.QtCore import Qt

from app.annotate.workspace import AUTOSAVE_DELAY_MS
from app.state.undo import AddBoxesCommand
from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.annotation.formats import open_store
from rpn_core.annotation.image_state import ImageState


@pytest.fixture
def folder(tmp_path) -> Path:
    make_folder(tmp_path / "imgs", n=3)
    return tmp_path / "imgs"


def add(window, *boxes):
    window.document.undo_stack.push(AddBoxesCommand(window.document, list(boxes)))


@pytest.mark.parametrize("fmt", ["voc", "yolo", "coco", "labelme"])
def test_drawn_box_is_autosaved_on_next_image_and_reads_back(qtbot, folder, app_settings, fmt):
    window = open_window(qtbot, app_settings, [folder], fmt=fmt)
    window.workspace.classes.add("cat")
    canvas = window.canvas
    show_zoom(canvas, 1.0, (160, 120))
    qtbot.keyClick(canvas, Qt.Key.Key_W)
    drag_image(qtbot, canvas, (40, 30), (140, 110))
    assert window.windowTitle().startswith("*")
    qtbot.keyClick(canvas, Qt.Key.Key_D)  # next image: saves first
    assert window.workspace.index == 1
    assert not window.document.dirty
    store = open_store(folder, fmt)
    ann = store.load(folder / "img0.png", width=320, height=240)
    (box,) = ann.boxes
    assert box.label == "cat"
    # Zoom 1: each screen pixel is one image pixel; the drag spans (40,30)-(140,110).
    assert box.xyxy == pytest.approx((40, 30, 140, 110), abs=1.0)
    assert window.file_list.state_name(0) == ImageState.ANNOTATED.name
    # Back with A: the saved box is shown again.
    qtbot.keyClick(canvas, Qt.Key.Key_A)
    assert window.document.boxes[0].xyxy == pytest.approx(box.xyxy)


def test_autosave_after_edit_is_debounced(qtbot, folder, app_settings):
    window = open_window(qtbot, app_settings, [folder])
    add(window, Box(10, 20, 110, 120, "dog"))
    target = window.workspace.store.annotation_path(folder / "img0.png")
    assert not target.exists()  # not yet: the timer waits for more edits
    qtbot.waitUntil(target.exists, timeout=AUTOSAVE_DELAY_MS + 3000)
    assert not window.document.dirty
    assert not window.windowTitle().startswith("*")
    ann = open_store(folder, "voc").load(folder / "img0.png", width=320, height=240)
    assert [b.xyxy for b in ann.boxes] == [(10, 20, 110, 120)]


def test_failed_save_keeps_everything_and_says_why(qtbot, folder, app_settings):
    window = open_window(qtbot, app_settings, [folder])
    ws = window.workspace
    target = ws.store.annotation_path(folder / "img0.png")
    target.mkdir()  # a folder where the XML must go: os.replace fails, even as root
    add(window, Box(10, 20, 110, 120, "dog"))
    assert not ws.save_current()
    assert window.document.dirty
    level, text = window.message_bar.messages[-1]
    assert level == "error" and str(target) in text
    assert window.message_bar.isVisible()
    qtbot.keyClick(window.canvas, Qt.Key.Key_D)  # leaving: the save fails again, edits kept
    assert window.file_list.state_name(0) == ImageState.UNSAVED.name
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)
    assert [b.xyxy for b in window.document.boxes] == [(10, 20, 110, 120)]
    assert window.document.dirty and window.windowTitle().startswith("*")
    target.rmdir()  # the user fixes the problem; the next save succeeds
    assert ws.save_current()
    assert target.is_file() and not ws.unsaved


def test_unreadable_images_are_marked_and_the_app_goes_on(qtbot, tmp_path, app_settings):
    folder = tmp_path / "mixed"
    make_image(folder / "a.png", 0)
    (folder / "b.png").write_bytes(b"")  # zero bytes
    (folder / "c.jpg").write_text("not an image at all")
    make_image(folder / "d.png", 1)
    window = open_window(qtbot, app_settings, [folder])
    for expected in ("b.png", "c.jpg"):
        qtbot.keyClick(window.canvas, Qt.Key.Key_D)
        assert window.workspace.current_path.name == expected
        assert window.document.annotation is None
        row = window.workspace.index
        assert window.file_list.state_name(row) == ImageState.UNREADABLE.name
        tip = window.file_list.model.item(row).toolTip()
        assert expected in tip and "unreadable" in tip
    assert "empty file" in window.file_list.model.item(1).toolTip()
    assert any("c.jpg" in t for _lv, t in window.message_bar.messages)
    qtbot.keyClick(window.canvas, Qt.Key.Key_D)
    assert window.document.size == (320, 240)


def test_damaged_annotation_is_reported_and_backed_up(qtbot, folder, app_settings):
    bad = folder / "img0.xml"
    bad.write_text("<annotation><object><name>cat</name>")  # truncated XML
    window = open_window(qtbot, app_settings, [folder])
    assert window.document.boxes == []
    assert any(lv == "error" and "img0.xml" in t for lv, t in window.message_bar.messages)
    add(window, Box(1, 2, 30, 40, "cat"))
    assert window.workspace.save_current()
    backups = list(folder.glob("img0.xml.bak*"))
    assert backups and backups[0].read_text().startswith("<annotation><object>")


def test_copy_paste_across_images_and_copy_previous(qtbot, folder, app_settings):
    window = open_window(qtbot, app_settings, [folder])
    canvas = window.canvas
    add(window, Box(10, 10, 60, 50, "a"), Box(100, 100, 150, 150, "b"))
    window.document.select([1])
    qtbot.keyClick(canvas, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(canvas, Qt.Key.Key_D)
    qtbot.keyClick(canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert [b.label for b in window.document.boxes] == ["b"]
    qtbot.keyClick(canvas, Qt.Key.Key_D)
    qtbot.keyClick(
        canvas,
        Qt.Key.Key_V,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert [b.label for b in window.document.boxes] == ["b"]  # image 1 had only "b"
    window.document.undo_stack.undo()
    assert window.document.boxes == []


def test_keep_previous_fills_empty_images(qtbot, folder, app_settings):
    window = open_window(qtbot, app_settings, [folder])
    window.actions.keep_previous.trigger()
    add(window, Box(10, 10, 60, 50, "a"))
    qtbot.keyClick(window.canvas, Qt.Key.Key_D)
    assert [b.xyxy for b in window.document.boxes] == [(10, 10, 60, 50)]
    assert window.document.dirty  # copied boxes are an edit: saved like any other


def test_neighbours_are_prefetched(qtbot, folder, app_settings):
    window = open_window(qtbot, app_settings, [folder])
    cache = window.workspace.cache
    assert cache.wait(10_000)
    assert cache.cached(folder / "img1.png") is not None
    hits = cache.hits
    qtbot.keyClick(window.canvas, Qt.Key.Key_PageDown)
    assert cache.hits == hits + 1 and window.workspace.index == 1


def test_exif_rotated_image_opens_upright(qtbot, tmp_path, app_settings):
    img = Image.new("RGB", (60, 40), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display: upright size is 40 x 60
    path = tmp_path / "rot" / "r.jpg"
    path.parent.mkdir()
    img.save(path, exif=exif)
    window = open_window(qtbot, app_settings, [path])
    assert window.document.size == (40, 60)


def test_downscaled_huge_image_keeps_original_coordinates(
    qtbot, tmp_path, app_settings, monkeypatch
):
    import rpn_core.images.loading as imageio

    monkeypatch.setattr(imageio, "DISPLAY_MAX_PIXELS", 20_000)  # 320x240 = 76,800 px > budget
    make_image(tmp_path / "big" / "x.png", 0)
    window = open_window(qtbot, app_settings, [tmp_path / "big"])
    assert window.document.size == (320, 240)
    assert window.document.loaded.scale < 1
    assert any(lv == "info" and "scale" in t for lv, t in window.message_bar.messages)
    # The display copy is smaller, but drawn scaled back to the original 320 x 240 frame.
    shown = window.canvas.image_item.sceneBoundingRect()
    assert window.canvas.image_item.pixmap().width() < 320
    assert (shown.width(), shown.height()) == pytest.approx((320, 240), abs=1.5)


def test_drop_opens_files(qtbot, folder, app_settings, tmp_path):
    from PySide6.QtCore import QMimeData, QPoint, QPointF, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    window = open_window(qtbot, app_settings, [folder])
    other = make_image(tmp_path / "other" / "z.png", 2)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(other))])
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(window.canvas.viewport(), enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(window.canvas.viewport(), drop)
    assert window.workspace.images == [other]
    assert str(other) in app_settings.recent_paths


def test_save_format_and_voc_convention_choice(qtbot, folder, app_settings):
    window = open_window(qtbot, app_settings, [folder])
    add(window, Box(10, 20, 110, 120, "dog"))
    window.actions.voc_conventions["labelimg"].trigger()
    window.actions.save_formats["yolo"].trigger()
    assert window.workspace.save_current()
    assert (folder / "img0.txt").is_file() and (folder / "classes.txt").is_file()
    assert window.format_label.text() == "Save: YOLO"
    # The folder now holds YOLO; VOC files (if any) are still read when no YOLO file exists.
    ann = open_store(folder, "yolo").load(folder / "img0.png", width=320, height=240)
    assert ann.boxes[0].xyxy == pytest.approx((10, 20, 110, 120), abs=1e-3)


def test_opening_another_folder_never_drops_unsaved_edits(qtbot, folder, tmp_path, app_settings):
    window = open_window(qtbot, app_settings, [folder])
    ws = window.workspace
    ws.store.annotation_path(folder / "img0.png").mkdir()  # every save of img0 fails
    add(window, Box(10, 20, 110, 120, "dog"))
    ws.confirm_discard = lambda paths: False  # the user answers "Cancel"
    other = make_image(tmp_path / "elsewhere" / "x.png", 4)
    assert not window.open_paths([other])
    assert ws.root == folder and ws.current_path == folder / "img0.png"
    assert [b.xyxy for b in window.document.boxes] == [(10, 20, 110, 120)]
    assert "nothing else was opened" in window.message_bar.messages[-1][1]
    ws.confirm_discard = lambda paths: True  # "Discard"
    assert window.open_paths([other])
    assert ws.images == [other]


def test_non_ascii_paths_open_and_save(qtbot, tmp_path, app_settings):
    folder = tmp_path / "données" / "画像"
    make_image(folder / "ümlaut é.png", 3)
    app_settings.recursive = True  # File > Include Sub-folders
    window = open_window(qtbot, app_settings, [tmp_path / "données"], fmt="labelme")
    add(window, Box(5, 6, 50, 60, "chat"))
    assert window.workspace.save_current()
    ann = open_store(tmp_path / "données", "labelme").load(
        folder / "ümlaut é.png", width=320, height=240
    )
    assert [(b.label, b.xyxy) for b in ann.boxes] == [("chat", (5, 6, 50, 60))]
    assert window.file_list.model.item(0).text() == str(Path("画像") / "ümlaut é.png")


def test_missing_path_is_reported(qtbot, tmp_path, app_settings, folder):
    window = open_window(qtbot, app_settings, [folder])
    assert not window.open_paths([tmp_path / "nope"])  # no such file or folder
    assert any(lv == "error" and "nope" in t for lv, t in window.message_bar.messages)
    assert window.workspace.root == folder  # the open folder stays


def test_background_scan_shows_states_before_any_visit(qtbot, tmp_path, app_settings):
    folder = tmp_path / "scan"
    make_folder(folder, n=3)
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n")  # truncated header
    store = open_store(folder, "voc")
    store.save(ImageAnnotation(folder / "img1.png", 320, 240, [Box(1, 1, 9, 9, "a")]))
    store.save(
        ImageAnnotation(folder / "img2.png", 320, 240, [Box(1, 1, 9, 9, "a")], verified=True)
    )
    window = open_window(qtbot, app_settings, [folder])  # shows bad.png first (sorted)
    assert window.workspace.scanner.wait(20_000)
    qtbot.wait(50)  # the scan's batch is delivered through the event loop
    names = {
        window.file_list.model.item(r).text(): window.file_list.state_name(r)
        for r in range(window.file_list.model.rowCount())
    }
    assert names == {
        "bad.png": "UNREADABLE",
        "img0.png": "EMPTY",
        "img1.png": "ANNOTATED",
        "img2.png": "VERIFIED",
    }


# rpn_core.images.loading silences Pillow's warning for the app; pytest resets filters per test.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_is_refused_with_the_reason(qtbot, tmp_path, app_settings):
    import struct
    import zlib

    folder = tmp_path / "bomb"
    make_image(folder / "a_ok.png", 0)
    # A valid 1x1 PNG whose header claims 30000 x 20000 = 600 MP (above the 400 MP limit).
    Image.new("RGB", (1, 1)).save(folder / "b_bomb.png")
    data = bytearray((folder / "b_bomb.png").read_bytes())
    ihdr = data[12:29]  # chunk type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", 30000, 20000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    (folder / "b_bomb.png").write_bytes(bytes(data))
    window = open_window(qtbot, app_settings, [folder])
    qtbot.keyClick(window.canvas, Qt.Key.Key_D)
    assert window.document.annotation is None
    assert window.file_list.state_name(1) == ImageState.UNREADABLE.name
    assert "above the limit" in window.file_list.model.item(1).toolTip()
    assert window.isVisible()
