"""Nothing surprising on disk (issue 14): no needless .bak copies after a save format switch, no
empty annotation files, class rename across the formats (classes.txt included, boxes counted
once, undoable), Change Save Dir, Ctrl+U, and the YOLO images/ + labels/ + data.yaml layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from app_testing import make_folder, make_image, open_window
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from app.annotate.label_prompt import LabelPrompt  # noqa: F401 - the prompt is the real one
from app.shell import dialogs as help_text
from app.shell.main_window import MainWindow
from app.state.undo import AddBoxesCommand
from rpn_core.annotation.data import Box
from rpn_core.annotation.formats.folder import open_store
from rpn_core.annotation.yolo_layout import labels_folder_for, parse_yaml_names

CTRL = Qt.KeyboardModifier.ControlModifier


def add(window, *boxes: Box) -> None:
    window.document.undo_stack.push(AddBoxesCommand(window.document, list(boxes)))


def backups(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if ".bak" in p.name)


def test_switching_the_save_format_back_and_forth_makes_no_backups(qtbot, tmp_path, app_settings):
    imgs = tmp_path / "imgs"
    make_folder(imgs, n=2)
    w = open_window(qtbot, app_settings, [imgs])
    add(w, Box(10, 10, 60, 60, label="car"))
    qtbot.keyClick(w.canvas, Qt.Key.Key_S, CTRL)
    for fmt in ("yolo", "voc", "labelme", "yolo", "coco", "voc"):
        w.actions.save_formats[fmt].trigger()
        qtbot.keyClick(w.canvas, Qt.Key.Key_D)  # moving on saves the image in the new format
        qtbot.keyClick(w.canvas, Qt.Key.Key_A)
    assert {p.name for p in imgs.iterdir()} >= {"img0.xml", "img0.txt", "img0.json"}
    w.close()
    # A new session: the files were written by the app; rewriting the same bytes backs up nothing.
    again = open_window(qtbot, app_settings, [imgs], fmt="yolo")
    again.actions.save_formats["voc"].trigger()
    qtbot.keyClick(again.canvas, Qt.Key.Key_D)
    assert backups(imgs) == []


def test_a_damaged_file_is_still_backed_up(qtbot, tmp_path, app_settings):
    imgs = tmp_path / "imgs"
    make_folder(imgs, n=1)
    (imgs / "img0.xml").write_text("<annotation><object><name>car</name>")  # truncated
    w = open_window(qtbot, app_settings, [imgs])
    add(w, Box(10, 10, 60, 60, label="car"))
    qtbot.keyClick(w.canvas, Qt.Key.Key_S, CTRL)
    assert [p.name for p in backups(imgs)] == ["img0.xml.bak"]


def test_accepting_a_proposal_then_undoing_leaves_no_file(qtbot, tmp_path, app_settings):
    imgs = tmp_path / "imgs"
    make_folder(imgs, n=2)
    w = open_window(qtbot, app_settings, [imgs])
    panel = w.proposals_panel
    panel.layer.set_proposals(np.array([[20.0, 20.0, 120.0, 90.0]]), np.array([0.9]))
    assert panel._accept([0]) == 1  # what Accept does with row 0 selected (no model run here)
    w.workspace.autosave_now()  # autosave wrote it (1.5 s after the edit)
    assert (imgs / "img0.xml").is_file()
    qtbot.keyClick(w.canvas, Qt.Key.Key_Z, CTRL)
    assert w.document.boxes == []
    qtbot.keyClick(w.canvas, Qt.Key.Key_S, CTRL)
    assert "no file is written" in w.statusBar().currentMessage()
    assert not (imgs / "img0.xml").exists()  # the file it created is gone again
    qtbot.keyClick(w.canvas, Qt.Key.Key_D)
    w.close()
    assert not list(imgs.glob("*.xml"))
    # An image that had a file (an earlier session's) and lost its boxes is written empty.
    w2 = open_window(qtbot, app_settings, [imgs])
    add(w2, Box(10, 10, 60, 60, label="car"))
    qtbot.keyClick(w2.canvas, Qt.Key.Key_S, CTRL)
    w2.close()
    w3 = open_window(qtbot, app_settings, [imgs])
    w3.document.select([0])
    qtbot.keyClick(w3.canvas, Qt.Key.Key_Delete)
    qtbot.keyClick(w3.canvas, Qt.Key.Key_S, CTRL)
    assert (imgs / "img0.xml").is_file() and "<object>" not in (imgs / "img0.xml").read_text()


@pytest.mark.parametrize("first", ["voc", "yolo", "coco", "labelme"])
def test_class_rename_across_formats_renames_classes_txt_counts_once_and_undoes(
    qtbot, tmp_path, app_settings, monkeypatch, first
):
    """One box stored in two formats (the folder's and the save format after a switch):
    the rename rewrites both, classes.txt included, counts the box once, writes no empty
    file for the open image, and Ctrl+Z puts everything back."""
    imgs = tmp_path / "imgs"
    make_folder(imgs, n=2)
    second = "yolo" if first != "yolo" else "voc"
    w = open_window(qtbot, app_settings, [imgs], fmt=first)
    add(w, Box(10, 10, 60, 60, label="cat"))
    qtbot.keyClick(w.canvas, Qt.Key.Key_S, CTRL)
    w.actions.save_formats[second].trigger()
    qtbot.keyClick(w.canvas, Qt.Key.Key_S, CTRL)  # the same box now in both formats
    qtbot.keyClick(w.canvas, Qt.Key.Key_D)  # the open image (img1) has no boxes, no file
    asked: list = []

    def confirm(_parent, old, new, plans):
        from rpn_core.annotation.class_rename import count_boxes

        asked.append(count_boxes(plans))
        return True

    monkeypatch.setattr(help_text, "confirm_rename", confirm)
    w.rename_class("cat", "feline")
    assert asked == [(1, 1)]  # one box in two files counts once
    files_of_img1 = [p for p in imgs.iterdir() if p.stem == "img1"]
    assert [p.name for p in files_of_img1] == ["img1.png"]  # no empty file for the open image

    def labels(fmt: str) -> list[str]:
        store = open_store(imgs, fmt)
        return store.load(imgs / "img0.png", width=320, height=240).labels

    assert labels(first) == labels(second) == ["feline"]
    if "yolo" in (first, second):
        assert (imgs / "classes.txt").read_text().split() == ["feline"]
    assert "feline" in w.workspace.classes.names and "cat" not in w.workspace.classes.names
    qtbot.keyClick(w.canvas, Qt.Key.Key_Z, CTRL)
    assert labels(first) == labels(second) == ["cat"]
    if "yolo" in (first, second):
        assert (imgs / "classes.txt").read_text().split() == ["cat"]
    assert backups(imgs) == []


def test_rename_dialog_does_not_claim_it_cannot_be_undone(monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from rpn_core.annotation.class_rename import ClassRenamePlan

    seen = {}

    def question(_parent, _title, text, *_args):
        seen["text"] = text
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", question)
    plan = ClassRenamePlan(
        None,
        "a",
        "b",
        images=[Path("x.png")],
        boxes=1,
        counts={Path("x.png"): 1},
        files=[Path("x.xml")],
    )
    help_text.confirm_rename(None, "a", "b", [plan, plan])
    assert "cannot be undone" not in seen["text"] and "Ctrl+Z" in seen["text"]
    assert "1 other image(s) have 1 box(es)" in seen["text"]


def test_change_save_dir_keeps_annotations_elsewhere_and_is_remembered(
    qtbot, tmp_path, app_settings, monkeypatch
):
    imgs, out = tmp_path / "imgs", tmp_path / "labels_here"
    make_folder(imgs, n=2)
    out.mkdir()
    w = open_window(qtbot, app_settings, [imgs])
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    assert w.actions.change_save_dir.shortcut().toString() == "Ctrl+R"
    qtbot.keyClick(w.canvas, Qt.Key.Key_R, CTRL)
    assert w.workspace.annotation_folder() == out
    add(w, Box(10, 10, 60, 60, label="car"))
    qtbot.keyClick(w.canvas, Qt.Key.Key_S, CTRL)
    assert (out / "img0.xml").is_file() and not list(imgs.glob("*.xml"))
    w.close()
    again = open_window(qtbot, app_settings, [imgs])
    assert [b.label for b in again.document.boxes] == ["car"]


def test_ctrl_u_opens_a_folder(qtbot, tmp_path, app_settings, monkeypatch):
    imgs = tmp_path / "imgs"
    make_folder(imgs, n=2)
    w = MainWindow(settings=app_settings)
    qtbot.addWidget(w)
    with qtbot.waitActive(w):
        w.show()
        w.activateWindow()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(imgs))
    qtbot.keyClick(w.canvas, Qt.Key.Key_U, CTRL)
    assert len(w.workspace.images) == 2


def test_yolo_dataset_layout_reads_labels_and_data_yaml_names(qtbot, tmp_path, app_settings):
    ds = tmp_path / "ds"
    make_image(ds / "images" / "train" / "a.png", 0)
    (ds / "labels" / "train").mkdir(parents=True)
    (ds / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.25 0.25\n")
    (ds / "data.yaml").write_text(
        "path: ../ds\ntrain: images/train\nval: images/val\n\n"
        "names:\n  0: person  # people\n  1: 'traffic light'\n"
    )
    w = open_window(qtbot, app_settings, [ds / "images" / "train"], fmt="auto")
    (box,) = w.document.boxes
    assert box.label == "traffic light"
    assert box.xyxy == pytest.approx((120, 90, 200, 150))
    assert w.workspace.classes.names[:2] == ["person", "traffic light"]
    assert w.workspace.save_format() == "yolo"
    assert labels_folder_for(ds / "images" / "train") == ds / "labels" / "train"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("names: [cat, 'hot dog', \"a, b\"]\nnc: 3\n", ["cat", "hot dog", "a, b"]),
        ("nc: 2\nnames:\n  - cat\n  - dog # pet\ntrain: x\n", ["cat", "dog"]),
        ("names:\n- cat\n- dog\n", ["cat", "dog"]),
        ("names: {1: dog, 0: cat}\n", ["cat", "dog"]),
        ("names:\n  1: dog\n  0: cat\nval: y\n", ["cat", "dog"]),
        ("train: x\n", []),
        ("names: !!python/object:os.system [rm]\n", []),
    ],
)
def test_parse_yaml_names_subset(text, names):
    assert parse_yaml_names(text) == names
