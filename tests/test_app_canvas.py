"""Drawing, selecting, moving and resizing boxes with real mouse and keyboard events.

Every expected coordinate is computed from the zoom: a drag of ``d`` screen pixels at zoom
``z`` moves a box edge by ``d / z`` image pixels (rounded to whole screen pixels, so the
tolerance is ``1 / z``).
"""

from __future__ import annotations

import pytest
from app_testing import drag_image, drag_view, make_folder, open_window, show_zoom, view_pos
from PySide6.QtCore import QPoint, Qt

from app.state.undo import AddBoxesCommand
from rpn_core.annotation.data import Box


@pytest.fixture
def window(qtbot, tmp_path, app_settings):
    make_folder(tmp_path / "imgs", n=2)
    return open_window(qtbot, app_settings, [tmp_path / "imgs"])


def add_box(window, xyxy, label=""):
    window.document.undo_stack.push(AddBoxesCommand(window.document, [Box(*xyxy, label=label)]))


@pytest.mark.parametrize("zoom", [0.5, 1.0, 3.0])
def test_draw_box_with_w_and_drag(qtbot, window, zoom):
    canvas = window.canvas
    show_zoom(canvas, zoom, (160, 120))
    qtbot.keyClick(canvas, Qt.Key.Key_W)
    assert canvas.mode == "create"
    drag_image(qtbot, canvas, (120, 100), (180, 140))
    (box,) = window.document.boxes
    tol = 1.0 / zoom + 1e-6
    assert box.x1 == pytest.approx(120, abs=tol) and box.y1 == pytest.approx(100, abs=tol)
    assert box.x2 == pytest.approx(180, abs=tol) and box.y2 == pytest.approx(140, abs=tol)
    assert canvas.mode == "edit"  # labelImg behaviour: back to edit after one box
    assert window.document.selection == [0]
    assert window.windowTitle().startswith("*")


def test_draw_is_clamped_to_the_image_and_r_also_draws(qtbot, window):
    canvas = window.canvas
    show_zoom(canvas, 1.0, (300, 220))
    qtbot.keyClick(canvas, Qt.Key.Key_R)
    # Drag from inside past the bottom-right corner (320 x 240 image).
    drag_view(
        qtbot, canvas, view_pos(canvas, 290, 200), view_pos(canvas, 290, 200) + QPoint(80, 90)
    )
    (box,) = window.document.boxes
    assert (box.x2, box.y2) == (320.0, 240.0)


def test_tiny_drag_creates_nothing(qtbot, window):
    canvas = window.canvas
    show_zoom(canvas, 0.5, (160, 120))
    qtbot.keyClick(canvas, Qt.Key.Key_W)
    p = view_pos(canvas, 100, 100)
    drag_view(qtbot, canvas, p, p)  # a click, not a drag
    assert window.document.boxes == []
    assert window.document.undo_stack.count() == 0


@pytest.mark.parametrize("zoom", [0.25, 1.0, 4.0])
def test_move_box_by_dragging_its_inside(qtbot, window, zoom):
    canvas = window.canvas
    add_box(window, (100, 80, 160, 120))
    show_zoom(canvas, zoom, (130, 100))
    start = view_pos(canvas, 130, 100)
    drag_view(qtbot, canvas, start, start + QPoint(20, -8), steps=7)
    (box,) = window.document.boxes
    tol = 1.0 / zoom + 1e-6
    assert box.x1 == pytest.approx(100 + 20 / zoom, abs=tol)
    assert box.y1 == pytest.approx(80 - 8 / zoom, abs=tol)
    assert box.width == pytest.approx(60) and box.height == pytest.approx(40)
    # Seven mouse moves, one undo step.
    assert window.document.undo_stack.count() == 2
    window.document.undo_stack.undo()
    assert window.document.boxes[0].xyxy == (100, 80, 160, 120)


@pytest.mark.parametrize("zoom", [0.1, 1.0, 6.0])
def test_resize_from_each_handle(qtbot, window, zoom):
    """Handles keep their screen size, so even a 40x30 box at 10 % zoom (4x3 screen pixels)
    can be grabbed: the nearest handle within 9 px wins, exactly the one aimed at."""
    canvas, stack = window.canvas, window.document.undo_stack
    add_box(window, (100, 80, 140, 110))
    show_zoom(canvas, zoom, (120, 95))
    moves = {0: "x1y1", 1: "y1", 2: "x2y1", 3: "x2", 4: "x2y2", 5: "y2", 6: "x1y2", 7: "x1"}
    dx, dy = 12 / zoom, 9 / zoom  # a (12, 9) px drag in image pixels
    tol = 1.0 / zoom + 1e-6
    for handle in range(8):
        window.document.select([0])
        points = canvas.handle_view_points()
        assert len(points) == 8
        start = points[handle].toPoint()
        drag_view(qtbot, canvas, start, start + QPoint(12, 9), steps=4)
        expected = {"x1": 100.0, "y1": 80.0, "x2": 140.0, "y2": 110.0}
        for name in expected:
            if name in moves[handle]:
                expected[name] += dx if name[0] == "x" else dy
        # Clipped to the 320 x 240 image; a drag past the opposite edge flips the box.
        ex1, ex2 = sorted(min(max(expected[k], 0), 320) for k in ("x1", "x2"))
        ey1, ey2 = sorted(min(max(expected[k], 0), 240) for k in ("y1", "y2"))
        got = window.document.boxes[0].xyxy
        assert got == pytest.approx((ex1, ey1, ex2, ey2), abs=tol), f"handle {handle}"
        assert stack.count() == 2  # the add, and this resize as ONE step
        stack.undo()
        assert window.document.boxes[0].xyxy == (100, 80, 140, 110)


