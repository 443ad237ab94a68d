"""Selection that stops at the proposals wanted (``rpn_core.rpn.model.nms_top``): the same
proposals as torchvision's ``nms`` / ``batched_nms`` on the same inputs, with less work."""

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms, nms

from rpn_core.rpn.model import RawProposals
from rpn_core.rpn.selection import nms_top, select_proposals


def _clustered_boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n // 20 + 1, 2, generator=g) * 500
    pick = torch.randint(len(centres), (n,), generator=g)
    xy = centres[pick] + torch.randn(n, 2, generator=g) * 6
    wh = 20 + torch.rand(n, 2, generator=g) * 60
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], dim=1)
    return boxes, torch.rand(n, generator=g)


@pytest.mark.parametrize("limit", [0, 1, 7, 100, 5000])
def test_nms_top_is_the_head_of_torchvisions_nms(limit):
    for seed in range(5):
        boxes, scores = _clustered_boxes(3000, seed)
        expected = nms(boxes, scores, 0.7)[:limit]
        assert torch.equal(nms_top(boxes, scores, 0.7, limit), expected)


def test_nms_top_golden():
    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 9], [50, 50, 60, 60]],
        dtype=torch.float32,
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95, 0.1])
    # By score: 3 (keeps), 0 (IoU 0.9 with 3: gone), 1 (IoU with 3 = 81/109 = 0.74: gone),
    # 2 (keeps), 4 (keeps).
    assert nms_top(boxes, scores, 0.7, 10).tolist() == [3, 2, 4]
    assert nms_top(boxes, scores, 0.7, 2).tolist() == [3, 2]
    assert nms_top(boxes[:0], scores[:0], 0.7, 5).numel() == 0


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("top_n", [5, 300, 4000])
def test_two_level_selection_equals_batched_nms(top_n, interleaved):
    b8, s8 = _clustered_boxes(2500, 10)
    b16, s16 = _clustered_boxes(2000, 11)
    boxes = torch.cat([b8, b16])
    scores = torch.cat([s8, s16])
    scores = (scores.argsort().argsort().float() + 1) / (len(scores) + 1)  # no ties
    strides = np.array([8] * 2500 + [16] * 2000, np.int16)
    if interleaved:  # levels not in contiguous runs: the general path
        perm = torch.randperm(len(scores), generator=torch.Generator().manual_seed(0))
        boxes, scores, strides = boxes[perm], scores[perm], strides[perm.numpy()]
    n = len(scores)
    raw = RawProposals(
        anchors=boxes.numpy(),
        logits=torch.logit(scores).numpy(),
        scores=scores.numpy(),
        deltas=np.zeros((n, 4), np.float32),
        boxes=boxes.numpy(),
        image_size=(600, 600),
        strides=strides,
    )
    got = select_proposals(raw, top_n=top_n, pre_nms_top_n=1800, nms_iou=0.7)
    # torchvision's route: the 1800 best per level, NMS per level, the best top_n overall.
    idx = []
    for s in (8, 16):
        members = torch.nonzero(torch.from_numpy(strides == s)).flatten()
        idx.append(members[scores[members].topk(1800).indices])
    order = torch.cat(idx)
    level = torch.from_numpy(strides.astype(np.int64))[order]
    keep = batched_nms(boxes[order], scores[order], level, 0.7)[:top_n]
    assert np.array_equal(got.anchor_index, order[keep].numpy())
    np.testing.assert_array_equal(got.boxes, boxes[order][keep].numpy())
