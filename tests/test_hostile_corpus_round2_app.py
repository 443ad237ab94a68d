"""Hostile corpus, round 2 (issue 16) in the real main window, offscreen, with real key and
mouse events: a lone-surrogate label is drawn, selectable and deletable; FIFOs and /dev/zero
never hang or blow up the window; big decodes, annotation reads and saves run off the GUI
thread (forced here on small files by lowering the thresholds, so the tests stay fast and
deterministic; ``bench/hostile_gui.py`` measures the real 400 MP / 100 MB cases).
"""

# ruff: noqa: F811 - pytest fixtures imported from corpus_fixtures are test arguments by name

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
from app_testing import drag_image, open_window, show_zoom, view_pos
from corpus_fixtures import corpus, fresh_copy, make_corpus, special  # noqa: F401
from PySide6.QtCore import Qt, QTimer

from app.annotate import workspace as workspace_module
from app.canvas.box_item import label_color
from app.common.workers import Lane, Worker
from app.state.undo import AddBoxesCommand, DeleteBoxesCommand
from rpn_core.annotation.data import Box

MC = make_corpus
W, H = MC.CASE_SIZE


def test_a_lone_surrogate_label_is_drawn_selected_and_deleted(
    qtbot, app_settings, corpus, tmp_path
):
    assert label_color(MC.SURROGATE_LABELME).isValid()  # raised UnicodeEncodeError before
    folder = fresh_copy(corpus / "round2" / "labelme-surrogate", tmp_path / "lm")
    window = open_window(qtbot, app_settings, [folder], fmt="auto")
    doc, canvas = window.document, window.canvas
    assert [b.label for b in doc.boxes] == [MC.SURROGATE_LABELME]
    assert len(canvas.box_items()) == 1  # drawn: the item exists ...
    show_zoom(canvas, 4.0, (30, 40))
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=view_pos(canvas, 30, 40))
    assert doc.selection == [0]  # ... a click selects it ...
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert doc.boxes == [] and doc.dirty  # ... and Delete removes it
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [b.label for b in doc.boxes] == [MC.SURROGATE_LABELME]
    window.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["voc-fifo", "labelme-fifo", "yolo-fifo", "voc-dev-zero"])
def test_a_folder_with_a_fifo_or_dev_zero_annotation_opens(qtbot, app_settings, special, case):
    folder = special[case].parent
    t0 = time.perf_counter()
    window = open_window(qtbot, app_settings, [folder], fmt="auto")
    assert time.perf_counter() - t0 < 30  # was: blocked forever / MemoryError
    assert window.document.size == MC.CASE_SIZE and window.document.boxes == []
    if window.workspace.store.annotation_path(folder / "img.png") == special[case]:
        assert any(
            lv == "error" and str(special[case]) in t and "not a regular file" in t
            for lv, t in window.message_bar.messages
        ), window.message_bar.messages
    window.close()


def test_a_heavy_image_is_decoded_off_the_gui_thread(
    qtbot, app_settings, corpus, tmp_path, monkeypatch
):
    monkeypatch.setattr(workspace_module, "HEAVY_IMAGE_PIXELS", 0)  # every image is "heavy"
    folder = fresh_copy(corpus / "voc", tmp_path / "voc")
    window = open_window(qtbot, app_settings, [folder / "negative.png"], fmt="auto")
    ws, doc = window.workspace, window.document
    # open_paths returned with the image still loading: no annotation, nothing editable
    qtbot.waitUntil(lambda: doc.annotation is not None, timeout=10_000)
    assert ws.loading is None and doc.size == MC.CASE_SIZE
    assert [b.label for b in doc.boxes] == ["cat", "dog"]  # the annotation read with it
    assert any(lv == "warning" and "clamped" in t for lv, t in window.message_bar.messages)
    show_zoom(window.canvas, 4.0, (50, 40))
    qtbot.keyClick(window.canvas, Qt.Key.Key_W)
    drag_image(qtbot, window.canvas, (60, 50), (80, 70))  # editable once shown
    assert len(doc.boxes) == 3
    window.close()


