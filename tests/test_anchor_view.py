"""Pure overlay logic (rpn_core.anchors.view): categories, filters, modes, merged outlines,
picking an anchor under the cursor."""

from __future__ import annotations

import numpy as np
import torch

from rpn_core.anchors.grid import AnchorConfig, generate_anchors
from rpn_core.anchors.indexing import anchor_metadata
from rpn_core.anchors.labelling import LabelConfig, label_image
from rpn_core.anchors.view import (
    Category,
    DisplayMode,
    ViewOptions,
    anchor_at,
    background_sample,
    categorize,
    location_categories,
    merged_edges,
    shape_mask,
    visible_indices,
)


def test_categorize_golden():
    labels = np.array([1, 1, 0, -1, -1])
    low = np.array([False, True, False, False, False])
    cross = np.array([False, False, False, True, False])
    np.testing.assert_array_equal(
        categorize(labels, low, cross),
        [
            Category.FOREGROUND,
            Category.LOW_QUALITY,
            Category.BACKGROUND,
            Category.CROSS_BOUNDARY,
            Category.IGNORED,
        ],
    )


def test_visible_indices_modes_and_filters():
    cats = np.array([0, 0, 0, 2, 3, 4], dtype=np.int8)
    sample = np.array([True, False, False, False, False, False])
    density = visible_indices(cats, ViewOptions(), sample=sample)
    np.testing.assert_array_equal(density[Category.BACKGROUND], [0])  # only the sampled one
    np.testing.assert_array_equal(density[Category.IGNORED], [3])
    everything = visible_indices(cats, ViewOptions(mode=DisplayMode.ALL), sample=sample)
    np.testing.assert_array_equal(everything[Category.BACKGROUND], [0, 1, 2])
    batch = visible_indices(
        cats, ViewOptions(mode=DisplayMode.MINIBATCH), minibatch=np.array([2, 4])
    )
    assert {c: v.tolist() for c, v in batch.items() if len(v)} == {
        Category.BACKGROUND: [2],
        Category.FOREGROUND: [4],
    }
    only_fg = visible_indices(cats, ViewOptions(categories=frozenset({Category.FOREGROUND})))
    assert list(only_fg) == [Category.FOREGROUND]


def test_shape_mask_and_location_categories():
    # 2 locations x A = 4 anchors (2 ratios x 2 sizes): size_index = a % 2, ratio = a // 2.
    size_index = np.tile([0, 1, 0, 1], 2)
    ratio_index = np.tile([0, 0, 1, 1], 2)
    mask = shape_mask(size_index, ratio_index, ViewOptions(sizes=frozenset({1})))
    np.testing.assert_array_equal(mask, [0, 1, 0, 1] * 2)
    assert shape_mask(size_index, ratio_index, ViewOptions()) is None
    cats = np.array([0, 3, 2, 0, 0, 0, 0, 2], dtype=np.int8)
    np.testing.assert_array_equal(location_categories(cats, 4), [3, 2])
    np.testing.assert_array_equal(location_categories(cats, 4, mask), [3, 2])
    np.testing.assert_array_equal(location_categories(cats, 4, ~mask), [2, 0])


def test_background_sample_is_fixed_per_seed():
    a, b = background_sample(1000, 50, 3), background_sample(1000, 50, 3)
    assert a.sum() == 50 and np.array_equal(a, b)
    assert not np.array_equal(a, background_sample(1000, 50, 4))


def _raster(segments_or_boxes: np.ndarray, as_boxes: bool, size=(120, 160)) -> np.ndarray:
    """Points covered by outlines on an integer grid (all coordinates here are integers)."""
    img = np.zeros(size, dtype=bool)
    h, w = size
    items = segments_or_boxes.astype(int).tolist()
    lines = []
    for x1, y1, x2, y2 in items:
        if as_boxes:
            lines += [(x1, y1, x2, y1), (x1, y2, x2, y2), (x1, y1, x1, y2), (x2, y1, x2, y2)]
        else:
            lines.append((x1, y1, x2, y2))
    for x1, y1, x2, y2 in lines:
        xs = np.clip(np.arange(min(x1, x2), max(x1, x2) + 1), 0, w - 1)
        ys = np.clip(np.arange(min(y1, y2), max(y1, y2) + 1), 0, h - 1)
        if 0 <= y1 < h and y1 == y2:
            img[y1, xs] = True
        if 0 <= x1 < w and x1 == x2:
            img[ys, x1] = True
    return img


