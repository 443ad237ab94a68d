"""Dock layout of the main window and the file dialogs of its File menu (kept out of
:mod:`app.shell.main_window` so that it stays a thin shell)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu, QTabBar

from rpn_core.images.loading import IMAGE_SUFFIXES

__all__ = [
    "arrange_docks",
    "ask_open_file",
    "ask_open_folder",
    "fill_recent_menu",
    "hide_stale_tab_bars",
]


def arrange_docks(window: QMainWindow) -> None:
    """Default layout (a saved one replaces it): on the left one tab group -- Files (shown),
    then the model tools (Proposals, Train); on the right Classes, Boxes/History and the
    anchor lab stacked. Files and the canvas get the room annotation needs."""
    d = window.docks
    tools = [d[name] for name in ("proposals", "train") if name in d]
    if tools:  # (moving Files into the tools' existing tab group is what Qt accepts)
        window.tabifyDockWidget(tools[0], d["files"])
    d["files"].raise_()
    anchor_docks = window.anchor_docks[:1]
    right = [d["classes"], d["boxes"], *anchor_docks]
    window.resizeDocks(right, [170, 260, 420][: len(right)], Qt.Orientation.Vertical)
    window.resizeDocks([d["files"], d["classes"]], [300, 360], Qt.Orientation.Horizontal)


def hide_stale_tab_bars(window: QMainWindow) -> None:
    """Qt leaves the tab bar of an intermediate tab group visible when docks are tabified one
    by one before the window is shown (the anchor lab's four docks do that); hide a bar whose
    tabs are a strict subset of another bar's."""
    bars = [b for b in window.findChildren(QTabBar) if b.parent() is window and b.isVisible()]
    tabs = {id(b): {b.tabText(i) for i in range(b.count())} for b in bars}
    for bar in bars:
        if any(o is not bar and tabs[id(bar)] < tabs[id(o)] for o in bars):
            bar.hide()


def ask_open_file(window) -> None:
    patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
    paths, _ = QFileDialog.getOpenFileNames(
        window, "Open images", window.settings.last_dir, f"Images ({patterns});;All files (*)"
    )
    if paths:
        window.settings.last_dir = str(Path(paths[0]).parent)
        window.open_paths(paths)


def ask_open_folder(window) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Open folder", window.settings.last_dir)
    if folder:
        window.settings.last_dir = folder
        window.open_paths([folder])


def fill_recent_menu(window, menu: QMenu) -> None:
    menu.clear()
    recent = window.settings.recent_paths
    for p in recent:
        menu.addAction(p, lambda p=p: window.open_paths([p]))
    if not recent:
        menu.addAction("(none)").setEnabled(False)
    else:
        menu.addSeparator()
        menu.addAction("Clear", window.settings.clear_recent)