def test_a_big_annotation_is_saved_off_the_gui_thread(
    qtbot, app_settings, corpus, tmp_path, monkeypatch
):
    monkeypatch.setattr(workspace_module, "HEAVY_ANNOTATION_BYTES", 0)  # every file is "big"
    folder = fresh_copy(corpus / "coco-missing-images", tmp_path / "coco")
    window = open_window(qtbot, app_settings, [folder / "img.png"], fmt="auto")
    ws, doc = window.workspace, window.document
    qtbot.waitUntil(lambda: doc.annotation is not None, timeout=10_000)
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(60.0, 10.0, 90.0, 30.0, "dog")]))
    ws.autosave_now()
    assert ws.saving  # handed to the store thread; the GUI thread returned at once
    qtbot.waitUntil(lambda: not ws.saving and not doc.dirty, timeout=10_000)
    saved = json.loads((folder / "annotations.json").read_text())
    assert sorted(a["bbox"] for a in saved["annotations"] if a["image_id"] == 1) == [
        [10, 20, 40, 40],
        [60.0, 10.0, 30.0, 20.0],
    ]
    assert "*" not in window.windowTitle()
    window.close()


def test_a_background_save_that_runs_out_of_memory_says_so_and_keeps_the_edit(
    qtbot, app_settings, corpus, tmp_path, monkeypatch
):
    monkeypatch.setattr(workspace_module, "HEAVY_ANNOTATION_BYTES", 0)
    folder = fresh_copy(corpus / "coco-missing-images", tmp_path / "coco")
    before = (folder / "annotations.json").read_bytes()
    window = open_window(qtbot, app_settings, [folder / "img.png"], fmt="auto")
    ws, doc = window.workspace, window.document
    qtbot.waitUntil(lambda: doc.annotation is not None, timeout=10_000)
    from rpn_core.annotation.formats import coco

    def oom(self):
        raise MemoryError

    monkeypatch.setattr(coco.CocoDocument, "to_bytes", oom)
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(60.0, 10.0, 90.0, 30.0, "dog")]))
    ws.autosave_now()
    qtbot.waitUntil(lambda: not ws.saving, timeout=10_000)
    errors = [t for lv, t in window.message_bar.messages if lv == "error"]
    assert any("out of memory while writing the COCO file" in t for t in errors), errors
    assert not any(t.endswith(": .") or ": . " in t for t in errors)  # never an empty reason
    assert doc.dirty and img_in(ws.unsaved, folder)
    assert (folder / "annotations.json").read_bytes() == before
    window.close()


def img_in(unsaved: dict, folder) -> bool:
    return any(p.name == "img.png" for p in unsaved)


def test_symlinked_annotation_saved_from_the_window_writes_its_target(
    qtbot, app_settings, corpus, tmp_path
):
    folder = tmp_path / "voc"
    real = tmp_path / "real"
    folder.mkdir()
    real.mkdir()
    shutil.copy(corpus / "voc" / "negative.png", folder / "img.png")
    (real / "img.xml").write_bytes(MC.voc_xml("img.png", MC.CASE_SIZE, [MC.GOOD_VOC]))
    (folder / "img.xml").symlink_to(real / "img.xml")
    window = open_window(qtbot, app_settings, [folder], fmt="auto")
    doc = window.document
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(60.0, 10.0, 90.0, 30.0, "dog")]))
    assert window.workspace.save_current()
    assert (folder / "img.xml").is_symlink()
    assert b"<name>dog</name>" in (real / "img.xml").read_bytes()
    window.close()