def test_merged_edges_cover_exactly_the_outlines():
    config = AnchorConfig(sizes=(16.0, 40.0), aspect_ratios=(0.5, 2.0), stride=8)
    size = (120, 160)
    boxes = generate_anchors(size, config).numpy().astype(np.float64)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(boxes), size=len(boxes) // 3, replace=False))
    segments = merged_edges(boxes[idx])
    assert len(segments) < 2 * len(idx)  # half the strokes of drawing 4 sides per anchor
    np.testing.assert_array_equal(_raster(segments, False), _raster(boxes[idx], True))


def test_merged_edges_golden():
    # Boxes overlapping in x merge their top/bottom edges; one apart does not: tops (0..14)
    # and (20..30) at y = 0, bottoms the same at y = 10. A wide box (2, 10, 12, 30) shares
    # y = 10 with those bottoms and extends (0..14) no further, so it merges into it; the
    # running end must survive the short (4..14) interval: (0..10), (2..12), (4..14) -> 0..14.
    b = np.array([[0, 0, 10, 10], [4, 0, 14, 10], [20, 0, 30, 10], [2, 10, 12, 30]], float)
    seg = merged_edges(b)
    horizontal = sorted(map(tuple, seg[seg[:, 1] == seg[:, 3]].tolist()))
    assert horizontal == [
        (0, 0, 14, 0),
        (0, 10, 14, 10),
        (2, 30, 12, 30),
        (20, 0, 30, 0),
        (20, 10, 30, 10),
    ]
    # Vertical: x = 0, 4, 10, 14, 20, 30 from y 0..10, and x = 2, 12 from 10..30.
    assert len(seg) == 5 + 8
    assert merged_edges(np.zeros((0, 4))).shape == (0, 4)


def test_anchor_at_picks_the_nearest_outline():
    boxes = np.array([[0, 0, 100, 100], [40, 40, 60, 60]], dtype=float)
    both = np.array([0, 1])
    assert anchor_at(boxes, both, 50, 41, tolerance=3) == 1  # 1 px from the small top edge
    assert anchor_at(boxes, both, 50, 2, tolerance=3) == 0  # 2 px from the big top edge
    assert anchor_at(boxes, both, 25, 25, tolerance=3) is None  # 15 px from any edge
    assert anchor_at(boxes, both, -2, 50, tolerance=3) == 0  # just outside the big one
    assert anchor_at(boxes, np.array([1]), 50, 2, tolerance=3) is None  # only candidates
    assert anchor_at(boxes, np.zeros(0, dtype=int), 0, 0, tolerance=3) is None


def test_categories_from_label_image_agree_with_metadata():
    config = AnchorConfig()
    size = (200, 300)
    gt = torch.tensor([[20.0, 30.0, 140.0, 150.0]])
    labels = label_image(size, config, gt, LabelConfig.faster_rcnn(ignore_cross_boundary=True))
    cats = categorize(
        labels.labels.numpy(), labels.low_quality.numpy(), labels.cross_boundary.numpy()
    )
    meta = anchor_metadata(size, config)
    # Every cross-boundary anchor (metadata) is drawn as CROSS_BOUNDARY under this rule.
    np.testing.assert_array_equal(cats == Category.CROSS_BOUNDARY, meta.cross_boundary)


def test_merged_edges_running_end_and_touching():
    # Same top line y = 0: [0, 100] contains [10, 20]; [50, 60] starts after 20 but before
    # 100, so it must still merge (the run's end is the max so far, not the last one's);
    # [100, 120] touches at 100 and merges; [130, 140] is apart.
    b = np.array(
        [[0, 0, 100, 5], [10, 0, 20, 7], [50, 0, 60, 9], [100, 0, 120, 11], [130, 0, 140, 13]],
        dtype=float,
    )
    top = merged_edges(b)
    top = sorted(map(tuple, top[(top[:, 1] == 0) & (top[:, 3] == 0)].tolist()))
    assert top == [(0, 0, 120, 0), (130, 0, 140, 0)]
