"""The hostile-input corpus (issue 7) in the real main window, offscreen, with real key and
mouse events: unreadable images are marked with their reason, damaged annotations are
reported by file, the app stays responsive, and no file on disk changes unless the user saved.
Core-level expectations live in ``test_hostile_corpus.py`` and are reused here.
"""

# ruff: noqa: F811 - pytest fixtures imported from corpus_fixtures are test arguments by name

from __future__ import annotations

import errno
import time

import pytest
from app_testing import drag_image, open_window, show_zoom
from corpus_fixtures import (  # noqa: F401 - fixtures are used by name
    corpus,
    corpus_weights,
    fresh_copy,
    make_corpus,
    readonly_folder,
    snapshot,
)
from PySide6.QtCore import Qt
from test_hostile_corpus import COCO_EXPECTED, PER_IMAGE_CASES, UNREADABLE

from app.state.undo import AddBoxesCommand
from rpn_core import atomic
from rpn_core.annotation.data import Box
from rpn_core.annotation.image_state import ImageState

MC = make_corpus
STEP_BUDGET_S = 5.0  # one image change, generous for a loaded 2-core CI machine


def _walk(qtbot, window) -> dict[str, dict]:
    """Visit every image with the D key; per image name: state, tooltip, boxes, time."""
    ws = window.workspace
    seen = {}
    for row in range(len(ws.images)):
        if row:
            t0 = time.perf_counter()
            qtbot.keyClick(window.canvas, Qt.Key.Key_D)
            elapsed = time.perf_counter() - t0
        else:
            elapsed = 0.0
        assert ws.index == row
        path = ws.images[row]
        seen[path.name] = {
            "state": window.file_list.state_name(row),
            "tip": window.file_list.model.item(row).toolTip(),
            "boxes": [(b.label, b.xyxy) for b in window.document.boxes],
            "size": window.document.size if window.document.annotation is not None else None,
            "seconds": elapsed,
        }
    return seen


def test_corpus_images_in_the_real_window(qtbot, app_settings, corpus, tmp_path):
    folder = fresh_copy(corpus / "images", tmp_path / "images")
    before = snapshot(folder)
    window = open_window(qtbot, app_settings, [folder], fmt="auto")
    seen = _walk(qtbot, window)
    assert len(seen) == 20  # 15 readable, 5 unreadable; XML files are not images
    for name, reason in UNREADABLE.items():
        assert seen[name]["state"] == ImageState.UNREADABLE.name
        assert reason in seen[name]["tip"] and name in seen[name]["tip"]
        assert any(
            lv == "error" and name in t and reason in t for lv, t in window.message_bar.messages
        )
    for o in range(1, 9):  # upright size, and the box on the red object
        info = seen[f"exif-{o}.jpg"]
        assert info["size"] == MC.EXIF_SIZE and info["boxes"] == [("object", MC.EXIF_OBJECT)]
    assert seen["tall-1x5000.png"]["size"] == (1, 5000)
    assert seen[MC.NON_ASCII_NAME]["size"] == (40, 30)
    assert max(v["seconds"] for v in seen.values()) < STEP_BUDGET_S  # the bomb does not hang

    window.workspace.go_to(window.workspace.images.index(folder / "exif-6.jpg"))
    r, g, _b = window.document.pixel_at(17.5, 10.0)  # centre of (10, 5, 25, 15) is red
    assert r > 180 and g < 80
    # Still responsive: draw a box with the mouse, then undo it with Ctrl+Z.
    canvas = window.canvas
    show_zoom(canvas, 8.0, (30, 20))
    qtbot.keyClick(canvas, Qt.Key.Key_W)
    drag_image(qtbot, canvas, (30, 20), (50, 35))
    assert len(window.document.boxes) == 2
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(window.document.boxes) == 1 and not window.document.dirty
    window.close()
    assert snapshot(folder) == before  # nothing was saved: nothing changed on disk


def _case_folders() -> list[str]:
    return ["voc", "yolo", "labelme"] + [f"coco-{c}" for c in sorted(COCO_EXPECTED)]


@pytest.mark.parametrize("name", _case_folders())
def test_annotation_cases_in_the_real_window(qtbot, app_settings, corpus, tmp_path, name):
    folder = fresh_copy(corpus / name, tmp_path / name)
    before = snapshot(folder)
    window = open_window(qtbot, app_settings, [folder], fmt="auto")
    seen = _walk(qtbot, window)
    messages = window.message_bar.messages
    if name.startswith("coco-"):
        cases = {"img": COCO_EXPECTED[name[5:]]}
        target = {"img": folder / "annotations.json"}
    else:
        cases = {stem: exp for (fmt, stem), exp in PER_IMAGE_CASES.items() if fmt == name}
        target = {
            stem: folder / f"{stem}{ {'voc': '.xml', 'yolo': '.txt'}.get(name, '.json') }"
            for stem in cases
        }
    for stem, expected in cases.items():
        info = seen[f"{stem}.png"]
        assert info["size"] == MC.CASE_SIZE  # the image itself is fine
        file = target[stem]
        if expected[0] == "error":
            assert info["boxes"] == []
            assert any(
                lv == "error" and str(file) in t and expected[1] in t for lv, t in messages
            ), messages
        else:
            assert info["boxes"] == expected[1]
            for fragment in expected[2]:
                assert any(lv == "warning" and fragment in t for lv, t in messages), fragment
    assert max(v["seconds"] for v in seen.values()) < STEP_BUDGET_S
    window.close()
    assert snapshot(folder) == before


