"""What the anchor overlay shows: label categories, filters and display modes (Qt-free).

Shape names: see :mod:`rpn_core.boxes`. The overlay in ``app/anchor_lab/overlay.py`` only paints
the index sets these pure functions return, so they are tested without a display.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Category",
    "anchor_at",
    "DisplayMode",
    "ViewOptions",
    "background_sample",
    "categorize",
    "location_categories",
    "merged_edges",
    "shape_mask",
    "visible_indices",
]


class Category(enum.IntEnum):
    """Drawing category of an anchor; a higher value is drawn on top."""

    BACKGROUND = 0
    CROSS_BOUNDARY = 1  # ignored because it crosses the image border
    IGNORED = 2
    FOREGROUND = 3
    LOW_QUALITY = 4  # foreground only by the best-anchor-per-GT rule


class DisplayMode(enum.Enum):
    ALL = "all"  # every anchor that passes the filters
    DENSITY = "density"  # all non-background anchors, a fixed sample of background
    MINIBATCH = "minibatch"  # the anchors of one sampled training minibatch
    CENTRES = "centres"  # one dot per grid location, in its strongest category


@dataclass(frozen=True)
class ViewOptions:
    """Filters and mode. ``categories``: shown categories; ``sizes``/``ratios``: shown
    indices into the config's sizes/ratios (None = all); ``background_sample``: how many
    background anchors the density mode keeps; ``seed``: of that sample and the minibatch."""

    mode: DisplayMode = DisplayMode.DENSITY
    categories: frozenset[Category] = frozenset(Category)
    sizes: frozenset[int] | None = None
    ratios: frozenset[int] | None = None
    background_sample: int = 800
    seed: int = 0


def categorize(labels: np.ndarray, low_quality: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """``(T,)`` int8 :class:`Category` per anchor from ``AnchorLabels`` fields (numpy)."""
    cat = np.full(len(labels), Category.IGNORED, dtype=np.int8)
    cat[labels == 0] = Category.BACKGROUND
    cat[labels == 1] = Category.FOREGROUND
    cat[low_quality] = Category.LOW_QUALITY
    cat[cross & (labels == -1)] = Category.CROSS_BOUNDARY
    return cat


def shape_mask(
    size_index: np.ndarray, ratio_index: np.ndarray, options: ViewOptions
) -> np.ndarray | None:
    """``(T,)`` bool of anchors whose size and ratio pass the filters, None when all do."""
    mask = None
    if options.sizes is not None:
        mask = np.isin(size_index, list(options.sizes))
    if options.ratios is not None:
        r = np.isin(ratio_index, list(options.ratios))
        mask = r if mask is None else mask & r
    return mask


def background_sample(num_anchors: int, n: int, seed: int) -> np.ndarray:
    """``(T,)`` bool: a fixed random subset of ``n`` anchors. It depends only on the anchor
    count and seed, so while a box is dragged the sample does not flicker; the density mode
    shows the background anchors inside it (most anchors are background, so nearly ``n``)."""
    keep = np.zeros(num_anchors, dtype=bool)
    if n > 0 and num_anchors:
        rng = np.random.default_rng(seed)
        keep[rng.choice(num_anchors, size=min(n, num_anchors), replace=False)] = True
    return keep


def visible_indices(
    categories: np.ndarray,
    options: ViewOptions,
    *,
    shape: np.ndarray | None = None,
    sample: np.ndarray | None = None,
    minibatch: np.ndarray | None = None,
) -> dict[Category, np.ndarray]:
    """Indices to draw per category. ``shape``: :func:`shape_mask`; ``sample``: density
    mode's :func:`background_sample` mask; ``minibatch``: indices of the sampled training
    minibatch (minibatch mode)."""
    mask = np.ones(len(categories), dtype=bool) if shape is None else shape.copy()
    if options.mode is DisplayMode.MINIBATCH:
        chosen = np.zeros(len(categories), dtype=bool)
        if minibatch is not None:
            chosen[minibatch] = True
        mask &= chosen
    elif options.mode is DisplayMode.DENSITY and sample is not None:
        mask &= sample | (categories != Category.BACKGROUND)
    return {
        c: np.flatnonzero(mask & (categories == c)) for c in Category if c in options.categories
    }


def location_categories(
    categories: np.ndarray, per_location: int | np.ndarray, shape: np.ndarray | None = None
) -> np.ndarray:
    """``(L,)`` strongest category among each location's (filtered) anchors; -1 where the
    filters hide them all. Anchors are location-major (``rpn_core.anchors.grid``):
    ``per_location`` anchors per location, or, with anchor levels, the index where each
    location's anchors start (:func:`rpn_core.anchors.indexing.location_starts`)."""
    cat = categories.astype(np.int16)
    if shape is not None:
        cat = np.where(shape, cat, -1)
    if np.ndim(per_location) == 0:
        return cat.reshape(-1, int(per_location)).max(axis=1)
    starts = np.asarray(per_location, dtype=np.int64)
    if len(cat) == 0 or len(starts) == 0:
        return np.zeros(0, dtype=np.int16)
    return np.maximum.reduceat(cat, starts)


