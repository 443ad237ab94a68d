"""The anchor inspector: what one anchor is, its label and why; and how each GT box is covered.

Hover over an anchor outline on the canvas to inspect it; a click (without dragging, not on
a GT box) pins it until the next such click. A pinned anchor stays the same anchor when the
anchor set or the input frame changes -- the same cell, size and ratio, re-pinned under its new
number -- or is unpinned when the new set has no such anchor (never silently another one).
Selecting one GT box highlights its foreground anchors. GT boxes are named as the user sees
them: their row in the Boxes list and their class (:func:`rpn_core.anchors.explain.gt_name`).
The explanation is :func:`rpn_core.anchors.explain.explain_anchor` of the lab's labels.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from rpn_core.anchors.explain import AnchorExplanation, explain_anchor, reaches_fg, same_anchor
from rpn_core.anchors.view import anchor_at

__all__ = ["AnchorInspector", "format_explanation"]

LABEL_NAMES = {1: "foreground", 0: "background", -1: "ignored"}
HOVER_TOLERANCE_PX = 6.0
FLAG = QColor("#D55E00")  # Okabe-Ito vermillion


def format_explanation(e: AnchorExplanation) -> str:
    """Rich text of an explanation (boxes as in :mod:`rpn_core.boxes`, in the model's input
    frame: the lab explains anchors where it labels them)."""
    x1, y1, x2, y2 = e.box
    lines = [
        f"<b>Anchor {e.index}</b> at cell (row {e.cell[0]}, col {e.cell[1]}) of the "
        f"stride-{e.stride} grid",
        f"size {e.size:g}, ratio h/w {e.ratio:g}: {x2 - x1:g} x {y2 - y1:g} px",
        f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) in the model's input frame",
        f"<b>{LABEL_NAMES[e.label]}</b> &mdash; {e.rule}",
        f"matched GT: {e.matched_name}",
    ]
    if e.targets is not None:
        tx, ty, tw, th = e.targets
        lines.append(f"targets (tx, ty, tw, th) = ({tx:.3f}, {ty:.3f}, {tw:.3f}, {th:.3f})")
    else:
        lines.append("no regression target (only foreground anchors regress)")
    return "<br>".join(lines)


class AnchorInspector(QWidget):
    """Inspector panel for an :class:`app.anchor_lab.controller.AnchorLab`."""

    def __init__(self, lab: QObject, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lab = lab
        self.current: int | None = None
        self.pinned = False
        self._grid: tuple[object, tuple[int, int] | None] | None = None  # (anchor set, input size)
        self._press: QPointF | None = None
        layout = QVBoxLayout(self)
        self.text = QLabel("Hover over an anchor outline; click to pin it.")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.ious = QTableWidget(0, 2)
        self.ious.setHorizontalHeaderLabels(["GT", "IoU with anchor"])
        self.gt_title = QLabel()
        self.gt_title.setWordWrap(True)
        self.gt_table = QTableWidget(0, 3)
        self.gt_table.setHorizontalHeaderLabels(["GT", "best anchor IoU", "positives"])
        self.gt_table.cellClicked.connect(
            lambda row, _col: lab.document.select([int(lab.gt_index[row])])
        )
        for table in (self.ious, self.gt_table):
            table.verticalHeader().setVisible(False)  # the GT column is the index
        for w in (self.text, self.ious, self.gt_title, self.gt_table):
            layout.addWidget(w)
        self._table_timer = QTimer(self)
        self._table_timer.setSingleShot(True)
        self._table_timer.setInterval(150)
        self._table_timer.timeout.connect(self._fill_table)
        lab.canvas.viewport().installEventFilter(self)
        lab.labels_updated.connect(self.refresh)
        lab.document.selection_changed.connect(lambda _sel: self.refresh())

    # -- canvas events ---------------------------------------------------------------------
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        kind = event.type()
        if kind == QEvent.Type.MouseMove:
            # Not while a button is down (a GT box is being dragged or drawn).
            if not self.pinned and event.buttons() == Qt.MouseButton.NoButton:
                index = self.anchor_under(event.position())
                if index != self.current:  # a repaint per mouse move only on a change
                    self.set_anchor(index)
        elif kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position()
        elif kind == QEvent.Type.MouseButtonRelease and self._press is not None:
            moved = (event.position() - self._press).manhattanLength()
            self._press = None
            canvas = self.lab.canvas
            on_box = canvas.box_at(canvas.mapToScene(event.position().toPoint())) is not None
            if moved < 3 and not on_box:
                index = self.anchor_under(event.position())
                self.pinned = index is not None
                self.set_anchor(index)
        return False  # observe only: the canvas still gets every event

    def anchor_under(self, view_pos: QPointF) -> int | None:
        """The visible anchor whose outline is nearest to a viewport position."""
        if self.lab.labels is None:
            return None
        p = self.lab.canvas.mapToScene(view_pos.toPoint())
        tol = HOVER_TOLERANCE_PX / max(self.lab.canvas.transform().m11(), 1e-6)
        return anchor_at(self.lab.overlay.boxes, self.lab.overlay.visible_all(), p.x(), p.y(), tol)

    # -- display ---------------------------------------------------------------------------
    def set_anchor(self, index: int | None) -> None:
        self.current = index
        self._grid = (self.lab.anchor_config, self.lab.input_size)
        self.lab.overlay.set_hover(index)
        self._show_anchor()

    def explanation(self) -> AnchorExplanation | None:
        lab = self.lab
        if self.current is None or lab.labels is None or self.current >= len(lab.anchors):
            return None
        # Explained in the model's input frame, where the labels came from (same grid, same
        # IoUs); the lab draws the anchors divided by this scale (rpn_config.input_geometry).
        from rpn_core.rpn.config import input_geometry

        input_size, (sy, sx) = input_geometry(lab.image_size, lab.model_config)
        scale = np.array([sx, sy, sx, sy])
        return explain_anchor(
            self.current,
            input_size,
            lab.anchors * scale,
            lab.gt.reshape(-1, 4) * scale,
            lab.labels,
            lab.anchor_config,
            lab.label_config,
            lab.gt_names(),
        )

    def _show_anchor(self) -> None:
        e = self.explanation()
        if e is None:
            self.text.setText("Hover over an anchor outline; click to pin it.")
            self.ious.setRowCount(0)
            return
        self.text.setText(format_explanation(e) + ("<br><i>pinned</i>" if self.pinned else ""))
        self.ious.setRowCount(len(e.ious))
        for g, iou in enumerate(e.ious):
            self.ious.setItem(g, 0, QTableWidgetItem(e.gt_names[g]))
            self.ious.setItem(g, 1, QTableWidgetItem(f"{iou:.3f}"))

    def refresh(self) -> None:
        """Re-read the lab's labels: anchor text, GT table, highlighted positives."""
        lab = self.lab
        if lab.labels is None:
            self.gt_table.setRowCount(0)
            self.gt_title.setText("")
            lab.overlay.set_highlight(np.zeros(0, dtype=np.int64))
            return
        self._follow_grid()
        self._show_anchor()
        best = lab.labels.gt_best_iou.numpy()
        positives = lab.labels.gt_num_positive.numpy()
        self._show_selected_gt(best, positives)
        if lab.dragging:  # the table follows at the end of the drag (it costs ~ms per frame)
            self._table_timer.start()
        else:
            self._fill_table()

    def _follow_grid(self) -> None:
        """After an anchor-set or input-frame change the old number names another anchor:
        re-pin the same cell, size and ratio (:func:`same_anchor`) or unpin; a hovered anchor
        is dropped (the next mouse move finds one)."""
        lab = self.lab
        grid = (lab.anchor_config, lab.input_size)
        if self.current is None or self._grid is None or grid == self._grid:
            return
        old_cfg, old_size = self._grid
        index = None
        if self.pinned and old_size is not None and lab.input_size is not None:
            index = same_anchor(self.current, old_cfg, old_size, lab.anchor_config,
                                lab.input_size)  # fmt: skip
        if index is not None and index >= len(lab.anchors):
            index = None
        self.pinned = index is not None
        self.set_anchor(index)

    def _fill_table(self) -> None:
        labels = self.lab.labels
        if labels is None:
            return
        best = labels.gt_best_iou.numpy()
        positives = labels.gt_num_positive.numpy()
        self.gt_table.setRowCount(len(best))
        names = self.lab.gt_names()
        for g in range(len(best)):
            cells = (names[g], f"{best[g]:.3f}", str(int(positives[g])))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if positives[g] == 0:
                    item.setForeground(FLAG)
                    item.setToolTip("No anchor is foreground for this box: it cannot be learned")
                self.gt_table.setItem(g, col, item)

    def _show_selected_gt(self, best: np.ndarray, positives: np.ndarray) -> None:
        lab = self.lab
        sel = lab.document.selection
        unlearnable = int((positives == 0).sum())
        summary = f"{unlearnable} GT box(es) with no foreground anchor" if unlearnable else ""
        rows = np.flatnonzero(lab.gt_index == sel[0]) if len(sel) == 1 else []
        if len(rows) != 1 or rows[0] >= len(best):
            lab.overlay.set_highlight(np.zeros(0, dtype=np.int64))
            self.gt_title.setText(summary or "Select one GT box to see its positive anchors.")
            return
        g = int(rows[0])  # the selected box's row among the labelled GT
        labels = lab.labels
        idx = np.flatnonzero((labels.labels.numpy() == 1) & (labels.matched_gt.numpy() == g))
        lab.overlay.set_highlight(idx)
        passes = bool(reaches_fg(best[g], lab.label_config))
        self.gt_title.setText(
            f"<b>{lab.gt_names()[g]}</b>: best anchor IoU {best[g]:.3f} "
            f"({'reaches' if passes else 'below'} the foreground threshold), "
            f"{len(idx)} positive anchor(s) highlighted"
            + ("<br><font color='#D55E00'>no anchor learns this box</font>" if not len(idx) else "")
        )
