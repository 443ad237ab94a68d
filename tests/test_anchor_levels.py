"""Anchor levels (a stride-8 and a stride-16 level): grid, labelling, model, selection, files.

Parity with torchvision's multi-level ``AnchorGenerator`` and ``RegionProposalNetwork``
(``filter_proposals``), hand-computed indices, and one-level configs unchanged.
"""

import numpy as np
import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import box_iou

from rpn_core.anchors.grid import AnchorConfig, format_sizes, generate_anchors, parse_sizes
from rpn_core.anchors.indexing import anchor_index, anchor_metadata, level_offsets, locate_anchor
from rpn_core.anchors.labelling import LabelConfig, anchor_grid_iou, label_anchors, label_image
from rpn_core.rpn.adapt import with_anchors
from rpn_core.rpn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rpn_core.rpn.config import RPNConfig, model_anchors
from rpn_core.rpn.config_checks import ConfigError
from rpn_core.rpn.model import RawProposals, RPNModel
from rpn_core.rpn.selection import select_proposals
from rpn_core.training.data import Augment
from rpn_core.training.engine import LossModule, cache_input

TWO = AnchorConfig(sizes=(16.0, 32.0, 64.0, 128.0), size_strides=(8, 8, 16, 16))
SMALL = RPNConfig(anchors=TWO, min_side=64, max_side=128)


