"""All QActions of the main window in one typed container, with their shortcuts.

Shortcuts follow labelImg / labelme / X-AnyLabeling where they agree: W (or R) draws a box,
D / A (and PageDown / PageUp) go to the next / previous image, Space marks the image verified,
Ctrl+wheel zooms. Keys 1-9 give the selected boxes (and the next new box) a class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QUndoStack
from PySide6.QtWidgets import QWidget

from app.common.icons import icon
from app.common.settings import SAVE_FORMATS, VOC_CONVENTIONS

__all__ = ["Actions", "create_actions"]

_FORMAT_NAMES = {
    "auto": "Same as folder (VOC if none)",
    "voc": "Pascal VOC XML",
    "yolo": "YOLO txt",
    "coco": "COCO JSON",
    "labelme": "labelme JSON",
}
_CONVENTION_NAMES = {
    "devkit": "VOC devkit (1-based pixel indices)",
    "labelimg": "labelImg-compatible (values as drawn)",
}


@dataclass
class Actions:
    open_file: QAction
    open_folder: QAction
    save: QAction
    autosave: QAction
    recursive: QAction
    quit: QAction
    undo: QAction
    redo: QAction
    create_box: QAction
    edit_mode: QAction
    delete: QAction
    duplicate: QAction
    copy: QAction
    paste: QAction
    copy_previous: QAction
    keep_previous: QAction
    select_all: QAction
    toggle_difficult: QAction
    toggle_verified: QAction
    zoom_in: QAction
    zoom_out: QAction
    zoom_fit: QAction
    zoom_actual: QAction
    show_boxes: QAction
    show_labels: QAction
    brighter: QAction
    darker: QAction
    more_contrast: QAction
    less_contrast: QAction
    reset_adjustments: QAction
    next_image: QAction
    prev_image: QAction
    shortcuts: QAction
    about: QAction
    messages: QAction
    class_keys: list[QAction] = field(default_factory=list)
    save_formats: dict[str, QAction] = field(default_factory=dict)
    voc_conventions: dict[str, QAction] = field(default_factory=dict)


def _act(
    parent: QWidget, text: str, keys=(), tip: str = "", icon_name: str = "", checkable: bool = False
) -> QAction:
    action = QAction(text, parent)
    if keys:
        action.setShortcuts([QKeySequence(k) for k in keys])
    shown = ", ".join(
        QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText) for k in keys
    )
    action.setToolTip(f"{tip or text.replace('&', '')}" + (f"  ({shown})" if shown else ""))
    action.setStatusTip(tip or text.replace("&", ""))
    if icon_name:
        action.setIcon(icon(icon_name))
    action.setCheckable(checkable)
    parent.addAction(action)  # window-wide shortcuts even while the action sits in no menu
    return action


def create_actions(parent: QWidget, undo_stack: QUndoStack) -> Actions:
    undo = undo_stack.createUndoAction(parent, "&Undo")
    undo.setShortcuts([QKeySequence("Ctrl+Z")])
    undo.setIcon(icon("undo"))
    redo = undo_stack.createRedoAction(parent, "&Redo")
    redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    redo.setIcon(icon("redo"))
    parent.addAction(undo)
    parent.addAction(redo)
    a = Actions(
        open_file=_act(parent, "&Open Image…", ["Ctrl+O"], icon_name="open"),
        open_folder=_act(parent, "Open &Folder…", ["Ctrl+Shift+O"], icon_name="folder"),
        save=_act(parent, "&Save", ["Ctrl+S"], "Save the current image's boxes now", "save"),
        autosave=_act(
            parent,
            "&Autosave",
            tip="Save on image change and shortly after each edit",
            checkable=True,
        ),
        recursive=_act(
            parent, "Include &Sub-folders", tip="Open folders recursively", checkable=True
        ),
        quit=_act(parent, "&Quit", ["Ctrl+Q"]),
        undo=undo,
        redo=redo,
        create_box=_act(parent, "&Draw Box", ["W", "R"], "Draw a new box: press, then drag", "box"),
        edit_mode=_act(parent, "&Edit Boxes", ["E"], "Select, move and resize boxes", "pointer"),
        delete=_act(parent, "&Delete Boxes", ["Delete", "Backspace"], icon_name="delete"),
        duplicate=_act(parent, "D&uplicate Boxes", ["Ctrl+D"], icon_name="duplicate"),
        copy=_act(parent, "&Copy Boxes", ["Ctrl+C"]),
        paste=_act(parent, "&Paste Boxes", ["Ctrl+V"], "Paste copied boxes (from any image)"),
        copy_previous=_act(
            parent, "Copy Boxes from &Previous Image", ["Ctrl+Shift+V"], icon_name="copy_previous"
        ),
        keep_previous=_act(
            parent,
            "&Keep Previous Boxes",
            tip="Images without boxes start with the previous image's boxes",
            checkable=True,
        ),
        select_all=_act(parent, "Select &All Boxes", ["Ctrl+A"]),
        toggle_difficult=_act(
            parent,
            "Toggle Di&fficult",
            ["Ctrl+Shift+D"],
            "Toggle the 'difficult' flag of the selected boxes",
        ),
        toggle_verified=_act(
            parent,
            "Mark Image &Verified",
            [],
            "Toggle the image's verified flag (Space on the canvas)",
            "verified",
            checkable=True,
        ),
        zoom_in=_act(parent, "Zoom &In", ["Ctrl+=", "Ctrl++"], icon_name="zoom_in"),
        zoom_out=_act(parent, "Zoom &Out", ["Ctrl+-"], icon_name="zoom_out"),
        zoom_fit=_act(parent, "&Fit to Window", ["Ctrl+F"], icon_name="zoom_fit"),
        zoom_actual=_act(parent, "&Actual Size (100%)", ["Ctrl+0"], icon_name="zoom_actual"),
        show_boxes=_act(
            parent,
            "Show &Boxes",
            ["Ctrl+H"],
            "Show the boxes (hidden boxes cannot be selected; drawing shows them again)",
            checkable=True,
        ),
        show_labels=_act(
            parent,
            "Show Box &Labels",
            ["Ctrl+Shift+P"],
            "Show the class names on the boxes",
            checkable=True,
        ),
        # Ctrl+Shift+arrows, not labelImg's Ctrl+Shift+= / Ctrl+Shift+-: on most layouts
        # Shift+= types "+", so that key would also match zoom in's Ctrl++ (ambiguous shortcut).
        brighter=_act(parent, "B&righter", ["Ctrl+Shift+Up"], "Brighter view (not the file)"),
        darker=_act(parent, "Dar&ker", ["Ctrl+Shift+Down"], "Darker view (not the file)"),
        more_contrast=_act(
            parent, "&More Contrast", ["Ctrl+Shift+Right"], "More contrast in the view"
        ),
        less_contrast=_act(
            parent, "Le&ss Contrast", ["Ctrl+Shift+Left"], "Less contrast in the view"
        ),
        reset_adjustments=_act(
            parent, "Reset Image Ad&justments", ["Ctrl+Shift+R"], "Show the original pixels"
        ),
        next_image=_act(parent, "&Next Image", ["D", "PgDown"], icon_name="next"),
        prev_image=_act(parent, "&Previous Image", ["A", "PgUp"], icon_name="prev"),
        shortcuts=_act(parent, "&Keyboard Shortcuts", ["F1"]),
        about=_act(parent, "&About RPN Studio"),
        messages=_act(parent, "&Messages…", tip="Every warning and error of this session"),
    )
    for n in range(1, 10):
        a.class_keys.append(_act(parent, f"Class {n}", [str(n)], f"Use class #{n}"))
    formats = QActionGroup(parent)
    for fmt in SAVE_FORMATS:
        a.save_formats[fmt] = formats.addAction(_act(parent, _FORMAT_NAMES[fmt], checkable=True))
    conventions = QActionGroup(parent)
    for conv in VOC_CONVENTIONS:
        a.voc_conventions[conv] = conventions.addAction(
            _act(parent, _CONVENTION_NAMES[conv], checkable=True)
        )
    return a
