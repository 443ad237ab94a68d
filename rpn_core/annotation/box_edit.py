"""Pure geometry of interactive box editing (drawing, moving, resizing, handle picking).

Coordinates follow :mod:`rpn_core.boxes`; ``xyxy`` is a 4-tuple of floats. The canvas maps
mouse positions to image coordinates and calls these functions, so everything a drag does can
be tested without Qt.

Handles are numbered clockwise from the top-left corner::

    0 ---- 1 ---- 2
    |             |
    7             3
    |             |
    6 ---- 5 ---- 4
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "HANDLE_COUNT",
    "XYXY",
    "clamp_group_delta",
    "handle_points",
    "normalise",
    "pick_handle",
    "rect_from_drag",
    "resize",
    "translate_within",
]

XYXY = tuple[float, float, float, float]
HANDLE_COUNT = 8
# Which corner coordinates a handle moves: (moves x1, moves y1, moves x2, moves y2).
_MOVES = {
    0: (True, True, False, False),
    1: (False, True, False, False),
    2: (False, True, True, False),
    3: (False, False, True, False),
    4: (False, False, True, True),
    5: (False, False, False, True),
    6: (True, False, False, True),
    7: (True, False, False, False),
}


def _clip(v: float, lo: float, hi: float) -> float:
    return min(max(v, lo), hi)


def normalise(xyxy: Sequence[float]) -> XYXY:
    """Corners ordered so that ``x1 <= x2`` and ``y1 <= y2``."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def handle_points(xyxy: Sequence[float]) -> list[tuple[float, float]]:
    """The 8 handle positions of a box, in the order of the module docstring."""
    x1, y1, x2, y2 = xyxy
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return [(x1, y1), (cx, y1), (x2, y1), (x2, cy), (x2, y2), (cx, y2), (x1, y2), (x1, cy)]


def pick_handle(
    points: Sequence[tuple[float, float]], pos: tuple[float, float], tolerance: float
) -> int | None:
    """The handle nearest to ``pos`` within ``tolerance`` (same units, e.g. screen pixels)."""
    best, best_d = None, tolerance
    for i, (x, y) in enumerate(points):
        d = math.hypot(x - pos[0], y - pos[1])
        if d <= best_d:
            best, best_d = i, d
    return best


def rect_from_drag(
    start: tuple[float, float], end: tuple[float, float], width: float, height: float
) -> XYXY:
    """The box spanned by a drag from ``start`` to ``end``, clipped to ``[0,W] x [0,H]``."""
    x1, y1, x2, y2 = normalise((*start, *end))
    return (_clip(x1, 0, width), _clip(y1, 0, height), _clip(x2, 0, width), _clip(y2, 0, height))


def translate_within(
    xyxy: Sequence[float], dx: float, dy: float, width: float, height: float
) -> XYXY:
    """``xyxy`` moved by ``(dx, dy)`` but kept inside the image with its size unchanged.

    A box larger than the image along an axis is pinned to the image's origin on that axis.
    """
    x1, y1, x2, y2 = normalise(xyxy)
    w, h = x2 - x1, y2 - y1
    nx = _clip(x1 + dx, 0.0, max(width - w, 0.0))
    ny = _clip(y1 + dy, 0.0, max(height - h, 0.0))
    return (nx, ny, nx + w, ny + h)


def resize(
    xyxy: Sequence[float], handle: int, x: float, y: float, width: float, height: float
) -> XYXY:
    """``xyxy`` with ``handle`` dragged to ``(x, y)`` (clipped to the image).

    Dragging past the opposite edge flips the box (the result is normalised), as in
    labelImg and labelme.
    """
    if handle not in _MOVES:
        raise ValueError(f"handle must be 0..7, got {handle}")
    x = _clip(x, 0.0, width)
    y = _clip(y, 0.0, height)
    mx1, my1, mx2, my2 = _MOVES[handle]
    x1, y1, x2, y2 = normalise(xyxy)
    return normalise((x if mx1 else x1, y if my1 else y1, x if mx2 else x2, y if my2 else y2))


def clamp_group_delta(
    boxes: Sequence[Sequence[float]], dx: float, dy: float, width: float, height: float
) -> tuple[float, float]:
    """The largest part of ``(dx, dy)`` that keeps every box of a moved group inside the image
    (boxes already sticking out are allowed to stay where they are)."""
    if not boxes:
        return (0.0, 0.0)
    lo_x = max(min(-b[0], 0.0) for b in boxes)
    hi_x = min(max(width - b[2], 0.0) for b in boxes)
    lo_y = max(min(-b[1], 0.0) for b in boxes)
    hi_y = min(max(height - b[3], 0.0) for b in boxes)
    return (_clip(dx, lo_x, hi_x), _clip(dy, lo_y, hi_y))