def anchor_at(
    boxes: np.ndarray, candidates: np.ndarray, x: float, y: float, tolerance: float
) -> int | None:
    """The candidate anchor whose outline passes nearest to ``(x, y)``, within
    ``tolerance`` scene pixels; None if none. ``boxes (T, 4)``; ``candidates`` are indices
    into it (e.g. the visible anchors). Anchors overlap by the hundred, so the outline --
    not the inside -- is what a user points at."""
    idx = np.asarray(candidates, dtype=np.int64)
    if idx.size == 0:
        return None
    b = boxes[idx]
    dx = np.maximum(np.maximum(b[:, 0] - x, x - b[:, 2]), 0.0)
    dy = np.maximum(np.maximum(b[:, 1] - y, y - b[:, 3]), 0.0)
    outside = np.hypot(dx, dy)
    inside_edge = np.minimum(
        np.minimum(np.abs(x - b[:, 0]), np.abs(x - b[:, 2])),
        np.minimum(np.abs(y - b[:, 1]), np.abs(y - b[:, 3])),
    )
    dist = np.where(outside > 0, outside, inside_edge)
    best = int(np.argmin(dist))
    return int(idx[best]) if dist[best] <= tolerance else None


def _union_runs(line: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Union of intervals ``[lo, hi]`` lying on the same ``line``: ``(R, 3)`` rows
    ``(line, start, end)``, one per maximal run of touching or overlapping intervals."""
    order = np.lexsort((lo, line))
    line, lo, hi = line[order], lo[order], hi[order]
    group = np.r_[0, np.cumsum(line[1:] != line[:-1])]
    # Running max of ``hi`` within each line: shift each line's values into its own band.
    span = float(max(hi.max() - lo.min(), 1.0)) * 4 + 1
    shift = group * span - lo.min()
    reach = np.maximum.accumulate(hi + shift) - shift
    new = np.ones(len(line), dtype=bool)
    new[1:] = (group[1:] != group[:-1]) | (lo[1:] > reach[:-1])
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:] - 1, len(line) - 1]
    return np.stack([line[starts], lo[starts], reach[ends]], axis=1)


def merged_edges(boxes: np.ndarray) -> np.ndarray:
    """The outlines of ``boxes (N, 4)`` as few line segments ``(S, 4)`` of ``(x1, y1, x2,
    y2)``, covering exactly the same points.

    Tiled anchors overlap their neighbours by most of their width (a 362 px wide anchor
    every 16 px), so the top edges of one row form one long line drawn ~20 times over, and
    some shapes share rows (size 128 at ratio 0.5 and size 64 at ratio 2 have the same
    height). All horizontal edges on the same ``y`` (vertical on the same ``x``) are merged
    where they touch or overlap. Painting cost follows the pixels stroked, so this is what
    makes 10^4 anchors paint in milliseconds.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(b) == 0:
        return np.zeros((0, 4))
    x1, y1, x2, y2 = b.T
    h = _union_runs(np.r_[y1, y2], np.r_[x1, x1], np.r_[x2, x2])
    v = _union_runs(np.r_[x1, x2], np.r_[y1, y1], np.r_[y2, y2])
    return np.concatenate([h[:, [1, 0, 2, 0]], v[:, [0, 1, 0, 2]]])
