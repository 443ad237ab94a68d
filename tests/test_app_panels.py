"""Panels with real clicks and typing: file list filter and navigation, class list, box list,
recent files and preferences that persist."""

from __future__ import annotations

import pytest
from app_testing import make_folder, make_image, open_window
from PySide6.QtCore import Qt

from app.common.settings import AppSettings
from app.shell.main_window import MainWindow
from app.state.undo import AddBoxesCommand
from rpn_core.annotation.data import Box
from rpn_core.annotation.image_state import ImageState


@pytest.fixture
def folder(tmp_path):
    make_folder(tmp_path / "imgs", n=3)
    make_image(tmp_path / "imgs" / "fruit.png", 5)
    (tmp_path / "imgs" / "zero.jpg").write_bytes(b"")
    return tmp_path / "imgs"


def click_row(qtbot, view, row):
    index = view.model().index(row, 0)
    rect = view.visualRect(index)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_file_list_filter_and_click_to_open(qtbot, folder, app_settings):
    window = open_window(qtbot, app_settings, [folder])
    panel = window.file_list
    names = [panel.model.item(r).text() for r in range(panel.model.rowCount())]
    assert names == ["fruit.png", "img0.png", "img1.png", "img2.png", "zero.jpg"]
    qtbot.keyClicks(panel.filter_edit, "IMG")  # case-insensitive
    assert panel.proxy.rowCount() == 3
    click_row(qtbot, panel.view, 2)  # third visible row: img2.png
    assert window.workspace.current_path.name == "img2.png"
    panel.filter_edit.clear()
    window.workspace.go_to(4)  # zero.jpg: unreadable
    panel.state_combo.setCurrentIndex(panel.state_combo.findData(ImageState.UNREADABLE))
    assert panel.proxy.rowCount() == 1
    assert panel.proxy.index(0, 0).data() == "zero.jpg"


def test_add_class_by_typing_and_it_is_used_and_remembered(qtbot, folder, app_settings):
    window = open_window(qtbot, app_settings, [folder])
    panel = window.class_panel
    qtbot.keyClicks(panel.new_edit, "zebra")
    qtbot.keyClick(panel.new_edit, Qt.Key.Key_Return)
    assert window.workspace.classes.names == ["zebra"]
    assert window.canvas.default_label == "zebra"
    assert panel.list.item(0).text().split() == ["1", "zebra"]
    # A second window on the same folder starts with the same project classes.
    other = MainWindow(settings=app_settings)
    qtbot.addWidget(other)
    other.open_paths([folder])
    assert other.workspace.classes.names == ["zebra"]


def test_box_list_selection_follows_clicks_both_ways(qtbot, folder, app_settings):
    window = open_window(qtbot, app_settings, [folder])
    doc = window.document
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(1, 1, 20, 20, "a"), Box(30, 30, 60, 60, "b")]))
    click_row(qtbot, window.box_list, 0)
    assert doc.selection == [0]
    doc.select([1])
    assert [i.text().split()[0] for i in window.box_list.selectedItems()] == ["b"]
    doc.undo_stack.undo()
    assert window.box_list.count() == 0


def test_recent_files_menu_reopens(qtbot, folder, tmp_path, app_settings):
    window = open_window(qtbot, app_settings, [folder])
    single = make_image(tmp_path / "solo" / "one.png", 1)
    window.open_paths([single])
    assert app_settings.recent_paths[:2] == [str(single), str(folder)]
    window.recent_menu.aboutToShow.emit()  # what opening the menu does
    action = next(a for a in window.recent_menu.actions() if a.text() == str(folder))
    action.trigger()
    assert len(window.workspace.images) == 5


def test_preferences_round_trip(tmp_path):
    s = AppSettings.in_file(tmp_path / "p.ini")
    assert (s.save_format, s.voc_convention, s.autosave, s.keep_previous) == (
        "auto",
        "devkit",
        True,
        False,
    )
    s.save_format, s.voc_convention, s.autosave, s.keep_previous = "coco", "labelimg", False, True
    s.sync()
    t = AppSettings.in_file(tmp_path / "p.ini")
    assert (t.save_format, t.voc_convention, t.autosave, t.keep_previous) == (
        "coco",
        "labelimg",
        False,
        True,
    )
    with pytest.raises(ValueError):
        t.save_format = "pascal"


def test_e_returns_to_edit_mode_and_title_tracks_dirty(qtbot, folder, app_settings):
    app_settings.autosave = False
    window = open_window(qtbot, app_settings, [folder])
    qtbot.keyClick(window.canvas, Qt.Key.Key_W)
    assert window.mode_label.text() == "Create"
    qtbot.keyClick(window.canvas, Qt.Key.Key_E)
    assert window.canvas.mode == "edit"
    assert window.windowTitle() == "fruit.png [1/5] — RPN Studio"
    doc = window.document
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(1, 1, 20, 20)]))
    assert window.windowTitle() == "*fruit.png [1/5] — RPN Studio"
    qtbot.keyClick(window.canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert window.windowTitle() == "fruit.png [1/5] — RPN Studio"
    assert (folder / "fruit.xml").is_file()
