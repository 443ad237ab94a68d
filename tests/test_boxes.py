"""rpn_core.boxes: the one box convention, conversions, clipping, IoU parity."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torchvision.ops import box_iou as tv_box_iou

from rpn_core import boxes as B


def test_conversions_golden():
    # A box from (10, 20) to (40, 80): w = 40 - 10 = 30, h = 80 - 20 = 60,
    # centre = (10 + 15, 20 + 30) = (25, 50).
    xyxy = np.array([[10.0, 20.0, 40.0, 80.0]])
    np.testing.assert_array_equal(B.xyxy_to_xywh(xyxy), [[10, 20, 30, 60]])
    np.testing.assert_array_equal(B.xyxy_to_cxcywh(xyxy), [[25, 50, 30, 60]])
    np.testing.assert_array_equal(B.xywh_to_xyxy(np.array([[10.0, 20, 30, 60]])), xyxy)
    np.testing.assert_array_equal(B.cxcywh_to_xyxy(np.array([[25.0, 50, 30, 60]])), xyxy)
    assert B.box_area(xyxy)[0] == 30 * 60


def test_conversions_keep_tensor_type_and_dtype():
    t = torch.tensor([[0.0, 0.0, 4.0, 2.0]], dtype=torch.float64)
    out = B.xyxy_to_cxcywh(t)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    assert out.tolist() == [[2.0, 1.0, 4.0, 2.0]]


@given(arrays(np.float64, (7, 4), elements=st.floats(-1e4, 1e4)))
def test_round_trips(a):
    np.testing.assert_allclose(B.xywh_to_xyxy(B.xyxy_to_xywh(a)), a, atol=1e-9)
    np.testing.assert_allclose(B.cxcywh_to_xyxy(B.xyxy_to_cxcywh(a)), a, atol=1e-8)


def test_clip_golden_numpy_and_tensor():
    a = np.array([[-5.0, 3.0, 120.0, 70.0]])
    # image H=50, W=100: x in [0, 100], y in [0, 50]
    np.testing.assert_array_equal(B.clip_boxes(a, (50, 100)), [[0, 3, 100, 50]])
    t = B.clip_boxes(torch.tensor(a), (50, 100))
    assert t.tolist() == [[0, 3, 100, 50]]
    assert a[0, 0] == -5.0  # input untouched


def test_validity_checks():
    a = np.array([[0, 0, 1, 1], [5, 5, 5, 9], [3, 3, 1, 4], [0, 0, np.nan, 2]], dtype=float)
    assert B.invalid_box_indices(a) == [1, 2, 3]
    assert not B.is_valid(a)
    assert B.is_valid(a[:1])
    assert B.invalid_box_indices(np.array([[0, 0, 2, 2]]), min_size=2) == [0]


def test_as_boxes_shapes():
    assert B.as_boxes([]).shape == (0, 4)
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        B.as_boxes([[1, 2, 3]])


def test_iou_golden():
    # [0,0,10,10] vs [5,5,15,15]: inter 5*5 = 25, union 100 + 100 - 25 = 175.
    a = np.array([[0.0, 0, 10, 10]])
    b = np.array([[5.0, 5, 15, 15], [20, 20, 30, 30]])
    np.testing.assert_allclose(B.box_iou(a, b), [[25 / 175, 0.0]])


box_strategy = st.tuples(
    st.floats(0, 500), st.floats(0, 500), st.floats(0.5, 300), st.floats(0.5, 300)
).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


box_lists = st.lists(box_strategy, min_size=1, max_size=20)


@given(box_lists, box_lists)
def test_numpy_iou_equals_torchvision(a, b):
    a32 = np.array(a, dtype=np.float32)
    b32 = np.array(b, dtype=np.float32)
    ours = B.box_iou(a32, b32)
    theirs = tv_box_iou(torch.from_numpy(a32), torch.from_numpy(b32)).numpy()
    np.testing.assert_array_equal(ours, theirs)
    # Tensors go straight to torchvision.
    direct = B.box_iou(torch.from_numpy(a32), torch.from_numpy(b32))
    assert torch.equal(direct, torch.from_numpy(theirs))
