"""rpn_core.rpn.jobs.ProposalRun.select: the Proposals dock's re-selection, without a window."""

import numpy as np

from rpn_core.rpn.config import SelectionConfig
from rpn_core.rpn.jobs import SS_SCORE, ProposalRun
from rpn_core.rpn.selection import select_proposals
from rpn_core.rpn.types import RawProposals


def _raw() -> RawProposals:
    # Three boxes: B is A shifted 2 px in x (10x10 boxes: intersection 8x10 = 80, union
    # 100 + 100 - 80 = 120 -> IoU 0.667); C is far from both.
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    return RawProposals(
        anchors=boxes + 1, logits=np.log(scores / (1 - scores)), scores=scores,
        deltas=np.zeros((3, 4), np.float32), boxes=boxes, image_size=(100, 100),
    )  # fmt: skip


def test_rpn_selection_equals_select_proposals_and_top_n_is_a_slice():
    run = ProposalRun(method="rpn", token=0, seconds=0.0, raw=_raw())
    # NMS at 0.5 drops B (IoU 0.667 with the better A): A, C remain in score order.
    s = SelectionConfig(top_n=5, nms_iou=0.5)
    boxes, scores, anchors = run.select(s)
    expected = select_proposals(run.raw, **s.kwargs())
    np.testing.assert_array_equal(boxes, expected.boxes)
    np.testing.assert_array_equal(scores, np.float32([0.9, 0.7]))
    np.testing.assert_array_equal(anchors, run.raw.anchors[[0, 2]])
    full = next(iter(run._full.values()))
    top1 = run.select(SelectionConfig(top_n=1, nms_iou=0.5))
    assert next(iter(run._full.values())) is full  # no new NMS for a top-N change
    np.testing.assert_array_equal(top1[0], boxes[:1])
    # At NMS 0.7 B survives (0.667 < 0.7): a new full selection.
    assert len(run.select(SelectionConfig(top_n=5, nms_iou=0.7))[0]) == 3


def test_selective_search_selection_filters_by_min_size_and_has_no_scores():
    boxes = np.array([[0, 0, 4, 40], [0, 0, 20, 20]], np.float32)
    run = ProposalRun(method="selective-search", token=0, seconds=0.0, boxes=boxes)
    got, scores, anchors = run.select(SelectionConfig(top_n=10, min_size=5.0))
    np.testing.assert_array_equal(got, boxes[1:])  # 4 px wide < 5 px
    np.testing.assert_array_equal(scores, [SS_SCORE])
    assert anchors is None
