"""The main window's menu bar and tool bar (what goes where); the actions themselves are in
:mod:`app.shell.actions`, their behaviour in the objects the window wires them to."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow, QMenu, QToolBar

from app.shell import layout as window_layout

__all__ = ["build_menus", "build_toolbar"]


def build_menus(window: QMainWindow) -> dict[str, QMenu]:
    """The menu bar: File, Edit, View, Go, Help (docks and panels add their own entries)."""
    a, bar = window.actions, window.menuBar()
    menus: dict[str, QMenu] = {}
    file_menu = menus["file"] = bar.addMenu("&File")
    file_menu.addActions([a.open_file, a.open_folder])
    window.recent_menu = file_menu.addMenu("Open &Recent")
    window.recent_menu.aboutToShow.connect(
        lambda: window_layout.fill_recent_menu(window, window.recent_menu)
    )
    file_menu.addAction(a.recursive)
    file_menu.addSeparator()
    file_menu.addActions([a.save, a.autosave])
    fmt_menu = file_menu.addMenu("Save &Format")
    fmt_menu.addActions(list(a.save_formats.values()))
    conv_menu = file_menu.addMenu("&VOC Coordinates")
    conv_menu.addActions(list(a.voc_conventions.values()))
    file_menu.addSeparator()
    file_menu.addAction(a.quit)
    edit = menus["edit"] = bar.addMenu("&Edit")
    edit.addActions([a.undo, a.redo])
    edit.addSeparator()
    edit.addActions([a.create_box, a.edit_mode])
    edit.addSeparator()
    edit.addActions([a.copy, a.paste, a.duplicate, a.delete, a.select_all])
    edit.addSeparator()
    edit.addActions([a.copy_previous, a.keep_previous])
    edit.addSeparator()
    edit.addActions([a.toggle_difficult, a.toggle_verified])
    classes = edit.addMenu("&Class of Selection")
    classes.addActions(a.class_keys)
    view = menus["view"] = bar.addMenu("&View")
    view.addActions([a.zoom_in, a.zoom_out, a.zoom_fit, a.zoom_actual])
    view.addSeparator()
    go = menus["go"] = bar.addMenu("&Go")
    go.addActions([a.next_image, a.prev_image])
    help_menu = menus["help"] = bar.addMenu("&Help")
    help_menu.addActions([a.shortcuts, a.messages, a.about])
    return menus


def build_toolbar(window: QMainWindow) -> QToolBar:
    """The main tool bar (icons only, not movable)."""
    a = window.actions
    tb = QToolBar("Tools", window)
    tb.setObjectName("tools")
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    tb.setMovable(False)
    for action in (
        a.open_file,
        a.open_folder,
        a.save,
        None,
        a.prev_image,
        a.next_image,
        None,
        a.edit_mode,
        a.create_box,
        a.duplicate,
        a.delete,
        a.copy_previous,
        a.toggle_verified,
        None,
        a.undo,
        a.redo,
        None,
        a.zoom_in,
        a.zoom_out,
        a.zoom_fit,
        a.zoom_actual,
    ):
        tb.addSeparator() if action is None else tb.addAction(action)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
    return tb

