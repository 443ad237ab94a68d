"""Drawing and labelling as labelImg / labelme users expect (issue 14), with real mouse and key
events: the label prompt after a drawn box, "use default label", no unlabelled box ever saved,
the rule of keys 1-9, focus after adding a class, the "Saved ..." message, class colours."""

from __future__ import annotations

import pytest
from app_testing import drag_image, make_folder, open_window, show_zoom
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from app.annotate.label_prompt import LabelPrompt, ordered_classes
from app.canvas.box_item import label_color
from app.state.undo import AddBoxesCommand
from rpn_core.annotation.data import AnnotationWriteError, Box, ImageAnnotation
from rpn_core.annotation.formats.folder import open_store


@pytest.fixture
def window(qtbot, tmp_path, app_settings):
    make_folder(tmp_path / "imgs", n=2)
    w = open_window(qtbot, app_settings, [tmp_path / "imgs"], prompt=True)
    for name in ("car", "person", "dog"):
        w.workspace.classes.add(name)
    show_zoom(w.canvas, 1.0, (160, 120))
    return w


def answer_prompt(qtbot, keys: str = "", key=Qt.Key.Key_Return, seen: list | None = None) -> None:
    """When the prompt opens: type ``keys`` into its filter field, then press ``key``."""

    def act() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, LabelPrompt), dialog
        if seen is not None:
            seen.append([dialog.list.item(r).text() for r in range(dialog.list.count())])
        if keys:
            qtbot.keyClicks(dialog.edit, keys)
        qtbot.keyClick(dialog.edit, key)

    QTimer.singleShot(0, act)


def draw(qtbot, window, p0=(100, 100), p1=(150, 150)) -> None:
    qtbot.keyClick(window.canvas, Qt.Key.Key_W)
    drag_image(qtbot, window.canvas, p0, p1)
    qtbot.waitUntil(window.isActiveWindow)  # back from the modal prompt


def test_prompt_filters_and_enter_labels_the_box_in_one_undo_step(qtbot, window):
    doc = window.document
    answer_prompt(qtbot, "pers")
    draw(qtbot, window)
    assert [b.label for b in doc.boxes] == ["person"]
    assert doc.undo_stack.count() == 1  # add + label: one step
    assert window.workspace.classes.default == "person"  # the next box's class
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.boxes == []


def test_prompt_lists_recent_classes_first_and_accepts_a_new_name(qtbot, window):
    seen: list = []
    answer_prompt(qtbot, "dog")
    draw(qtbot, window)
    answer_prompt(qtbot, "", seen=seen)  # Enter at once: the highlighted (last used) class
    draw(qtbot, window, (200, 40), (260, 90))
    assert seen[0][0] == "dog"
    assert [b.label for b in window.document.boxes] == ["dog", "dog"]
    answer_prompt(qtbot, "bicycle")
    draw(qtbot, window, (20, 150), (60, 200))
    assert window.document.boxes[2].label == "bicycle"
    assert "bicycle" in window.workspace.classes.names
    assert ordered_classes(["a", "b", "c"], ["c", "x", "a"]) == ["c", "a", "b"]


def test_a_class_starting_with_the_text_wins_over_one_containing_it(qtbot, window):
    window.workspace.classes.add("rocket")
    answer_prompt(qtbot, "r")  # "person" contains r, "rocket" starts with it
    draw(qtbot, window)
    assert window.document.boxes[0].label == "rocket"


def test_escape_drops_the_new_box(qtbot, window):
    answer_prompt(qtbot, "car", key=Qt.Key.Key_Escape)
    draw(qtbot, window)
    assert window.document.boxes == []
    assert window.document.undo_stack.count() == 0
    assert not window.document.dirty


def test_use_default_label_skips_the_prompt_and_is_remembered(qtbot, window, app_settings):
    panel = window.class_panel
    qtbot.mouseClick(panel.use_default_box, Qt.MouseButton.LeftButton)
    assert app_settings.use_default_label
    qtbot.keyClick(window.canvas, Qt.Key.Key_2)  # class 2 for the next boxes
    draw(qtbot, window)  # no prompt: it would block this test
    assert window.document.boxes[0].label == "person"
    # The prompt's own check box switches it on too, and the panel follows.
    qtbot.mouseClick(panel.use_default_box, Qt.MouseButton.LeftButton)
    assert not app_settings.use_default_label

    def tick_and_accept() -> None:
        dialog = QApplication.activeModalWidget()
        dialog.use_default_box.setChecked(True)
        qtbot.keyClick(dialog.edit, Qt.Key.Key_Return)

    QTimer.singleShot(0, tick_and_accept)
    draw(qtbot, window, (200, 40), (260, 90))
    assert app_settings.use_default_label and panel.use_default_box.isChecked()


