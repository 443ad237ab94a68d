"""Version 4's pieces: TF's cell-centred anchor grid, the SSD backbone (TF-SAME padding, six
maps), the configuration rules, the predictor conversion of ``scripts/package_ssd.py``
(exact under torchvision's ``BoxCoder``), and a six-level model end to end (ONNX Runtime
equal to PyTorch, fine-tuning in head mode).

Golden values carry their arithmetic in comments.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from script_modules import load_script
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import box_iou

from rpn_core.anchors.grid import AnchorConfig, cell_centres, generate_anchors
from rpn_core.anchors.labelling import anchor_grid_iou
from rpn_core.rpn.config import (
    SSD_STRIDES,
    RPNConfig,
    anchors_misfit,
    input_geometry,
    model_anchors,
)
from rpn_core.rpn.config_checks import ConfigError


@pytest.fixture(scope="module")
def pkg():
    return load_script("package_ssd")


# --- the grid ----------------------------------------------------------------------------------
def test_cell_centring_golden():
    # 300 px at stride 16: ceil(300 / 16) = 19 cells of 300 / 19 = 15.789... px; the first
    # centre is 0.5 * 15.789 = 7.8947, the last 18.5 * 15.789 = 292.1053. A 30 px square
    # anchor spans centre -+ 15.
    cfg = AnchorConfig(sizes=(30.0,), aspect_ratios=(1.0,), stride=16, centring="cell")
    a = generate_anchors((300, 300), cfg)
    assert a.shape == (19 * 19, 4)
    np.testing.assert_allclose(a[0].numpy(), [-7.1053, -7.1053, 22.8947, 22.8947], atol=1e-3)
    np.testing.assert_allclose(a[-1].numpy(), [277.1053, 277.1053, 307.1053, 307.1053], atol=1e-3)
    # A non-square input: 300 x 450 at stride 512 is one cell, centred on the image's middle.
    one = AnchorConfig(sizes=(100.0,), aspect_ratios=(1.0,), stride=512, centring="cell")
    np.testing.assert_allclose(generate_anchors((300, 450), one)[0].numpy(), [175, 100, 275, 200])


def test_corner_centring_unchanged():
    # torchvision's grid: cell (row, col) centred on (col * 16, row * 16).
    ys, xs = cell_centres((40, 50), AnchorConfig())
    assert ys.tolist() == [0, 16, 32] and xs.tolist() == [0, 16, 32, 48]


def test_cell_grid_iou_equals_box_iou():
    cfg = AnchorConfig(
        sizes=(30.0, 60.0, 105.0), aspect_ratios=(0.5, 1.0, 2.0), stride=32,
        size_strides=(16, 16, 32), centring="cell",
    )  # fmt: skip
    gt = torch.tensor([[10.0, 20.0, 90.0, 150.0], [150.0, 160.0, 290.0, 280.0]])
    anchors = generate_anchors((300, 300), cfg)
    # Fractional centres: equal to float32 rounding (the corner grid is bit for bit).
    np.testing.assert_allclose(
        anchor_grid_iou((300, 300), cfg, gt).numpy(), box_iou(anchors, gt).numpy(), atol=1e-6
    )


def test_centring_round_trips_and_is_validated():
    cfg = AnchorConfig(sizes=(30.0,), aspect_ratios=(1.0,), centring="cell")
    assert cfg.to_dict()["centring"] == "cell"
    assert AnchorConfig.from_dict(cfg.to_dict()) == cfg
    assert "centring" not in AnchorConfig().to_dict()  # older files stay as they were
    with pytest.raises(ValueError, match="centring"):
        AnchorConfig(centring="middle")


# --- configuration -----------------------------------------------------------------------------
def test_ssd_config_rules(pkg):
    cfg = pkg.ssd_config()
    assert cfg.is_ssd and cfg.anchors.levels[0].num_anchors_per_location == 10
    # 5,000 anchors on 300 x 300: 19^2 * 10 + 10^2 * 10 + 5^2 * 10 + 3^2 * 10 + 2^2 * 10 + 10
    assert len(model_anchors((480, 640), cfg)) == 3610 + 1000 + 250 + 90 + 40 + 10
    assert RPNConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="one anchor level per feature map"):
        replace(cfg, anchors=replace(cfg.anchors, size_strides=(16,) * 11 + (512,)))
    with pytest.raises(ValueError, match="cell-centred"):
        replace(cfg, anchors=replace(cfg.anchors, centring="corner"))
    with pytest.raises(ValueError, match="square input"):
        replace(cfg, input_square=0)
    with pytest.raises(ValueError, match="SSD backbone only"):
        RPNConfig(input_square=300)
    with pytest.raises(ConfigError) as err:
        RPNConfig.from_dict({**cfg.to_dict(), "backbone": "resnet"})
    assert err.value.field == "backbone"
    # The Train dock's check, in words.
    assert anchors_misfit(cfg.anchors, cfg) == ""
    assert "strides" in anchors_misfit(AnchorConfig(), cfg)


def test_a_huge_square_input_is_refused_with_its_anchor_count(pkg):
    # 4096 x 4096: ceil(4096 / stride)^2 x 10 anchors = 10 x (256^2 + 128^2 + 64^2 + 32^2
    # + 16^2 + 8^2) = 873,600 > 400,000
    with pytest.raises(ValueError, match=r"873,600 boxes over the largest input \(4096 x 4096\)"):
        replace(pkg.ssd_config(), input_square=4096)


def test_square_input_geometry(pkg):
    # A 480 x 640 photo is squashed to 300 x 300: sy = 300 / 480, sx = 300 / 640.
    assert input_geometry((480, 640), pkg.ssd_config()) == ((300, 300), (0.625, 0.46875))


# --- backbone ----------------------------------------------------------------------------------
def test_tf_same_padding_golden():
    from rpn_core.rpn.ssd_backbone import TFSameConv2d

    conv = TFSameConv2d(1, 1, 3, stride=2, bias=False)
    torch.nn.init.ones_(conv.weight)
    out = conv(torch.ones(1, 1, 4, 4))
    # TF "SAME" on 4 px, kernel 3, stride 2: 2 outputs, total padding (2-1)*2+3-4 = 1, put
    # after. Window (0, 0) covers rows/cols 0-2: 9 ones; window (1, 1) rows/cols 2-4 with 4
    # padded: 2 x 2 = 4. (Symmetric padding would give 4 at (0, 0).)
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0].tolist() == [[9.0, 6.0], [6.0, 4.0]]


def test_ssd_backbone_maps():
    from rpn_core.rpn.ssd_backbone import SSD_CHANNELS, SSDBackbone

    maps = SSDBackbone()(torch.zeros(1, 3, 300, 300))
    assert [m.shape[1] for m in maps] == list(SSD_CHANNELS)
    assert [m.shape[-1] for m in maps] == [19, 10, 5, 3, 2, 1]  # ceil(300 / stride)
    assert [math.ceil(300 / s) for s in SSD_STRIDES] == [19, 10, 5, 3, 2, 1]


# --- the predictor conversion ------------------------------------------------------------------
def _tf_decode(codes: np.ndarray, cy, cx, h, w) -> np.ndarray:
    """TF's FasterRcnnBoxCoder.decode with scale factors (10, 10, 5, 5); ``codes`` ty tx th tw."""
    ty, tx, th, tw = codes / np.array([10.0, 10.0, 5.0, 5.0])
    yc, xc = ty * h + cy, tx * w + cx
    hh, ww = np.exp(th) * h, np.exp(tw) * w
    return np.array([xc - ww / 2, yc - hh / 2, xc + ww / 2, yc + hh / 2])


