"""The RPN's backbone and input pipeline: MobileNetV2 to stride 16, frozen, plus resizing.

Imported lazily (it imports torch at module top): only :mod:`rpn_core.rpn.model` imports it.
Box convention: see :mod:`rpn_core.boxes`.

Backbone
--------
torchvision's MobileNetV2 ``features[:14]`` (the inverted-residual blocks up to the 96-channel
stage): four stride-2 convolutions with padding 1, so an ``H x W`` input gives a
``ceil(H / 16) x ceil(W / 16)`` map of 96 channels. Batch-norm layers are
:class:`torchvision.ops.FrozenBatchNorm2d` (fixed statistics and affine terms) and every
parameter has ``requires_grad=False``: the backbone is a fixed feature extractor.

With ``context=True`` (the shipped model) a fifteenth element, :class:`Stride32Context`,
runs MobileNetV2's next three blocks (``features[14:17]``: stride 32, 160 channels, also
ImageNet-trained and frozen) on that map, upsamples their output 2x (nearest) and
concatenates it to the stride-16 map: still **one stride-16 map** of
``96 + 160 = 256`` channels, whose every cell also sees a ~430-pixel
neighbourhood (theoretical receptive field 267 -> 427 px) -- the context a 3x3 head needs
to place the edges of objects larger than its own receptive field. It costs ~13 % of the
backbone's time (the stride-32 map has a quarter of the cells).

Models with a stride-8 anchor level also read the output of ``features[:7]`` (block
:data:`FINE_SPLIT`: stride 8, 32 channels) on the way: the same pass gives both maps.

Input
-----
RGB ``uint8`` ``(H, W, 3)`` (grey ``(H, W)`` and RGBA are accepted), resized by
:func:`rpn_core.rpn.config.input_geometry`, normalised with ImageNet's mean and std, and
zero-padded on the right and bottom to a multiple of the stride (see :mod:`rpn_core.anchors.grid`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.ops import FrozenBatchNorm2d

from rpn_core.rpn.config import RPNConfig, input_geometry

__all__ = [
    "BACKBONE_NAME",
    "CONTEXT_CHANNELS",
    "FEATURE_CHANNELS",
    "FINE_CHANNELS",
    "FINE_SPLIT",
    "Stride32Context",
    "backbone_channels",
    "PreparedImage",
    "build_backbone",
    "fold_frozen_bn",
    "load_imagenet_state",
    "prepare_image",
]

BACKBONE_NAME = "mobilenet_v2.features[:14]"
FEATURE_CHANNELS = 96  # the stride-16 map
FINE_SPLIT = 7  # features[:7] ends at stride 8: the fine level's map
FINE_CHANNELS = 32  # its channels
CONTEXT_CHANNELS = 160  # the stride-32 context map (features[14:17])
NUM_BLOCKS = 14
CONTEXT_BLOCKS = (14, 15, 16)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Stride32Context(nn.Module):
    """``x16 -> cat([x16, up2(blocks(x16))])``: stride-32 context on the stride-16 grid.

    ``blocks`` are MobileNetV2's ``features[14:17]`` (stride 2, then two 160-channel blocks);
    the upsampled map is cropped to ``x16``'s size (an odd side rounds up at stride 32).
    """

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        up = nn.functional.interpolate(self.blocks(x), scale_factor=2.0, mode="nearest")
        return torch.cat([x, up[..., :h, :w]], dim=1)


def backbone_channels(context: bool) -> int:
    """Channels of the backbone's output map (96, or 256 with the stride-32 context)."""
    return FEATURE_CHANNELS + (CONTEXT_CHANNELS if context else 0)


def build_backbone(context: bool = False) -> nn.Sequential:
    """MobileNetV2 ``features[:14]`` (+ :class:`Stride32Context` over ``features[14:17]``
    when ``context``) with frozen batch-norm, randomly initialised.

    State-dict keys are ``"<block>.<...>"`` exactly as in torchvision's
    ``mobilenet_v2().features`` for blocks 0-13 (so ImageNet weights load with a
    ``features.`` prefix stripped) and ``"14.blocks.<j>.<...>"`` for block ``14 + j``; load
    weights before use (:func:`load_imagenet_state`).
    """
    full = mobilenet_v2(weights=None, norm_layer=FrozenBatchNorm2d)
    blocks = list(full.features.children())
    layers = blocks[:NUM_BLOCKS]
    if context:
        layers.append(Stride32Context([blocks[i] for i in CONTEXT_BLOCKS]))
    backbone = nn.Sequential(*layers)
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval()


