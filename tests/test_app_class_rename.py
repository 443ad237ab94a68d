"""Renaming a class through the Classes panel renames it in the whole folder (the open image,
the other images' annotation files on disk after a confirmation, the class list) as ONE undo
step: Ctrl+Z renames it back everywhere."""

from __future__ import annotations

import pytest
from app_testing import make_folder, make_image, open_window
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox, QPushButton

from app.state.undo import AddBoxesCommand
from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.annotation.formats import open_store

W, H = 320, 240  # make_folder's image size


@pytest.fixture
def folder(tmp_path):
    make_folder(tmp_path / "imgs", n=3)
    return tmp_path / "imgs"


@pytest.fixture
def answers(monkeypatch):
    """Auto-answer the dialogs: the new name for "Rename…", Yes (or Cancel) to the question."""
    asked: list[str] = []
    state = {"name": "puppy", "answer": QMessageBox.StandardButton.Yes}

    def question(_parent, _title, text, *_args):
        asked.append(text)
        return state["answer"]

    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: (state["name"], True))
    monkeypatch.setattr(QMessageBox, "question", question)
    state["asked"] = asked
    return state


def click_rename(window, name: str) -> None:
    """Select ``name`` in the Classes panel and press its Rename… button."""
    panel = window.class_panel
    row = panel.classes.names.index(name)
    panel.list.setCurrentRow(row)
    (button,) = [b for b in panel.findChildren(QPushButton) if b.text() == "Rename…"]
    button.click()


def saved(folder, fmt, name):
    return open_store(folder, fmt).load(folder / name, width=W, height=H)


def test_rename_rewrites_the_other_images_files_and_undo_keeps_working(
    qtbot, folder, app_settings, answers
):
    store = open_store(folder, "voc")
    store.save(ImageAnnotation(folder / "img1.png", W, H, [Box(10, 20, 110, 120, "dog")]))
    store.save(
        ImageAnnotation(
            folder / "img2.png", W, H, [Box(0, 0, 50, 50, "cat"), Box(60, 60, 90, 90, "dog")]
        )
    )
    make_image(folder / "img3.png", 3)
    broken = folder / "img3.xml"
    broken.write_bytes(b"<annotation><object><name>dog</name>")  # truncated XML
    window = open_window(qtbot, app_settings, [folder])  # shows img0
    doc, stack = window.document, window.document.undo_stack
    window.workspace.classes.add("dog")
    stack.push(AddBoxesCommand(doc, [Box(5, 5, 40, 40, "dog"), Box(50, 50, 80, 80, "cat")]))
    steps = stack.count()

    click_rename(window, "dog")

    (text,) = answers["asked"]
    assert "2 other image(s) have 2 box(es) of 'dog'" in text
    assert "rewrites 2 annotation file(s)" in text and "1 file(s) cannot be read" in text
    assert saved(folder, "voc", "img1.png").boxes == [Box(10, 20, 110, 120, "puppy")]
    assert saved(folder, "voc", "img2.png").labels == ["cat", "puppy"]
    assert broken.read_bytes() == b"<annotation><object><name>dog</name>"
    assert any(lv == "warning" and "img3.xml" in t for lv, t in window.message_bar.messages)
    assert window.statusBar().currentMessage() == "Renamed 'dog' to 'puppy' in 3 images"
    assert "puppy" in window.workspace.classes.names
    assert "dog" not in window.workspace.classes.names
    # One undo step for the whole folder, undone and redone like any other.
    assert doc.boxes[0].label == "puppy" and doc.boxes[1].label == "cat"
    assert stack.count() == steps + 1
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [b.label for b in doc.boxes] == ["dog", "cat"]
    assert saved(folder, "voc", "img1.png").boxes == [Box(10, 20, 110, 120, "dog")]
    assert saved(folder, "voc", "img2.png").labels == ["cat", "dog"]
    assert broken.read_bytes() == b"<annotation><object><name>dog</name>"
    assert "dog" in window.workspace.classes.names
    assert "puppy" not in window.workspace.classes.names
    assert window.statusBar().currentMessage() == "Renamed 'puppy' to 'dog' in 3 images"
    qtbot.keyClick(
        window.canvas,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert [b.label for b in doc.boxes] == ["puppy", "cat"]
    assert saved(folder, "voc", "img2.png").labels == ["cat", "puppy"]
    assert len(answers["asked"]) == 1  # undo and redo do what the user agreed to: no question
    assert window.workspace.save_current()
    assert saved(folder, "voc", "img0.png").labels == ["puppy", "cat"]


def test_cancel_changes_nothing(qtbot, folder, app_settings, answers):
    store = open_store(folder, "voc")
    store.save(ImageAnnotation(folder / "img1.png", W, H, [Box(10, 20, 110, 120, "dog")]))
    before = (folder / "img1.xml").read_bytes()
    window = open_window(qtbot, app_settings, [folder])
    window.workspace.classes.add("dog")
    steps = window.document.undo_stack.count()
    answers["answer"] = QMessageBox.StandardButton.Cancel

    click_rename(window, "dog")

    assert len(answers["asked"]) == 1
    assert (folder / "img1.xml").read_bytes() == before
    assert "dog" in window.workspace.classes.names
    assert "puppy" not in window.workspace.classes.names
    assert window.document.undo_stack.count() == steps


def open_yolo_folder(qtbot, app_settings, folder):
    """YOLO classes cat (0), dog (1); img1 holds a dog; img0 (shown) gets a dog drawn."""
    (folder / "classes.txt").write_text("cat\ndog\n")
    (folder / "img1.txt").write_text("1 0.500000 0.500000 0.250000 0.250000\n")
    window = open_window(qtbot, app_settings, [folder], fmt="yolo")  # shows img0
    doc = window.document
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(0, 0, 160, 120, "dog")]))
    return window, doc


