"""rpn_core.anchors.labelling: presets on constructed cases, parity with torchvision's Matcher."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

from rpn_core.anchors.grid import AnchorConfig, generate_anchors
from rpn_core.anchors.labelling import (
    LabelConfig,
    anchor_grid_cross_boundary,
    anchor_grid_iou,
    label_anchors,
    label_image,
    sample_minibatch,
)

GT = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
# IoU with GT, by hand:
#   A [0,0,10,10]   100/100                      = 1.0
#   B [0,0,10,5]     50/100                      = 0.5
#   C [0,0,10,2]     20/100                      = 0.2
#   D [5,5,15,15]    25/(100+100-25) = 25/175    = 0.1429
#   E [20,20,30,30]   0                          = 0.0
ANCHORS = torch.tensor(
    [[0.0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 2], [5, 5, 15, 15], [20, 20, 30, 30]]
)


def test_guide_preset_golden():
    labels = label_anchors(ANCHORS, GT, "guide")
    # fg > 0.5 strictly: only A; B at exactly 0.5 is ignored; bg < 0.1: only E.
    assert labels.labels.tolist() == [1, -1, -1, -1, 0]
    torch.testing.assert_close(labels.max_iou, torch.tensor([1.0, 0.5, 0.2, 25 / 175, 0.0]))
    assert labels.gt_num_positive.tolist() == [1]
    assert labels.low_quality.tolist() == [False] * 5


def test_faster_rcnn_preset_golden():
    labels = label_anchors(ANCHORS, GT, "faster-rcnn")
    # fg >= 0.7: A; bg < 0.3: C (0.2), D (0.14), E (0); B (0.5) ignored.
    assert labels.labels.tolist() == [1, -1, 0, 0, 0]
    assert labels.gt_best_iou.tolist() == [1.0]
    assert labels.gt_best_anchor.tolist() == [0]


def test_low_quality_best_anchor_rule():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 110.0, 110.0]])
    # F [100,100,110,104]: 40/100 = 0.4 with GT 1 -- below 0.7 but GT 1's best anchor.
    anchors = torch.cat([ANCHORS, torch.tensor([[100.0, 100, 110, 104]])])
    labels = label_anchors(anchors, gt, "faster-rcnn")
    assert labels.labels.tolist() == [1, -1, 0, 0, 0, 1]
    assert labels.low_quality.tolist() == [False] * 5 + [True]
    assert labels.matched_gt[5].item() == 1
    assert labels.gt_num_positive.tolist() == [1, 1]
    # Without the rule it is ignored (0.3 <= 0.4 < 0.7).
    plain = label_anchors(anchors, gt, LabelConfig.faster_rcnn(allow_low_quality=False))
    assert plain.labels[5].item() == -1


def test_custom_thresholds():
    cfg = LabelConfig(fg_iou=0.45, bg_iou=0.15, allow_low_quality=False)
    assert label_anchors(ANCHORS, GT, cfg).labels.tolist() == [1, 1, -1, 0, 0]
    assert cfg.preset_name == "custom"
    assert LabelConfig.guide().preset_name == "guide"
    assert LabelConfig().preset_name == "faster-rcnn"
    assert LabelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="bg_iou <= fg_iou"):
        LabelConfig(fg_iou=0.2, bg_iou=0.3)
    with pytest.raises(ValueError, match="unknown preset"):
        label_anchors(ANCHORS, GT, "yolo")


def test_cross_boundary_anchors_ignored_and_not_best():
    # Image 50x50. G [-5,-5,5,5] crosses the boundary; with GT [0,0,4,4]:
    #   G: inter 16, union 100 + 16 - 16 = 100 -> 0.16; H [0,0,8,8]: 16/64 = 0.25.
    gt = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    anchors = torch.tensor([[-5.0, -5, 5, 5], [0, 0, 8, 8], [30, 30, 40, 40]])
    cfg = LabelConfig.faster_rcnn(ignore_cross_boundary=True)
    labels = label_anchors(anchors, gt, cfg, image_size=(50, 50))
    assert labels.cross_boundary.tolist() == [True, False, False]
    # H is the best inside anchor -> low-quality positive; G ignored; the far one bg.
    assert labels.labels.tolist() == [-1, 1, 0]
    assert labels.gt_best_anchor.tolist() == [1]
    with pytest.raises(ValueError, match="image size"):
        label_anchors(anchors, gt, cfg)


def test_no_gt_boxes_means_all_background():
    labels = label_image((100, 120), AnchorConfig(), torch.zeros((0, 4)))
    assert set(labels.labels.tolist()) == {0}
    assert labels.matched_gt.unique().tolist() == [-1]
    assert labels.gt_num_positive.numel() == 0


@pytest.mark.parametrize(
    "bad, index",
    [([[0, 0, 10, 10], [5, 5, 5, 20]], 1), ([[10, 10, 2, 20]], 0), ([[0, 0, float("nan"), 3]], 0)],
)
def test_zero_area_inverted_or_nan_gt_is_named(bad, index):
    with pytest.raises(ValueError, match=rf"GT box {index} \("):
        label_anchors(ANCHORS, torch.tensor(bad), "guide")


def test_gt_outside_image_creates_no_flood_of_positives():
    # A GT far outside overlaps no anchor: best IoU 0, nothing learnable, and unlike
    # torchvision's Matcher (which would mark every zero-IoU anchor positive) no positives.
    gt = torch.tensor([[5000.0, 5000.0, 5100.0, 5100.0]])
    labels = label_image((200, 300), AnchorConfig(), gt)
    assert labels.gt_best_iou.tolist() == [0.0]
    assert labels.gt_best_anchor.tolist() == [-1]
    assert labels.gt_num_positive.tolist() == [0]
    assert int((labels.labels == 1).sum()) == 0


def test_float64_input():
    gt = torch.tensor([[10.0, 20.0, 150.0, 160.0]], dtype=torch.float64)
    labels = label_image((200, 300), AnchorConfig(), gt)
    anchors = generate_anchors((200, 300), AnchorConfig(), dtype=torch.float64)
    assert labels.max_iou.dtype == torch.float64
    assert torch.equal(labels.max_iou, box_iou(anchors, gt).max(dim=1).values)


def test_thousands_of_gt_boxes():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(2000, 2, generator=g) * 350
    wh = 4 + torch.rand(2000, 2, generator=g) * 60
    gt = torch.cat([xy, xy + wh], dim=1)
    labels = label_image((300, 400), AnchorConfig(), gt)
    assert labels.gt_best_iou.shape == (2000,)
    assert int(labels.gt_num_positive.sum()) == int((labels.labels == 1).sum())


def _torchvision_labels(anchors, gt, fg, bg):
    matches = Matcher(fg, bg, allow_low_quality_matches=True)(box_iou(gt, anchors))
    labels = torch.where(matches >= 0, 1, torch.where(matches == -1, 0, -1)).to(torch.int8)
    return labels, matches


gt_strategy = st.lists(
    st.tuples(st.floats(0, 280), st.floats(0, 180), st.floats(6, 200), st.floats(6, 200)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(
    raw=gt_strategy,
    duplicate=st.booleans(),
    size=st.tuples(st.integers(32, 240), st.integers(32, 320)),
)
def test_faster_rcnn_parity_with_torchvision_matcher(raw, duplicate, size):
    h, w = size
    gt = torch.tensor([[x, y, x + bw, y + bh] for x, y, bw, bh in raw], dtype=torch.float32)
    if duplicate:  # identical GT boxes make ties between GTs
        gt = torch.cat([gt, gt[:1]])
    cfg = AnchorConfig(sizes=(32, 64, 128), aspect_ratios=(0.5, 1.0, 2.0), stride=16)
    anchors = generate_anchors((h, w), cfg)
    ours = label_image((h, w), cfg, gt, "faster-rcnn")
    assert torch.equal(anchor_grid_iou((h, w), cfg, gt), box_iou(anchors, gt))
    # Every GT here overlaps some anchor (anchors tile the image), so the rule matches.
    assume_overlap = bool((ours.gt_best_iou > 0).all())
    if assume_overlap:
        theirs, matches = _torchvision_labels(anchors, gt, 0.7, 0.3)
        assert torch.equal(ours.labels, theirs)
        fg = theirs == 1
        assert torch.equal(ours.matched_gt[fg], matches[fg])
    # label_image == label_anchors on the materialised anchors.
    slow = label_anchors(anchors, gt, "faster-rcnn")
    assert torch.equal(slow.labels, ours.labels)
    assert torch.equal(slow.matched_gt, ours.matched_gt)


def test_grid_cross_boundary_matches_coordinates():
    cfg = AnchorConfig()
    anchors = generate_anchors((100, 130), cfg)
    expected = (
        (anchors[:, 0] < 0) | (anchors[:, 1] < 0) | (anchors[:, 2] > 130) | (anchors[:, 3] > 100)
    )
    assert torch.equal(anchor_grid_cross_boundary((100, 130), cfg), expected)
    gt = torch.tensor([[20.0, 20.0, 90.0, 80.0]])
    cfg_l = LabelConfig.guide(ignore_cross_boundary=True)
    a = label_image((100, 130), cfg, gt, cfg_l)
    b = label_anchors(anchors, gt, cfg_l, image_size=(100, 130))
    assert torch.equal(a.labels, b.labels)


def test_per_gt_statistics_flag_unlearnable_boxes():
    # A 4x4 box is too small for 64+ px anchors: best IoU 16/4096 < 0.5 under the guide.
    gt = torch.tensor([[100.0, 100.0, 228.0, 228.0], [300.0, 40.0, 304.0, 44.0]])
    labels = label_image((400, 400), AnchorConfig(), gt, "guide")
    assert labels.gt_num_positive[0] > 0
    assert labels.gt_num_positive[1] == 0
    assert labels.gt_best_iou[1] < 0.01


def test_sampling_balanced_and_seeded():
    labels = torch.tensor([1] * 10 + [0] * 1000 + [-1] * 50, dtype=torch.int8)
    pos, neg = sample_minibatch(labels, generator=torch.Generator().manual_seed(3))
    assert len(pos) == 10 and len(neg) == 246  # 256 - 10 negatives fill the batch
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert len(set(neg.tolist())) == 246
    pos2, neg2 = sample_minibatch(labels, generator=torch.Generator().manual_seed(3))
    assert torch.equal(pos, pos2) and torch.equal(neg, neg2)
    many = torch.tensor([1] * 500 + [0] * 500, dtype=torch.int8)
    p, n = sample_minibatch(many, generator=torch.Generator().manual_seed(0))
    assert (len(p), len(n)) == (128, 128)  # at most 1:1
    p, n = sample_minibatch(many, batch_size=64, positive_fraction=0.25)
    assert (len(p), len(n)) == (16, 48)
