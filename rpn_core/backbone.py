"""The RPN's backbone and input pipeline: MobileNetV2 to stride 16, frozen, plus resizing.

Imported lazily (it imports torch at module top): only :mod:`rpn_core.model` imports it.
Box convention: see :mod:`rpn_core.boxes`.

Backbone
--------
torchvision's MobileNetV2 ``features[:14]`` (the inverted-residual blocks up to the 96-channel
stage): four stride-2 convolutions with padding 1, so an ``H x W`` input gives a
``ceil(H / 16) x ceil(W / 16)`` map of 96 channels. Batch-norm layers are
:class:`torchvision.ops.FrozenBatchNorm2d` (fixed statistics and affine terms) and every
parameter has ``requires_grad=False``: the backbone is a fixed feature extractor.

Input
-----
RGB ``uint8`` ``(H, W, 3)`` (grey ``(H, W)`` and RGBA are accepted), resized by
:func:`rpn_core.rpn_config.input_geometry`, normalised with ImageNet's mean and std, and
zero-padded on the right and bottom to a multiple of the stride (see :mod:`rpn_core.anchors`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.ops import FrozenBatchNorm2d

from rpn_core.rpn_config import RPNConfig, input_geometry

__all__ = [
    "BACKBONE_NAME",
    "FEATURE_CHANNELS",
    "PreparedImage",
    "build_backbone",
    "fold_frozen_bn",
    "load_imagenet_state",
    "prepare_image",
]

BACKBONE_NAME = "mobilenet_v2.features[:14]"
FEATURE_CHANNELS = 96
NUM_BLOCKS = 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_backbone() -> nn.Sequential:
    """MobileNetV2 ``features[:14]`` with frozen batch-norm, randomly initialised.

    State-dict keys are ``"<block>.<...>"`` exactly as in torchvision's
    ``mobilenet_v2().features`` (so ImageNet weights load with a ``features.`` prefix
    stripped); load weights before use.
    """
    full = mobilenet_v2(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = nn.Sequential(*list(full.features.children())[:NUM_BLOCKS])
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval()


def load_imagenet_state(backbone: nn.Sequential, state: dict[str, torch.Tensor]) -> None:
    """Load torchvision's ``mobilenet_v2`` ImageNet state dict into the truncated backbone.

    Keys ``features.<i>.*`` with ``i < 14`` are taken; the rest (later blocks, classifier)
    are unused. Strict: any missing or mis-shaped key raises ``RuntimeError``.
    """
    prefix = "features."
    picked = {}
    for key, value in state.items():
        if key.startswith(prefix):
            block = int(key[len(prefix) :].split(".", 1)[0])
            if block < NUM_BLOCKS:
                picked[key[len(prefix) :]] = value
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
    x = torch.from_numpy(rgb).to(device=device).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=x.device)[:, None, None]
    x = (x - mean) / std
    padded = x.new_zeros((1, 3, ph, pw))
    padded[0, :, :rh, :rw] = x
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
