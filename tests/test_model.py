"""rpn_core.rpn.model: anchors, targets and sampler wired to the overlay's code; selection; weights.

The model runs on tiny images with small input sizes (and an untrained, randomly initialised
backbone where weights do not matter), so the file stays fast.
"""

import json
import math
import pickle
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

import resources
from rpn_core.anchors.grid import AnchorConfig, generate_anchors
from rpn_core.anchors.labelling import LabelConfig, label_image, sample_minibatch
from rpn_core.rpn.config import input_geometry, model_anchors
from rpn_core.rpn.loading import load_embedded_model, load_model, save_weights
from rpn_core.rpn.loss import iou_aware_objectness_loss
from rpn_core.rpn.model import (
    ConfigAnchorGenerator,
    RawProposals,
    RPNConfig,
    RPNModel,
    WeightsError,
    propose,
)
from rpn_core.rpn.selection import select_proposals

SMALL = RPNConfig(min_side=64, max_side=128)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return RPNModel(SMALL, device="cpu")


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "config, padded",
    [
        (AnchorConfig(), (64, 96)),
        (AnchorConfig(sizes=(32, 100), aspect_ratios=(0.25, 1.0, 3.0)), (48, 160)),
    ],
)
def test_anchor_generator_matches_torchvision(config, padded):
    images = ImageList(torch.zeros(1, 3, *padded), [padded])
    fmap = [torch.zeros(1, 8, padded[0] // 16, padded[1] // 16)]
    ours = ConfigAnchorGenerator(config)(images, fmap)[0]
    theirs = AnchorGenerator((config.sizes,), (config.aspect_ratios,))(images, fmap)[0]
    assert torch.equal(ours, theirs)


def test_feature_grid_matches_anchor_grid(model):
    # 50 x 70 image, shorter side -> 64: scale 1.28, input 64 x 90 (89.6 rounds to 90),
    # padded to 64 x 96, grid 4 x 6, 9 anchors per cell = 216 anchors.
    feat = model.compute_features(_image(50, 70))
    assert feat.input_size == (64, 90)
    assert feat.padded_size == (64, 96)
    assert tuple(feat.features.shape) == (1, 256, 4, 6)  # 96 + the stride-32 context
    raw = model.raw_proposals(feat)
    assert len(raw) == 4 * 6 * 9
    expected = model_anchors((50, 70), SMALL).numpy()
    np.testing.assert_allclose(raw.anchors, expected, rtol=1e-6)
    # and these are generate_anchors on the input frame, divided by the scale
    sx, sy = 90 / 70, 64 / 50
    tiled = generate_anchors((64, 90), SMALL.anchors).numpy() / [sx, sy, sx, sy]
    np.testing.assert_allclose(raw.anchors, tiled, rtol=1e-6)


@pytest.mark.parametrize(
    "labels", [LabelConfig(), LabelConfig.guide(), LabelConfig(ignore_cross_boundary=True)]
)
def test_training_labels_are_the_overlay_labels(labels):
    config = replace(SMALL, labels=labels)
    m = RPNModel(config, device="cpu")
    feat = m.compute_features(_image(64, 100))
    assert feat.scale == (1.0, 1.0)  # shorter side already 64: input frame = original
    gt = torch.tensor([[10.0, 5.0, 60.0, 50.0], [40.0, 20.0, 95.0, 62.0]])
    anchors = m._anchors(feat)
    got, matched = m.rpn.assign_targets_to_anchors(
        [anchors], [{"boxes": gt, "image_size": feat.input_size}]
    )
    overlay = label_image((64, 100), config.anchors, gt, labels)
    assert torch.equal(got[0], overlay.labels.float())
    assert torch.equal(matched[0], gt[overlay.matched_gt])


def test_sampler_is_sample_minibatch_with_the_given_generator(model):
    labels = torch.tensor([1, 0, 0, -1, 1, 0, 1, 0, 0, 0], dtype=torch.float32)
    model.rpn.fg_bg_sampler.generator = torch.Generator().manual_seed(7)
    pos_mask, neg_mask = model.rpn.fg_bg_sampler([labels])
    model.rpn.fg_bg_sampler.generator = None
    cfg = model.config.labels
    pos, neg = sample_minibatch(
        labels,
        batch_size=cfg.batch_size_per_image,
        positive_fraction=cfg.positive_fraction,
        generator=torch.Generator().manual_seed(7),
    )
    assert torch.nonzero(pos_mask[0]).flatten().sort().values.tolist() == sorted(pos.tolist())
    assert torch.nonzero(neg_mask[0]).flatten().sort().values.tolist() == sorted(neg.tolist())


def test_losses_are_seeded_and_train_only_the_head():
    torch.manual_seed(1)
    m = RPNModel(replace(SMALL, labels=LabelConfig(batch_size_per_image=16)), device="cpu")
    feat = m.compute_features(_image(64, 100, seed=3))
    gt = [[[10.0, 5.0, 60.0, 50.0]]]
    a = m.losses(feat, gt, torch.Generator().manual_seed(5))
    b = m.losses(feat, gt, torch.Generator().manual_seed(5))
    assert a["loss_objectness"].item() == b["loss_objectness"].item()
    assert a["loss_rpn_box_reg"].item() > 0
    (a["loss_objectness"] + a["loss_rpn_box_reg"]).backward()
    assert all(p.grad is None for p in m.backbone.parameters())
    assert all(p.grad is not None for p in m.head_parameters())
    with pytest.raises(ValueError, match="GT box 0"):
        m.losses(feat, [[[5.0, 5.0, 5.0, 9.0]]])


def test_iou_aware_objectness_loss_golden(model):
    """Hand-computed: anchor 0 is foreground with zero deltas, so its decoded box is the
    anchor and its target the anchor's IoU with the GT box; anchor 1 is background (target
    0); anchor 2 is ignored and never sampled."""
    anchors = [torch.tensor([[0.0, 0.0, 10.0, 10.0], [20, 20, 30, 30], [0, 0, 8, 8]])]
    matched = [torch.tensor([[5.0, 0.0, 15.0, 10.0], [0, 0, 1, 1], [0, 0, 1, 1]])]
    labels = [torch.tensor([1.0, 0.0, -1.0])]
    logits = torch.tensor([2.0, -1.0, 5.0])
    deltas = torch.zeros(3, 4)
    obj, box = iou_aware_objectness_loss(model.rpn, logits, deltas, labels, matched, anchors)
    t = 50 / 150  # [0,0,10,10] vs [5,0,15,10]
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    bce_fg = -(t * math.log(sig(2.0)) + (1 - t) * math.log(1 - sig(2.0)))
    bce_bg = -math.log(1 - sig(-1.0))
    assert obj.item() == pytest.approx((bce_fg + bce_bg) / 2, rel=1e-6)
    # box target of anchor 0: dx = 5/10, others 0; smooth L1 (beta 1/9) of 0.5 = 0.5 - 1/18,
    # summed over the one positive and divided by the 2 sampled anchors
    assert box.item() == pytest.approx((0.5 - 1 / 18) / 2, rel=1e-6)


def test_iou_objectness_target_keeps_the_minibatch_and_box_loss():
    torch.manual_seed(1)
    m = RPNModel(replace(SMALL, labels=LabelConfig(batch_size_per_image=16)), device="cpu")
    with torch.no_grad():
        for p in m.head_parameters():
            p.normal_(0, 0.05)
    feat = m.compute_features(_image(64, 100, seed=3))
    gt = [[[10.0, 5.0, 60.0, 50.0]]]
    a = m.losses(feat, gt, torch.Generator().manual_seed(5))
    b = m.losses(feat, gt, torch.Generator().manual_seed(5), objectness_target="iou")
    assert b["loss_rpn_box_reg"].item() == pytest.approx(a["loss_rpn_box_reg"].item(), rel=1e-6)
    # soft targets below 1 for the positives: a different objectness loss, still finite
    assert b["loss_objectness"].item() != pytest.approx(a["loss_objectness"].item(), rel=1e-4)
    b["loss_objectness"].backward()
    assert all(p.grad is None for p in m.backbone.parameters())
    with pytest.raises(ValueError, match="objectness_target"):
        m.losses(feat, gt, objectness_target="soft")


def test_zero_deltas_give_anchors_in_original_pixels():
    m = RPNModel(SMALL, device="cpu")
    with torch.no_grad():
        m.rpn.head.bbox_pred.weight.zero_()
        m.rpn.head.bbox_pred.bias.zero_()
    raw = m.raw_proposals(m.compute_features(_image(32, 48)))  # scale 2: input 64 x 96
    assert input_geometry((32, 48), SMALL) == ((64, 96), (2.0, 2.0))
    clipped = raw.anchors.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, 48)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, 32)
    np.testing.assert_allclose(raw.boxes, clipped, atol=1e-5)
    # first anchor: size 64, ratio 0.5 -> (-45, -23, 45, 23) at (0, 0), halved
    assert raw.anchors[0].tolist() == [-22.5, -11.5, 22.5, 11.5]
    np.testing.assert_allclose(raw.scores, 1 / (1 + np.exp(-raw.logits)), rtol=1e-6)


