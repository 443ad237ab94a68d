"""Anchor explanations, regression targets (BoxCoder parity) and coverage statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rpn_core.anchors.explain import (
    best_possible_recall,
    encode_targets,
    explain_anchor,
    folder_statistics,
    image_statistics,
)
from rpn_core.anchors.grid import AnchorConfig, generate_anchors
from rpn_core.anchors.labelling import LabelConfig, label_image

# A 64x64 image, one 32x32 anchor per location, stride 16: a 4x4 grid whose anchor at
# (row, col) is centred on (16*col, 16*row), e.g. location (1, 1) -> box (0, 0, 32, 32).
SIZE = (64, 64)
CONFIG = AnchorConfig(sizes=(32.0,), aspect_ratios=(1.0,), stride=16)


def test_encode_targets_golden():
    # Anchor centre (5, 5), size 10; GT centre (15, 15), size 20:
    # tx = (15 - 5) / 10 = 1, ty = 1, tw = th = log(20 / 10) = log 2.
    t = encode_targets(np.array([[0.0, 0, 10, 10]]), np.array([[5.0, 5, 25, 25]]))
    np.testing.assert_allclose(t, [[1.0, 1.0, math.log(2), math.log(2)]])


def test_encode_targets_matches_torchvision_boxcoder():
    from torchvision.models.detection._utils import BoxCoder

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 500, size=(200, 2))
    anchors = np.concatenate([xy, xy + rng.uniform(4, 300, size=(200, 2))], axis=1)
    gxy = xy + rng.uniform(-50, 50, size=(200, 2))
    gt = np.concatenate([gxy, gxy + rng.uniform(4, 300, size=(200, 2))], axis=1)
    coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    expected = coder.encode_single(torch.tensor(gt), torch.tensor(anchors)).numpy()
    np.testing.assert_allclose(encode_targets(anchors, gt), expected, rtol=1e-12, atol=1e-12)


def _explain(index: int, gt: list[list[float]], config: LabelConfig):
    anchors = generate_anchors(SIZE, CONFIG).numpy()
    gt_arr = np.array(gt, dtype=np.float32)
    labels = label_image(SIZE, CONFIG, gt_arr, config)
    return explain_anchor(index, SIZE, anchors, gt_arr, labels, CONFIG, config)


def test_explain_foreground_anchor():
    e = _explain(5, [[0, 0, 32, 32]], LabelConfig.faster_rcnn())  # location 1*4 + 1 = 5
    assert e.box == (0.0, 0.0, 32.0, 32.0) and e.cell == (1, 1)
    assert (e.size, e.ratio, e.label, e.matched_gt) == (32.0, 1.0, 1, 0)
    assert e.ious == (1.0,)
    assert e.rule.startswith("foreground: IoU 1.000 with GT 0 is >= 0.7")
    assert e.targets == (0.0, 0.0, 0.0, 0.0)


def test_explain_low_quality_anchor_and_its_targets():
    # GT (0, 0, 40, 40): best anchor (0, 0, 32, 32), IoU 1024 / 1600 = 0.64 < 0.7.
    # Targets: gx = 20, ax = 16 -> tx = ty = 4 / 32 = 0.125; tw = th = log(40 / 32).
    e = _explain(5, [[0, 0, 40, 40]], LabelConfig.faster_rcnn())
    assert e.label == 1 and "best-anchor rule" in e.rule and "0.640" in e.rule
    np.testing.assert_allclose(e.targets, [0.125, 0.125, math.log(1.25), math.log(1.25)])


def test_explain_same_anchor_under_both_presets():
    # Location (0, 0): box (-16, -16, 16, 16) vs GT (0, 0, 32, 32): inter 16*16 = 256,
    # union 1024 + 1024 - 256 = 1792 -> IoU 1/7 = 0.143.
    fr = _explain(0, [[0, 0, 32, 32]], LabelConfig.faster_rcnn())
    assert fr.label == 0 and fr.rule.startswith("background: best IoU 0.143")
    assert fr.targets is None
    guide = _explain(0, [[0, 0, 32, 32]], LabelConfig.guide())
    assert guide.label == -1 and guide.rule.startswith("ignored: best IoU 0.143")


def test_explain_cross_boundary_and_no_gt():
    e = _explain(0, [[0, 0, 32, 32]], LabelConfig.faster_rcnn(ignore_cross_boundary=True))
    assert e.label == -1 and "image border" in e.rule
    empty = _explain(0, [], LabelConfig.faster_rcnn())
    assert empty.label == 0 and empty.matched_gt == -1 and "no GT boxes" in empty.rule


def test_best_possible_recall_golden():
    best = np.array([0.5, 0.7, 0.69])
    assert best_possible_recall(best, LabelConfig.faster_rcnn()) == pytest.approx(1 / 3)
    assert best_possible_recall(best, LabelConfig.guide()) == pytest.approx(2 / 3)  # > 0.5
    assert math.isnan(best_possible_recall(np.zeros(0), LabelConfig.guide()))


def test_image_statistics_flags_unlearnable_gt():
    # GT 1 lies outside every anchor (anchors reach at most 48 + 16 = 64): IoU 0, no positive.
    gt = np.array([[0, 0, 32, 32], [100, 100, 110, 110]], dtype=np.float32)
    config = LabelConfig.faster_rcnn()
    stats = image_statistics(label_image(SIZE, CONFIG, gt, config), config)
    assert stats.unlearnable == (1,)
    np.testing.assert_array_equal(stats.positives, [1, 0])
    np.testing.assert_allclose(stats.best_iou, [1.0, 0.0])
    assert stats.recall == pytest.approx(0.5)
    assert sum(stats.counts[k] for k in ("foreground", "background", "ignored")) == 16


def test_folder_statistics_aggregates_and_skips_bad_items():
    config = LabelConfig.faster_rcnn()
    items = [
        ("a.jpg", SIZE, np.array([[0, 0, 32, 32]])),
        ("bad.jpg", SIZE, np.array([[5, 5, 5, 9]])),  # zero width
        ("b.jpg", SIZE, np.array([[0, 0, 40, 40], [16, 16, 48, 48]])),
    ]
    stats = folder_statistics(items, CONFIG, config)
    assert stats.images == 2
    assert [name for name, _ in stats.skipped] == ["bad.jpg"]
    assert "zero or negative area" in stats.skipped[0][1]
    np.testing.assert_allclose(stats.best_iou, [1.0, 0.64, 1.0])
    assert stats.recall(config) == pytest.approx(2 / 3)
    assert stats.counts["foreground"] + stats.counts["background"] + stats.counts["ignored"] == 32
