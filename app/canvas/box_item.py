"""Graphics items of the annotation canvas: one :class:`BoxItem` per GT box and the eight
:class:`HandleItem` resize handles shown on the selected box.

Boxes are plain ``QGraphicsRectItem`` subclasses (painted by Qt in C++, no Python ``paint``:
1,000 boxes repaint in a few milliseconds) with cosmetic pens, so outlines keep their screen
width at any zoom. Handles ignore the view transform: constant screen size, always grabbable
(there are only eight). Class tags are batch-painted by :mod:`app.canvas.tag_layer`. Coordinates
follow :mod:`rpn_core.boxes`.
"""

from __future__ import annotations

import zlib

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem

from app.canvas.zorder import Z
from rpn_core.annotation.data import Box

__all__ = ["BoxItem", "HandleItem", "label_color", "HANDLE_SIZE_PX"]

HANDLE_SIZE_PX = 9.0
_PEN_PX = 2.0


def label_color(label: str) -> QColor:
    """A stable, saturated colour per class name (same colour in every session)."""
    if not label:
        return QColor(0, 220, 120)
    hue = zlib.crc32(label.encode("utf-8")) % 360
    return QColor.fromHsv(hue, 220, 250)


class BoxItem(QGraphicsRectItem):
    """One GT box: outline in the class colour (dashed if difficult), translucent fill and a
    thicker outline when selected. Its class tag is drawn by :class:`app.canvas.tag_layer.TagLayer`."""

    def __init__(self, box: Box) -> None:
        super().__init__()
        self._selected = False
        self._color = QColor()
        self.setZValue(Z.GT_BOXES)
        self.box = box
        self.set_box(box)

    def set_box(self, box: Box) -> None:
        self.box = box
        self._color = label_color(box.label)
        self._restyle()
        self.set_xyxy(box.xyxy)

    def set_xyxy(self, xyxy: tuple[float, float, float, float]) -> None:
        x1, y1, x2, y2 = xyxy
        self.setRect(QRectF(x1, y1, x2 - x1, y2 - y1))

    def xyxy(self) -> tuple[float, float, float, float]:
        r = self.rect()
        return (r.left(), r.top(), r.right(), r.bottom())

    def set_selected(self, selected: bool) -> None:
        if selected != self._selected:
            self._selected = selected
            self.setZValue(Z.SELECTED_BOX if selected else Z.GT_BOXES)
            self._restyle()

    @property
    def selected(self) -> bool:
        return self._selected

    def _restyle(self) -> None:
        pen = QPen(self._color, _PEN_PX + (1.0 if self._selected else 0.0))
        pen.setCosmetic(True)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        if self.box.difficult:
            pen.setStyle(Qt.PenStyle.DashLine)
        self.setPen(pen)
        if self._selected:
            fill = QColor(self._color)
            fill.setAlpha(60)
            self.setBrush(fill)
        else:
            self.setBrush(QBrush(Qt.BrushStyle.NoBrush))


class HandleItem(QGraphicsRectItem):
    """A resize handle of constant screen size (ignores the view's zoom)."""

    def __init__(self, index: int) -> None:
        s = HANDLE_SIZE_PX
        super().__init__(-s / 2, -s / 2, s, s)
        self.index = index
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setZValue(Z.HANDLES)
        pen = QPen(QColor(20, 20, 20), 1.0)
        pen.setCosmetic(True)
        self.setPen(pen)
        self.setBrush(QBrush(QColor(255, 255, 255)))
        self.setVisible(False)
