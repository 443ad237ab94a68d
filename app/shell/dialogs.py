"""Every dialog of the main window: Help ▸ Keyboard Shortcuts and About, the message log,
the File menu's file dialogs, the app's few questions to the user, and the notice shown while
it waits for a save to land."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog, QWidget

from rpn_core import __version__
from rpn_core.images.loading import IMAGE_SUFFIXES

__all__ = [
    "SHORTCUTS",
    "BusyNotice",
    "ask_open_file",
    "ask_open_folder",
    "ask_save_dir",
    "ask_unsaved_weights",
    "confirm_discard",
    "confirm_rename",
    "show_about",
    "show_messages",
    "show_shortcuts",
]

SHORTCUTS = [
    ("W or R, then drag", "draw a box, then pick its class (Enter; Esc drops the box)"),
    ("E", "edit mode: click to select, drag to move, drag a handle to resize"),
    ("Ctrl+click", "add to / remove from the selection"),
    ("Double-click a box", "choose or type its class"),
    ("Arrow keys / Shift+arrows", "nudge selected boxes by 1 / 10 pixels"),
    (
        "1 … 9",
        "class of the next new box; also relabels boxes you selected (not the box just drawn)",
    ),
    ("Delete, Ctrl+D", "delete / duplicate selected boxes"),
    ("Ctrl+C, Ctrl+V", "copy / paste boxes, also into another image"),
    ("Ctrl+Shift+V", "copy the boxes of the previous image"),
    ("Ctrl+Shift+D", "toggle 'difficult' on the selected boxes"),
    ("Space", "mark the image verified (hold Space and drag to pan)"),
    ("D / A, PageDown / PageUp", "next / previous image (saves first when autosave is on)"),
    ("Ctrl+Z, Ctrl+Shift+Z or Ctrl+Y", "undo, redo (History panel lists every step)"),
    ("Ctrl+wheel, Ctrl+= / Ctrl+-", "zoom about the cursor / in / out"),
    ("Ctrl+F, Ctrl+0", "fit the image / 100 %"),
    ("Ctrl+H or Alt+1", "Boxes layer (hidden boxes cannot be selected; W shows them)"),
    ("Alt+2, Alt+3", "Anchors layer, Proposals layer (on / off)"),
    ("Ctrl+Shift+P", "show / hide the class names on the boxes"),
    ("Ctrl+Shift+Up / Ctrl+Shift+Down", "brighter / darker view (not the file, not the RPN)"),
    ("Ctrl+Shift+Right / Ctrl+Shift+Left", "more / less contrast in the view"),
    ("Ctrl+Shift+R", "original brightness and contrast"),
    ("Middle drag", "pan"),
    ("Ctrl+S", "save now"),
    ("Ctrl+U, Ctrl+O", "open a folder, open images"),
    ("Ctrl+R", "change the folder annotations are saved in"),
]


def show_shortcuts(parent: QWidget) -> None:
    rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in SHORTCUTS)
    QMessageBox.information(parent, "Keyboard shortcuts", f"<table>{rows}</table>")


def show_about(parent: QWidget) -> None:
    QMessageBox.about(
        parent,
        "About RPN Studio",
        f"<b>RPN Studio {__version__}</b><p>Annotate ground-truth boxes, see the anchors and "
        "proposals of a Region Proposal Network, and shape them.</p>",
    )


def show_messages(parent: QWidget, messages: list[tuple[str, str]]) -> None:
    """Every warning and error of the session, selectable for copying."""
    from PySide6.QtWidgets import QDialog, QDialogButtonBox, QPlainTextEdit, QVBoxLayout

    dialog = QDialog(parent)
    dialog.setWindowTitle("Messages of this session")
    dialog.resize(760, 420)
    text = QPlainTextEdit("\n".join(f"[{lv}] {t}" for lv, t in messages) or "No messages.")
    text.setReadOnly(True)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(text)
    layout.addWidget(buttons)
    dialog.exec()


def confirm_discard(parent: QWidget, paths: list) -> bool:
    """Ask before quitting with images that could not be saved. Never asks on the offscreen
    platform (tests, headless automation), where no one could answer: it returns True there
    and the unsaved paths stay listed in the messages/log."""
    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.platformName() == "offscreen":
        return True
    listed = "\n".join(str(p) for p in paths[:10]) + ("\n…" if len(paths) > 10 else "")
    answer = QMessageBox.warning(
        parent,
        "Unsaved changes",
        f"{len(paths)} image(s) have changes that are not saved:\n{listed}\n\n"
        "Quit anyway and discard them?",
        QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Cancel,
    )
    return answer == QMessageBox.StandardButton.Discard


def ask_unsaved_weights(parent: QWidget, on_answer) -> QMessageBox:
    """Ask (window-modal, not blocking) what to do with fine-tuned weights that are not saved:
    ``on_answer`` gets ``"save"``, ``"discard"`` or ``"cancel"``. Returns the open box."""
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "Unsaved fine-tuned weights",
        "The active RPN weights were fine-tuned and are not saved. Quitting loses them.\n\n"
        "Save them before quitting?",
        QMessageBox.StandardButton.Save
        | QMessageBox.StandardButton.Discard
        | QMessageBox.StandardButton.Cancel,
        parent,
    )
    box.setObjectName("unsaved_weights_prompt")
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    names = {
        QMessageBox.StandardButton.Save: "save",
        QMessageBox.StandardButton.Discard: "discard",
    }
    box.finished.connect(
        lambda _r: on_answer(names.get(box.standardButton(box.clickedButton()), "cancel"))
    )
    box.open()
    return box


def confirm_rename(parent: QWidget, old: str, new: str, plans: list) -> bool:
    """Ask before a class rename rewrites other images' annotation files (``plans``: the
    :class:`rpn_core.annotation.class_rename.ClassRenamePlan` of each store). Ctrl+Z undoes it
    everywhere (while the image stays open), as one step."""
    from rpn_core.annotation.class_rename import count_boxes

    images, boxes = count_boxes(plans)
    files = [f for plan in plans for f in plan.files]
    listed = "\n".join(str(f) for f in files[:10]) + ("\n…" if len(files) > 10 else "")
    text = (
        f"{images} other image(s) have {boxes} box(es) of '{old}'. Renaming it to '{new}' "
        f"rewrites {len(files)} annotation file(s) on disk:\n{listed}\n\n"
        "Ctrl+Z undoes the rename in all of them (while this image stays open)."
    )
    unreadable = sum(len(plan.errors) for plan in plans)
    if unreadable:
        text += (
            f"\n\n{unreadable} file(s) cannot be read and will be left as they are "
            "(listed in Help ▸ Messages afterwards)."
        )
    answer = QMessageBox.question(
        parent,
        "Rename class in all images",
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Cancel,
    )
    return answer == QMessageBox.StandardButton.Yes


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


def ask_save_dir(window) -> None:
    """File ▸ Change Save Dir (Ctrl+R): where this image folder's annotations are kept."""
    ws = window.workspace
    if ws.root is None:
        window.statusBar().showMessage("Open an image folder first", 4000)
        return
    start = str(ws.annotation_folder() or window.settings.last_dir)
    folder = QFileDialog.getExistingDirectory(window, "Save annotations in", start)
    if folder:
        ws.change_annotation_folder(folder)


class BusyNotice:
    """A modal "Saving <file>…" window while the app waits for its store thread (closing, or
    opening another folder, during the save of a 100 MB file): the window keeps repainting
    and says why nothing else happens yet. No Cancel: the save always lands first."""

    def __init__(self, parent: QWidget) -> None:
        self.parent = parent
        self.dialog: QProgressDialog | None = None

    def show(self, what: str) -> None:
        """Show ``what`` is being waited for; ``""`` hides the notice."""
        if not what:
            if self.dialog is not None:
                self.dialog.hide()
                self.dialog.deleteLater()
                self.dialog = None
            return
        if self.dialog is None:
            self.dialog = QProgressDialog(self.parent)
            self.dialog.setWindowTitle("Please wait")
            self.dialog.setCancelButton(None)
            self.dialog.setRange(0, 0)  # busy: a save has no measurable progress
            self.dialog.setAutoClose(False)
            self.dialog.setAutoReset(False)
            self.dialog.setMinimumDuration(0)
            self.dialog.setWindowModality(Qt.WindowModality.ApplicationModal)
        self.dialog.setLabelText(f"{what}…\nRPN Studio goes on when it is done.")
        self.dialog.show()
