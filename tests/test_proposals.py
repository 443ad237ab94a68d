"""rpn_core.rpn.proposals: recall / AR golden values by hand, and Selective Search on real pixels."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from rpn_core.rpn.proposals import (
    AR_IOUS,
    average_recall,
    best_iou_per_gt,
    proposal_metrics,
    recall_at_iou,
    selective_search,
)

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def test_ar_grid():
    assert AR_IOUS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_best_iou_per_gt_golden():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=float)
    props = np.array(
        [
            [0, 0, 10, 5],  # IoU with gt0: 50 / 100 = 0.5
            [5, 5, 15, 15],  # gt0: 25 / (100 + 100 - 25) = 1/7
            [20, 20, 30, 30],  # gt1: 1.0
        ],
        dtype=float,
    )
    assert best_iou_per_gt(props, gt).tolist() == pytest.approx([0.5, 1.0])
    assert best_iou_per_gt(props, gt, top_n=2).tolist() == pytest.approx([0.5, 0.0])
    assert best_iou_per_gt(props[1:2], gt[:1]).tolist() == pytest.approx([1 / 7])
    assert best_iou_per_gt(np.zeros((0, 4)), gt).tolist() == [0.0, 0.0]
    assert best_iou_per_gt(props, np.zeros((0, 4))).shape == (0,)


def test_recall_and_ar_golden():
    best = np.array([0.5, 0.72, 0.96, 0.3])
    assert recall_at_iou(best, 0.5) == 0.75  # 0.5 counts (>=)
    assert recall_at_iou(best, 0.7) == 0.5
    # boxes reaching each threshold 0.50 .. 0.95: 3, 2, 2, 2, 2, 1, 1, 1, 1, 1 = 16 of 4 * 10
    assert average_recall(best) == pytest.approx(16 / 40)
    assert np.isnan(average_recall(np.zeros(0)))


def test_proposal_metrics_pool_over_images():
    gt_a = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], dtype=float)
    gt_b = np.array([[0, 0, 20, 20]], dtype=float)
    props_a = np.array([[0, 0, 10, 10], [50, 50, 60, 58]])  # IoUs 1.0 and 0.8 (80 / 100)
    props_b = np.array([[30, 30, 40, 40], [0, 0, 20, 12]])  # 0 (top-1), then 240 / 400 = 0.6
    m = proposal_metrics([(props_a, gt_a), (props_b, gt_b)], top_ns=[1, 2])
    # top-1: best IoUs (1.0, 0.0 | 0.0) -> recall@0.5 = 1/3
    assert m[1]["recall@0.5"] == pytest.approx(1 / 3)
    assert m[1]["AR"] == pytest.approx(10 / 30)
    # top-2: (1.0, 0.8 | 0.6): recall@0.5 = 1, recall@0.7 = 2/3;
    # AR: 1.0 passes 10 thresholds, 0.8 passes 0.5..0.8 = 7, 0.6 passes 0.5..0.6 = 3 -> 20/30
    assert m[2]["recall@0.5"] == 1.0
    assert m[2]["recall@0.7"] == pytest.approx(2 / 3)
    assert m[2]["AR"] == pytest.approx(20 / 30)
    assert m[2]["num_gt"] == 3


def test_selective_search_finds_a_plain_object():
    img = np.full((120, 160, 3), 200, dtype=np.uint8)
    img[30:90, 50:110] = (200, 30, 30)  # a red square: GT (50, 30, 110, 90)
    boxes = selective_search(img)
    assert boxes.dtype == np.float32 and boxes.shape[1] == 4
    assert best_iou_per_gt(boxes, np.array([[50, 30, 110, 90]]))[0] > 0.95


def test_selective_search_boxes_are_in_original_pixels():
    # 1000 x 800 image, working size 200 (scale 0.2): the square must come back at full size
    img = np.full((800, 1000, 3), 220, dtype=np.uint8)
    img[200:600, 300:700] = (20, 120, 20)
    boxes = selective_search(img, working_size=200, max_boxes=50)
    assert len(boxes) <= 50
    assert best_iou_per_gt(boxes, np.array([[300, 200, 700, 600]]))[0] > 0.95
    assert boxes[:, 2].max() <= 1000 and boxes[:, 3].max() <= 800


@pytest.mark.skipif(not (OPENCV_DATA / "fruits.jpg").exists(), reason="opencv-doc not installed")
def test_selective_search_on_a_real_photo():
    bgr = cv2.imread(str(OPENCV_DATA / "fruits.jpg"))
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    boxes = selective_search(rgb, working_size=200)
    h, w = rgb.shape[:2]
    assert len(boxes) > 50
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert boxes[:, 2].max() > 0.9 * w  # scaled back: boxes reach the far edge
