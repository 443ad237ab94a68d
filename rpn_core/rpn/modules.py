"""The torch modules the RPN is assembled from, each torchvision's interface over our code.

* :class:`ConfigAnchorGenerator`: torchvision's ``AnchorGenerator`` interface over
  :func:`rpn_core.anchors.grid.generate_anchors` (the overlay's function and config);
* :class:`ContextRPNHead`: torchvision's ``RPNHead`` after a 1x1 reduction, for the backbone
  with the stride-32 context (:class:`rpn_core.rpn.backbone.Stride32Context`);
* :class:`LabelledRPN`: torchvision's ``RegionProposalNetwork`` whose training targets come
  from :func:`rpn_core.anchors.labelling.label_anchors` and whose minibatch comes from
  :func:`rpn_core.anchors.labelling.sample_minibatch` with a caller's ``torch.Generator``
  (its loss: :mod:`rpn_core.rpn.loss`).

Imported lazily (torch at module top), by :mod:`rpn_core.rpn.model`.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

from rpn_core.anchors.grid import AnchorConfig, feature_size, generate_anchors
from rpn_core.anchors.labelling import LabelConfig, label_anchors, sample_minibatch
from rpn_core.rpn.config import RPNConfig

__all__ = ["ConfigAnchorGenerator", "ContextRPNHead", "LabelledRPN", "LevelHeads", "PredictorHead"]


class ConfigAnchorGenerator(nn.Module):
    """torchvision's ``AnchorGenerator`` interface over :func:`generate_anchors`.

    ``forward(image_list, feature_maps)`` returns one ``(T, 4)`` tensor per image, in the
    padded input's pixels; the padded size is a multiple of the coarsest stride (module
    docstring of :mod:`rpn_core.anchors.grid`), so each level's grid equals its feature map
    (``feature_maps``: one per level, in ascending stride).
    """

    def __init__(self, config: AnchorConfig) -> None:
        super().__init__()
        self.config = config

    def num_anchors_per_location(self) -> list[int]:
        return [lv.num_anchors_per_location for lv in self.config.levels]

    def forward(
        self, image_list: ImageList, feature_maps: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        levels = self.config.levels
        if len(feature_maps) != len(levels):
            raise ValueError(f"{len(feature_maps)} feature maps for {len(levels)} anchor levels")
        padded = tuple(image_list.tensors.shape[-2:])
        for level, fmap in zip(levels, feature_maps, strict=True):
            grid = feature_size(padded, level)
            if grid != tuple(fmap.shape[-2:]):
                raise ValueError(
                    f"feature map {tuple(fmap.shape[-2:])} != stride-{level.stride} anchor "
                    f"grid {grid}"
                )
        fmap = feature_maps[0]
        anchors = generate_anchors(padded, self.config, dtype=fmap.dtype, device=fmap.device)
        return [anchors for _ in range(image_list.tensors.shape[0])]


class ContextRPNHead(RPNHead):
    """torchvision's ``RPNHead`` on ``mid_channels``, after a 1x1 ``in -> mid`` reduction.

    For the context backbone (256 channels: the stride-16 map, then the upsampled stride-32
    map). The reduction starts as the identity on the first ``mid_channels`` inputs and
    ~0 on the rest, so a fresh head behaves like the plain head on the stride-16 map and
    learns how much context to use (and a plain head's weights can warm-start it).
    """

    def __init__(
        self, in_channels: int, mid_channels: int, num_anchors: int, conv_depth: int = 1
    ) -> None:
        super().__init__(mid_channels, num_anchors, conv_depth=conv_depth)
        self.reduce = nn.Conv2d(in_channels, mid_channels, kernel_size=1)
        with torch.no_grad():
            nn.init.normal_(self.reduce.weight, std=0.01)
            eye = torch.eye(mid_channels, min(in_channels, mid_channels))
            self.reduce.weight[:, : eye.shape[1], 0, 0] = eye
            nn.init.zeros_(self.reduce.bias)

    def forward(self, x: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return super().forward([self.reduce(f) for f in x])


class PredictorHead(nn.Module):
    """One SSD box predictor as an RPN head: a 3x3 convolution for ``A`` objectness logits
    and one for ``4A`` box deltas, straight on the feature map (no hidden convolution).

    ``forward([x]) -> ([logits (B, A, H, W)], [deltas (B, 4A, H, W)])``: torchvision's
    ``RPNHead`` interface and channel layout (anchor-major, then ``dx, dy, dw, dh``).
    """

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 3, padding=1)
        self.bbox_pred = nn.Conv2d(in_channels, 4 * num_anchors, 3, padding=1)
        for layer in (self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, x: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return [self.cls_logits(f) for f in x], [self.bbox_pred(f) for f in x]


class LevelHeads(nn.Module):
    """One head per anchor level (their channels differ): ``forward(maps)`` applies head
    ``i`` to map ``i`` and returns torchvision's ``(logits, deltas)`` lists."""

    def __init__(self, heads: list[nn.Module]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, x: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, deltas = [], []
        for head, fmap in zip(self.heads, x, strict=True):
            obj, reg = head([fmap])
            logits += obj
            deltas += reg
        return logits, deltas


class _GeneratorSampler:
    """torchvision's ``fg_bg_sampler`` interface over :func:`sample_minibatch`."""

    def __init__(self, config: LabelConfig) -> None:
        self.config = config
        self.generator: torch.Generator | None = None

    def __call__(self, labels: list[torch.Tensor]) -> tuple[list, list]:
        pos_masks, neg_masks = [], []
        for lab in labels:
            pos, neg = sample_minibatch(
                lab,
                batch_size=self.config.batch_size_per_image,
                positive_fraction=self.config.positive_fraction,
                generator=self.generator,
            )
            pos_mask = torch.zeros_like(lab, dtype=torch.uint8)
            neg_mask = torch.zeros_like(lab, dtype=torch.uint8)
            pos_mask[pos] = 1
            neg_mask[neg] = 1
            pos_masks.append(pos_mask)
            neg_masks.append(neg_mask)
        return pos_masks, neg_masks


class LabelledRPN(RegionProposalNetwork):
    """``RegionProposalNetwork`` whose targets are :func:`label_anchors`' labels.

    Each target dict holds ``"boxes"`` (input frame) and ``"image_size"`` ``(H', W')``
    (used by the cross-boundary rule). Labels are float ``1 / 0 / -1`` as torchvision's
    ``compute_loss`` expects.
    """

    def __init__(self, config: RPNConfig, anchor_generator: nn.Module, head: RPNHead) -> None:
        lab = config.labels
        super().__init__(
            anchor_generator,
            head,
            fg_iou_thresh=lab.fg_iou,
            bg_iou_thresh=lab.bg_iou,
            batch_size_per_image=lab.batch_size_per_image,
            positive_fraction=lab.positive_fraction,
            pre_nms_top_n={"training": config.pre_nms_top_n, "testing": config.pre_nms_top_n},
            post_nms_top_n={"training": config.post_nms_top_n, "testing": config.post_nms_top_n},
            nms_thresh=config.nms_iou,
        )
        self.label_config = lab
        self.fg_bg_sampler = _GeneratorSampler(lab)

    def assign_targets_to_anchors(
        self, anchors: list[torch.Tensor], targets: list[dict]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        labels, matched_boxes = [], []
        for anchors_i, target in zip(anchors, targets, strict=True):
            gt = target["boxes"].to(anchors_i)
            size = tuple(int(s) for s in target["image_size"])
            result = label_anchors(anchors_i, gt, self.label_config, image_size=size)
            labels.append(result.labels.to(torch.float32))
            if gt.shape[0]:
                matched_boxes.append(gt[result.matched_gt.clamp(min=0)])
            else:
                matched_boxes.append(torch.zeros_like(anchors_i))
        return labels, matched_boxes
