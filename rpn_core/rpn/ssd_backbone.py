"""The COCO SSD's feature extractor as the RPN's backbone (version 4): six maps, frozen.

Imported lazily (torch at module top), by :mod:`rpn_core.rpn.model`.

TensorFlow's SSD-MobileNetV2-COCO (``ssd_mobilenet_v2_coco_2018_03_29``, Apache-2.0) reads its
box predictors from six maps of one pass over a 300 x 300 input:

====  ===================================================  ========  ==========
map   source                                               channels  cells (300)
====  ===================================================  ========  ==========
0     block 14's expansion (``layer_15/expansion_output``)  576       19 x 19
1     block 18 (``layer_19``, the 1280-channel 1x1)         1280      10 x 10
2-5   four extra layers: 1x1 conv, 3x3 depthwise stride 2,  512, 256, 5, 3, 2, 1
      1x1 conv, each with batch-norm and ReLU6              256, 128
====  ===================================================  ========  ==========

:class:`SSDBackbone` is torchvision's ``mobilenet_v2().features`` (all 19 blocks) plus the
extra layers, with :class:`~torchvision.ops.FrozenBatchNorm2d` and TF's "SAME" padding on every
stride-2 convolution (:class:`TFSameConv2d`: the extra pixel after, not before) -- the
predictors were trained on exactly these maps. Weights come from
``scripts/convert_ssd_backbone.py`` (``features.*``) and ``scripts/package_ssd.py`` (the rest).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.ops import FrozenBatchNorm2d

__all__ = ["EXPANSION_BLOCK", "EXTRA_LAYERS", "SSD_CHANNELS", "SSDBackbone", "TFSameConv2d"]

SSD_CHANNELS = (576, 1280, 512, 256, 256, 128)
EXPANSION_BLOCK = 14  # map 0 is this block's expansion output
# (in, middle, out) channels of the four extra layers.
EXTRA_LAYERS = ((1280, 256, 512), (512, 128, 256), (256, 128, 256), (256, 64, 128))


class TFSameConv2d(nn.Conv2d):
    """A convolution padded as TensorFlow's ``"SAME"``: ``ceil(n / stride)`` outputs, the odd
    padding pixel after the image (torch's symmetric padding puts one on both sides)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for n, k, s in (
            (x.shape[-1], self.kernel_size[1], self.stride[1]),
            (x.shape[-2], self.kernel_size[0], self.stride[0]),
        ):
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        return self._conv_forward(F.pad(x, pads), self.weight, self.bias)


def _same(conv: nn.Conv2d) -> TFSameConv2d:
    out = TFSameConv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        padding=0,
        groups=conv.groups,
        bias=conv.bias is not None,
    )
    out.weight = conv.weight
    if conv.bias is not None:
        out.bias = conv.bias
    return out


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    conv: nn.Conv2d = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
    if stride > 1:
        conv = _same(conv)
    return nn.Sequential(conv, FrozenBatchNorm2d(cout), nn.ReLU6())


def _swap_strided(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and child.stride != (1, 1):
            setattr(module, name, _same(child))
        else:
            _swap_strided(child)


class SSDBackbone(nn.Module):
    """MobileNetV2 (19 blocks) + the four extra layers; ``forward`` gives the six maps in
    ascending stride. Randomly initialised and frozen: load a converted state before use."""

    def __init__(self) -> None:
        super().__init__()
        self.features = mobilenet_v2(weights=None, norm_layer=FrozenBatchNorm2d).features
        _swap_strided(self.features)
        self.extras = nn.ModuleList(
            nn.Sequential(
                _conv_bn(cin, mid, 1),
                _conv_bn(mid, mid, 3, stride=2, groups=mid),
                _conv_bn(mid, cout, 1),
            )
            for cin, mid, cout in EXTRA_LAYERS
        )
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = []
        for i, block in enumerate(self.features):
            if i == EXPANSION_BLOCK:
                expanded = block.conv[0](x)
                maps.append(expanded)
                x = block.conv[3](block.conv[2](block.conv[1](expanded)))
            else:
                x = block(x)
        maps.append(x)
        for layer in self.extras:
            x = layer(x)
            maps.append(x)
        return tuple(maps)
