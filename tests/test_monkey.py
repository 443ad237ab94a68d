"""A scripted monkey (issue 7): random user actions in the real main window, with real mouse
and keyboard events, and invariants checked after every action.

Actions: draw, move, resize, delete, relabel (class keys), copy + paste, duplicate, nudge,
accept proposals (a small random-weight RPN; 1-3 selected table rows, one undo step),
next/previous image, zoom, undo, redo. Invariants after each action:

* every box is valid and inside its image (:mod:`rpn_core.boxes` convention), and the canvas
  shows exactly the document's boxes;
* the anchor overlay's labels equal a fresh :func:`rpn_core.anchors.labelling.label_anchors` on
  :func:`rpn_core.anchors.grid.generate_anchors` for the current boxes;
* the title's ``*`` is the document's dirty flag.

Before leaving an image: undo all the way gives exactly the boxes the image arrived with, and
redo all the way gives the edited boxes back. After arriving: the boxes equal a fresh read of
the saved file, and the image left behind was autosaved (labelme: exact floats) -- re-read
equal to what the document held. The default run does 150 actions; 1,000 are marked slow.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from app_testing import drag_view, make_image, open_window
from PySide6.QtCore import QPoint, QPointF, Qt

from rpn_core.annotation.formats import open_store

torch = pytest.importorskip("torch")

SIZES = [(320, 240), (200, 300), (257, 171)]
CLASSES = ["cat", "dog", "eel"]
KEY_MOD = Qt.KeyboardModifier


class Monkey:
    def __init__(self, qtbot, window, folder, seed: int) -> None:
        self.qtbot, self.w, self.folder = qtbot, window, folder
        self.rng = np.random.default_rng(seed)
        self.canvas = window.canvas
        self.doc = window.document
        self.log: deque[str] = deque(maxlen=15)
        self.arrived: list = list(self.doc.boxes)
        self.counts: dict[str, int] = {}

    # -- helpers -------------------------------------------------------------------------------
    def key(self, key, mod=KEY_MOD.NoModifier) -> None:
        self.qtbot.keyClick(self.canvas, key, mod)

    def visible(self) -> tuple[float, float, float, float]:
        """The part of the image visible in the viewport (scene = image pixels)."""
        r = self.canvas.mapToScene(self.canvas.viewport().rect()).boundingRect()
        w, h = self.doc.size
        x1, y1 = max(0.0, r.left()), max(0.0, r.top())
        return x1, y1, min(float(w), r.right()), min(float(h), r.bottom())

    def point(self) -> QPoint:
        x1, y1, x2, y2 = self.visible()
        x, y = self.rng.uniform(x1, x2), self.rng.uniform(y1, y2)
        return self.canvas.mapFromScene(QPointF(x, y))

    def box_centre(self) -> tuple[int, QPoint] | None:
        if not self.doc.boxes:
            return None
        i = int(self.rng.integers(len(self.doc.boxes)))
        b = self.doc.boxes[i]
        return i, self.canvas.mapFromScene(QPointF((b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2))

    def offset(self, p: QPoint) -> QPoint:
        d = self.rng.integers(-60, 61, size=2)
        return QPoint(p.x() + int(d[0]), p.y() + int(d[1]))

    def select_one(self) -> bool:
        found = self.box_centre()
        if found is None:
            return False
        self.key(Qt.Key.Key_E)
        self.qtbot.mouseClick(self.canvas.viewport(), Qt.MouseButton.LeftButton, pos=found[1])
        return bool(self.doc.selection)

    # -- actions -------------------------------------------------------------------------------
    def draw(self) -> None:
        self.key(Qt.Key.Key_W)
        start = self.point()
        drag_view(self.qtbot, self.canvas, start, self.offset(start), steps=3)

    def move(self) -> None:
        found = self.box_centre()
        if found is not None:
            self.key(Qt.Key.Key_E)
            drag_view(self.qtbot, self.canvas, found[1], self.offset(found[1]), steps=3)

    def resize(self) -> None:
        if self.select_one():
            handles = self.canvas.handle_view_points()
            if handles:
                p = handles[int(self.rng.integers(len(handles)))].toPoint()
                drag_view(self.qtbot, self.canvas, p, self.offset(p), steps=3)

    def delete(self) -> None:
        if self.select_one():
            self.key(Qt.Key.Key_Delete)

    def relabel(self) -> None:
        if self.select_one():
            self.key(Qt.Key.Key_1 + int(self.rng.integers(len(CLASSES))))

    def paste(self) -> None:
        if self.select_one():
            self.key(Qt.Key.Key_C, KEY_MOD.ControlModifier)
        self.key(Qt.Key.Key_V, KEY_MOD.ControlModifier)

    def duplicate(self) -> None:
        if self.select_one():
            self.key(Qt.Key.Key_D, KEY_MOD.ControlModifier)

    def nudge(self) -> None:
        if self.select_one():
            key = [Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down]
            self.key(key[int(self.rng.integers(4))], KEY_MOD.ShiftModifier)

    def zoom(self) -> None:
        choice = int(self.rng.integers(4))
        actions = self.w.actions
        [actions.zoom_in, actions.zoom_out, actions.zoom_fit, actions.zoom_actual][choice].trigger()

    def accept(self) -> None:
        """Run the RPN (a small random-weight model) if needed, select 1-3 proposals in the
        table and accept them: one undo step."""
        panel = self.w.proposals_panel
        if "rpn" not in panel._runs:
            with self.qtbot.waitSignal(panel.runner.finished, timeout=120_000):
                panel.run()
        n = len(panel.layer.boxes)
        if n:
            picks = self.rng.choice(n, size=min(n, int(self.rng.integers(1, 4))), replace=False)
            for k, index in enumerate(sorted(int(i) for i in picks)):
                panel.select_proposal(index, toggle=k > 0)
            stack = self.doc.undo_stack
            before = stack.index()
            accepted = panel.accept_selected()
            assert accepted == 0 or (stack.index() == before + 1 == stack.count())

    def undo(self) -> None:
        self.key(Qt.Key.Key_Z, KEY_MOD.ControlModifier)

    def redo(self) -> None:
        self.key(Qt.Key.Key_Z, KEY_MOD.ControlModifier | KEY_MOD.ShiftModifier)

    def navigate(self) -> None:
        self.check_undo_all_and_back()
        leaving, boxes = self.doc.image_path, list(self.doc.boxes)
        self.key(Qt.Key.Key_D if self.rng.random() < 0.5 else Qt.Key.Key_A)
        if self.doc.image_path == leaving:
            return  # first or last image
        store = open_store(self.folder, "labelme")
        w, h = _size_of(self.folder, leaving)
        assert store.load(leaving, width=w, height=h).boxes == boxes, "autosave lost an edit"
        self.check_reread()
        self.arrived = list(self.doc.boxes)

    # -- invariants ----------------------------------------------------------------------------
    def check_undo_all_and_back(self) -> None:
        stack = self.doc.undo_stack
        edited = list(self.doc.boxes)
        index = stack.index()
        stack.setIndex(0)
        assert self.doc.boxes == self.arrived, "undo all did not return the starting document"
        stack.setIndex(index)
        assert self.doc.boxes == edited, "redo all did not return the edited document"

    def check_reread(self) -> None:
        path = self.doc.image_path
        w, h = self.doc.size
        fresh = open_store(self.folder, "labelme").load(path, width=w, height=h)
        assert fresh.boxes == self.doc.boxes

    def check(self) -> None:
        w, h = self.doc.size
        for b in self.doc.boxes:
            assert b.is_valid() and 0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h, b
        items = self.canvas.box_items()
        assert [tuple(round(v, 6) for v in it.xyxy()) for it in items] == [
            tuple(round(v, 6) for v in b.xyxy) for b in self.doc.boxes
        ]
        assert self.w.windowTitle().startswith("*") == self.doc.dirty
        self.check_overlay()

    def check_overlay(self) -> None:
        from rpn_core.anchors.grid import generate_anchors
        from rpn_core.anchors.labelling import label_anchors
        from rpn_core.rpn.config import RPNConfig, input_geometry

        lab = self.w.anchor_lab
        w, h = self.doc.size
        # The model's frame: the image resized to the network input, GT scaled with it.
        (rh, rw), (sy, sx) = input_geometry((h, w), RPNConfig())
        anchors = generate_anchors((rh, rw), lab.anchor_config)
        gt = torch.as_tensor(self.doc.boxes_array(), dtype=torch.float32).reshape(-1, 4)
        gt = gt * torch.tensor([sx, sy, sx, sy])
        fresh = label_anchors(anchors, gt, lab.label_config, image_size=(rh, rw))
        assert lab.labels is not None and torch.equal(lab.labels.labels, fresh.labels)
        assert torch.equal(lab.labels.matched_gt[fresh.labels == 1],
                           fresh.matched_gt[fresh.labels == 1])

    def run(self, n: int) -> dict[str, int]:
        actions = {
            "draw": (self.draw, 5), "move": (self.move, 3), "resize": (self.resize, 3),
            "delete": (self.delete, 2), "relabel": (self.relabel, 2), "paste": (self.paste, 1),
            "duplicate": (self.duplicate, 1), "nudge": (self.nudge, 1), "zoom": (self.zoom, 1),
            "undo": (self.undo, 3), "redo": (self.redo, 2), "navigate": (self.navigate, 1),
            "accept": (self.accept, 1),
        }
        names = list(actions)
        weights = np.array([actions[k][1] for k in names], dtype=float)
        for step in range(n):
            name = names[int(self.rng.choice(len(names), p=weights / weights.sum()))]
            self.log.append(f"{step}: {name} on {self.doc.image_path.name} "
                            f"({len(self.doc.boxes)} boxes)")
            try:
                actions[name][0]()
                self.check()
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nlast actions:\n" + "\n".join(self.log)) from exc
            self.counts[name] = self.counts.get(name, 0) + 1
        return self.counts


def _tiny_model():
    from rpn_core.rpn.config import RPNConfig
    from rpn_core.rpn.model import RPNModel

    torch.manual_seed(0)
    return RPNModel(RPNConfig(min_side=96, max_side=160), device="cpu")


def _size_of(folder, path) -> tuple[int, int]:
    return SIZES[int(path.stem[-1])]


def _run(qtbot, app_settings, tmp_path, n: int, seed: int) -> dict[str, int]:
    folder = tmp_path / "monkey"
    for i, size in enumerate(SIZES):
        make_image(folder / f"img{i}.png", i, size)
    window = open_window(qtbot, app_settings, [folder], fmt="labelme")
    window.model_loader.set_model(_tiny_model())
    window.workspace.classes.merge(CLASSES)
    qtbot.waitUntil(lambda: window.anchor_lab.ready, timeout=120_000)
    window.anchor_lab.relabel()
    monkey = Monkey(qtbot, window, folder, seed)
    counts = monkey.run(n)
    monkey.navigate()  # the last image's edits are checked and saved too
    assert window.proposals_panel.shutdown(30_000)
    assert sum(counts.values()) == n
    return counts


def test_monkey_150_actions(qtbot, app_settings, tmp_path):
    counts = _run(qtbot, app_settings, tmp_path, 150, seed=11)
    assert counts.get("draw", 0) > 10 and counts.get("navigate", 0) >= 1


@pytest.mark.slow
def test_monkey_1000_actions(qtbot, app_settings, tmp_path):
    counts = _run(qtbot, app_settings, tmp_path, 1000, seed=12)
    print("monkey action counts:", counts)
    assert all(counts.get(k, 0) > 0 for k in ("draw", "move", "resize", "delete", "relabel",
                                               "paste", "navigate", "zoom", "undo", "redo",
                                               "accept"))


def test_resizing_a_box_to_zero_width_is_refused_cleanly(qtbot, app_settings, tmp_path):
    from app.state.undo import AddBoxesCommand
    from rpn_core.annotation.data import Box

    image = make_image(tmp_path / "a.png", 0, (320, 240))
    window = open_window(qtbot, app_settings, [image], fmt="labelme")
    doc, canvas = window.document, window.canvas
    doc.undo_stack.push(AddBoxesCommand(doc, [Box(0.0, 40.0, 30.0, 90.0, "cat")]))
    canvas.zoom_fit()
    qtbot.keyClick(canvas, Qt.Key.Key_E)
    centre = canvas.mapFromScene(QPointF(15.0, 65.0))
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    right = canvas.handle_view_points()[3].toPoint()  # handle 3: the right edge's middle
    drag_view(qtbot, canvas, right, QPoint(right.x() - 400, right.y()), steps=3)
    # Found by the monkey: the zero-width result raised ValueError inside mouseReleaseEvent
    # (Document.clamp) and the item kept the degenerate geometry. Now the drag is undone.
    assert [b.xyxy for b in doc.boxes] == [(0.0, 40.0, 30.0, 90.0)]  # refused: unchanged
    assert [it.xyxy() for it in canvas.box_items()] == [(0.0, 40.0, 30.0, 90.0)]