def _raw(boxes, scores):
    boxes = np.asarray(boxes, dtype=np.float32)
    n = len(boxes)
    return RawProposals(
        anchors=boxes.copy(),
        logits=np.zeros(n, np.float32),
        scores=np.asarray(scores, np.float32),
        deltas=np.zeros((n, 4), np.float32),
        boxes=boxes,
        image_size=(100, 100),
    )


def test_select_proposals_golden():
    raw = _raw(
        [
            [0, 0, 10, 10],  # 0: score 0.5
            [0, 0, 10, 9],  # 1: score 0.9; IoU with 0 = 90/100 = 0.9
            [50, 50, 60, 60],  # 2: score 0.6, far away
            [20, 20, 21, 40],  # 3: score 0.8, 1 pixel wide
            [0, 0, 10, 10],  # 4: score 0.1, duplicate of 0
        ],
        [0.5, 0.9, 0.6, 0.8, 0.1],
    )
    p = select_proposals(raw, nms_iou=0.7)
    assert p.anchor_index.tolist() == [1, 3, 2]  # 0 and 4 suppressed by 1 (IoU 0.9 > 0.7)
    assert p.scores.tolist() == pytest.approx([0.9, 0.8, 0.6])
    assert p.boxes[0].tolist() == [0, 0, 10, 9]
    assert select_proposals(raw, nms_iou=0.95).anchor_index.tolist() == [1, 3, 2, 0]
    assert select_proposals(raw, min_size=2).anchor_index.tolist() == [1, 2]
    assert select_proposals(raw, score_threshold=0.7).anchor_index.tolist() == [1, 3]
    assert select_proposals(raw, top_n=1).anchor_index.tolist() == [1]
    assert select_proposals(raw, pre_nms_top_n=2).anchor_index.tolist() == [1, 3]


