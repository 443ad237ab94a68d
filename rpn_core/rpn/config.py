"""The RPN's one frozen configuration and its input geometry, importable without torch.

Box convention and shape names: see :mod:`rpn_core.boxes`.

Coordinate frames
-----------------
The network sees the image resized so that its shorter side is ``min_side`` (longer side at
most ``max_side``): the *input frame*. Anchors of :class:`~rpn_core.anchors.grid.AnchorConfig`
are tiled in that frame, exactly as in Faster R-CNN, so an anchor of size 128 covers
``128 / scale`` original pixels. Every box that leaves the model API (anchors, proposals)
is in original-image pixels; :func:`model_anchors` gives the anchors the model really uses,
in original pixels, for an overlay that must draw them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rpn_core.anchors.grid import AnchorConfig, generate_anchors
from rpn_core.anchors.labelling import AnchorLabels, LabelConfig

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "RPNConfig",
    "SelectionConfig",
    "embedded_config",
    "input_geometry",
    "label_in_input_frame",
    "model_anchors",
]



@dataclass(frozen=True, kw_only=True)
class SelectionConfig:
    """How proposals are selected from the RPN's raw output (no backbone rerun needed).

    The ``pre_nms_top_n`` best-scoring boxes with score ``>= score_threshold`` and width and
    height ``>= min_size`` (original pixels) enter NMS at ``nms_iou``; the first ``top_n``
    survivors are the proposals. The one place these defaults live: :class:`RPNConfig`
    stores the same fields (as ``post_nms_top_n`` for ``top_n``) in weights files.
    """

    top_n: int = 300
    pre_nms_top_n: int = 3000
    nms_iou: float = 0.7
    score_threshold: float = 0.0
    min_size: float = 0.0

    def kwargs(self) -> dict:
        """The keywords of :func:`rpn_core.rpn.model.select_proposals`."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class RPNConfig:
    """Everything that defines the RPN apart from its weights (keyword-only).

    ``pre_nms_top_n`` anchors (by score) enter NMS at ``nms_iou``; ``post_nms_top_n`` are
    kept. ``min_size`` (original pixels) drops proposals narrower or lower than it.
    ``head_conv_depth`` is the number of 3x3 convolutions in torchvision's ``RPNHead``.
    ``context``: the backbone adds its stride-32 context to the stride-16 map
    (:class:`rpn_core.rpn.backbone.Stride32Context`; the head then starts with a 1x1
    256 -> 96 reduction). Weights files written before this setting existed have no
    context: :meth:`from_dict` reads a missing ``context`` as ``False``.
    """

    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    pre_nms_top_n: int = SelectionConfig.pre_nms_top_n
    post_nms_top_n: int = SelectionConfig.top_n
    nms_iou: float = SelectionConfig.nms_iou
    min_size: float = SelectionConfig.min_size
    score_threshold: float = SelectionConfig.score_threshold
    min_side: int = 600
    max_side: int = 1000
    head_conv_depth: int = 1
    context: bool = True

    def __post_init__(self) -> None:
        if self.anchors.stride != 16:
            raise ValueError(f"the MobileNetV2 backbone has stride 16, got {self.anchors.stride}")
        if not (self.pre_nms_top_n >= 1 and self.post_nms_top_n >= 1):
            raise ValueError("pre_nms_top_n and post_nms_top_n must be >= 1")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        if not (math.isfinite(self.min_size) and self.min_size >= 0):
            raise ValueError(f"min_size must be >= 0, got {self.min_size}")
        if not 1 <= self.min_side <= self.max_side:
            raise ValueError(f"need 1 <= min_side <= max_side: {self.min_side}, {self.max_side}")
        if self.head_conv_depth < 1:
            raise ValueError(f"head_conv_depth must be >= 1, got {self.head_conv_depth}")

    @property
    def selection(self) -> SelectionConfig:
        """This model's own proposal selection."""
        return SelectionConfig(
            top_n=self.post_nms_top_n,
            pre_nms_top_n=self.pre_nms_top_n,
            nms_iou=self.nms_iou,
            score_threshold=self.score_threshold,
            min_size=self.min_size,
        )

    def to_dict(self) -> dict:
        """A JSON-ready dict (stored beside the weights)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["anchors"] = self.anchors.to_dict()
        out["labels"] = self.labels.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> RPNConfig:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on unknown or bad fields."""
        if not isinstance(data, dict):
            raise ValueError("RPN configuration must be a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown RPN settings: {sorted(unknown)}")
        fields = dict(data)
        fields.setdefault("context", False)  # files from before the context setting
        if not isinstance(fields["context"], bool):
            raise ValueError(f"context must be true or false, got {fields['context']!r}")
        if "anchors" in fields:
            fields["anchors"] = AnchorConfig.from_dict(fields["anchors"])
        if "labels" in fields:
            fields["labels"] = LabelConfig.from_dict(fields["labels"])
        try:
            return cls(**fields)
        except TypeError as exc:
            raise ValueError(f"bad RPN settings: {exc}") from exc


