"""Anchor labelling: which anchors are foreground, background or ignored for the RPN loss.

Box convention and shape names (``T`` anchors, ``G`` GT boxes): see :mod:`rpn_core.boxes`.

Rules (Ren et al. 2015, and the reference guide)
------------------------------------------------
Each anchor takes its best IoU over the GT boxes (``max_iou``) and that box (``matched_gt``).

* foreground (1): ``max_iou >= fg_iou`` (or ``> fg_iou`` when ``fg_inclusive`` is false);
* background (0): ``max_iou < bg_iou``;
* ignored (-1): in between -- these anchors do not enter the loss.

With ``allow_low_quality`` (Faster R-CNN), every anchor whose IoU with some GT box equals
that box's best IoU over all anchors (ties included) becomes foreground too, matched to
*its own* best GT box; such anchors are flagged ``low_quality``. This equals
``torchvision.models.detection._utils.Matcher(0.7, 0.3, allow_low_quality_matches=True)``
with one deliberate difference: a GT box that overlaps no anchor at all (best IoU 0, e.g. a
box outside the image) creates no low-quality matches, where torchvision would turn every
zero-IoU anchor into a positive.

With ``ignore_cross_boundary`` (the paper's training rule) anchors reaching outside the
image are ignored, and best-anchor-per-GT is searched among the inside anchors only.

Speed
-----
:func:`anchor_grid_iou` computes the ``(T, G)`` IoU of a tiled anchor grid separably:
x-overlaps ``(Wf, A, G)`` times y-overlaps ``(Hf, A, G)``, with the same float operations as
``torchvision.ops.box_iou`` so the values are bit-for-bit equal (a test pins it) at a
fraction of the cost. :func:`label_image` wires the two together for the overlay and model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from rpn_core.anchors.grid import AnchorConfig, base_anchors_numpy, cell_centres
from rpn_core.boxes import invalid_box_indices

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "AnchorLabels",
    "LabelConfig",
    "anchor_grid_iou",
    "anchor_grid_cross_boundary",
    "label_anchors",
    "label_image",
    "sample_minibatch",
]

PresetName = Literal["guide", "faster-rcnn"]


@dataclass(frozen=True)
class LabelConfig:
    """Thresholds and sampling for anchor labels; the defaults are Faster R-CNN's."""

    fg_iou: float = 0.7
    bg_iou: float = 0.3
    fg_inclusive: bool = True
    allow_low_quality: bool = True
    ignore_cross_boundary: bool = False
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.bg_iou <= self.fg_iou <= 1.0:
            raise ValueError(
                f"need 0 <= bg_iou <= fg_iou <= 1, got bg_iou={self.bg_iou}, fg_iou={self.fg_iou}"
            )
        if self.batch_size_per_image < 1:
            raise ValueError(f"batch_size_per_image must be >= 1, got {self.batch_size_per_image}")
        if not 0.0 <= self.positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction must be in [0, 1], got {self.positive_fraction}")

    @classmethod
    def guide(cls, **overrides: object) -> LabelConfig:
        """The reference guide's rule: foreground IoU > 0.5, background IoU < 0.1."""
        fields = {"fg_iou": 0.5, "bg_iou": 0.1, "fg_inclusive": False, "allow_low_quality": False}
        return cls(**{**fields, **overrides})

    @classmethod
    def faster_rcnn(cls, **overrides: object) -> LabelConfig:
        """Faster R-CNN's rule: IoU >= 0.7 or best anchor of a GT box; background < 0.3."""
        return cls(**overrides)

    @classmethod
    def preset(cls, name: PresetName) -> LabelConfig:
        if name == "guide":
            return cls.guide()
        if name == "faster-rcnn":
            return cls.faster_rcnn()
        raise ValueError(f"unknown preset {name!r}; choose 'guide' or 'faster-rcnn'")

    @property
    def preset_name(self) -> str:
        """``"guide"``, ``"faster-rcnn"`` or ``"custom"``."""
        for name in ("guide", "faster-rcnn"):
            if self == LabelConfig.preset(name):
                return name
        return "custom"

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict) -> LabelConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown label settings: {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class AnchorLabels:
    """Result of :func:`label_anchors`; tensors on the anchors' device.

    Per anchor ``(T,)``: ``labels`` int8 {-1 ignored, 0 background, 1 foreground};
    ``matched_gt`` int64 index of the best GT box (-1 when there are no GT boxes);
    ``max_iou`` that IoU; ``low_quality`` bool, foreground only by the best-anchor rule;
    ``cross_boundary`` bool, ignored by the cross-boundary rule.
    Per GT box ``(G,)``: ``gt_best_iou``, ``gt_best_anchor`` (one index, -1 if none) and
    ``gt_num_positive`` (foreground anchors matched to it). A GT box with
    ``gt_num_positive == 0`` cannot be learned by this anchor set.
    """

    labels: torch.Tensor
    matched_gt: torch.Tensor
    max_iou: torch.Tensor
    low_quality: torch.Tensor
    cross_boundary: torch.Tensor
    gt_best_iou: torch.Tensor
    gt_best_anchor: torch.Tensor
    gt_num_positive: torch.Tensor

    def counts(self) -> dict[str, int]:
        """Anchors per label: ``{"foreground", "background", "ignored", "low_quality"}``."""
        return {
            "foreground": int((self.labels == 1).sum()),
            "background": int((self.labels == 0).sum()),
            "ignored": int((self.labels == -1).sum()),
            "low_quality": int(self.low_quality.sum()),
        }


def _check_gt(gt_boxes: torch.Tensor) -> None:
    if gt_boxes.ndim != 2 or gt_boxes.shape[1] != 4:
        raise ValueError(f"GT boxes must have shape (G, 4), got {tuple(gt_boxes.shape)}")
    bad = invalid_box_indices(gt_boxes)
    if bad:
        i = bad[0]
        coords = ", ".join(f"{v:g}" for v in gt_boxes[i].tolist())
        raise ValueError(
            f"GT box {i} ({coords}) has zero or negative area or is not finite"
            + (f" ({len(bad) - 1} more)" if len(bad) > 1 else "")
        )


def _as_tensor(x: object, like: torch.Tensor | None = None) -> torch.Tensor:
    import torch

    t = torch.as_tensor(x)
    if like is not None:
        t = t.to(device=like.device)
    if not t.is_floating_point():
        t = t.float()
    return t.reshape(-1, 4) if t.numel() == 0 else t


def _grid_extents(
    image_size: tuple[int, int], anchor_config: AnchorConfig, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Anchor x-extents per column ``(Wf, A)``, y-extents per row ``(Hf, A)``, base anchors
    ``(A, 4)``, in numpy: these arrays are small, and numpy's per-op cost is a fifth of
    torch's. The values equal :func:`generate_anchors`' exactly (integers times the stride
    plus the same rounded base anchors)."""
    base = base_anchors_numpy(anchor_config, dtype)
    ys, xs = cell_centres(image_size, anchor_config, dtype)
    xs, ys = xs[:, None], ys[:, None]
    return xs + base[:, 0], xs + base[:, 2], ys + base[:, 1], ys + base[:, 3], base


def anchor_grid_iou(
    image_size: tuple[int, int], anchor_config: AnchorConfig, gt_boxes: torch.Tensor
) -> torch.Tensor:
    """IoU ``(T, G)`` of ``generate_anchors(image_size, anchor_config)`` with ``gt_boxes``.

    Equal to ``torchvision.ops.box_iou(anchors, gt_boxes)`` bit for bit (to float rounding
    on a cell-centred grid, whose centres are fractional), in the dtype of
    ``gt_boxes`` (float32 unless given float64) and on its device, computed separably
    (module docstring): the per-axis overlaps ``(G, Wf, A)`` and ``(G, Hf, A)`` in numpy, the
    ``(G, T)`` products in torch. The result is a transposed view of that GT-major tensor.
    """
    import torch

    if anchor_config.size_strides:  # levels: each level separably, GT-major, then joined
        parts = [anchor_grid_iou(image_size, lv, gt_boxes).T for lv in anchor_config.levels]
        return torch.cat(parts, dim=1).T
    gt = _as_tensor(gt_boxes)
    g = gt.detach().cpu().numpy()
    ax1, ax2, ay1, ay2, base = _grid_extents(image_size, anchor_config, g.dtype)
    gx1, gy1, gx2, gy2 = (g[:, i, None, None] for i in range(4))  # (G, 1, 1)
    ix = np.maximum(np.minimum(ax2, gx2) - np.maximum(ax1, gx1), 0)  # (G, Wf, A)
    iy = np.maximum(np.minimum(ay2, gy2) - np.maximum(ay1, gy1), 0)  # (G, Hf, A)
    area_a = (base[:, 2] - base[:, 0]) * (base[:, 3] - base[:, 1])  # (A,)
    area_g = (gx2 - gx1) * (gy2 - gy1)  # (G, 1, 1)
    ix_t, iy_t, areas = (
        torch.from_numpy(np.ascontiguousarray(a)).to(gt.device) for a in (ix, iy, area_a + area_g)
    )
    # (G, Hf, Wf, A): GT-major so that reductions over G run along contiguous rows.
    inter = ix_t[:, None, :, :] * iy_t[:, :, None, :]  # == wh[..., 0] * wh[..., 1]
    union = torch.sub(areas[:, None, :, :], inter)
    iou = torch.div(inter, union, out=union)
    return iou.reshape(gt.shape[0], ix.shape[1] * iy.shape[1] * base.shape[0]).T


def anchor_grid_cross_boundary(
    image_size: tuple[int, int], anchor_config: AnchorConfig
) -> torch.Tensor:
    """``(T,)`` bool: the grid anchor reaches outside ``[0, W] x [0, H]`` (separably)."""
    import torch

    if anchor_config.size_strides:
        return torch.cat(
            [anchor_grid_cross_boundary(image_size, lv) for lv in anchor_config.levels]
        )
    ax1, ax2, ay1, ay2, _ = _grid_extents(image_size, anchor_config, np.dtype(np.float32))
    h, w = image_size
    x_out = (ax1 < 0) | (ax2 > w)  # (Wf, A)
    y_out = (ay1 < 0) | (ay2 > h)  # (Hf, A)
    return torch.from_numpy((y_out[:, None, :] | x_out[None, :, :]).reshape(-1))


def _cross_boundary(anchors: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    h, w = image_size
    return (anchors[:, 0] < 0) | (anchors[:, 1] < 0) | (anchors[:, 2] > w) | (anchors[:, 3] > h)


def _match(q: torch.Tensor, config: LabelConfig, cross: torch.Tensor | None) -> AnchorLabels:
    """The labelling rules on a GT-major IoU matrix ``q (G, T)``; ``cross`` may be None."""
    import torch

    g, n = q.shape
    device = q.device
    no_cross = cross is None
    if cross is None:
        cross = torch.zeros(n, dtype=torch.bool, device=device)
    if g == 0:
        labels = torch.zeros(n, dtype=torch.int8, device=device)
        labels[cross] = -1
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return AnchorLabels(
            labels=labels,
            matched_gt=torch.full((n,), -1, dtype=torch.int64, device=device),
            max_iou=torch.zeros(n, dtype=q.dtype, device=device),
            low_quality=torch.zeros(n, dtype=torch.bool, device=device),
            cross_boundary=cross,
            gt_best_iou=torch.zeros(0, dtype=q.dtype, device=device),
            gt_best_anchor=empty,
            gt_num_positive=empty,
        )

    max_iou, matched = q.max(dim=0)
    fg = max_iou >= config.fg_iou if config.fg_inclusive else max_iou > config.fg_iou
    # 2*fg - 1 + bg gives 1 / -1 / 0 (fg_iou >= bg_iou, so fg and bg never both hold);
    # arithmetic on int8 masks is several times cheaper than masked assignment here.
    labels = fg.to(torch.int8) * 2 - 1 + (max_iou < config.bg_iou).to(torch.int8)

    # Best anchor of each GT box, among the anchors that may take part.
    eligible = q if no_cross else q.masked_fill(cross[None, :], -1.0)
    gt_best_iou, gt_best_anchor = eligible.max(dim=1)
    gt_best_iou = gt_best_iou.clamp(min=0)
    low_quality = torch.zeros(n, dtype=torch.bool, device=device)
    if config.allow_low_quality:
        # A GT box with best IoU 0 gets an unreachable target (2 > any IoU): no matches.
        target = torch.where(gt_best_iou > 0, gt_best_iou, 2.0)
        if g <= 4:
            low_quality = (eligible == target[:, None]).any(dim=0)
        else:
            # Only anchors whose own best IoU reaches the smallest target can equal a
            # target; testing those columns alone avoids passes over the whole matrix.
            cols = torch.nonzero(max_iou >= target.min()).flatten()
            hit = (eligible[:, cols] == target[:, None]).any(dim=0)
            low_quality[cols[hit]] = True
        low_quality &= ~fg
        labels = torch.where(low_quality, 1, labels).to(torch.int8)
    if not no_cross:
        labels = torch.where(cross, -1, labels).to(torch.int8)
        low_quality &= ~cross
    return AnchorLabels(
        labels=labels,
        matched_gt=matched,
        max_iou=max_iou,
        low_quality=low_quality,
        cross_boundary=cross,
        gt_best_iou=gt_best_iou,
        gt_best_anchor=torch.where(gt_best_iou > 0, gt_best_anchor, -1),
        gt_num_positive=torch.bincount(matched[labels == 1], minlength=g),
    )


def _config(preset: LabelConfig | PresetName) -> LabelConfig:
    return LabelConfig.preset(preset) if isinstance(preset, str) else preset


def label_anchors(
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    preset: LabelConfig | PresetName = "faster-rcnn",
    *,
    image_size: tuple[int, int] | None = None,
    iou: torch.Tensor | None = None,
) -> AnchorLabels:
    """Label ``anchors (T, 4)`` against ``gt_boxes (G, 4)``; rules in the module docstring.

    ``image_size (H, W)`` is needed for ``ignore_cross_boundary``. ``iou (T, G)`` may be
    passed when already computed (e.g. by :func:`anchor_grid_iou`); otherwise it is
    ``torchvision.ops.box_iou(anchors, gt_boxes)``. Raises ``ValueError`` naming the first
    zero-area, inverted or non-finite GT box.
    """
    import torch
    from torchvision.ops import box_iou

    config = _config(preset)
    anchors = _as_tensor(anchors)
    gt = _as_tensor(gt_boxes, like=anchors)
    _check_gt(gt)
    n, g = anchors.shape[0], gt.shape[0]
    cross = None
    if config.ignore_cross_boundary:
        if image_size is None:
            raise ValueError("ignore_cross_boundary needs the image size")
        cross = _cross_boundary(anchors, image_size)
    if iou is not None:
        if tuple(iou.shape) != (n, g):
            raise ValueError(f"iou must have shape ({n}, {g}), got {tuple(iou.shape)}")
        q = iou.T
    elif g:
        common = torch.promote_types(anchors.dtype, gt.dtype)
        q = box_iou(gt.to(common), anchors.to(common))
    else:
        q = anchors.new_zeros((0, n))
    return _match(q, config, cross)


def label_image(
    image_size: tuple[int, int],
    anchor_config: AnchorConfig,
    gt_boxes: torch.Tensor,
    label_config: LabelConfig | PresetName = "faster-rcnn",
) -> AnchorLabels:
    """Labels of ``generate_anchors(image_size, anchor_config)`` -- the overlay's and model's
    path: equal to :func:`label_anchors` on those anchors, without materialising them."""
    config = _config(label_config)
    gt = _as_tensor(gt_boxes)
    _check_gt(gt)
    q = anchor_grid_iou(image_size, anchor_config, gt).T
    cross = None
    if config.ignore_cross_boundary:
        cross = anchor_grid_cross_boundary(image_size, anchor_config).to(gt.device)
    return _match(q, config, cross)


def sample_minibatch(
    labels: torch.Tensor,
    *,
    batch_size: int = 256,
    positive_fraction: float = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick up to ``batch_size`` anchors for the loss: ``(positive_idx, negative_idx)``.

    At most ``int(batch_size * positive_fraction)`` positives; negatives fill the rest (as in
    torchvision's ``BalancedPositiveNegativeSampler``). Randomness comes only from
    ``generator`` (on the CPU), so a seeded generator gives a repeatable batch.
    """
    import torch

    positive = torch.nonzero(labels == 1).flatten()
    negative = torch.nonzero(labels == 0).flatten()
    num_pos = min(positive.numel(), int(batch_size * positive_fraction))
    num_neg = min(negative.numel(), batch_size - num_pos)
    perm_pos = torch.randperm(positive.numel(), generator=generator)[:num_pos]
    perm_neg = torch.randperm(negative.numel(), generator=generator)[:num_neg]
    return positive[perm_pos.to(positive.device)], negative[perm_neg.to(negative.device)]
