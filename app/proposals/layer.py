"""The Proposals layer: ONE batch-painted ``QGraphicsItem`` for all proposals (ARCHITECTURE.md rule 10).

Boxes follow :mod:`rpn_core.boxes` (original-image pixels, which are the scene's units).
Proposals are drawn as outlines coloured and faded on the colour-blind-safe *viridis* ramp
(dark purple = low, yellow = high), by **rank** (the default: the best eighth of the shown
proposals is yellow and opaque, the last eighth faint purple) or by absolute **score**. A
trained RPN's top 300 scores often all lie within 0.98-0.999, where a score ramp paints one
uniform mass; the rank ramp always spreads them. Values are quantised into :data:`N_BINS`
bins; each bin is one cached ``QPainterPath`` drawn with one pen, so a paint is a handful of
``drawPath`` calls whatever the number of proposals. The selected proposal is drawn on top
with a thick halo. Optionally, for the top ``arrow_count`` proposals, the anchor each one
came from is drawn dashed with an arrow from its centre to the refined box's centre: what the
box regressor did.

Pure helpers (:func:`score_bins`, :func:`rank_bins`, :func:`ramp_colour`, :func:`proposal_at`)
carry the logic and are tested without painting.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from app.canvas.zorder import Z

__all__ = [
    "N_BINS",
    "VIRIDIS",
    "ProposalsLayer",
    "proposal_at",
    "ramp_colour",
    "rank_bins",
    "score_bins",
]

N_BINS = 8
# Viridis (matplotlib's perceptually uniform, colour-blind-safe map) at 0, 1/8, ..., 1.
VIRIDIS = (
    (0x44, 0x01, 0x54),
    (0x48, 0x28, 0x78),
    (0x3E, 0x4A, 0x89),
    (0x31, 0x68, 0x8E),
    (0x26, 0x82, 0x8E),
    (0x1F, 0x9E, 0x89),
    (0x35, 0xB7, 0x79),
    (0x6E, 0xCE, 0x58),
    (0xFD, 0xE7, 0x25),
)
MIN_ALPHA = 0.25  # the weakest proposal is still visible
SELECTED_COLOUR = QColor(255, 64, 160)  # magenta: not on the viridis ramp
ANCHOR_COLOUR = QColor(255, 255, 255)
MAX_TAGS = 10  # rank/score tags are drawn when at most this many proposals are selected


def score_bins(scores: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Bin index in ``[0, n_bins)`` of each score in ``[0, 1]`` (``(P,)`` int).

    Bin ``k`` holds ``[k / n, (k + 1) / n)``; a score of exactly 1 goes to the top bin and
    scores outside ``[0, 1]`` (or NaN) are clipped first (NaN counts as 0).
    """
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    return np.clip(np.floor(np.clip(s, 0.0, 1.0) * n_bins), 0, n_bins - 1).astype(np.int64)


