"""View ▸ Show Boxes, Show Box Labels and the display-only brightness / contrast, through real
key and mouse events on the real MainWindow.

The test images come from ``app_testing.make_image``: pixel (x, y) of image ``i`` is
``((3x + 40i) % 256, 5y % 256, (70i + 20) % 256)``, so pixel (20, 20) of image 0 is
(60, 100, 20) and of image 1 is (100, 100, 90). Expected adjusted values follow the rule of
:mod:`rpn_core.images.adjust`: out = round(gain * (128 + contrast * (v - 128))), clipped.
"""

from __future__ import annotations

import numpy as np
import pytest
from app_testing import drag_image, make_folder, open_window, view_pos
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage

from app.annotate.view_options import adjusted_qimage
from app.shell.help import SHORTCUTS
from app.shell.main_window import MainWindow
from app.state.undo import AddBoxesCommand
from rpn_core.annotation.data import Box
from rpn_core.images.adjust import ImageAdjustment
from rpn_core.images.loading import load_image

CTRL = Qt.KeyboardModifier.ControlModifier
CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "imgs", n=2)


@pytest.fixture
def window(qtbot, folder, app_settings):
    return open_window(qtbot, app_settings, [folder[0].parent])


def add_boxes(window, *xyxys, label="dog"):
    boxes = [Box(*xyxy, label=label) for xyxy in xyxys]
    window.document.undo_stack.push(AddBoxesCommand(window.document, boxes))
    window.document.select([])


def shown_rgb(window, x: int, y: int) -> tuple[int, int, int]:
    """The colour the canvas pixmap shows at display pixel (x, y) (scale 1 here)."""
    c = QColor(window.canvas.image_item.pixmap().toImage().pixel(x, y))
    return c.red(), c.green(), c.blue()


def rgb_array(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w = image.height(), image.width()
    rows = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes()).reshape(h, -1)
    return rows[:, : 3 * w].reshape(h, w, 3).copy()


def press(qtbot, window, key, modifiers=CTRL_SHIFT):
    qtbot.keyClick(window.canvas, key, modifiers)


# -- Show Boxes ----------------------------------------------------------------------------------
def test_ctrl_h_hides_and_shows_the_boxes_and_persists(qtbot, window, app_settings):
    add_boxes(window, (20, 20, 80, 80), (150, 60, 220, 140))
    items = window.canvas.box_items()
    assert all(item.isVisible() for item in items) and window.canvas.tags.isVisible()
    press(qtbot, window, Qt.Key.Key_H, CTRL)
    assert not any(item.isVisible() for item in items)
    assert not window.canvas.tags.isVisible()  # no tags floating over hidden boxes
    assert not window.actions.show_boxes.isChecked() and app_settings.show_boxes is False
    press(qtbot, window, Qt.Key.Key_H, CTRL)
    assert all(item.isVisible() for item in items) and window.canvas.tags.isVisible()
    assert app_settings.show_boxes is True


def test_hidden_boxes_are_never_selected_moved_or_resized(qtbot, window):
    add_boxes(window, (100, 80, 200, 160))
    canvas, doc = window.canvas, window.document
    doc.select([0])
    assert all(h.isVisible() for h in canvas._handles)
    press(qtbot, window, Qt.Key.Key_H, CTRL)
    assert doc.selection == []  # hiding clears the selection ...
    assert not any(h.isVisible() for h in canvas._handles)  # ... and the handles go
    steps = doc.undo_stack.count()
    activated = []
    canvas.box_activated.connect(activated.append)
    vp = canvas.viewport()
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=view_pos(canvas, 150, 120))
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, CTRL, view_pos(canvas, 150, 120))
    qtbot.mouseDClick(vp, Qt.MouseButton.LeftButton, pos=view_pos(canvas, 150, 120))
    drag_image(qtbot, canvas, (150, 120), (250, 200))  # the inside: would move it
    drag_image(qtbot, canvas, (200, 160), (260, 220))  # a corner handle: would resize it
    qtbot.keyClick(canvas, Qt.Key.Key_Right)  # would nudge a selected box
    assert doc.selection == [] and activated == []
    assert doc.boxes[0].xyxy == (100, 80, 200, 160)
    assert doc.undo_stack.count() == steps
    assert not canvas.box_items()[0].isVisible()  # and nothing brought them back