@pytest.mark.parametrize("shape", [(1, 300, 3), (300, 1, 3), (7, 5, 3), (40, 60), (40, 60, 4)])
def test_odd_images_are_handled(model, shape):
    img = np.full(shape, 128, dtype=np.uint8)
    props = propose(model, img, top_n=5)
    h, w = shape[:2]
    assert props.image_size == (h, w)
    assert len(props) <= 5
    assert (props.boxes[:, 2] <= w + 1e-4).all() and (props.boxes[:, 3] <= h + 1e-4).all()


def test_read_only_image_at_input_size_gives_the_same_features_without_a_warning(model):
    """PIL hands out read-only arrays; an image already at the input size is not resized
    (no copy), and ``torch.from_numpy`` would warn on it."""
    img = _image(64, 96, seed=4)  # SMALL: shorter side 64 -> no resize
    frozen = img.copy()
    frozen.flags.writeable = False
    expected = model.compute_features(img).features
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = model.compute_features(frozen).features
    assert torch.equal(got, expected)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((0, 5, 3), np.uint8), "at least 1x1"),
        (np.zeros((5, 5, 3), np.float32), "uint8"),
        (np.zeros((5, 5, 2), np.uint8), "RGB"),
    ],
)
def test_bad_images_raise_value_error(model, bad, match):
    with pytest.raises(ValueError, match=match):
        model.compute_features(bad)


# -- weights ---------------------------------------------------------------------------------


@pytest.fixture
def saved(model, tmp_path):
    path = tmp_path / "w.safetensors"
    digest = save_weights(model, path, {"note": "test"})
    return path, digest


def test_save_load_round_trip(model, saved):
    path, digest = saved
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["sha256"] == digest and side["metadata"] == {"note": "test"}
    assert side["config"] == SMALL.to_dict()
    loaded = load_model(path, "cpu")
    assert loaded.config == SMALL
    img = _image(40, 60, seed=9)
    a, b = propose(model, img), propose(loaded, img)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    # no sidecar: the config comes from the safetensors header
    path.with_suffix(".json").unlink()
    assert load_model(path, "cpu").config == SMALL


def test_sha256_mismatch_is_refused(saved):
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 mismatch") as err:
        load_model(path, "cpu")
    assert err.value.path == path