def test_live_preview_fires_on_every_move_but_document_changes_once(qtbot, window):
    canvas = window.canvas
    add_box(window, (100, 80, 160, 120))
    show_zoom(canvas, 1.0, (130, 100))
    previews, changes = [], []
    window.document.box_preview.connect(lambda i, xyxy: previews.append((i, xyxy)))
    window.document.boxes_changed.connect(lambda: changes.append(1))
    start = view_pos(canvas, 130, 100)
    drag_view(qtbot, canvas, start, start + QPoint(30, 0), steps=6)
    assert [i for i, _ in previews] == [0] * 6
    assert previews[-1][1] == pytest.approx((130, 80, 190, 120), abs=1.0)
    assert len(changes) == 1


def test_move_is_kept_inside_the_image(qtbot, window):
    canvas = window.canvas
    add_box(window, (10, 10, 50, 40))
    show_zoom(canvas, 1.0, (40, 30))
    start = view_pos(canvas, 30, 25)
    drag_view(qtbot, canvas, start, start + QPoint(-200, -200))
    assert window.document.boxes[0].xyxy == (0, 0, 40, 30)


def test_click_selects_smallest_box_and_ctrl_click_toggles(qtbot, window):
    canvas = window.canvas
    add_box(window, (20, 20, 300, 220))  # big, drawn first
    add_box(window, (100, 100, 140, 140))  # small, inside it
    show_zoom(canvas, 1.0, (160, 120))
    vp = canvas.viewport()
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=view_pos(canvas, 120, 120))
    assert window.document.selection == [1]
    qtbot.mouseClick(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, view_pos(canvas, 40, 40)
    )
    assert window.document.selection == [0, 1]
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=view_pos(canvas, 5, 5))
    assert window.document.selection == []