def embedded_config(sidecar_path: str | Path) -> RPNConfig:
    """The embedded RPN's configuration, read from its JSON sidecar (no torch needed): the
    anchors and label rule the anchor lab starts from, so the overlay draws the anchors the
    shipped model uses. ``RPNConfig()`` when the sidecar is missing or unreadable (the
    model itself then fails to load with the reason)."""
    import json

    try:
        side = json.loads(Path(sidecar_path).read_text(encoding="utf-8"))
        return RPNConfig.from_dict(side["config"])
    except (OSError, ValueError, KeyError, TypeError):
        return RPNConfig()


def input_geometry(
    image_size: tuple[int, int], config: RPNConfig
) -> tuple[tuple[int, int], tuple[float, float]]:
    """``((H', W'), (sy, sx))``: the network-input size and ``H'/H``, ``W'/W``.

    Shorter side ``min_side`` unless the longer would exceed ``max_side``; each side at
    least 1 pixel (a 1 x 5000 strip becomes 1 x 1000).
    """
    h, w = image_size
    if h < 1 or w < 1:
        raise ValueError(f"image size must be at least 1x1, got {h}x{w}")
    scale = min(config.min_side / min(h, w), config.max_side / max(h, w))
    rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
    return (rh, rw), (rh / h, rw / w)


def model_anchors(image_size: tuple[int, int], config: RPNConfig) -> torch.Tensor:
    """The model's ``(T, 4)`` anchors for an ``(H, W)`` image, in original pixels.

    ``generate_anchors`` over the input frame, divided by the input scale: the same
    anchors, in the same order, as :meth:`rpn_core.rpn.model.RPNModel.raw_proposals` returns.
    """
    import torch

    (rh, rw), (sy, sx) = input_geometry(image_size, config)
    anchors = generate_anchors((rh, rw), config.anchors)
    return anchors / torch.tensor([sx, sy, sx, sy], dtype=anchors.dtype)


def label_in_input_frame(
    image_size: tuple[int, int],
    gt_boxes: object,
    anchor_config: AnchorConfig,
    label_config: LabelConfig | str = "faster-rcnn",
    config: RPNConfig | None = None,
) -> AnchorLabels:
    """Anchor labels exactly as the model's training sees them, for an ``(H, W)`` image.

    The model resizes every image to its input frame (:func:`input_geometry`; only
    ``config``'s ``min_side``/``max_side`` are used, defaults when ``None``) and labels the
    anchors there against the GT boxes scaled by the same factors. The overlay therefore
    labels in that frame too and draws the anchors divided by the scale
    (:func:`model_anchors`): what it shows is what the loss uses, in original pixels.
    ``gt_boxes`` are in original pixels (:mod:`rpn_core.boxes`).
    """
    import numpy as np

    from rpn_core.anchors.labelling import label_image

    (rh, rw), (sy, sx) = input_geometry(image_size, config or RPNConfig())
    gt = np.asarray(gt_boxes, dtype=np.float32).reshape(-1, 4)
    scaled = gt * np.array([sx, sy, sx, sy], dtype=np.float32)
    return label_image((rh, rw), anchor_config, scaled, label_config)