def test_truncated_file_is_refused(saved):
    path, _ = saved
    path.write_bytes(path.read_bytes()[:5000])
    path.with_suffix(".json").unlink()  # else the sha256 check catches it first
    with pytest.raises(WeightsError, match="truncated") as err:
        load_model(path, "cpu")
    assert str(path) in str(err.value)


def test_wrong_shape_is_refused(tmp_path):
    # 2 anchors per location: cls_logits has 2 output channels; a 9-anchor config cannot take it
    two = replace(SMALL, anchors=AnchorConfig(sizes=(64,), aspect_ratios=(0.5, 1.0)))
    path = tmp_path / "two.safetensors"
    save_weights(RPNModel(two, device="cpu"), path, {})
    side = json.loads(path.with_suffix(".json").read_text())
    side["config"]["anchors"] = AnchorConfig().to_dict()
    path.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(WeightsError, match="size mismatch.*cls_logits"):
        load_model(path, "cpu")


def test_missing_file_and_missing_sidecar(tmp_path, saved):
    with pytest.raises(WeightsError, match="file not found"):
        load_model(tmp_path / "nope.safetensors")
    path, _ = saved
    path.with_suffix(".json").unlink()
    with pytest.raises(WeightsError, match="missing weights metadata"):
        load_model(path, "cpu", _require_sidecar=True)