@pytest.mark.parametrize("level", [0, 3])
def test_head_rows_decode_like_tf(pkg, level):
    rng = np.random.default_rng(level)
    cfg = pkg.ssd_config()
    lv = cfg.anchors.levels[level]
    shapes = pkg.tf_shapes()[level]
    c, n_tf = 5, len(shapes)
    box = (rng.normal(size=(3, 3, c, 4 * n_tf)), rng.normal(size=4 * n_tf))
    cls = (rng.normal(size=(3, 3, c, 91 * n_tf)), rng.normal(size=91 * n_tf))
    rows = {k: torch.from_numpy(v) for k, v in pkg.head_rows(lv, shapes, box, cls).items()}
    from rpn_core.rpn.modules import PredictorHead

    head = PredictorHead(c, lv.num_anchors_per_location)
    head.load_state_dict(rows)
    n = math.ceil(300 / lv.stride)
    fmap = torch.from_numpy(rng.normal(size=(1, c, n, n)).astype(np.float32))
    logits, deltas = head([fmap])
    anchors = generate_anchors((300, 300), lv)  # (n * n * A, 4), location-major
    a = lv.num_anchors_per_location
    d = deltas[0].view(1, a, 4, n, n).permute(0, 3, 4, 1, 2).reshape(-1, 4)
    ours = BoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(d, anchors).detach().numpy()
    # TF's own computation at one cell, for every TF anchor shape j.
    row, col = n - 1, 0
    cy, cx = (row + 0.5) * 300 / n, (col + 0.5) * 300 / n
    tf_codes = (
        torch.nn.functional.conv2d(
            fmap.double(), torch.from_numpy(box[0].transpose(3, 2, 0, 1)), padding=1
        )[0, :, row, col].numpy()
        + box[1]
    )
    tf_bg = (
        torch.nn.functional.conv2d(
            fmap.double(), torch.from_numpy(cls[0].transpose(3, 2, 0, 1)), padding=1
        )[0, :, row, col].numpy()
        + cls[1]
    )
    obj = logits[0][0, :, row, col].detach().numpy()
    n_sizes = len(lv.sizes)
    matched = 0
    for i in range(a):
        ratio, size = pkg.RATIOS_HW[i // n_sizes], lv.sizes[i % n_sizes]
        for j, (s, r) in enumerate(shapes):
            h, w = s / math.sqrt(r) * 300, s * math.sqrt(r) * 300
            if (
                abs(math.log(w * math.sqrt(ratio) / size))
                + abs(math.log(h / math.sqrt(ratio) / size))
                < 1e-3
            ):
                tf_box = _tf_decode(tf_codes[4 * j : 4 * j + 4], cy, cx, h, w)
                ours_box = ours[(row * n + col) * a + i]
                np.testing.assert_allclose(ours_box, tf_box, rtol=1e-4, atol=1e-3)
                # objectness: logit(1 - P(background)) = -(background logit)
                assert obj[i] == pytest.approx(-tf_bg[91 * j], rel=1e-4, abs=1e-4)
                matched += 1
    assert matched == n_tf  # every TF anchor is a member of the cross product


# --- a six-level model end to end --------------------------------------------------------------
@pytest.fixture(scope="module")
def ssd_model(pkg):
    from rpn_core.rpn.model import RPNModel

    torch.manual_seed(0)
    model = RPNModel(pkg.ssd_config(), device="cpu")
    with torch.no_grad():  # a backbone that is not all zeros after batch-norm
        for name, t in model.backbone.state_dict().items():
            if name.endswith("running_var"):
                t.fill_(1.0)
            elif name.endswith("weight") and t.ndim == 4:
                t.normal_(0, 0.1)
    return model


def _photo() -> np.ndarray:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    img[60:180, 80:200] = (200, 40, 40)
    return img


def test_six_level_model_proposals(ssd_model):
    from rpn_core.rpn.selection import select_proposals

    feat = ssd_model.compute_features(_photo())
    assert feat.input_size == (300, 300) and len(feat.levels) == 6
    raw = ssd_model.raw_proposals(feat)
    assert raw.boxes.shape == (5000, 4) and np.isfinite(raw.boxes).all()
    # Anchors in original pixels: squashed back by (240 / 300, 320 / 300).
    np.testing.assert_allclose(raw.anchors, model_anchors((240, 320), ssd_model.config).numpy())
    assert sorted(set(raw.strides.tolist())) == list(SSD_STRIDES)
    props = select_proposals(raw, top_n=50, pre_nms_top_n=6000, nms_iou=0.7)
    assert 0 < len(props.boxes) <= 50


def test_six_level_onnx_equals_pytorch(ssd_model):
    from rpn_core.rpn import onnx_backbone

    if not onnx_backbone.available():
        pytest.skip("onnxruntime not installed")
    img = _photo()
    ssd_model.onnx_inference, ssd_model.bf16_inference = False, False
    ref = ssd_model.compute_features(img)
    ssd_model.onnx_inference = True
    got = ssd_model.compute_features(img)
    assert ssd_model._onnx.runner is not None
    for a, b in zip(ref.levels, got.levels, strict=True):
        scale = float(a.abs().max()) or 1.0
        assert float((a - b).abs().max()) / scale < 1e-4


def test_six_level_fine_tune_head_and_refuse_partial(ssd_model, tmp_path):
    import copy

    from rpn_core.training.finetune import fine_tune
    from rpn_core.training.types import TrainConfig

    img = _photo()
    items = [(img, np.array([[80.0, 60.0, 200.0, 180.0]], np.float32))] * 2
    model = copy.deepcopy(ssd_model)
    config = TrainConfig(mode="head", epochs=1, max_steps=2, batch_size=1, augment_copies=1)
    records = list(fine_tune(model, items, config, validation_items=items))
    steps = [r for r in records if r.phase == "train"]
    assert len(steps) == 2 and all(math.isfinite(r.total) and r.total > 0 for r in steps)
    assert records[-1].phase == "done" and records[-1].result.steps == 2
    backbone_before = ssd_model.backbone.state_dict()  # head mode: the backbone stays as is
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, backbone_before[k])
    with pytest.raises(ValueError, match="last stage"):
        list(fine_tune(copy.deepcopy(ssd_model), items, replace(config, mode="partial")))


