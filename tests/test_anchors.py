"""rpn_core.anchors.grid: golden anchors by hand and parity with torchvision's AnchorGenerator."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from rpn_core.anchors.grid import AnchorConfig, base_anchors, feature_size, generate_anchors
from rpn_core.anchors.indexing import anchor_metadata


def test_default_config_is_the_guides():
    c = AnchorConfig()
    assert c.sizes == (64.0, 128.0, 256.0)
    assert c.aspect_ratios == (0.5, 1.0, 2.0)
    assert c.stride == 16
    assert c.num_anchors_per_location == 9


def test_base_anchors_golden():
    # size 64, ratio h/w = 0.5: h = 64 * sqrt(0.5) = 45.25, w = 64 / sqrt(0.5) = 90.51;
    # half-extents 22.63 -> 23 and 45.25 -> 45 after rounding. Ratio 1: 32 each side.
    base = base_anchors(AnchorConfig(sizes=(64,), aspect_ratios=(0.5, 1.0, 2.0)))
    assert base.tolist() == [
        [-45.0, -23.0, 45.0, 23.0],
        [-32.0, -32.0, 32.0, 32.0],
        [-23.0, -45.0, 23.0, 45.0],
    ]


def test_generate_golden_position_and_order():
    cfg = AnchorConfig(sizes=(64,), aspect_ratios=(0.5, 1.0, 2.0), stride=16)
    # 40 x 48 image: Hf = ceil(40/16) = 3, Wf = ceil(48/16) = 3, T = 3*3*3 = 27.
    a = generate_anchors((40, 48), cfg)
    assert feature_size((40, 48), cfg) == (3, 3)
    assert a.shape == (27, 4)
    # Cell (row 1, col 2) is location 1*3 + 2 = 5 -> anchors 15..17, centred on
    # (x, y) = (2*16, 1*16) = (32, 16); ratio 0.5 first: [32-45, 16-23, 32+45, 16+23].
    assert a[15].tolist() == [-13.0, -7.0, 77.0, 39.0]
    assert a[16].tolist() == [0.0, -16.0, 64.0, 48.0]
    meta = anchor_metadata((40, 48), cfg)
    assert (meta.row[15], meta.col[15], meta.ratio_index[15], meta.size_index[15]) == (1, 2, 0, 0)
    assert meta.ratio_index[17] == 2
    # [0, -16, 64, 48] reaches above y = 0 and right of x = 48: cross-boundary.
    assert bool(meta.cross_boundary[16])


def test_size_is_inner_index():
    cfg = AnchorConfig(sizes=(32, 64), aspect_ratios=(1.0, 2.0), stride=8)
    meta = anchor_metadata((8, 8), cfg)
    assert meta.size_index.tolist() == [0, 1, 0, 1]
    assert meta.ratio_index.tolist() == [0, 0, 1, 1]
    a = generate_anchors((8, 8), cfg)
    assert a[1].tolist() == [-32.0, -32.0, 32.0, 32.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sizes": ()},
        {"sizes": (0,)},
        {"sizes": (float("nan"),)},
        {"aspect_ratios": (-1,)},
        {"stride": 0},
        {"stride": 2.5},
        {"sizes": (64, 64)},
    ],
)
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        AnchorConfig(**kwargs)


def test_config_dict_round_trip():
    c = AnchorConfig(sizes=(20, 40), aspect_ratios=(1.0,), stride=8)
    assert AnchorConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="not an anchor configuration"):
        AnchorConfig.from_dict({"sizes": [1]})


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(8, 512), min_size=1, max_size=4, unique=True),
    ratios=st.lists(
        st.sampled_from([0.25, 0.33, 0.5, 1.0, 1.5, 2.0, 3.0]), min_size=1, max_size=4, unique=True
    ),
    stride=st.sampled_from([4, 8, 16, 32]),
    h=st.integers(1, 400),
    w=st.integers(1, 400),
)
def test_parity_with_torchvision_anchor_generator(sizes, ratios, stride, h, w):
    cfg = AnchorConfig(sizes=tuple(sizes), aspect_ratios=tuple(ratios), stride=stride)
    hf, wf = feature_size((h, w), cfg)
    assert (hf, wf) == (math.ceil(h / stride), math.ceil(w / stride))
    # torchvision derives the stride as padded_size // feature_size: pad to a multiple.
    images = ImageList(torch.zeros(1, 3, hf * stride, wf * stride), [(h, w)])
    generator = AnchorGenerator((tuple(sizes),), (tuple(ratios),))
    theirs = generator(images, [torch.zeros(1, 1, hf, wf)])[0]
    ours = generate_anchors((h, w), cfg)
    assert torch.equal(ours, theirs)
