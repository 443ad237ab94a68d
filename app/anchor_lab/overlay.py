"""The anchor overlay: ONE batch-painted ``QGraphicsItem`` for every anchor (ARCHITECTURE.md rule
10).

Anchors are those of :func:`rpn_core.anchors.grid.generate_anchors` and labels those of
:func:`rpn_core.anchors.labelling.label_image` (ARCHITECTURE.md rule 7); coordinates are scene =
original-image
pixels (:mod:`rpn_core.boxes`). What is drawn is decided by the pure functions of
:mod:`rpn_core.anchors.view`; per label update this item caches, per category, the visible
outlines merged into few segments (:func:`rpn_core.anchors.view.merged_edges`), each
category drawn as one ``QPainterPath`` with one pen.

Style: the Okabe-Ito colour-blind-safe palette, and each category also has its own line
style, so labels stay apart without colour: foreground yellow, solid and thick on a dark
halo; low-quality (best-anchor rule) positives purple, solid and thick, an x at the centre;
ignored orange, dashed; cross-boundary grey, dash-dot-dot; background sky blue, sparse dots
(GT boxes are green in the canvas, so no anchor is). Masses are drawn opaque and 1 px
wide: on Qt's raster engine alpha-blended or wide dashed outlines cost 10x more, and the
cost follows the pixels stroked -- hence the merged segments (see ``bench/overlay.py``).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QByteArray, QDataStream, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from app.canvas.zorder import Z
from rpn_core.anchors.view import (
    Category,
    DisplayMode,
    ViewOptions,
    background_sample,
    location_categories,
    merged_edges,
    shape_mask,
    visible_indices,
)

__all__ = [
    "AnchorOverlay",
    "CATEGORY_STYLE",
    "HIGHLIGHT_COLOUR",
    "category_pen",
    "segments_path",
]

# Okabe & Ito (2008) colour-blind-safe palette.
CATEGORY_STYLE: dict[Category, tuple[QColor, Qt.PenStyle, float, str]] = {
    Category.BACKGROUND: (QColor("#56B4E9"), Qt.PenStyle.DotLine, 0.0, "background"),
    Category.CROSS_BOUNDARY: (
        QColor("#999999"),
        Qt.PenStyle.DashDotDotLine,
        0.0,
        "ignored: cross-boundary",
    ),
    Category.IGNORED: (QColor("#E69F00"), Qt.PenStyle.DashLine, 0.0, "ignored"),
    Category.FOREGROUND: (QColor("#F0E442"), Qt.PenStyle.SolidLine, 2.0, "foreground"),
    Category.LOW_QUALITY: (
        QColor("#CC79A7"),
        Qt.PenStyle.SolidLine,
        2.0,
        "foreground: best-anchor rule",
    ),
}
# White on a black halo: the hovered anchor and the positives of the selected GT box.
HIGHLIGHT_COLOUR = QColor(255, 255, 255)
HALO = QColor(0, 0, 0)
# Okabe-Ito vermillion, thick and dashed, just outside a GT box no anchor learns.
FLAG_COLOUR = QColor("#D55E00")


# Sparse patterns (dash, gap in pixels) let the photo show through the masses.
DASH_PATTERNS = {Category.BACKGROUND: [1.0, 4.0], Category.IGNORED: [3.0, 3.0]}


def category_pen(category: Category) -> QPen:
    """The cosmetic pen (constant screen width at any zoom) of a category."""
    colour, style, width, _ = CATEGORY_STYLE[category]
    pen = QPen(colour, width, style)
    pen.setCosmetic(True)
    if category in DASH_PATTERNS:
        pen.setDashPattern(DASH_PATTERNS[category])
    return pen


def _halo_pen(width: float) -> QPen:
    pen = QPen(HALO, width)
    pen.setCosmetic(True)
    return pen


class AnchorOverlay(QGraphicsItem):
    """All anchors of one image, coloured by label; see the module docstring.

    Feed it with :meth:`set_anchors` (once per image size / anchor configuration) and
    :meth:`set_labels` (every relabel); :meth:`set_options` changes filters and mode.
    """

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self.setZValue(Z.ANCHORS)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self._boxes = np.zeros((0, 4))
        self._centres: list[QPointF] = []
        self._size_index = self._ratio_index = np.zeros(0, dtype=np.int64)
        self._per_location = 1
        self._bounds = QRectF()
        self._anchor_bounds = QRectF()
        self._categories = np.zeros(0, dtype=np.int8)
        self._minibatch: np.ndarray | None = None
        self._options = ViewOptions()
        self._shape: np.ndarray | None = None
        self._sample: np.ndarray | None = None
        self._visible: dict[Category, np.ndarray] = {}
        self._location_cat = np.zeros(0, dtype=np.int16)
        self._draw_cache: dict[Category, QPainterPath] = {}
        self._highlight: list[QRectF] = []
        self._hover: QRectF | None = None
        self._flagged: list[QRectF] = []
        self._message = ""
        self._pens = {c: category_pen(c) for c in Category}

    # -- data ------------------------------------------------------------------------------
    def set_anchors(
        self,
        boxes: np.ndarray,
        size_index: np.ndarray,
        ratio_index: np.ndarray,
        per_location: int | np.ndarray,
    ) -> None:
        """New anchor geometry ``boxes (T, 4)`` in ``generate_anchors`` order with its
        ``AnchorMeta`` size/ratio indices and ``per_location`` (anchors per location, or
        where each location starts: ``location_starts``, for anchor levels); clears labels
        until :meth:`set_labels`."""
        self.prepareGeometryChange()
        self._boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if np.ndim(per_location) == 0:
            firsts = self._boxes[:: int(per_location)]
        else:
            firsts = self._boxes[np.asarray(per_location, dtype=np.int64)]
        cx = (firsts[:, 0] + firsts[:, 2]) / 2
        cy = (firsts[:, 1] + firsts[:, 3]) / 2
        self._centres = [QPointF(x, y) for x, y in zip(cx.tolist(), cy.tolist(), strict=True)]
        self._size_index, self._ratio_index = size_index, ratio_index
        self._per_location = per_location
        if len(self._boxes):
            x1, y1 = self._boxes[:, :2].min(axis=0)
            x2, y2 = self._boxes[:, 2:].max(axis=0)
            self._bounds = QRectF(x1, y1, x2 - x1, y2 - y1).adjusted(-4, -4, 4, 4)
        else:
            self._bounds = QRectF()
        self._anchor_bounds = QRectF(self._bounds)
        self._flagged = []
        self._categories = np.zeros(0, dtype=np.int8)
        self._minibatch = None
        self._highlight, self._hover = [], None
        self._refresh_filters()

    def set_labels(self, categories: np.ndarray, minibatch: np.ndarray | None = None) -> None:
        """Per-anchor :class:`Category` ``(T,)`` (``anchor_view.categorize``) and, for the
        minibatch mode, the indices of the sampled training minibatch."""
        self._categories = np.asarray(categories)
        self._minibatch = minibatch
        self._refresh_visible()

    def set_options(self, options: ViewOptions) -> None:
        self._options = options
        self._refresh_filters()

    @property
    def options(self) -> ViewOptions:
        return self._options

    def set_highlight(self, indices: np.ndarray) -> None:
        """Anchors drawn on top in yellow (e.g. the positives of the selected GT box)."""
        self._highlight = self._qrects(np.asarray(indices, dtype=np.int64))
        self.update()

    def set_flagged(self, gt_boxes: np.ndarray) -> None:
        """GT boxes ``(F, 4)`` that no anchor labels foreground: outlined in vermillion."""
        b = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        flagged = [QRectF(x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in b.tolist()]
        if flagged or self._flagged:
            self.prepareGeometryChange()
            self._flagged = flagged
            self._bounds = self._anchor_bounds
            for r in flagged:  # a GT box may lie outside every anchor
                self._bounds = self._bounds.united(r.adjusted(-40, -40, 40, 40))
            self.update()

    @property
    def flagged(self) -> list[QRectF]:
        return list(self._flagged)

    def set_hover(self, index: int | None) -> None:
        self._hover = None if index is None else self._qrects(np.array([index]))[0]
        self.update()

    def set_message(self, text: str) -> None:
        """A line of text over the image's top-left corner (e.g. "Loading torch...")."""
        self._message = text
        self.update()

    def _qrects(self, idx: np.ndarray) -> list[QRectF]:
        return [QRectF(x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in self._boxes[idx].tolist()]

    # -- queries (for the inspector and tests) ---------------------------------------------
    @property
    def boxes(self) -> np.ndarray:
        return self._boxes

    def visible(self) -> dict[Category, np.ndarray]:
        """Indices drawn per category (the centres mode draws locations, not these)."""
        return self._visible

    def visible_all(self) -> np.ndarray:
        parts = [v for v in self._visible.values() if v.size]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    # -- derived caches --------------------------------------------------------------------
    def _refresh_filters(self) -> None:
        o = self._options
        self._shape = shape_mask(self._size_index, self._ratio_index, o)
        n = len(self._boxes)
        self._sample = background_sample(n, o.background_sample, o.seed)
        self._refresh_visible()

    def _refresh_visible(self) -> None:
        cats = self._categories
        if len(cats) != len(self._boxes):
            self._visible, self._location_cat = {}, np.zeros(0, dtype=np.int16)
        elif self._options.mode is DisplayMode.CENTRES:
            self._visible = visible_indices(cats, self._options, shape=self._shape)
            self._location_cat = location_categories(cats, self._per_location, self._shape)
        else:
            self._visible = visible_indices(
                cats,
                self._options,
                shape=self._shape,
                sample=self._sample,
                minibatch=self._minibatch,
            )
        self._draw_cache = {}
        self.update()

    # -- painting --------------------------------------------------------------------------
    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._bounds

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        if self._options.mode is DisplayMode.CENTRES:
            self._paint_centres(painter)
        else:
            self._paint_rects(painter, option.exposedRect)
        if self._highlight:
            painter.setPen(_halo_pen(5))
            painter.drawRects(self._highlight)
            painter.setPen(_pen(HIGHLIGHT_COLOUR, 2.5))
            painter.drawRects(self._highlight)
        if self._hover is not None:
            painter.setPen(_halo_pen(5))
            painter.drawRect(self._hover)
            painter.setPen(_pen(HIGHLIGHT_COLOUR, 3))
            painter.drawRect(self._hover)
        if self._flagged:
            self._paint_flags(painter)
        if self._message:
            self._paint_message(painter)

    def _path_for(self, category: Category, exposed: QRectF) -> QPainterPath | None:
        """The category's visible outlines as one path of merged segments
        (``anchor_view.merged_edges``); cached while the whole overlay is exposed, cut to the
        exposed area when zoomed in."""
        idx = self._visible.get(category)
        if idx is None or idx.size == 0:
            return None
        whole = exposed.contains(self._bounds)
        if whole and category in self._draw_cache:
            return self._draw_cache[category]
        if not whole:
            b = self._boxes[idx]
            hit = (
                (b[:, 2] >= exposed.left())
                & (b[:, 0] <= exposed.right())
                & (b[:, 3] >= exposed.top())
                & (b[:, 1] <= exposed.bottom())
            )
            idx = idx[hit]
        path = segments_path(merged_edges(self._boxes[idx]))
        if whole:
            self._draw_cache[category] = path
        return path

    def _paint_rects(self, painter: QPainter, exposed: QRectF) -> None:
        for category in Category:  # ascending: foreground ends on top
            path = self._path_for(category, exposed)
            if path is None:
                continue
            if category is Category.FOREGROUND:
                painter.setPen(_halo_pen(4))
                painter.drawPath(path)
            painter.setPen(self._pens[category])
            painter.drawPath(path)
            if category is Category.LOW_QUALITY:
                self._paint_crosses(painter, self._visible[category])

    def _paint_crosses(self, painter: QPainter, idx: np.ndarray) -> None:
        """A small x at the centre of each low-quality positive (its second style cue)."""
        c = (self._boxes[idx, :2] + self._boxes[idx, 2:]) / 2
        r = 4.0 / max(painter.worldTransform().m11(), 1e-6)  # 4 screen pixels
        down = np.concatenate([c - r, c + r], axis=1)
        up = np.stack([c[:, 0] - r, c[:, 1] + r, c[:, 0] + r, c[:, 1] - r], axis=1)
        painter.drawPath(segments_path(np.concatenate([down, up])))

    def _paint_centres(self, painter: QPainter) -> None:
        cats = self._location_cat
        for category in Category:
            if category not in self._options.categories:
                continue
            points = [self._centres[i] for i in np.flatnonzero(cats == category).tolist()]
            if points:
                painter.setPen(_pen(CATEGORY_STYLE[category][0], 4 if category >= 3 else 3))
                painter.drawPoints(points)

    def _paint_flags(self, painter: QPainter) -> None:
        m = 5.0 / max(painter.worldTransform().m11(), 1e-6)  # 5 screen pixels outside
        pen = QPen(FLAG_COLOUR, 3, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.drawRects([r.adjusted(-m, -m, m, m) for r in self._flagged])

    def _paint_message(self, painter: QPainter) -> None:
        painter.save()
        origin = painter.worldTransform().map(QPointF(0, 0))
        painter.resetTransform()
        font = QFont()
        font.setPointSize(11)
        painter.setFont(font)
        rect = QRectF(origin.x() + 8, origin.y() + 8, 360, 26)
        painter.fillRect(rect, QColor(0, 0, 0, 170))
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(rect.adjusted(8, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, self._message)
        painter.restore()


def segments_path(segments: np.ndarray) -> QPainterPath:
    """One ``QPainterPath`` of separate line segments ``(S, 4)`` ``(x1, y1, x2, y2)``.

    Built by reading Qt's documented ``QDataStream`` serialisation of a path (element
    count; per element its type, x, y as big-endian int32, float64, float64; the current
    subpath start and fill rule) from a numpy buffer: ~10x faster than one ``QLineF`` per
    segment from Python, and ``drawPath`` strokes it at least as fast as ``drawLines``.
    """
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 4)
    n = len(seg)
    body = np.empty(2 * n, dtype=[("type", ">i4"), ("x", ">f8"), ("y", ">f8")])
    body["type"][0::2] = 0  # QPainterPath.ElementType.MoveToElement
    body["type"][1::2] = 1  # LineToElement
    body["x"][0::2], body["y"][0::2] = seg[:, 0], seg[:, 1]
    body["x"][1::2], body["y"][1::2] = seg[:, 2], seg[:, 3]
    data = QByteArray(
        np.array([2 * n], ">i4").tobytes() + body.tobytes() + np.zeros(2, ">i4").tobytes()
    )
    path = QPainterPath()
    stream = QDataStream(data)  # keep ``data`` referenced while the stream reads it
    stream >> path
    return path


def _pen(colour: QColor, width: float) -> QPen:
    pen = QPen(colour, width)
    pen.setCosmetic(True)
    return pen