def test_with_anchors_keeps_the_grid(ssd_model):
    from rpn_core.rpn.adapt import with_anchors

    anchors = ssd_model.config.anchors
    fewer = replace(anchors, aspect_ratios=(0.5, 1.0, 2.0))
    new = with_anchors(ssd_model, fewer)
    assert new.config.anchors == fewer
    assert new.rpn.head.heads[0].cls_logits.out_channels == 2 * 3
    with pytest.raises(ValueError, match="cannot be used by this model"):
        with_anchors(ssd_model, AnchorConfig())


def test_a_version_3_checkpoint_loads_as_itself_or_is_refused_with_the_reason(tmp_path):
    import resources
    from rpn_core.rpn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from rpn_core.rpn.config import embedded_config
    from rpn_core.rpn.model import RPNModel

    two = AnchorConfig(
        sizes=(16.0, 32.0, 64.0, 128.0, 256.0, 512.0), size_strides=(8, 8, 16, 16, 16, 16)
    )
    path = tmp_path / "v3_finetuned.safetensors"
    save_checkpoint(RPNModel(RPNConfig(anchors=two, context=True), device="cpu"), path)
    model, _ = load_checkpoint(path)  # on its own: the two-level model it was
    assert not model.config.is_ssd and model.fine_head is not None
    v4 = embedded_config(resources.embedded_sidecar()).anchors
    with pytest.raises(CheckpointError, match="2 anchor level.*6 now.*another version"):
        load_checkpoint(path, expected_anchors=v4)


