"""Undo/redo: a long sequence of real edits undone back to the exact start document and redone
to the exact end; the title's "*" follows the stack's clean state; 1,000 boxes stay smooth."""

from __future__ import annotations

import pytest
from app_testing import drag_image, drag_view, make_folder, open_window, show_zoom, view_pos
from PySide6.QtCore import QPoint, Qt

from app.canvas.box_item import BoxItem
from app.state.undo import AddBoxesCommand
from rpn_core.annotation.data import Box


@pytest.fixture
def window(qtbot, tmp_path, app_settings):
    make_folder(tmp_path / "imgs", n=2)
    app_settings.autosave = False  # keep the stack's clean state under the test's control
    return open_window(qtbot, app_settings, [tmp_path / "imgs"])


def snapshot(window):
    doc = window.document
    return (list(doc.boxes), doc.verified)


def test_every_edit_undoes_to_the_exact_start_and_redoes_to_the_end(qtbot, window):
    canvas, doc, stack = window.canvas, window.document, window.document.undo_stack
    for name in ("car", "person"):
        window.workspace.classes.add(name)
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(200, 150, 260, 200, "car")]))
    stack.setClean()
    start = snapshot(window)
    show_zoom(canvas, 2.0, (150, 110))
    steps_before = stack.count()
    qtbot.keyClick(canvas, Qt.Key.Key_W)  # 1 draw
    drag_image(qtbot, canvas, (100, 80), (160, 130))
    p = view_pos(canvas, 130, 105)  # 2 move the new box
    drag_view(qtbot, canvas, p, p + QPoint(20, 10))
    h = canvas.handle_view_points()[4].toPoint()  # 3 resize from bottom-right
    drag_view(qtbot, canvas, h, h + QPoint(16, 12))
    qtbot.keyClick(canvas, Qt.Key.Key_2)  # 4 relabel "person"
    qtbot.keyClick(canvas, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)  # 5 nudge
    qtbot.keyClick(canvas, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)  # 6 duplicate
    qtbot.keyClick(
        canvas,
        Qt.Key.Key_D,  # 7 difficult on the copy
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    qtbot.keyClick(canvas, Qt.Key.Key_Space)  # 8 verified
    doc.select([0])
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)  # 9 delete the "car" box
    end = snapshot(window)
    assert stack.count() - steps_before == 9
    assert [b.label for b in end[0]] == ["person", "person"] and end[1] is True
    assert end[0][1].difficult and not end[0][0].difficult
    assert window.windowTitle().startswith("*")
    for _ in range(9):
        qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert snapshot(window) == start
    assert stack.isClean() and not window.windowTitle().startswith("*")
    for i in range(9):  # redo with both shortcuts
        if i % 2:
            qtbot.keyClick(canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
        else:
            qtbot.keyClick(
                canvas,
                Qt.Key.Key_Z,
                Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
            )
    assert snapshot(window) == end
    # The canvas mirrors the document exactly after all that.
    assert [item.xyxy() for item in canvas.box_items()] == [b.xyxy for b in end[0]]


def test_history_view_lists_the_steps(qtbot, window):
    canvas = window.canvas
    show_zoom(canvas, 1.0, (160, 120))
    qtbot.keyClick(canvas, Qt.Key.Key_W)
    drag_image(qtbot, canvas, (10, 10), (60, 60))
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    model = window.undo_view.model()
    texts = [model.index(r, 0).data() for r in range(model.rowCount())]
    assert texts == ["<opened>", "Draw box", "Delete box"]
    edit_menu = [a.text() for a in window.menus["edit"].actions()]
    assert any(t.startswith("&Undo") for t in edit_menu)


def test_switching_image_clears_history_after_saving(qtbot, window):
    window.settings.autosave = True
    doc = window.document
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(1, 1, 20, 20)]))
    qtbot.keyClick(window.canvas, Qt.Key.Key_D)
    assert doc.undo_stack.count() == 0 and not doc.dirty


def test_dragging_one_of_1000_boxes_touches_only_that_box(qtbot, window, monkeypatch):
    """Per-move work is O(dragged boxes), not O(all boxes); timings: bench/canvas_drag.py."""
    doc, canvas = window.document, window.canvas
    boxes = [
        Box(x * 8.0, y * 8.0, x * 8.0 + 6, y * 8.0 + 6) for y in range(25) for x in range(40)
    ]  # a 40 x 25 grid of 6 px boxes = 1,000 boxes in 320 x 240
    doc.undo_stack.push(AddBoxesCommand(doc, boxes))
    assert len(canvas.box_items()) == 1000
    doc.select([])
    show_zoom(canvas, 4.0, (83, 83))
    touched: list[int] = []
    original = BoxItem.set_xyxy

    def counting(self, xyxy):
        touched.append(id(self))
        original(self, xyxy)

    monkeypatch.setattr(BoxItem, "set_xyxy", counting)
    start = view_pos(canvas, 83, 83)  # inside box #410 = row 10, column 10: (80, 80, 86, 86)
    drag_view(qtbot, canvas, start, start + QPoint(12, 0), steps=30)
    # 30 moves + the final update from the command, all on the one dragged item.
    assert len(set(touched)) == 1 and len(touched) == 31
    assert doc.boxes[410].x1 == pytest.approx(83.0)  # 12 screen px / zoom 4 = 3 px
    doc.undo_stack.undo()
    assert doc.boxes[410].x1 == 80.0