def test_a_folder_with_a_big_coco_file_opens_off_the_gui_thread(
    qtbot, app_settings, corpus, tmp_path, monkeypatch
):
    monkeypatch.setattr(workspace_module, "HEAVY_ANNOTATION_BYTES", 0)  # every file is "big"
    from rpn_core.annotation.formats import coco

    parses, real_parse = [], coco.parse_coco

    def counted(*args, **kwargs):
        parses.append(1)
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(coco, "parse_coco", counted)
    folder = fresh_copy(corpus / "coco-missing-images", tmp_path / "coco")
    window = open_window(qtbot, app_settings, [folder], fmt="auto")
    ws, doc = window.workspace, window.document
    assert ws.store is None and ws._opening  # listed at once; the COCO file is being parsed
    assert not ws.next_image()  # navigation waits for the stores
    qtbot.waitUntil(lambda: doc.annotation is not None, timeout=10_000)
    assert ws.store.fmt == "coco" and [b.label for b in doc.boxes] == ["cat"]
    qtbot.waitUntil(lambda: ws._store_idle(), timeout=10_000)  # the state scan's batches
    assert len(parses) == 1  # the state scan used the open store: no second parse
    assert ws.states[folder / "img.png"][0].name == "ANNOTATED"
    assert any(
        lv == "warning" and "unknown image_id 99" in t for lv, t in window.message_bar.messages
    )
    window.close()


def test_autosaves_queued_behind_a_running_big_save_are_coalesced(
    qtbot, app_settings, corpus, tmp_path, monkeypatch
):
    monkeypatch.setattr(workspace_module, "HEAVY_ANNOTATION_BYTES", 0)
    folder = fresh_copy(corpus / "coco-missing-images", tmp_path / "coco")
    window = open_window(qtbot, app_settings, [folder / "img.png"], fmt="auto")
    ws, doc = window.workspace, window.document
    qtbot.waitUntil(lambda: doc.annotation is not None, timeout=10_000)
    from rpn_core.annotation.formats.store import CocoStore

    saves, real_save = [], CocoStore.save

    def slow_save(self, ann):
        saves.append(len(ann.boxes))
        time.sleep(0.3)
        real_save(self, ann)

    monkeypatch.setattr(CocoStore, "save", slow_save)
    for k in range(4):  # four edits, four autosaves while the first save still runs
        doc.undo_stack.push(AddBoxesCommand(doc, [Box(60.0 + k, 10.0, 90.0, 30.0, "dog")]))
        ws.autosave_now()
    qtbot.waitUntil(lambda: not ws.saving and not doc.dirty, timeout=10_000)
    assert saves == [2, 5]  # the first, then only the newest (not 2, 3, 4, 5)
    saved = json.loads((folder / "annotations.json").read_text())
    assert len([a for a in saved["annotations"] if a["image_id"] == 1]) == 5
    window.close()


def test_closing_during_a_big_save_says_what_it_waits_for_and_keeps_the_save(
    qtbot, app_settings, corpus, tmp_path, monkeypatch
):
    """Closing the window while a big file is being saved waits for the save (it is never
    lost) without freezing: the event loop runs during the wait (a timer fires, the window
    repaints) and a modal notice names the file being saved; it goes away with the window.
    The save that closing asks for again, of the same edit, is not written a second time."""
    monkeypatch.setattr(workspace_module, "HEAVY_ANNOTATION_BYTES", 0)  # every file is "big"
    monkeypatch.setattr(workspace_module, "BUSY_NOTICE_MS", 0)
    folder = fresh_copy(corpus / "coco-missing-images", tmp_path / "coco")
    window = open_window(qtbot, app_settings, [folder / "img.png"], fmt="auto")
    ws, doc = window.workspace, window.document
    qtbot.waitUntil(lambda: doc.annotation is not None and ws._store_idle(), timeout=10_000)
    from rpn_core.annotation.formats.store import CocoStore

    saves, real_save = [], CocoStore.save

    def counted_save(self, ann):
        saves.append(len(ann.boxes))
        real_save(self, ann)

    monkeypatch.setattr(CocoStore, "save", counted_save)
    # The store thread is still busy (as during a 100 MB save): the close's save queues behind.
    release = threading.Event()
    Worker(release.wait, 10.0).start(Lane.STORE)
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(60.0, 10.0, 90.0, 30.0, "dog")]))
    seen: list[str] = []

    def during_the_wait() -> None:  # a timer: it only fires if the wait runs the event loop
        notice = window.busy_notice.dialog
        if notice is None or not notice.isVisible():
            QTimer.singleShot(20, during_the_wait)
            return
        seen.append(notice.labelText())
        release.set()

    QTimer.singleShot(50, during_the_wait)
    window.close()  # returns once the save landed
    assert release.is_set() and seen, "the close froze the event loop or showed no notice"
    assert f"Saving {folder / 'annotations.json'}" in seen[0]
    assert not window.isVisible() and window.busy_notice.dialog is None
    assert not ws.saving and not ws.unsaved and saves == [2]  # once (it was twice)
    saved = json.loads((folder / "annotations.json").read_text())
    assert [60.0, 10.0, 30.0, 20.0] in [a["bbox"] for a in saved["annotations"]]