def _add_box(window) -> None:
    window.document.undo_stack.push(
        AddBoxesCommand(window.document, [Box(60.0, 10.0, 90.0, 30.0, "new")])
    )


def test_disk_full_on_save_keeps_the_document_dirty_and_tells_the_user(
    qtbot, app_settings, corpus, tmp_path, monkeypatch
):
    folder = fresh_copy(corpus / "voc", tmp_path / "voc")
    window = open_window(qtbot, app_settings, [folder / "negative.png"], fmt="auto")
    target = folder / "negative.xml"
    original = target.read_bytes()
    _add_box(window)

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    assert not window.workspace.save_current()
    assert window.document.dirty and window.windowTitle().startswith("*")
    level, text = window.message_bar.messages[-1]
    assert level == "error" and str(target) in text and "No space left on device" in text
    assert target.read_bytes() == original
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []
    monkeypatch.undo()  # space freed: the next save writes the edit
    assert window.workspace.save_current() and not window.document.dirty
    assert (folder / "negative.xml.bak").read_bytes() == original  # warned file backed up


def test_readonly_folder_save_fails_visibly_and_the_edit_survives_navigation(
    qtbot, app_settings, readonly_folder
):
    before = snapshot(readonly_folder)
    window = open_window(qtbot, app_settings, [readonly_folder], fmt="auto")
    assert [b.xyxy for b in window.document.boxes] == [(10.0, 20.0, 50.0, 60.0)]
    _add_box(window)
    assert not window.workspace.save_current()
    level, text = window.message_bar.messages[-1]
    assert level == "error" and str(readonly_folder / "img.xml") in text
    assert window.document.dirty
    assert window.file_list.state_name(0) == ImageState.UNSAVED.name
    assert len(window.document.boxes) == 2  # nothing lost in memory
    window.workspace.autosave_now()  # the autosave also fails quietly, keeping the edit
    assert window.document.dirty and snapshot(readonly_folder) == before


@pytest.mark.parametrize(
    "name",
    ["exploit.pt", "exploit.safetensors", "truncated.safetensors", "wrong-shapes.safetensors"],
)
def test_bad_weights_in_the_window_give_a_message_and_never_run_code(
    qtbot, app_settings, corpus, corpus_weights, tmp_path, name
):
    window = open_window(qtbot, app_settings, [corpus / "images" / "exif-1.jpg"], fmt="auto")
    panel = window.proposals_panel
    path = corpus_weights / name
    panel.set_weights(str(path))
    with qtbot.waitSignal(panel.runner.failed, timeout=60_000):
        panel.run()
    text = panel.ui.status_label.text()
    assert "Could not load the RPN weights" in text and str(path) in text
    assert not (corpus_weights / MC.EXPLOIT_MARKER).exists()
    assert window.document.boxes  # annotation goes on
    assert panel.shutdown(30_000)


def test_symlink_loop_in_the_window_lists_each_image_once(qtbot, app_settings, tmp_path):
    folder = tmp_path / "loop"
    (folder / "sub").mkdir(parents=True)
    MC._case_image(folder / "sub" / "a.png")
    (folder / "sub" / "back").symlink_to(folder, target_is_directory=True)
    (folder / "self").symlink_to(folder / "self")
    window = open_window(qtbot, app_settings, [folder / "sub" / "a.png"], fmt="auto")
    assert not window.open_paths([str(folder)], recursive=False)  # no image at the top
    assert window.message_bar.messages[-1] == ("warning", f"No images found in {folder}")
    assert window.open_paths([str(folder)], recursive=True)
    assert [p.relative_to(folder).as_posix() for p in window.workspace.images] == ["sub/a.png"]
    assert window.document.size == MC.CASE_SIZE


# Found here first (a foreign-anchor checkpoint proposed with its own anchors while the overlay
# kept the lab's, silently); answered by the anchor lab: it adopts a loaded model's anchor set
# and says so (the app state moves the lab to the active model: AnchorLab._on_model_changed).
# ARCHITECTURE.md rule 7.
def test_checkpoint_with_other_anchors_in_the_window_is_explained(
    qtbot, app_settings, corpus, corpus_weights
):
    window = open_window(qtbot, app_settings, [corpus / "images" / "exif-1.jpg"], fmt="auto")
    panel = window.proposals_panel
    panel.set_weights(str(corpus_weights / "other-anchors.safetensors"))
    with qtbot.waitSignal(panel.runner.finished, timeout=120_000):
        panel.run()
    lab = window.anchor_lab
    texts = [panel.ui.status_label.text()] + [t for _lv, t in window.message_bar.messages]
    told = any("anchor" in t.lower() for t in texts)
    assert panel.shutdown(30_000)
    assert told and lab.anchor_config.num_anchors_per_location == 12  # 4 sizes x 3 ratios