def test_yolo_rename_keeps_the_class_id_for_every_image(qtbot, folder, app_settings, answers):
    window, doc = open_yolo_folder(qtbot, app_settings, folder)

    click_rename(window, "dog")

    (text,) = answers["asked"]
    assert "1 other image(s) have 1 box(es) of 'dog'" in text and "classes.txt" in text
    assert (folder / "classes.txt").read_text() == "cat\npuppy\n"
    assert (folder / "img1.txt").read_text() == "1 0.500000 0.500000 0.250000 0.250000\n"
    assert saved(folder, "yolo", "img1.png").labels == ["puppy"]
    assert window.workspace.save_current()
    # The open image's box is saved with the same id 1: centre (80, 60) / (320, 240) = 0.25.
    assert (folder / "img0.txt").read_text() == "1 0.250000 0.250000 0.500000 0.500000\n"
    assert (folder / "classes.txt").read_text() == "cat\npuppy\n"


def test_undoing_a_yolo_rename_restores_the_class_map(qtbot, folder, app_settings, answers):
    """Undo renames the class map back at the same id, so the open image's box is saved with
    id 1 again -- not as a new class 'dog' appended at id 2."""
    window, doc = open_yolo_folder(qtbot, app_settings, folder)
    click_rename(window, "dog")
    assert window.workspace.save_current()

    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)

    assert [b.label for b in doc.boxes] == ["dog"]
    assert (folder / "classes.txt").read_text() == "cat\ndog\n"
    assert window.workspace.save_current()
    assert (folder / "img0.txt").read_text() == "1 0.250000 0.250000 0.500000 0.500000\n"
    assert (folder / "classes.txt").read_text() == "cat\ndog\n"
    assert saved(folder, "yolo", "img1.png").labels == ["dog"]


def test_undo_refused_when_the_old_name_is_taken_again(qtbot, folder, app_settings, answers):
    """After renaming dog to puppy the user adds a new class 'dog': undoing the rename would
    merge two classes, so it is refused with a message, changes nothing and leaves the
    history (the rename stays done)."""
    store = open_store(folder, "voc")
    store.save(ImageAnnotation(folder / "img1.png", W, H, [Box(10, 20, 110, 120, "dog")]))
    window = open_window(qtbot, app_settings, [folder])
    doc, stack = window.document, window.document.undo_stack
    window.workspace.classes.add("dog")
    stack.push(AddBoxesCommand(doc, [Box(5, 5, 40, 40, "dog")]))
    click_rename(window, "dog")
    window.workspace.classes.add("dog")
    steps = stack.count()

    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)

    assert any(
        lv == "warning" and "Cannot rename class 'puppy' to 'dog'" in t and "already exists" in t
        for lv, t in window.message_bar.messages
    )
    assert [b.label for b in doc.boxes] == ["puppy"]
    assert saved(folder, "voc", "img1.png").labels == ["puppy"]
    assert stack.count() == steps - 1  # the rename left the history; the box is still there
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.boxes == []


def test_renaming_onto_an_existing_class_is_refused(qtbot, folder, app_settings, answers):
    store = open_store(folder, "voc")
    store.save(ImageAnnotation(folder / "img1.png", W, H, [Box(10, 20, 110, 120, "dog")]))
    before = (folder / "img1.xml").read_bytes()
    window = open_window(qtbot, app_settings, [folder])
    for name in ("dog", "cat"):
        window.workspace.classes.add(name)
    answers["name"] = "cat"

    click_rename(window, "dog")

    assert answers["asked"] == []
    assert (folder / "img1.xml").read_bytes() == before
    assert any("'cat' already exists" in t for _lv, t in window.message_bar.messages)
    assert window.workspace.classes.names[:2] == ["dog", "cat"]


def test_edits_not_saved_yet_are_renamed_in_memory(qtbot, folder, app_settings, answers):
    """With autosave off, img0's edits are parked in memory when the user moves on; the rename
    relabels them there (its file does not exist yet), so going back shows the new name."""
    app_settings.autosave = False
    open_store(folder, "voc").save(
        ImageAnnotation(folder / "img1.png", W, H, [Box(10, 20, 110, 120, "dog")])
    )
    window = open_window(qtbot, app_settings, [folder])
    doc = window.document
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(5, 5, 40, 40, "dog")]))
    qtbot.keyClick(window.canvas, Qt.Key.Key_D)  # to img1; img0's edit stays unsaved
    assert folder / "img0.png" in window.workspace.unsaved

    click_rename(window, "dog")

    assert answers["asked"] == []  # no other image's file has boxes of dog
    assert window.statusBar().currentMessage() == "Renamed 'dog' to 'puppy' in 2 images"
    assert [b.label for b in doc.boxes] == ["puppy"]  # img1, one undo step
    assert not (folder / "img0.xml").exists()
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)  # back to img0
    assert [b.label for b in doc.boxes] == ["puppy"]
    assert window.workspace.save_all() == []
    assert saved(folder, "voc", "img0.png").labels == ["puppy"]
    assert saved(folder, "voc", "img1.png").labels == ["puppy"]