def test_six_level_full_mode_trains_the_backbone_and_the_checkpoint_round_trips(
    ssd_model, tmp_path
):
    import copy

    from rpn_core.rpn.checkpoint import load_checkpoint, save_checkpoint
    from rpn_core.training.finetune import fine_tune
    from rpn_core.training.types import TrainConfig

    img = _photo()
    items = [(img, np.array([[80.0, 60.0, 200.0, 180.0]], np.float32))] * 2
    model = copy.deepcopy(ssd_model)
    config = TrainConfig(mode="full", epochs=1, max_steps=1, batch_size=1, augment_copies=1)
    records = list(fine_tune(model, items, config, validation_items=items))
    assert records[-1].phase == "done" and records[-1].result.steps == 1
    before = ssd_model.backbone.state_dict()
    changed = [k for k, v in model.backbone.state_dict().items() if not torch.equal(v, before[k])]
    # Full mode trains the backbone too: the kept weights differ from the start exactly when
    # the run improved on it (otherwise the starting weights are handed back).
    assert bool(changed) == records[-1].result.improved
    path = tmp_path / "ssd_finetuned.safetensors"
    save_checkpoint(model, path)
    loaded, _ = load_checkpoint(path, expected_anchors=ssd_model.config.anchors)
    assert loaded.config == model.config
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b.cpu())


def test_with_input_size_keeps_weights_and_anchor_pixels(ssd_model):
    from rpn_core.rpn.adapt import with_input_size

    assert with_input_size(ssd_model, 300) is ssd_model
    big = with_input_size(ssd_model, 600)
    assert big.config.input_square == 600 and ssd_model.config.input_square == 300
    assert big.config.anchors == ssd_model.config.anchors  # same pixel sizes, twice the frame
    for a, b in zip(big.state_dict().values(), ssd_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    feat = big.compute_features(_photo())
    # TF-SAME maps of a 600 x 600 input: ceil(600 / stride) = 38, 19, 10, 5, 3, 2 cells
    assert feat.input_size == (600, 600)
    assert [m.shape[-1] for m in feat.levels] == [38, 19, 10, 5, 3, 2]
    raw = big.raw_proposals(feat)
    assert len(raw.boxes) == 10 * (38**2 + 19**2 + 10**2 + 5**2 + 3**2 + 2**2)
    with pytest.raises(ValueError, match="16 to 2048"):
        with_input_size(ssd_model, 8)


def test_the_heads_equal_torchvisions_ssd_heads(ssd_model):
    # torchvision's SSD heads run one 3x3 convolution per level and flatten (N, A*K, H, W)
    # to (N, H*W*A, K): with the same weights they must give the model's own logits and
    # deltas, in the same anchor order.
    from torchvision.models.detection.ssd import SSDClassificationHead, SSDRegressionHead

    from rpn_core.rpn.ssd_backbone import SSD_CHANNELS

    heads = ssd_model.rpn.head.heads
    counts = [h.cls_logits.out_channels for h in heads]
    cls = SSDClassificationHead(list(SSD_CHANNELS), counts, num_classes=1)
    reg = SSDRegressionHead(list(SSD_CHANNELS), counts)
    for k, head in enumerate(heads):
        cls.module_list[k].load_state_dict(head.cls_logits.state_dict())
        reg.module_list[k].load_state_dict(head.bbox_pred.state_dict())
    maps = ssd_model.compute_features(_photo()).maps()
    logits, deltas = ssd_model.head_outputs(maps)
    with torch.no_grad():
        torch.testing.assert_close(cls(maps)[..., 0], logits)
        torch.testing.assert_close(reg(maps), deltas)
