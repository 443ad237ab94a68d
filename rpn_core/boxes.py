"""The one box convention of RPN Studio, written once.

Convention
----------
A box set is a float array or tensor of shape ``(N, 4)`` holding ``(x1, y1, x2, y2)`` in
0-based, continuous pixel coordinates of the **EXIF-upright original image**: the image's
top-left corner is ``(0, 0)`` and its bottom-right corner is ``(W, H)``. A box's width is
``x2 - x1`` (no ``+ 1``). Aspect ratio is ``h / w`` (torchvision's convention), so ratio
``0.5`` is a wide box and ``2.0`` a tall one.

Conversions to file conventions (VOC's 1-based corners, YOLO's normalised centres, COCO's
``(x, y, w, h)``) live only in :mod:`rpn_core.annotation.formats`.

Shape glossary (used by every docstring in :mod:`rpn_core`)
----------------------------------------------------------
``N``       number of boxes (GT boxes are ``G``, proposals ``P``)
``A``       anchors per feature-map location (``len(sizes) * len(ratios)``)
``H x W``   image height and width in pixels; ``Hf x Wf`` the feature grid
``stride``  image pixels per feature-map cell (16 for the original RPN)
``T``       total anchors, ``Hf * Wf * A``

Functions take numpy arrays or torch tensors; results keep the input's type, dtype and
device. IoU is computed by :func:`torchvision.ops.box_iou` (a test pins our numpy fallback
to it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

BoxArray = TypeVar("BoxArray", np.ndarray, "torch.Tensor")

__all__ = [
    "as_boxes",
    "box_area",
    "box_iou",
    "clip_boxes",
    "cxcywh_to_xyxy",
    "invalid_box_indices",
    "is_valid",
    "xywh_to_xyxy",
    "xyxy_to_cxcywh",
    "xyxy_to_xywh",
]


def _is_tensor(x: object) -> bool:
    # Checking the class name avoids importing torch (3-4 s) just to test a type.
    return type(x).__module__.startswith("torch")


def _stack(cols: list, like: BoxArray) -> BoxArray:
    if _is_tensor(like):
        import torch

        return torch.stack(cols, dim=-1)
    return np.stack(cols, axis=-1)


def as_boxes(boxes: object, dtype: type = np.float64) -> np.ndarray:
    """Return ``boxes`` as a float ``(N, 4)`` numpy array (an empty input gives ``(0, 4)``).

    Raises ``ValueError`` if the input cannot be viewed as ``N`` rows of four numbers.
    """
    arr = np.asarray(boxes, dtype=dtype)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {arr.shape}")
    return arr


def xyxy_to_xywh(boxes: BoxArray) -> BoxArray:
    """``(x1, y1, x2, y2)`` -> ``(x1, y1, w, h)`` (COCO's layout)."""
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    return _stack([x1, y1, x2 - x1, y2 - y1], boxes)


def xywh_to_xyxy(boxes: BoxArray) -> BoxArray:
    """``(x1, y1, w, h)`` -> ``(x1, y1, x2, y2)``."""
    x, y, w, h = (boxes[..., i] for i in range(4))
    return _stack([x, y, x + w, y + h], boxes)


def xyxy_to_cxcywh(boxes: BoxArray) -> BoxArray:
    """``(x1, y1, x2, y2)`` -> ``(cx, cy, w, h)`` (YOLO's layout before normalising)."""
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    return _stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], boxes)


def cxcywh_to_xyxy(boxes: BoxArray) -> BoxArray:
    """``(cx, cy, w, h)`` -> ``(x1, y1, x2, y2)``."""
    cx, cy, w, h = (boxes[..., i] for i in range(4))
    return _stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], boxes)


def box_area(boxes: BoxArray) -> BoxArray:
    """Area ``w * h`` of each box, ``(N,)``. Inverted boxes give a negative or zero area."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def clip_boxes(boxes: BoxArray, image_size: tuple[int, int]) -> BoxArray:
    """Clip boxes to the image ``(H, W)``: every coordinate ends up in ``[0, W]`` / ``[0, H]``."""
    h, w = image_size
    if _is_tensor(boxes):
        out = boxes.clone()
        out[..., 0::2] = out[..., 0::2].clamp(0, w)
        out[..., 1::2] = out[..., 1::2].clamp(0, h)
        return out
    out = np.array(boxes, copy=True)
    out[..., 0::2] = np.clip(out[..., 0::2], 0, w)
    out[..., 1::2] = np.clip(out[..., 1::2], 0, h)
    return out


def invalid_box_indices(boxes: BoxArray, min_size: float = 0.0) -> list[int]:
    """Indices of boxes that are not finite or whose width or height is ``<= min_size``."""
    arr = np.asarray(boxes.detach().cpu() if _is_tensor(boxes) else boxes, dtype=np.float64)
    arr = arr.reshape(-1, 4)
    finite = np.isfinite(arr).all(axis=1)
    with np.errstate(invalid="ignore"):
        big_enough = ((arr[:, 2] - arr[:, 0]) > min_size) & ((arr[:, 3] - arr[:, 1]) > min_size)
    return np.flatnonzero(~(finite & big_enough)).tolist()


def is_valid(boxes: BoxArray, min_size: float = 0.0) -> bool:
    """True when every box is finite with positive width and height (``> min_size``)."""
    return not invalid_box_indices(boxes, min_size)


def box_iou(a: BoxArray, b: BoxArray) -> BoxArray:
    """Pairwise IoU, ``(N, 4) x (M, 4) -> (N, M)``.

    Tensors go to :func:`torchvision.ops.box_iou`; numpy arrays are computed in numpy with
    the same formula (``inter / (area_a + area_b - inter)``), which a test pins to
    torchvision's result.
    """
    if _is_tensor(a):
        from torchvision.ops import box_iou as tv_box_iou

        return tv_box_iou(a, b)
    a = np.asarray(a)
    b = np.asarray(b)
    area_a = box_area(a)
    area_b = box_area(b)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_a[:, None] + area_b[None, :] - inter)