def test_selecting_or_drawing_shows_hidden_boxes_again(qtbot, window):
    add_boxes(window, (100, 80, 200, 160))
    canvas = window.canvas
    press(qtbot, window, Qt.Key.Key_H, CTRL)
    press(qtbot, window, Qt.Key.Key_A, CTRL)  # select all: you see what you selected
    assert window.document.selection == [0] and canvas.box_items()[0].isVisible()
    press(qtbot, window, Qt.Key.Key_H, CTRL)
    qtbot.keyClick(canvas, Qt.Key.Key_W)  # draw: you see the boxes you draw among
    assert canvas.mode == "create" and canvas.box_items()[0].isVisible()
    assert window.actions.show_boxes.isChecked()
    drag_image(qtbot, canvas, (20, 20), (60, 60))
    assert len(canvas.box_items()) == 2 and all(i.isVisible() for i in canvas.box_items())


def test_hiding_boxes_leaves_draw_mode(qtbot, window):
    qtbot.keyClick(window.canvas, Qt.Key.Key_W)
    assert window.canvas.mode == "create"
    press(qtbot, window, Qt.Key.Key_H, CTRL)
    assert window.canvas.mode == "edit"


def test_hidden_state_applies_to_the_next_image(qtbot, window, folder):
    add_boxes(window, (10, 10, 50, 50))
    press(qtbot, window, Qt.Key.Key_H, CTRL)
    qtbot.keyClick(window.canvas, Qt.Key.Key_D)
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)  # back: new items for the saved box
    assert window.workspace.index == 0 and len(window.document.boxes) == 1
    assert not window.canvas.box_items()[0].isVisible()
    assert not window.canvas.tags.isVisible()


# -- Show Box Labels -----------------------------------------------------------------------------
def test_ctrl_shift_p_hides_the_tag_text(qtbot, window, app_settings):
    add_boxes(window, (100, 80, 200, 160))
    canvas = window.canvas
    canvas.set_zoom(1.0)
    canvas.centerOn(160, 120)
    # The tag sits just above the box's top-left corner, in the class colour.
    tag = view_pos(canvas, 100, 80) + QPoint(6, -6)

    def tag_pixel() -> QColor:
        qtbot.wait(10)
        return canvas.viewport().grab().toImage().pixelColor(tag)

    with_tag = tag_pixel()
    press(qtbot, window, Qt.Key.Key_P)
    assert not canvas.tags.isVisible() and canvas.box_items()[0].isVisible()
    assert not window.actions.show_labels.isChecked() and app_settings.show_labels is False
    without_tag = tag_pixel()
    assert with_tag != without_tag
    press(qtbot, window, Qt.Key.Key_H, CTRL)
    press(qtbot, window, Qt.Key.Key_H, CTRL)
    assert not canvas.tags.isVisible()  # showing the boxes again keeps the labels off
    press(qtbot, window, Qt.Key.Key_P)
    assert canvas.tags.isVisible() and tag_pixel() == with_tag


def test_view_settings_persist_in_a_new_window(qtbot, window, folder, app_settings):
    add_boxes(window, (10, 10, 50, 50))  # saved on close (autosave)
    press(qtbot, window, Qt.Key.Key_H, CTRL)
    press(qtbot, window, Qt.Key.Key_P)
    press(qtbot, window, Qt.Key.Key_Up)  # brightness is for this session only
    window.close()
    again = MainWindow(settings=app_settings)
    qtbot.addWidget(again)
    assert again.open_paths([str(folder[0].parent)])
    assert len(again.document.boxes) == 1
    a = again.actions
    assert not a.show_boxes.isChecked() and not a.show_labels.isChecked()
    assert not again.canvas.box_items()[0].isVisible() and not again.canvas.tags.isVisible()
    assert shown_rgb(again, 20, 20) == (60, 100, 20)


# -- brightness and contrast ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (Qt.Key.Key_Up, (66, 110, 22)),  # x1.1
        (Qt.Key.Key_Down, (54, 90, 18)),  # x0.9
        (Qt.Key.Key_Right, (53, 97, 9)),  # 128 + 1.1 * (v - 128): 53.2, 97.2, 9.2
        (Qt.Key.Key_Left, (67, 103, 31)),  # 128 + 0.9 * (v - 128): 66.2, 102.8, 30.8
    ],
)
def test_adjustment_keys_change_the_shown_pixels_only(qtbot, window, folder, key, expected):
    doc = window.document
    pixels_before = doc.loaded.pixels.copy()
    qimage_before = rgb_array(doc.qimage)
    file_before = folder[0].read_bytes()
    assert shown_rgb(window, 20, 20) == (60, 100, 20)
    press(qtbot, window, key)
    assert shown_rgb(window, 20, 20) == expected
    # The document's image, the RPN's input (loaded.pixels, see ProposalsPanel) and the file
    # are what was decoded.
    np.testing.assert_array_equal(doc.loaded.pixels, pixels_before)
    np.testing.assert_array_equal(doc.loaded.pixels, load_image(folder[0]).pixels)
    np.testing.assert_array_equal(rgb_array(doc.qimage), qimage_before)
    assert folder[0].read_bytes() == file_before
    assert doc.pixel_at(20, 20) == (60, 100, 20)  # the status bar reads the original pixel