def rank_bins(count: int, n_bins: int = N_BINS) -> np.ndarray:
    """Bin index of each of ``count`` proposals sorted best first (``(P,)`` int): rank 1 in
    the top bin ``n_bins - 1``, then equal shares of the ranks per bin, the last in bin 0
    (``floor(i * n / P)`` counted from the top)."""
    i = np.arange(max(int(count), 0))
    return (n_bins - 1 - (i * n_bins) // max(int(count), 1)).astype(np.int64)


def ramp_colour(t: float) -> tuple[int, int, int, int]:
    """RGBA for a value ``t`` in ``[0, 1]``: viridis, linearly interpolated between its
    nine stops, with alpha rising from ``MIN_ALPHA`` to 1."""
    t = min(max(float(t), 0.0), 1.0) if math.isfinite(t) else 0.0
    pos = t * (len(VIRIDIS) - 1)
    i = min(int(pos), len(VIRIDIS) - 2)
    f = pos - i
    rgb = [round(a + (b - a) * f) for a, b in zip(VIRIDIS[i], VIRIDIS[i + 1], strict=True)]
    alpha = round(255 * (MIN_ALPHA + (1 - MIN_ALPHA) * t))
    return rgb[0], rgb[1], rgb[2], alpha


def proposal_at(boxes: np.ndarray, x: float, y: float, tolerance: float) -> int | None:
    """Index of the proposal whose OUTLINE passes within ``tolerance`` of ``(x, y)``.

    Only outlines are hit (clicks inside a box fall through to the canvas, which draws GT
    boxes). Among several hits the smallest box wins, ties to the lower index (higher
    score). ``None`` when no outline is near.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(b) == 0:
        return None
    x1, y1, x2, y2 = b.T
    t = tolerance
    in_outer = (x >= x1 - t) & (x <= x2 + t) & (y >= y1 - t) & (y <= y2 + t)
    in_inner = (x > x1 + t) & (x < x2 - t) & (y > y1 + t) & (y < y2 - t)
    hits = np.flatnonzero(in_outer & ~in_inner)
    if len(hits) == 0:
        return None
    areas = (x2 - x1)[hits] * (y2 - y1)[hits]
    return int(hits[np.argmin(areas)])  # argmin returns the first of equal minima


def _rect(b: np.ndarray) -> QRectF:
    return QRectF(float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1]))


def _arrow_path(start: QPointF, end: QPointF, head: float) -> QPainterPath:
    path = QPainterPath(start)
    path.lineTo(end)
    line = QLineF(end, start)
    if line.length() > 1e-6:
        for turn in (25.0, -25.0):
            wing = QLineF(line)
            wing.setLength(min(head, line.length() / 2))
            wing.setAngle(line.angle() + turn)
            path.moveTo(end)
            path.lineTo(wing.p2())
    return path


class ProposalsLayer(QGraphicsItem):
    """All proposals of one image, painted in batches. Not selectable per item; selection is
    an index (``selected``) owned by the panel, which keeps list and canvas in sync."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self.setZValue(Z.PROPOSALS)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)  # the canvas routes clicks
        self._boxes = np.zeros((0, 4))
        self._scores = np.zeros((0,))
        self._anchors: np.ndarray | None = None
        self._has_scores = True
        self._colour_by = "rank"
        self._selected: tuple[int, ...] = ()
        self._show_arrows = False
        self.arrow_count = 20
        self._bin_paths: list[tuple[QPen, QPainterPath]] = []
        self._arrow_paths: tuple[QPainterPath, QPainterPath] | None = None
        self._bounds = QRectF()

    # -- data ---------------------------------------------------------------------------------
    @property
    def boxes(self) -> np.ndarray:
        return self._boxes

    @property
    def scores(self) -> np.ndarray:
        return self._scores

    @property
    def selected(self) -> tuple[int, ...]:
        """Indices (ranks - 1) of the highlighted proposals, ascending."""
        return self._selected

    def set_proposals(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        anchors: np.ndarray | None = None,
        *,
        has_scores: bool = True,
    ) -> None:
        """Show ``boxes`` ``(P, 4)`` with ``scores`` ``(P,)`` (descending: index = rank - 1).
        ``anchors`` ``(P, 4)``, the anchor each proposal was regressed from, enables arrows.
        ``has_scores=False``: the scores only pick a colour (Selective Search); tags omit them."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
        if anchors is not None:
            anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 4)
            if len(anchors) != len(boxes):
                raise ValueError(f"{len(boxes)} boxes but {len(anchors)} anchors")
        self.prepareGeometryChange()
        self._boxes, self._scores, self._anchors = boxes, scores, anchors
        self._has_scores = has_scores
        self._selected = ()
        self._rebuild()

    def clear(self) -> None:
        self.set_proposals(np.zeros((0, 4)), np.zeros((0,)))

    def set_selected(self, indices: int | list[int] | tuple[int, ...] | None) -> None:
        """Highlight these proposals (one index, several, or ``None``); bad indices dropped."""
        if indices is None:
            indices = ()
        elif isinstance(indices, (int, np.integer)):
            indices = (int(indices),)
        n = len(self._boxes)
        chosen = tuple(sorted({int(i) for i in indices if 0 <= int(i) < n}))
        if chosen != self._selected:
            self._selected = chosen
            self.update()

    @property
    def colour_by(self) -> str:
        """``"rank"`` (default) or ``"score"``: what the outline colour encodes."""
        return self._colour_by

    def set_colour_by(self, mode: str) -> None:
        if mode not in ("rank", "score"):
            raise ValueError(f"colour_by must be 'rank' or 'score', got {mode!r}")
        if mode != self._colour_by:
            self._colour_by = mode
            self._rebuild()
            self.update()

    def show_arrows(self) -> bool:
        return self._show_arrows

    def set_show_arrows(self, on: bool) -> None:
        if on != self._show_arrows:
            self._show_arrows = on
            self.update()

    @property
    def batch_count(self) -> int:
        """How many ``drawPath`` batches paint the proposals (at most :data:`N_BINS`)."""
        return len(self._bin_paths)

    def index_at(self, scene_pos: QPointF, tolerance_px: float = 4.0) -> int | None:
        """The proposal whose outline is under ``scene_pos`` (tolerance in view pixels)."""
        if not self.isVisible() or len(self._boxes) == 0:
            return None
        scale = 1.0
        scene = self.scene()
        if scene is not None and scene.views():
            scale = max(scene.views()[0].transform().m11(), 1e-6)
        p = self.mapFromScene(scene_pos)
        return proposal_at(self._boxes, p.x(), p.y(), tolerance_px / scale)

    # -- painting -----------------------------------------------------------------------------
    def _rebuild(self) -> None:
        """Rebuild the cached per-bin paths (on new data only, never per paint)."""
        self._bin_paths = []
        if self._colour_by == "score" and self._has_scores:
            bins = score_bins(self._scores)
        else:  # Selective Search has no scores: its order is its ranking
            bins = rank_bins(len(self._scores))
        for k in range(N_BINS):  # low bins first so strong proposals are painted on top
            idx = np.flatnonzero(bins == k)
            if len(idx) == 0:
                continue
            path = QPainterPath()
            for i in idx[::-1]:
                path.addRect(_rect(self._boxes[i]))
            pen = QPen(QColor(*ramp_colour((k + 0.5) / N_BINS)), 1.5 if k < N_BINS / 2 else 2.0)
            pen.setCosmetic(True)  # width in screen pixels at any zoom
            self._bin_paths.append((pen, path))
        self._arrow_paths = None
        self._bounds = QRectF()
        if len(self._boxes):
            lo = self._boxes[:, :2].min(axis=0)
            hi = self._boxes[:, 2:].max(axis=0)
            if self._anchors is not None:
                lo = np.minimum(lo, self._anchors[:, :2].min(axis=0))
                hi = np.maximum(hi, self._anchors[:, 2:].max(axis=0))
            self._bounds = QRectF(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]).adjusted(
                -8, -8, 8, 8
            )
        self.update()

    def _arrows(self) -> tuple[QPainterPath, QPainterPath]:
        if self._arrow_paths is None:
            anchor_rects, arrows = QPainterPath(), QPainterPath()
            n = min(self.arrow_count, len(self._boxes))
            for a, b in zip(self._anchors[:n], self._boxes[:n], strict=True):
                anchor_rects.addRect(_rect(a))
                start = QPointF((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
                end = QPointF((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
                arrows.addPath(_arrow_path(start, end, head=8.0))
            self._arrow_paths = (anchor_rects, arrows)
        return self._arrow_paths

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._bounds

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionGraphicsItem,
        widget: QWidget | None = None,
    ) -> None:
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for pen, path in self._bin_paths:
            painter.setPen(pen)
            painter.drawPath(path)
        if self._show_arrows and self._anchors is not None and len(self._boxes):
            anchor_rects, arrows = self._arrows()
            dashed = QPen(ANCHOR_COLOUR, 1.0, Qt.PenStyle.DashLine)
            dashed.setCosmetic(True)
            painter.setPen(dashed)
            painter.drawPath(anchor_rects)
            solid = QPen(ANCHOR_COLOUR, 1.5)
            solid.setCosmetic(True)
            painter.setPen(solid)
            painter.drawPath(arrows)
        if self._selected:
            path = QPainterPath()
            for i in self._selected:
                path.addRect(_rect(self._boxes[i]))
            for colour, width in ((QColor(0, 0, 0, 200), 5.0), (SELECTED_COLOUR, 3.0)):
                pen = QPen(colour, width)
                pen.setCosmetic(True)
                painter.setPen(pen)
                painter.drawPath(path)
            if len(self._selected) <= MAX_TAGS:
                self._paint_tags(painter)

    def _paint_tags(self, painter: QPainter) -> None:
        """"#rank score" inside the top-left corner of each selected proposal, in screen
        pixels (inside the box, so it never leaves the item's bounding rectangle)."""
        painter.save()
        to_device = painter.transform()
        painter.resetTransform()
        metrics = painter.fontMetrics()
        for i in self._selected:
            x1, y1 = self._boxes[i, :2]
            text = f"#{i + 1}  {self._scores[i]:.3f}" if self._has_scores else f"#{i + 1}"
            corner = to_device.map(QPointF(x1, y1))
            rect = QRectF(corner.x() + 2, corner.y() + 2, metrics.horizontalAdvance(text) + 6,
                          metrics.height() + 2)
            painter.fillRect(rect, SELECTED_COLOUR)
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

