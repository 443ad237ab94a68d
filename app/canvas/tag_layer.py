"""All class tags of the canvas in ONE batch-painted item (ARCHITECTURE.md rule 10).

A tag per box as its own transformation-ignoring item would make Qt re-check every tag on
every repaint (such items cannot be indexed by scene position), i.e. per-frame work
proportional to the box count. This layer keeps the boxes' corners in arrays, culls them against
the exposed rectangle with numpy and draws only the tags in view, in screen pixels (constant
size at any zoom). Coordinates follow :mod:`rpn_core.boxes`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QTransform
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from app.canvas.zorder import Z
from rpn_core.annotation.data import Box

__all__ = ["TagLayer"]

_PAD_X = 3.0


def tag_text(box: Box) -> str:
    return box.label + (" · difficult" if box.difficult else "")


class TagLayer(QGraphicsItem):
    """Class-name tags above the top-left corner of every box, in the class colour."""

    def __init__(self, color_of, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._color_of = color_of
        self.font = QFont()
        self.font.setPointSizeF(8.5)
        self._metrics = QFontMetricsF(self.font)
        self._h = self._metrics.height()
        self._texts: list[str] = []
        self._width_cache: dict[str, float] = {}
        self._widths = np.zeros(0)
        self._xy = np.zeros((0, 2))
        self._rect = QRectF()
        self._zoom = 1.0
        self.setZValue(Z.LABELS)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption)

    def set_scene_rect(self, rect: QRectF) -> None:
        self.prepareGeometryChange()
        self._rect = QRectF(rect)

    def set_zoom(self, zoom: float) -> None:
        self.prepareGeometryChange()
        self._zoom = max(zoom, 1e-6)

    def set_boxes(self, boxes: Sequence[Box]) -> None:
        """Rebuild from the document's boxes (on edits, not during drags)."""
        self._texts = [tag_text(b) for b in boxes]
        widths = self._width_cache
        for t in set(self._texts) - widths.keys():
            widths[t] = self._metrics.horizontalAdvance(t) + 2 * _PAD_X
        self._widths = np.array([widths[t] for t in self._texts], dtype=np.float64)
        self._xy = np.array([(b.x1, b.y1) for b in boxes], dtype=np.float64).reshape(-1, 2)
        self.update()

    def move(self, index: int, x1: float, y1: float) -> None:
        """Move one tag (live drag): repaints only its old and new place."""
        old = self._tag_rect(index)
        self._xy[index] = (x1, y1)
        self.update(old)
        self.update(self._tag_rect(index))

    def _tag_rect(self, index: int) -> QRectF:
        z = self._zoom
        x, y = self._xy[index]
        return QRectF(
            x - 1 / z, y - (self._h + 1) / z, (self._widths[index] + 2) / z, (self._h + 2) / z
        )

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        # Tags stick out above the image's top edge by one tag height (in scene units).
        return self._rect.adjusted(0, -(self._h + 2) / self._zoom, 0, 0)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        if not len(self._texts):
            return
        z = self._zoom
        ex = option.exposedRect
        x, y = self._xy[:, 0], self._xy[:, 1]
        visible = np.nonzero(
            (x <= ex.right())
            & (x + self._widths / z >= ex.left())
            & (y >= ex.top())
            & (y - self._h / z <= ex.bottom())
        )[0]
        world = painter.worldTransform()
        painter.save()
        painter.setWorldTransform(QTransform())  # draw in device pixels
        painter.setFont(self.font)
        painter.setPen(Qt.PenStyle.NoPen)
        for i in visible:
            text = self._texts[i]
            if not text:
                continue
            p = world.map(QPointF(x[i], y[i]))
            rect = QRectF(p.x(), p.y() - self._h, self._widths[i], self._h)
            color = self._color_of(text.split(" · ")[0])
            painter.fillRect(rect, color)
            painter.setPen(QColor(0, 0, 0) if color.lightnessF() > 0.55 else QColor(255, 255, 255))
            painter.drawText(rect.adjusted(_PAD_X, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, text)
        painter.restore()