def test_a_parked_big_save_is_retried_off_the_gui_thread_when_closing(
    qtbot, app_settings, corpus, tmp_path, monkeypatch
):
    """An edit whose big save failed stays parked when the user moves on; closing retries it
    on the store thread (the window keeps repainting meanwhile), never on the GUI thread."""
    monkeypatch.setattr(workspace_module, "HEAVY_ANNOTATION_BYTES", 0)  # every file is "big"
    folder = fresh_copy(corpus / "coco-missing-images", tmp_path / "coco")
    shutil.copy(folder / "img.png", folder / "img2.png")
    window = open_window(qtbot, app_settings, [folder], fmt="auto")
    ws, doc = window.workspace, window.document
    qtbot.waitUntil(lambda: doc.annotation is not None and ws._store_idle(), timeout=10_000)
    from rpn_core.annotation.formats import coco
    from rpn_core.annotation.formats.store import CocoStore

    real_to_bytes, real_save, on_gui_thread = coco.CocoDocument.to_bytes, CocoStore.save, []

    def oom(self):
        raise MemoryError

    def watched_save(self, ann):
        on_gui_thread.append(threading.current_thread() is threading.main_thread())
        real_save(self, ann)

    monkeypatch.setattr(CocoStore, "save", watched_save)
    monkeypatch.setattr(coco.CocoDocument, "to_bytes", oom)
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(60.0, 10.0, 90.0, 30.0, "dog")]))
    edited = doc.image_path
    assert ws.next_image()  # the save of the edited image fails: parked
    qtbot.waitUntil(lambda: edited in ws.unsaved and ws._store_idle(), timeout=10_000)
    monkeypatch.setattr(coco.CocoDocument, "to_bytes", real_to_bytes)  # the cause is fixed
    window.close()
    assert on_gui_thread == [False, False] and not ws.unsaved  # the failed save, the retry
    saved = json.loads((folder / "annotations.json").read_text())
    assert [60.0, 10.0, 30.0, 20.0] in [a["bbox"] for a in saved["annotations"]]


def test_a_box_less_image_of_a_big_coco_file_is_checked_off_the_gui_thread(
    qtbot, app_settings, corpus, tmp_path, monkeypatch
):
    monkeypatch.setattr(workspace_module, "HEAVY_ANNOTATION_BYTES", 0)  # every file is "big"
    folder = fresh_copy(corpus / "coco-missing-images", tmp_path / "coco")
    shutil.copy(folder / "img.png", folder / "other.png")  # an image the COCO file lacks
    before = (folder / "annotations.json").read_bytes()
    from rpn_core.annotation.formats.store import CocoStore

    asked_on_gui, real_has = [], CocoStore.has_annotation

    def has_annotation(self, path):
        if threading.current_thread() is threading.main_thread():
            asked_on_gui.append(path)
        return real_has(self, path)

    window = open_window(qtbot, app_settings, [folder / "other.png"], fmt="coco")
    ws, doc = window.workspace, window.document
    qtbot.waitUntil(lambda: doc.annotation is not None and ws._store_idle(), timeout=10_000)
    monkeypatch.setattr(CocoStore, "has_annotation", has_annotation)
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(60.0, 10.0, 90.0, 30.0, "dog")]))
    doc.undo_stack.push(DeleteBoxesCommand(doc, [0]))  # dirty, and no box left
    ws.autosave_now()
    qtbot.waitUntil(lambda: not ws.saving and not doc.dirty, timeout=10_000)
    # The big file's index answered on the store thread, and nothing was written for an
    # image that has no boxes and no entry.
    assert asked_on_gui == []
    assert (folder / "annotations.json").read_bytes() == before
    assert "has no boxes, so no file is written" in window.statusBar().currentMessage()
    window.close()
