"""Graphics items of the annotation canvas: one :class:`BoxItem` per GT box and the eight
:class:`HandleItem` resize handles shown on the selected box.

Boxes are drawn with cosmetic pens (constant screen width at any zoom); handles ignore the view
transform, so they keep their screen size and stay grabbable however far the user zooms.
Coordinates follow :mod:`rpn_core.boxes`.
"""

from __future__ import annotations

import zlib

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen, QTransform
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsRectItem,
    QGraphicsSimpleTextItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from app.zorder import Z
from rpn_core.annotations import Box

__all__ = ["BoxItem", "HandleItem", "label_color", "HANDLE_SIZE_PX"]

HANDLE_SIZE_PX = 9.0
_PEN_PX = 2.0


def label_color(label: str) -> QColor:
    """A stable, saturated colour per class name (same colour in every session)."""
    if not label:
        return QColor(0, 220, 120)
    hue = zlib.crc32(label.encode("utf-8")) % 360
    return QColor.fromHsv(hue, 220, 250)


class _LabelTag(QGraphicsSimpleTextItem):
    """The class name on a filled tag in the class colour (readable on any image)."""

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        color = self.brush().color()
        painter.fillRect(self.boundingRect().adjusted(-2, 0, 2, 0), color)
        light = color.lightnessF() > 0.55
        painter.setPen(QColor(0, 0, 0) if light else QColor(255, 255, 255))
        painter.setFont(self.font())
        painter.drawText(self.boundingRect(), Qt.AlignmentFlag.AlignCenter, self.text())


class BoxItem(QGraphicsItem):
    """One GT box: outline in the class colour, class name above it, fill when selected.

    ``margin`` (scene units) pads the bounding rect so the cosmetic outline repaints cleanly;
    the canvas sets it when the zoom changes (:meth:`set_margin`).
    """

    def __init__(self, box: Box, margin: float = 2.0) -> None:
        super().__init__()
        self._rect = QRectF()
        self._margin = margin
        self._selected = False
        self._color = QColor()
        self._label_item = _LabelTag(self)
        self._label_item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        font = QFont()
        font.setPointSizeF(9.0)
        self._label_item.setFont(font)
        self._label_item.setZValue(1)
        # Text sits just above the box's top-left corner, offset in screen pixels.
        self._label_item.setTransform(QTransform.fromTranslate(2, -15))
        self.setZValue(Z.GT_BOXES)
        self.box = box
        self.set_box(box)

    # -- state -------------------------------------------------------------------------------
    def set_box(self, box: Box) -> None:
        self.box = box
        self._color = label_color(box.label)
        text = box.label or ""
        if box.difficult:
            text += " (difficult)"
        self._label_item.setText(text)
        self._label_item.setBrush(QBrush(self._color))
        self._label_item.setVisible(bool(text))
        self.set_xyxy(box.xyxy)

    def set_xyxy(self, xyxy: tuple[float, float, float, float]) -> None:
        x1, y1, x2, y2 = xyxy
        self.prepareGeometryChange()
        self._rect = QRectF(x1, y1, x2 - x1, y2 - y1)
        self._label_item.setPos(QPointF(x1, y1))

    def xyxy(self) -> tuple[float, float, float, float]:
        r = self._rect
        return (r.left(), r.top(), r.right(), r.bottom())

    def set_margin(self, margin: float) -> None:
        self.prepareGeometryChange()
        self._margin = margin

    def set_selected(self, selected: bool) -> None:
        if selected != self._selected:
            self._selected = selected
            self.setZValue(Z.SELECTED_BOX if selected else Z.GT_BOXES)
            self.update()

    @property
    def selected(self) -> bool:
        return self._selected

    # -- QGraphicsItem -------------------------------------------------------------------------
    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        m = self._margin
        return self._rect.adjusted(-m, -m, m, m)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        pen = QPen(self._color, _PEN_PX + (1.0 if self._selected else 0.0))
        pen.setCosmetic(True)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        painter.setPen(pen)
        if self._selected:
            fill = QColor(self._color)
            fill.setAlpha(60)
            painter.setBrush(fill)
        else:
            painter.setBrush(Qt.BrushStyle.NoBrush)
        if self.box.difficult:
            pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
        painter.drawRect(self._rect)


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