class _Boom:
    """Unpickling this would create a marker file (what a hostile checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickle_files_never_run(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    if writer == "pickle":
        path.write_bytes(pickle.dumps({"w": _Boom(marker)}, protocol=4))
    else:
        torch.save({"w": _Boom(marker)}, path)
    with pytest.raises(WeightsError, match="pickle") as err:
        load_model(path, "cpu")
    assert err.value.path == path
    assert not marker.exists()


def test_embedded_weights_load_and_are_the_ssds_predictors():
    m = load_embedded_model(resources.embedded_weights(), "cpu")
    side = json.loads(resources.path_of("weights/rpn_mobilenetv2.json").read_text())
    assert m.config == RPNConfig.from_dict(side["config"])
    # Version 4: the COCO SSD's six levels on a 300 x 300 squash, 2 sizes x 5 ratios each.
    levels = m.config.anchors.levels
    assert m.config.is_ssd and m.config.input_square == 300
    assert [lv.stride for lv in levels] == [16, 32, 64, 128, 256, 512]
    assert levels[0].sizes == (30.0, 60.0) and levels[-1].sizes == (285.0, 292.4038)
    for k, (head, level) in enumerate(zip(m.rpn.head.heads, levels, strict=True)):
        a = level.num_anchors_per_location
        assert head.cls_logits.out_channels == a and head.bbox_pred.out_channels == 4 * a
        # TF's 3 (level 0) or 6 anchor shapes carry its background rows (objectness biases
        # -0.5 to -3.3: P(background) is high a priori); the cross product's other shapes are
        # parked 10 lower until fine-tuning (scripts/package_ssd.py), not a fresh head's zeros.
        bias = head.cls_logits.bias.detach()
        assert int((bias > -8).sum()) == (3 if k == 0 else 6)
        assert bool((bias < -0.4).all())
    assert side["metadata"]["version"] == 4
    assert side["metadata"]["source_sha1"] == "35d571ac314f1d32ae678a857f87cc0ef6b220e8"


@pytest.mark.parametrize("context", [False, True])
def test_folded_backbone_equals_the_frozen_one(context):
    from rpn_core.rpn.backbone import build_backbone, fold_frozen_bn

    torch.manual_seed(2)
    b = build_backbone(context=context)
    for m in b.modules():  # non-trivial statistics, else folding is close to the identity
        if hasattr(m, "running_var"):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.normal_()
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_()
    fused = fold_frozen_bn(b)
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        ref = b(x)
        torch.testing.assert_close(fused(x), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    assert not any(type(m).__name__ == "FrozenBatchNorm2d" for m in fused.modules())


def test_inference_backbone_follows_weight_changes(model):
    img = _image(40, 60, seed=4)
    before = model.compute_features(img).features.clone()
    first = model._inference_backbone()
    assert model._inference_backbone() is first  # cached while nothing changed
    with torch.no_grad():
        model.backbone[0][0].weight.mul_(2.0)
    try:
        assert model._inference_backbone() is not first
        assert not torch.equal(model.compute_features(img).features, before)
    finally:
        with torch.no_grad():
            model.backbone[0][0].weight.div_(2.0)


def test_bf16_inference_is_close_to_float32(model):
    from rpn_core.rpn.model import _cpu_has_bf16

    img = _image(64, 96, seed=5)
    model.bf16_inference = False
    try:
        ref = model.compute_features(img).features
        with torch.no_grad():
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
            mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
            std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
            plain = model.backbone((x - mean) / std)  # unfolded, float32, NCHW
        torch.testing.assert_close(ref, plain, rtol=1e-4, atol=1e-4 * plain.abs().max().item())
    finally:
        model.bf16_inference = True
    if not _cpu_has_bf16():
        pytest.skip("this CPU has no native bfloat16: float32 is used")
    fast = model.compute_features(img).features
    assert fast.dtype == torch.float32
    assert not torch.equal(fast, ref)
    assert ((fast - ref).abs().mean() / ref.abs().mean()).item() < 0.1


def test_propose_defaults_come_from_the_models_config():
    m = RPNModel(replace(SMALL, post_nms_top_n=7, nms_iou=1.0), device="cpu")
    img = _image(64, 96, seed=6)
    assert len(propose(m, img)) == 7  # 4 x 6 cells x 9 anchors = 216 candidates
    assert len(propose(m, img, top_n=3)) == 3


def test_embedded_config_is_the_sidecars_without_torch_and_falls_back(monkeypatch, tmp_path):
    import resources
    from rpn_core.rpn.config import embedded_config

    side = json.loads(resources.embedded_sidecar().read_text())
    embedded = embedded_config(resources.embedded_sidecar())
    assert embedded == RPNConfig.from_dict(side["config"])
    assert embedded == load_embedded_model(resources.embedded_weights(), "cpu").config
    assert embedded_config(tmp_path / "missing.json") == RPNConfig()


def test_with_anchors_keeps_the_network_and_maps_each_anchor_to_its_closest_shape(model):
    from rpn_core.rpn.adapt import with_anchors

    old = model.config.anchors  # 64, 128, 256 x ratios 0.5, 1, 2: index = ratio * 3 + size
    assert with_anchors(model, old) is model
    new_cfg = AnchorConfig(sizes=(64.0, 128.0), aspect_ratios=(1.0,))
    new = with_anchors(model, new_cfg)
    assert new is not model and model.config.anchors == old  # the original is untouched
    assert new.config.anchors == new_cfg and new.config.context == model.config.context
    assert new.rpn.head.cls_logits.out_channels == 2
    assert new.rpn.head.bbox_pred.out_channels == 8
    img = _image(50, 70, seed=9)
    a = model.raw_proposals(model.compute_features(img))
    b = new.raw_proposals(new.compute_features(img))
    # The same shapes exist in both sets (size 64 and 128 at ratio 1 = old indices 3 and 4):
    # same logits, same refined boxes, location by location.
    np.testing.assert_allclose(b.logits.reshape(-1, 2), a.logits.reshape(-1, 9)[:, [3, 4]],
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(b.boxes.reshape(-1, 2, 4), a.boxes.reshape(-1, 9, 4)[:, [3, 4]],
                               rtol=1e-5, atol=1e-3)  # fmt: skip
    with pytest.raises(ValueError, match="cannot be used by this model: anchor stride 8"):
        with_anchors(model, AnchorConfig(sizes=(32.0,), aspect_ratios=(1.0,), stride=8))


def test_with_anchors_trains_and_saves_with_the_new_anchors(tmp_path):
    from rpn_core.rpn.adapt import with_anchors

    torch.manual_seed(5)
    base = RPNModel(SMALL, device="cpu")
    new = with_anchors(base, AnchorConfig(sizes=(40.0, 90.0), aspect_ratios=(0.5, 1.0)))
    gt = np.array([[10.0, 12.0, 50.0, 40.0]], dtype=np.float32)
    feats = new.compute_features(_image(64, 96, seed=3))
    losses = new.losses(feats, [gt], torch.Generator().manual_seed(0))
    (losses["loss_objectness"] + losses["loss_rpn_box_reg"]).backward()
    assert new.rpn.head.cls_logits.weight.grad.shape == (4, 96, 1, 1)
    save_weights(new, tmp_path / "w.safetensors")
    back = load_model(tmp_path / "w.safetensors", "cpu")
    assert back.config.anchors == new.config.anchors