def test_arrow_keys_nudge_and_merge_into_one_step(qtbot, window):
    canvas = window.canvas
    add_box(window, (100, 80, 160, 120))
    window.document.select([0])
    qtbot.keyClick(canvas, Qt.Key.Key_Right)
    qtbot.keyClick(canvas, Qt.Key.Key_Right)
    qtbot.keyClick(canvas, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    # +1 +1 in x, +10 in y
    assert window.document.boxes[0].xyxy == (102, 90, 162, 130)
    assert window.document.undo_stack.count() == 2
    window.document.undo_stack.undo()
    assert window.document.boxes[0].xyxy == (100, 80, 160, 120)


def test_delete_duplicate_and_escape(qtbot, window):
    canvas = window.canvas
    add_box(window, (100, 80, 160, 120), "cat")
    window.document.select([0])
    qtbot.keyClick(canvas, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert [b.xyxy for b in window.document.boxes] == [(100, 80, 160, 120), (110, 90, 170, 130)]
    assert window.document.boxes[1].label == "cat"
    assert window.document.selection == [1]
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert len(window.document.boxes) == 1
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert window.document.selection == []


def test_zoom_keys_wheel_and_pan(qtbot, window):
    canvas = window.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom == pytest.approx(1.0)
    qtbot.keyClick(canvas, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom == pytest.approx(1.25)
    qtbot.keyClick(canvas, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(canvas, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom == pytest.approx(0.8)
    qtbot.keyClick(canvas, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    vp = canvas.viewport().rect()
    # Fit: the 320 x 240 image plus a 4 px margin fills the viewport less Qt's 2 px border.
    fit = min((vp.width() - 4) / 328, (vp.height() - 4) / 248)
    assert canvas.zoom == pytest.approx(fit, rel=0.01)
    show_zoom(canvas, 4.0, (160, 120))
    before = canvas.mapToScene(vp.center())
    drag_view(qtbot, canvas, QPoint(300, 300), QPoint(340, 320), button=Qt.MouseButton.MiddleButton)
    after = canvas.mapToScene(vp.center())
    # Dragging the image right/down by (40, 20) px shows what was (10, 5) image px up-left.
    assert (before.x() - after.x(), before.y() - after.y()) == pytest.approx((10, 5), abs=0.5)


def test_ctrl_wheel_zooms_about_the_cursor(qtbot, window):
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    canvas = window.canvas
    show_zoom(canvas, 1.0, (160, 120))
    pos = view_pos(canvas, 200, 150)
    event = QWheelEvent(
        QPointF(pos),
        QPointF(canvas.viewport().mapToGlobal(pos)),
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.ControlModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas.viewport(), event)
    assert canvas.zoom == pytest.approx(1.25)
    under = canvas.mapToScene(pos)
    assert (under.x(), under.y()) == pytest.approx((200, 150), abs=1.0)


def test_space_marks_verified_but_space_drag_pans(qtbot, window):
    canvas = window.canvas
    show_zoom(canvas, 2.0, (160, 120))
    qtbot.keyClick(canvas, Qt.Key.Key_Space)
    assert window.document.verified
    assert window.actions.toggle_verified.isChecked()
    before = canvas.mapToScene(canvas.viewport().rect().center())
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    drag_view(qtbot, canvas, QPoint(200, 200), QPoint(260, 200))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    after = canvas.mapToScene(canvas.viewport().rect().center())
    assert window.document.verified  # unchanged by the pan
    assert before.x() - after.x() == pytest.approx(30, abs=0.5)  # 60 px at zoom 2
    assert window.document.boxes == []


def test_status_bar_shows_coordinates_and_pixel(qtbot, window):
    from app_testing import pixel_colour

    canvas = window.canvas
    show_zoom(canvas, 4.0, (50, 60))
    qtbot.mouseMove(canvas.viewport(), view_pos(canvas, 50.5, 60.5))
    assert "x 50." in window.coord_label.text() and "y 60." in window.coord_label.text()
    assert window.pixel_label.text() == "RGB {} {} {}".format(*pixel_colour(0, 50, 60))


def test_class_keys_label_selection_and_next_box(qtbot, window):
    canvas = window.canvas
    classes = window.workspace.classes
    for name in ("car", "person", "dog"):
        classes.add(name)
    add_box(window, (10, 10, 50, 50))
    window.document.select([0])
    qtbot.keyClick(canvas, Qt.Key.Key_2)
    assert window.document.boxes[0].label == "person"
    show_zoom(canvas, 1.0, (160, 120))
    qtbot.keyClick(canvas, Qt.Key.Key_3)
    qtbot.keyClick(canvas, Qt.Key.Key_W)
    drag_image(qtbot, canvas, (100, 100), (150, 150))
    assert window.document.boxes[1].label == "dog"
    window.rename_class("dog", "hound")
    assert window.document.boxes[1].label == "hound"
    assert classes.names == ["car", "person", "hound"]


def test_difficult_toggle(qtbot, window):
    add_box(window, (10, 10, 50, 50))
    window.document.select([0])
    qtbot.keyClick(
        window.canvas,
        Qt.Key.Key_D,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert window.document.boxes[0].difficult
    assert window.class_panel.difficult_box.isChecked()
    window.document.undo_stack.undo()
    assert not window.document.boxes[0].difficult


def test_resize_onto_the_opposite_edge_keeps_the_box(qtbot, window):
    """Dragging the right handle exactly onto the left edge would leave a zero-width box:
    the drag is cancelled (box unchanged, no undo step) instead of raising."""
    canvas, stack = window.canvas, window.document.undo_stack
    add_box(window, (100, 80, 160, 120))
    show_zoom(canvas, 1.0, (130, 100))
    window.document.select([0])
    right = canvas.handle_view_points()[3].toPoint()
    left = canvas.handle_view_points()[7].toPoint()
    drag_view(qtbot, canvas, right, left)
    assert window.document.boxes[0].xyxy == (100, 80, 160, 120)
    assert stack.count() == 1
    assert canvas.box_items()[0].xyxy() == (100, 80, 160, 120)


def test_double_click_asks_for_the_class(qtbot, window):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QInputDialog

    window.workspace.classes.add("car")
    add_box(window, (100, 80, 160, 120), "car")
    show_zoom(window.canvas, 1.0, (130, 100))

    def answer() -> None:  # type a new class into the dialog and press OK
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, QInputDialog) and dialog.textValue() == "car"
        dialog.setTextValue("truck")
        dialog.accept()

    QTimer.singleShot(0, answer)
    qtbot.mouseDClick(
        window.canvas.viewport(), Qt.MouseButton.LeftButton, pos=view_pos(window.canvas, 130, 100)
    )
    assert window.document.boxes[0].label == "truck"
    assert window.workspace.classes.names == ["car", "truck"]
    window.document.undo_stack.undo()
    assert window.document.boxes[0].label == "car"