def load_imagenet_state(backbone: nn.Sequential, state: dict[str, torch.Tensor]) -> None:
    """Load torchvision's ``mobilenet_v2`` ImageNet state dict into the truncated backbone.

    Keys ``features.<i>.*`` for the blocks the backbone has (0-13, and 14-16 as
    ``14.blocks.<i - 14>`` with the context) are taken; the rest (later blocks, classifier)
    are unused. Strict: any missing or mis-shaped key raises ``RuntimeError``.
    """
    prefix = "features."
    context = len(backbone) > NUM_BLOCKS
    picked = {}
    for key, value in state.items():
        if key.startswith(prefix):
            block_str, rest = key[len(prefix) :].split(".", 1)
            block = int(block_str)
            if block < NUM_BLOCKS:
                picked[f"{block}.{rest}"] = value
            elif context and block in CONTEXT_BLOCKS:
                picked[f"{NUM_BLOCKS}.blocks.{block - CONTEXT_BLOCKS[0]}.{rest}"] = value
    backbone.load_state_dict(picked, strict=True)


@dataclass(frozen=True)
class PreparedImage:
    """A normalised, padded ``(1, 3, Hp, Wp)`` tensor and the sizes that map it back.

    ``input_size`` is the resized image ``(H', W')`` before padding; ``scale`` is
    ``(H' / H, W' / W)``: a box in input pixels divided by it is in original pixels.
    """

    tensor: torch.Tensor
    image_size: tuple[int, int]
    input_size: tuple[int, int]
    scale: tuple[float, float]


def _as_rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"image size must be at least 1x1, got {arr.shape[0]}x{arr.shape[1]}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    return np.ascontiguousarray(arr[:, :, :3])


def prepare_image(
    image: np.ndarray, config: RPNConfig, device: torch.device | str = "cpu"
) -> PreparedImage:
    """Resize, normalise and pad one image (module docstring); raises ``ValueError``."""
    rgb = _as_rgb(image)
    h, w = rgb.shape[:2]
    (rh, rw), _ = input_geometry((h, w), config)
    stride = config.anchors.stride
    if (rh, rw) != (h, w):
        shrinking = rh * rw < h * w
        interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, (rw, rh), interpolation=interp)
    ph = -(-rh // stride) * stride
    pw = -(-rw // stride) * stride
    if config.input_square:  # the SSD's square input is not padded (cell-centred anchors)
        ph, pw = rh, rw
    # Normalised in HWC order straight into a channels-last buffer: the convolutions want
    # channels-last anyway, so no NCHW copy is ever made (~2x faster than permuting first).
    scale = torch.tensor([1.0 / (255.0 * s) for s in IMAGENET_STD], device=device)
    pairs = zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)
    shift = torch.tensor([m / s for m, s in pairs], device=device)
    padded = torch.zeros((1, ph, pw, 3), device=device)
    if not rgb.flags.writeable:  # torch warns on read-only arrays (e.g. PIL's, unresized)
        rgb = rgb.copy()
    pixels = torch.from_numpy(rgb).to(device=device)
    torch.addcmul(-shift, pixels, scale, out=padded[0, :rh, :rw])
    padded = padded.permute(0, 3, 1, 2)  # (1, 3, Hp, Wp), channels-last strides
    return PreparedImage(padded, (h, w), (rh, rw), (rh / h, rw / w))


def fold_frozen_bn(backbone: nn.Module) -> nn.Module:
    """An inference copy with every ``Conv2d -> FrozenBatchNorm2d`` pair folded into one conv.

    ``bn(conv(x)) = conv(x) * s + (beta - mean * s)`` with ``s = gamma / sqrt(var + eps)``,
    so the conv's weight is scaled by ``s`` per output channel and gains that bias. Outputs
    equal the original up to float rounding (a test pins it); parameters are not shared.
    """
    fused = copy.deepcopy(backbone)
    for seq in [m for m in fused.modules() if isinstance(m, nn.Sequential)]:
        children = list(seq.children())
        for i in range(len(children) - 1):
            conv, bn = children[i], children[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, FrozenBatchNorm2d):
                scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
                bias = bn.bias - bn.running_mean * scale
                if conv.bias is not None:
                    bias = bias + conv.bias * scale
                conv.weight = nn.Parameter(conv.weight * scale[:, None, None, None], False)
                conv.bias = nn.Parameter(bias, requires_grad=False)
                seq[i + 1] = nn.Identity()
    return fused.eval()
