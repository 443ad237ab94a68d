"""The overlay item alone: its path builder, and what it paints where (into a QImage)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath
from PySide6.QtWidgets import QStyleOptionGraphicsItem

from app.anchor_lab.overlay import CATEGORY_STYLE, AnchorOverlay, segments_path
from rpn_core.anchors.view import Category, DisplayMode, ViewOptions


def test_segments_path_golden(qapp):
    path = segments_path(np.array([[0.0, 0.0, 10.0, 0.0], [5.0, 5.0, 5.0, 20.5]]))
    elements = [
        (path.elementAt(i).type, path.elementAt(i).x, path.elementAt(i).y)
        for i in range(path.elementCount())
    ]
    move, line = QPainterPath.ElementType.MoveToElement, QPainterPath.ElementType.LineToElement
    assert elements == [(move, 0, 0), (line, 10, 0), (move, 5, 5), (line, 5, 20.5)]
    assert segments_path(np.zeros((0, 4))).elementCount() == 0


def _overlay(boxes: np.ndarray, cats: list[int], options: ViewOptions) -> AnchorOverlay:
    overlay = AnchorOverlay()
    n = len(boxes)
    overlay.set_anchors(boxes, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), 1)
    overlay.set_options(options)
    overlay.set_labels(np.array(cats, dtype=np.int8))
    return overlay


def _paint(overlay: AnchorOverlay, exposed: QRectF | None = None) -> QImage:
    image = QImage(100, 100, QImage.Format.Format_RGB32)
    image.fill(QColor(0, 0, 0))
    option = QStyleOptionGraphicsItem()
    option.exposedRect = exposed or overlay.boundingRect()
    painter = QPainter(image)
    overlay.paint(painter, option)
    painter.end()
    return image


def _colour(image: QImage, x: int, y: int) -> str:
    return QColor(image.pixel(x, y)).name()


def test_each_category_is_painted_in_its_colour_where_its_anchor_is(qapp):
    # Three anchors: foreground (10..40), ignored (50..90 x 10..40), background (10..40 x
    # 60..90). Solid lines are sampled at an edge midpoint; the dashed/dotted ones along
    # an edge, where some pixels carry the colour.
    boxes = np.array([[10, 10, 40, 40], [50, 10, 90, 40], [10, 60, 40, 90]], dtype=float)
    cats = [Category.FOREGROUND, Category.IGNORED, Category.BACKGROUND]
    image = _paint(_overlay(boxes, cats, ViewOptions(mode=DisplayMode.ALL)))
    colour = {c: CATEGORY_STYLE[c][0].name() for c in Category}
    fg = {_colour(image, 25, 10 + d) for d in (-1, 0, 1)}
    assert colour[Category.FOREGROUND] in fg
    assert colour[Category.IGNORED] in {_colour(image, x, 10) for x in range(50, 91)}
    assert colour[Category.BACKGROUND] in {_colour(image, x, 60) for x in range(10, 41)}
    assert _colour(image, 70, 70) == "#000000"  # nothing where no anchor is
    # Hiding a category removes its lines.
    hidden = _paint(
        _overlay(
            boxes,
            cats,
            ViewOptions(mode=DisplayMode.ALL, categories=frozenset({Category.FOREGROUND})),
        )
    )
    assert colour[Category.IGNORED] not in {_colour(hidden, x, 10) for x in range(50, 91)}


def test_zoomed_in_paint_draws_only_the_exposed_part(qapp):
    boxes = np.array([[10, 10, 40, 40], [60, 60, 90, 90]], dtype=float)
    overlay = _overlay(boxes, [Category.FOREGROUND] * 2, ViewOptions(mode=DisplayMode.ALL))
    image = _paint(overlay, QRectF(0, 0, 50, 50))
    yellow = CATEGORY_STYLE[Category.FOREGROUND][0].name()
    assert yellow in {_colour(image, 25, 10 + d) for d in (-1, 0, 1)}
    assert yellow not in {_colour(image, 75, 60 + d) for d in (-1, 0, 1)}


def test_centres_mode_draws_one_dot_per_location(qapp):
    # One anchor per location (A = 1): the dot sits at the anchor's centre.
    boxes = np.array([[10, 10, 30, 30], [50, 50, 70, 70]], dtype=float)
    overlay = _overlay(
        boxes, [Category.FOREGROUND, Category.IGNORED], ViewOptions(mode=DisplayMode.CENTRES)
    )
    image = _paint(overlay)
    assert _colour(image, 20, 20) == CATEGORY_STYLE[Category.FOREGROUND][0].name()
    assert _colour(image, 60, 60) == CATEGORY_STYLE[Category.IGNORED][0].name()
    assert _colour(image, 10, 20) == "#000000"  # no outlines in this mode