def test_number_key_after_drawing_picks_the_next_class_not_the_new_box(qtbot, window):
    doc = window.document
    answer_prompt(qtbot, "car")
    draw(qtbot, window)
    assert doc.selection == [0]  # the new box is still selected
    qtbot.keyClick(window.canvas, Qt.Key.Key_3)
    assert doc.boxes[0].label == "car"  # not silently relabelled
    assert window.workspace.classes.default == "dog"
    assert "Next box: 'dog'" in window.statusBar().currentMessage()
    assert window.next_label.text() == "Next box: dog"
    # A box the user selects (a click) is relabelled by the key.
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, pos=_at(window, 125, 125))
    qtbot.keyClick(window.canvas, Qt.Key.Key_2)
    assert doc.boxes[0].label == "person"
    assert "Set class 'person' on 1 selected box" in window.statusBar().currentMessage()


def _at(window, x, y):
    from app_testing import view_pos

    return view_pos(window.canvas, x, y)


def test_enter_in_new_class_field_gives_the_keyboard_back_to_the_canvas(qtbot, window):
    panel = window.class_panel
    qtbot.mouseClick(panel.new_edit, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(panel.new_edit, "truck")
    qtbot.keyClick(panel.new_edit, Qt.Key.Key_Return)
    assert window.workspace.classes.default == "truck"
    assert window.canvas.hasFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_W)  # W draws at once
    assert window.canvas.mode == "create"


def test_unlabelled_box_is_never_saved(qtbot, window, tmp_path):
    """W + drag + Ctrl+S: the prompt gives the box a class; a box without one (from an old
    file) is refused by the store with a clear message, and nothing is written."""
    doc = window.document
    answer_prompt(qtbot, "", key=Qt.Key.Key_Escape)
    draw(qtbot, window)
    qtbot.keyClick(window.canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert not (tmp_path / "imgs" / "img0.xml").exists()
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(10, 10, 50, 50, label="")]))
    qtbot.keyClick(window.canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert not (tmp_path / "imgs" / "img0.xml").exists()
    assert "has no class" in window.message_bar.messages[-1][1]
    assert doc.dirty
    for fmt in ("voc", "yolo", "coco", "labelme"):
        store = open_store(tmp_path / fmt, fmt)
        ann = ImageAnnotation(tmp_path / "imgs" / "img0.png", 320, 240, boxes=[Box(1, 1, 9, 9)])
        with pytest.raises(AnnotationWriteError, match="no class"):
            store.save(ann)
        assert not (tmp_path / fmt).exists() or not any((tmp_path / fmt).iterdir())


def test_every_save_says_saved_in_the_status_bar(qtbot, window, tmp_path):
    answer_prompt(qtbot, "car")
    draw(qtbot, window)
    qtbot.keyClick(window.canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert window.statusBar().currentMessage().startswith("Saved 1 box to ")
    assert (tmp_path / "imgs" / "img0.xml").is_file()
    qtbot.keyClick(window.canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert window.statusBar().currentMessage().startswith("Saved")


def test_first_three_class_colours_have_distinct_hues_and_list_shows_nine_rows(window):
    hues = [label_color(n).hue() for n in ("car", "person", "dog")]
    for i in range(3):
        for j in range(i + 1, 3):
            d = abs(hues[i] - hues[j])
            assert min(d, 360 - d) >= 60, hues
    lst = window.class_panel.list
    assert lst.minimumHeight() >= 9 * lst.fontMetrics().height()


def test_down_key_in_the_filter_moves_through_the_classes(qtbot, window):
    def act() -> None:
        dialog = QApplication.activeModalWidget()
        assert dialog.list.currentItem().text() == "car"  # the default, highlighted
        qtbot.keyClick(dialog.edit, Qt.Key.Key_Down)
        qtbot.keyClick(dialog.edit, Qt.Key.Key_Down)
        assert "dog" in dialog.hint.text()
        qtbot.keyClick(dialog.edit, Qt.Key.Key_Return)

    QTimer.singleShot(0, act)
    draw(qtbot, window)
    assert window.document.boxes[0].label == "dog"
