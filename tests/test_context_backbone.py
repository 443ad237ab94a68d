"""The stride-32 context: MobileNetV2 ``features[14:17]`` upsampled onto the stride-16 grid.

Parity with torchvision's own MobileNetV2 (same weights, computed block by block), the
shapes for sides that are not multiples of 32, the head's 1x1 reduction starting as the
identity on the stride-16 channels, and the configuration's handling of older files.
"""

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from torchvision.models import mobilenet_v2
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import FrozenBatchNorm2d

from rpn_core.rpn.backbone import backbone_channels, build_backbone, load_imagenet_state
from rpn_core.rpn.loading import load_model, save_weights
from rpn_core.rpn.model import ContextRPNHead, RPNConfig, RPNModel


def _reference_net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = mobilenet_v2(weights=None, norm_layer=FrozenBatchNorm2d).eval()
    for m in net.modules():  # non-trivial batch-norm statistics
        if isinstance(m, FrozenBatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.normal_(0, 0.1)
    return net


def _state_of(net: torch.nn.Module) -> dict:
    return {f"features.{k}": v for k, v in net.features.state_dict().items()}


@pytest.mark.parametrize("hw", [(64, 96), (80, 112), (48, 208)])
def test_context_backbone_equals_torchvision_blocks(hw):
    net = _reference_net(0)
    backbone = build_backbone(context=True)
    load_imagenet_state(backbone, _state_of(net))
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        f16 = net.features[:14](x)
        f32 = net.features[14:17](f16)
        got = backbone(x)
    h, w = f16.shape[-2:]
    assert (h, w) == (-(-hw[0] // 16), -(-hw[1] // 16))
    assert got.shape == (1, backbone_channels(True), h, w) == (1, 256, h, w)
    torch.testing.assert_close(got[:, :96], f16)
    # nearest 2x upsampling: stride-16 cell (i, j) carries stride-32 cell (i // 2, j // 2)
    for i, j in [(0, 0), (h - 1, w - 1), (h // 2, 1)]:
        torch.testing.assert_close(got[0, 96:, i, j], f32[0, :, i // 2, j // 2])
    torch.testing.assert_close(got[:, 96:], F.interpolate(f32, scale_factor=2.0)[..., :h, :w])


def test_plain_backbone_keeps_its_keys_and_refuses_nothing_it_needs():
    net = _reference_net(1)
    plain, ctx = build_backbone(context=False), build_backbone(context=True)
    load_imagenet_state(plain, _state_of(net))
    load_imagenet_state(ctx, _state_of(net))
    assert len(plain) == 14 and len(ctx) == 15
    assert not any(k.startswith("14.") for k in plain.state_dict())
    assert "14.blocks.2.conv.0.0.weight" in ctx.state_dict()
    torch.testing.assert_close(ctx.state_dict()["14.blocks.2.conv.0.0.weight"],
                               net.features[16].conv[0][0].weight)  # fmt: skip
    partial = {k: v for k, v in _state_of(net).items() if not k.startswith("features.15.")}
    with pytest.raises(RuntimeError, match="14.blocks.1"):
        load_imagenet_state(build_backbone(context=True), partial)


def test_context_head_starts_as_the_plain_head_on_the_stride16_channels():
    torch.manual_seed(3)
    plain = RPNHead(96, 9)
    head = ContextRPNHead(256, 96, 9)
    head.load_state_dict(plain.state_dict(), strict=False)
    w = head.reduce.weight[:, :, 0, 0]
    torch.testing.assert_close(w[:, :96], torch.eye(96))
    assert w[:, 96:].abs().max() < 0.1 and torch.count_nonzero(head.reduce.bias) == 0
    x16 = torch.randn(1, 96, 5, 7)
    with torch.no_grad():
        (lp,), (dp,) = plain([x16])
        (lc,), (dc,) = head([torch.cat([x16, torch.zeros(1, 160, 5, 7)], 1)])
    torch.testing.assert_close(lc, lp)
    torch.testing.assert_close(dc, dp)


def test_config_context_defaults_and_older_files():
    assert RPNConfig().context is True
    old = RPNConfig().to_dict()
    del old["context"]
    assert RPNConfig.from_dict(old).context is False  # written before the setting existed
    assert RPNConfig.from_dict(RPNConfig().to_dict()) == RPNConfig()
    with pytest.raises(ValueError, match="context: must be true or false"):
        RPNConfig.from_dict({**RPNConfig().to_dict(), "context": "yes"})


@pytest.mark.parametrize("context", [True, False])
def test_both_architectures_save_load_and_propose(tmp_path, context):
    torch.manual_seed(4)
    config = RPNConfig(min_side=64, max_side=128, context=context)
    model = RPNModel(config, device="cpu")
    path = tmp_path / "w.safetensors"
    save_weights(model, path)
    back = load_model(path, "cpu")
    assert back.config.context is context
    assert isinstance(back.rpn.head, ContextRPNHead) is context
    img = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    a, b = model.compute_features(img), back.compute_features(img)
    assert a.features.shape[1] == (256 if context else 96)
    torch.testing.assert_close(back.raw_proposals(b).logits, model.raw_proposals(a).logits)