def test_levels_tile_like_torchvisions_multi_level_anchor_generator():
    # Sizes listed out of level order: the levels still come out in ascending stride.
    cfg = AnchorConfig(
        sizes=(64.0, 16.0, 128.0, 32.0), aspect_ratios=(0.5, 1.0, 2.0), size_strides=(16, 8, 16, 8)
    )
    tv = AnchorGenerator(sizes=((16.0, 32.0), (64.0, 128.0)), aspect_ratios=((0.5, 1.0, 2.0),) * 2)
    for h, w in ((96, 128), (48, 80), (16, 16)):
        images = ImageList(torch.zeros(1, 3, h, w), [(h, w)])
        maps = [
            torch.zeros(1, 1, -(-h // 8), -(-w // 8)),
            torch.zeros(1, 1, -(-h // 16), -(-w // 16)),
        ]
        assert torch.equal(generate_anchors((h, w), cfg), tv(images, maps)[0])


def test_a_one_level_config_is_unchanged_however_written():
    plain = AnchorConfig(sizes=(64.0, 128.0))
    assert AnchorConfig(sizes=(64.0, 128.0), size_strides=(16, 16)) == plain
    assert plain.levels == (plain,) and plain.strides == (16, 16)
    assert "size_strides" not in plain.to_dict()  # files read by earlier versions
    assert AnchorConfig.from_dict(TWO.to_dict()) == TWO
    assert TWO.to_dict()["size_strides"] == [8, 8, 16, 16]
    with pytest.raises(ValueError, match="one stride per size"):
        AnchorConfig(sizes=(16.0, 64.0), size_strides=(8,))
    with pytest.raises(ValueError, match="coarsest"):
        AnchorConfig(sizes=(16.0, 64.0), size_strides=(8, 8), stride=16)


def test_each_anchor_is_located_on_its_own_levels_grid():
    size = (40, 56)  # stride 8: 5 x 7 cells, stride 16: 3 x 4 cells; 6 anchors per cell each
    assert level_offsets(size, TWO) == [0, 5 * 7 * 6, 5 * 7 * 6 + 3 * 4 * 6]
    # By hand: anchor 6 * 8 + 5 is cell 8 of level 8 (row 1, col 1), shape 5 = ratio 2
    # (index 5 // 2) x size 32 (5 % 2 = 1); the first anchor of level 16 is size 64, ratio 0.5.
    assert locate_anchor(6 * 8 + 5, size, TWO) == (1, 1, 1, 2)
    assert locate_anchor(210, size, TWO) == (0, 0, 2, 0)
    anchors = generate_anchors(size, TWO).numpy()
    assert np.array_equal(anchors[6 * 8 + 5], [8 - 11, 8 - 23, 8 + 11, 8 + 23])  # 32 px, h/w 2
    meta = anchor_metadata(size, TWO)
    for i in range(len(anchors)):
        where = locate_anchor(i, size, TWO)
        assert where == (meta.row[i], meta.col[i], meta.size_index[i], meta.ratio_index[i])
        assert anchor_index(size, TWO, *where) == i
    assert meta.stride.tolist() == [8] * 210 + [16] * 72
    assert anchor_index(size, TWO, 5, 0, 0, 0) is None  # row 5 is off the stride-8 grid


def test_labels_over_levels_equal_torchvisions_iou_and_the_generic_rule():
    size = (96, 128)
    gt = torch.tensor([[10.0, 12.0, 30.0, 40.0], [20.0, 10.0, 120.0, 90.0]])
    anchors = generate_anchors(size, TWO)
    assert torch.equal(anchor_grid_iou(size, TWO, gt), box_iou(anchors, gt))
    fast = label_image(size, TWO, gt, LabelConfig.faster_rcnn())
    slow = label_anchors(anchors, gt, LabelConfig.faster_rcnn(), image_size=size)
    assert torch.equal(fast.labels, slow.labels)
    # The small box is reached only by the stride-8 level's anchors.
    fg = torch.nonzero(fast.labels == 1).flatten()
    small = fg[fast.matched_gt[fg] == 0]
    assert len(small) and (small < level_offsets(size, TWO)[1]).all()


def test_sizes_text_round_trips_and_names_a_bad_item():
    assert parse_sizes("16@8, 32@8, 64 ,128", 16) == ((16.0, 32.0, 64.0, 128.0), (8, 8, 16, 16))
    assert format_sizes(TWO) == "16@8, 32@8, 64, 128"
    assert format_sizes(AnchorConfig()) == "64, 128, 256"
    with pytest.raises(ValueError, match="'32@x'"):
        parse_sizes("16, 32@x", 16)


def test_a_weights_file_may_only_ask_for_the_backbones_strides():
    good = SMALL.to_dict()
    assert RPNConfig.from_dict(good).anchors == TWO
    bad = dict(good, anchors=dict(good["anchors"], size_strides=[4, 4, 16, 16]))
    with pytest.raises(ConfigError, match="anchors.size_strides"):
        RPNConfig.from_dict(bad)
    bad = dict(good, anchors=dict(good["anchors"], size_strides=[8, 16]))
    with pytest.raises(ConfigError, match="one per size"):
        RPNConfig.from_dict(bad)
    with pytest.raises(ValueError, match="strides"):
        RPNConfig(anchors=AnchorConfig(sizes=(16.0, 64.0), size_strides=(4, 16)))


def _image(h, w, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_the_model_scores_every_level_in_the_overlays_order():
    torch.manual_seed(0)
    model = RPNModel(SMALL, device="cpu")
    model.bf16_inference = False
    img = _image(50, 70)
    feat = model.compute_features(img)
    assert feat.fine.shape[1] == 32 and feat.fine.shape[-2:] == (8, 12)  # 64 x 90, padded 64 x 96
    raw = model.raw_proposals(feat)
    assert np.array_equal(raw.anchors, model_anchors((50, 70), SMALL).numpy())
    n8 = 8 * 12 * 6
    assert raw.strides.tolist() == [8] * n8 + [16] * (len(raw) - n8)
    # The stride-8 head's outputs are the first n8 logits, location-major.
    logits, _ = model.rpn.fine_head([feat.fine])
    assert np.allclose(
        raw.logits[:n8], logits[0].permute(0, 2, 3, 1).reshape(-1).detach().numpy(), atol=1e-6
    )
    losses = model.losses(feat, [np.array([[5.0, 5.0, 20.0, 25.0]], dtype=np.float32)])
    (losses["loss_objectness"] + losses["loss_rpn_box_reg"]).backward()
    assert model.rpn.fine_head.cls_logits.weight.grad.abs().sum() > 0


def test_selection_per_level_equals_torchvisions_filter_proposals():
    g = torch.Generator().manual_seed(3)
    h, w, n8, n16 = 100, 140, 400, 100
    xy = torch.rand(n8 + n16, 2, generator=g) * torch.tensor([w - 20.0, h - 20.0])
    wh = 2 + torch.rand(n8 + n16, 2, generator=g) * 18
    boxes = torch.cat([xy, xy + wh], dim=1)
    logits = torch.randn(n8 + n16, generator=g)
    logits[:n8] += (
        3.0  # the fine level scores higher everywhere: a global top-k would drop level 16
    )
    raw = RawProposals(
        anchors=boxes.numpy(), logits=logits.numpy(), scores=torch.sigmoid(logits).numpy(),
        deltas=np.zeros((n8 + n16, 4), np.float32), boxes=boxes.numpy(), image_size=(h, w),
        strides=np.array([8] * n8 + [16] * n16, dtype=np.int16),
    )  # fmt: skip
    ours = select_proposals(raw, top_n=60, pre_nms_top_n=50, nms_iou=0.5)
    tv = RegionProposalNetwork(
        AnchorGenerator(), RPNHead(1, 1), 0.7, 0.3, 256, 0.5,
        pre_nms_top_n={"training": 50, "testing": 50},
        post_nms_top_n={"training": 60, "testing": 60}, nms_thresh=0.5,
    ).eval()  # fmt: skip
    tv_boxes, tv_scores = tv.filter_proposals(boxes[None], logits[None], [(h, w)], [n8, n16])
    assert torch.equal(torch.from_numpy(ours.boxes), tv_boxes[0])
    assert torch.allclose(torch.from_numpy(ours.scores), tv_scores[0])
    assert (raw.strides[ours.anchor_index] == 16).any()


def test_fine_tuning_caches_the_stride_8_map_and_trains_both_heads():
    torch.manual_seed(1)
    model = RPNModel(SMALL, device="cpu")
    img, gt = _image(60, 80, seed=2), np.array([[5.0, 6.0, 20.0, 30.0]], dtype=np.float32)
    full = cache_input(model, img, gt, Augment(), 0)  # pixels only: the model runs it all
    cached = cache_input(model, img, gt, Augment(), 12)  # blocks 0-11 run once, cached
    assert full.fine is None and cached.fine is not None and cached.fine.shape[1] == 32
    losses = []
    for first, item in ((0, full), (12, cached)):
        gen = torch.Generator().manual_seed(5)
        out = LossModule(model, first)([item], [item.boxes], gen)
        losses.append((out["loss_objectness"] + out["loss_rpn_box_reg"]).item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert {id(p) for p in model.rpn.fine_head.parameters()} <= {
        id(p) for p in model.head_parameters()
    }


def test_anchors_moved_between_levels_keep_what_each_level_learned():
    torch.manual_seed(2)
    one = RPNModel(RPNConfig(anchors=AnchorConfig(sizes=(64.0, 128.0)), min_side=64, max_side=128))
    two = with_anchors(one, TWO)
    assert two.fine_head is not None
    # Level 16 keeps the old head: sizes 64 and 128 map onto themselves.
    assert torch.equal(two.rpn.head.cls_logits.weight, one.rpn.head.cls_logits.weight)
    assert torch.equal(two.rpn.head.conv[0][0].weight, one.rpn.head.conv[0][0].weight)
    back = with_anchors(two, AnchorConfig(sizes=(64.0, 128.0)))
    assert back.fine_head is None
    assert torch.equal(back.rpn.head.bbox_pred.weight, one.rpn.head.bbox_pred.weight)


def test_a_one_level_checkpoint_is_refused_for_a_two_level_model_with_the_reason(tmp_path):
    one = RPNModel(RPNConfig(anchors=AnchorConfig(sizes=(16.0, 32.0, 64.0, 128.0))), device="cpu")
    path = tmp_path / "old.safetensors"
    save_checkpoint(one, path)
    with pytest.raises(CheckpointError, match="1 anchor level.*2 now"):
        load_checkpoint(path, expected_anchors=TWO)
    model, _ = load_checkpoint(path)  # on its own it still loads, as the model it was
    assert model.fine_head is None


def test_the_anchors_per_image_are_capped_for_every_configuration():
    import resources
    from rpn_core.limits import MAX_ANCHORS_PER_IMAGE
    from rpn_core.rpn.config import embedded_config

    # By hand, the embedded SSD on its 300 x 300 input: 19^2, 10^2, 5^2, 3^2, 2^2 and 1 cells
    # x 10 anchors = 3,610 + 1,000 + 250 + 90 + 40 + 10 = 5,000.
    assert embedded_config(resources.embedded_sidecar()).max_anchors() == 5_000
    # Version 3's two levels: 600 x 1000 pads to 608 x 1008; stride 8: 76 x 126 cells x 6
    # anchors = 57,456; stride 16: 38 x 63 cells x 12 = 28,728.
    v3 = AnchorConfig(
        sizes=(16.0, 32.0, 64.0, 128.0, 256.0, 512.0), size_strides=(8, 8, 16, 16, 16, 16)
    )
    assert RPNConfig(anchors=v3).max_anchors() == 86_184
    many = AnchorConfig(
        sizes=(16.0, 24.0, 32.0, 64.0), aspect_ratios=tuple(0.25 * k for k in range(1, 9)),
        size_strides=(8, 8, 8, 16),
    )  # fmt: skip
    assert (
        RPNConfig(anchors=many, min_side=600, max_side=1000).max_anchors() < MAX_ANCHORS_PER_IMAGE
    )
    # 1000 x 1000 pads to 1008 x 1008: 126^2 cells x 24 (3 sizes x 8 ratios) = 381,024 at
    # stride 8, 63^2 x 8 = 31,752 at stride 16.
    with pytest.raises(ValueError, match=r"tile 412,776 boxes .* limit of 400,000"):
        RPNConfig(anchors=many, min_side=1000, max_side=1000)
    hostile = dict(SMALL.to_dict(), min_side=4096, max_side=4096)
    with pytest.raises(ValueError, match="above the limit"):
        RPNConfig.from_dict(hostile)
