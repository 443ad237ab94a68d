"""Help ▸ Keyboard Shortcuts and Help ▸ About, and the app's few questions to the user."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from rpn_core import __version__

__all__ = ["SHORTCUTS", "show_about", "show_shortcuts"]

SHORTCUTS = [
    ("W or R, then drag", "draw a box (Esc cancels)"),
    ("E", "edit mode: click to select, drag to move, drag a handle to resize"),
    ("Ctrl+click", "add to / remove from the selection"),
    ("Double-click a box", "choose or type its class"),
    ("Arrow keys / Shift+arrows", "nudge selected boxes by 1 / 10 pixels"),
    ("1 … 9", "class of the selected boxes and of the next new box"),
    ("Delete, Ctrl+D", "delete / duplicate selected boxes"),
    ("Ctrl+C, Ctrl+V", "copy / paste boxes, also into another image"),
    ("Ctrl+Shift+V", "copy the boxes of the previous image"),
    ("Ctrl+Shift+D", "toggle 'difficult' on the selected boxes"),
    ("Space", "mark the image verified (hold Space and drag to pan)"),
    ("D / A, PageDown / PageUp", "next / previous image (saves first when autosave is on)"),
    ("Ctrl+Z, Ctrl+Shift+Z or Ctrl+Y", "undo, redo (History panel lists every step)"),
    ("Ctrl+wheel, Ctrl+= / Ctrl+-", "zoom about the cursor / in / out"),
    ("Ctrl+F, Ctrl+0", "fit the image / 100 %"),
    ("Ctrl+H", "show / hide the boxes (hidden boxes cannot be selected; W shows them)"),
    ("Ctrl+Shift+P", "show / hide the class names on the boxes"),
    ("Ctrl+Shift+Up / Ctrl+Shift+Down", "brighter / darker view (not the file, not the RPN)"),
    ("Ctrl+Shift+Right / Ctrl+Shift+Left", "more / less contrast in the view"),
    ("Ctrl+Shift+R", "original brightness and contrast"),
    ("Middle drag", "pan"),
    ("Ctrl+S", "save now"),
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


def confirm_rename(parent: QWidget, old: str, new: str, plans: list) -> bool:
    """Ask before a class rename rewrites other images' annotation files (``plans``: the
    :class:`rpn_core.annotation.class_rename.ClassRenamePlan` of each store); it cannot be undone."""
    images = len({p for plan in plans for p in plan.images})
    boxes = sum(plan.boxes for plan in plans)
    files = [f for plan in plans for f in plan.files]
    listed = "\n".join(str(f) for f in files[:10]) + ("\n…" if len(files) > 10 else "")
    text = (
        f"{images} other image(s) have {boxes} box(es) of '{old}'. Renaming it to '{new}' "
        f"rewrites {len(files)} annotation file(s) on disk:\n{listed}\n\n"
        "This cannot be undone: Ctrl+Z only undoes the current image's change."
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


def ask_class(parent: QWidget, names: list[str], current: str) -> str | None:
    """The class for a box: pick one of the project's classes or type a new one."""
    from PySide6.QtWidgets import QInputDialog

    items = names or ([current] if current else [])
    start = items.index(current) if current in items else 0
    name, ok = QInputDialog.getItem(parent, "Class", "Class of the box:", items, start, True)
    name = name.strip()
    return name if ok and name else None