def test_adjustment_keys_do_not_nudge_a_selected_box(qtbot, window):
    add_boxes(window, (100, 80, 200, 160))
    window.document.select([0])
    press(qtbot, window, Qt.Key.Key_Up)
    press(qtbot, window, Qt.Key.Key_Right)
    assert window.document.boxes[0].xyxy == (100, 80, 200, 160)
    # 1.1 * (128 + 1.1 * (v - 128)): 1.1 * 53.2, 1.1 * 97.2, 1.1 * 9.2 = 58.52, 106.92, 10.12
    assert shown_rgb(window, 20, 20) == (59, 107, 10)


def test_adjustment_carries_over_to_the_next_image_and_reset_restores_it(qtbot, window):
    original0 = rgb_array(window.document.qimage)
    press(qtbot, window, Qt.Key.Key_Up)
    label = window.display_options.adjust_label
    assert label.isVisible() and label.text() == "Brightness 110 %, contrast 100 %"
    assert "Brightness 110 %" in window.statusBar().currentMessage()
    qtbot.keyClick(window.canvas, Qt.Key.Key_D)
    assert window.workspace.index == 1
    assert shown_rgb(window, 20, 20) == (110, 110, 99)  # (100, 100, 90) x1.1
    press(qtbot, window, Qt.Key.Key_R)  # reset
    assert shown_rgb(window, 20, 20) == (100, 100, 90)
    assert not label.isVisible()
    np.testing.assert_array_equal(
        rgb_array(window.canvas.image_item.pixmap().toImage()), rgb_array(window.document.qimage)
    )
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)
    shown = rgb_array(window.canvas.image_item.pixmap().toImage())
    np.testing.assert_array_equal(shown, original0)


def test_steps_stop_at_the_limit(qtbot, window):
    for _ in range(15):
        press(qtbot, window, Qt.Key.Key_Down)
    assert shown_rgb(window, 20, 20) == (12, 20, 4)  # x0.2: 12, 20, 4
    assert "(limit)" in window.statusBar().currentMessage()


def test_adjustment_applies_to_a_downscaled_display_copy(
    qtbot, tmp_path, app_settings, monkeypatch
):
    import rpn_core.images.loading as imageio

    monkeypatch.setattr(imageio, "DISPLAY_MAX_PIXELS", 20_000)
    make_folder(tmp_path / "big", n=1)
    window = open_window(qtbot, app_settings, [tmp_path / "big"])
    item = window.canvas.image_item
    before = rgb_array(item.pixmap().toImage())
    press(qtbot, window, Qt.Key.Key_Up)
    after = rgb_array(item.pixmap().toImage())
    assert after.shape == before.shape and after.shape[1] < 320
    np.testing.assert_array_equal(after, ImageAdjustment(brightness=1).lut()[before])
    shown = item.sceneBoundingRect()
    assert (shown.width(), shown.height()) == pytest.approx((320, 240), abs=1.5)


def test_adjusted_qimage_keeps_the_source_and_the_opaque_byte():
    rgb = np.array([[[100, 0, 255], [128, 50, 200]]], dtype=np.uint8)
    src = QImage(rgb.data, 2, 1, 6, QImage.Format.Format_RGB888).copy()  # not RGB32: converted
    out = adjusted_qimage(src, ImageAdjustment(brightness=1).lut())
    assert out.format() == QImage.Format.Format_RGB32
    assert [QColor(out.pixel(x, 0)).getRgb() for x in range(2)] == [
        (110, 0, 255, 255),
        (141, 55, 220, 255),
    ]
    np.testing.assert_array_equal(rgb_array(src), rgb)


# -- menu and help -------------------------------------------------------------------------------
def test_view_menu_and_shortcuts_help_list_the_new_actions(window):
    a = window.actions
    new = [a.show_boxes, a.show_labels, a.brighter, a.darker, a.more_contrast, a.less_contrast,
           a.reset_adjustments]
    assert all(action in window.menus["view"].actions() for action in new)
    listed = " ".join(keys for keys, _ in SHORTCUTS)
    for action in new:
        for seq in action.shortcuts():
            assert seq.toString() in listed


def test_no_two_window_actions_share_a_shortcut(window):
    seen: dict[str, str] = {}
    for action in window.findChildren(type(window.actions.save)):
        for seq in action.shortcuts():
            key = seq.toString()
            assert key not in seen, f"{key}: {seen[key]} and {action.text()}"
            seen[key] = action.text()
