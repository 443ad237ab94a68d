"""The Qt-free editing core: rpn_core.annotation.box_edit geometry and rpn_core.annotation.document operations
(hand-computed expectations)."""

from __future__ import annotations

import pytest

from rpn_core.annotation.box_edit import (
    clamp_group_delta,
    handle_points,
    pick_handle,
    rect_from_drag,
    resize,
    translate_within,
)
from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.annotation.document import Document


def test_handle_points_clockwise_from_top_left():
    assert handle_points((0, 0, 10, 20)) == [
        (0, 0),
        (5, 0),
        (10, 0),
        (10, 10),
        (10, 20),
        (5, 20),
        (0, 20),
        (0, 10),
    ]


def test_pick_handle_nearest_within_tolerance():
    pts = handle_points((0, 0, 10, 20))
    assert pick_handle(pts, (9, 1), 3) == 2  # |(9,1)-(10,0)| = 1.41
    assert pick_handle(pts, (5, 5), 3) is None  # 5 from (5,0), beyond 3


def test_rect_from_drag_orders_and_clips():
    # dragged up-left from (50, 40) to (-5, 10) in a 100 x 80 image
    assert rect_from_drag((50, 40), (-5, 10), 100, 80) == (0, 10, 50, 40)


def test_resize_flips_past_the_opposite_edge_and_clips():
    # Right edge (handle 3) of (10,10,30,30) dragged to x=5: x1 becomes 5, x2 the old x1 = 10.
    assert resize((10, 10, 30, 30), 3, 5, 99, 100, 100) == (5, 10, 10, 30)
    # Bottom-right corner dragged beyond the 100 x 50 image: clipped to (100, 50).
    assert resize((10, 10, 30, 30), 4, 300, 300, 100, 50) == (10, 10, 100, 50)
    with pytest.raises(ValueError):
        resize((0, 0, 1, 1), 8, 0, 0, 10, 10)


def test_translate_within_keeps_size():
    # (80,10,100,30) moved +15 in a 100-wide image: x can only reach 100-20 = 80.
    assert translate_within((80, 10, 100, 30), 15, 5, 100, 100) == (80, 15, 100, 35)


def test_clamp_group_delta_uses_the_tightest_box():
    # Box A has 10 px to the left edge, box B 5 px to the right edge (100 wide).
    boxes = [(10, 0, 20, 10), (60, 0, 95, 10)]
    assert clamp_group_delta(boxes, -50, 0, 100, 100) == (-10, 0)
    assert clamp_group_delta(boxes, 50, 0, 100, 100) == (5, 0)


def make_doc():
    return Document(ImageAnnotation("x.png", 100, 80, [Box(0, 0, 10, 10, "a")]))


def test_insert_and_remove_are_inverses():
    doc = make_doc()
    idx = doc.insert_boxes([Box(5, 5, 20, 20, "b"), Box(1, 1, 2, 2, "c")])
    assert idx == [1, 2]
    order, removed = doc.remove_boxes([2, 0])
    assert order == [0, 2] and [b.label for b in removed] == ["a", "c"]
    assert doc.insert_boxes(removed, order) == [0, 2]
    assert [b.label for b in doc.boxes] == ["a", "b", "c"]


def test_clamp_orders_corners_and_refuses_empty_boxes():
    doc = make_doc()
    assert doc.clamp(Box(120, 90, 50, -10)).xyxy == (50, 0, 100, 80)
    with pytest.raises(ValueError, match="empty"):
        doc.clamp(Box(150, 10, 160, 20))  # entirely right of the 100-wide image


def test_replace_and_flags_return_their_inverse():
    doc = make_doc()
    old = doc.set_labels([0], "z")
    assert doc.boxes[0].label == "z"
    doc.replace_boxes(old)
    assert doc.boxes[0].label == "a"
    assert doc.set_verified(True) is False and doc.verified
