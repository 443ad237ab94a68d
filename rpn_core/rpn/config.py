"""The RPN's one frozen configuration and its input geometry, importable without torch.
Reading one from untrusted data (a weights file): :mod:`rpn_core.rpn.config_checks`.

Box convention and shape names: see :mod:`rpn_core.boxes`.

Coordinate frames
-----------------
The network sees the image resized so that its shorter side is ``min_side`` (longer side at
most ``max_side``), or squashed to ``input_square`` x ``input_square`` (the SSD's backbone):
the *input frame*. Anchors of :class:`~rpn_core.anchors.grid.AnchorConfig`
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
from rpn_core.limits import MAX_ANCHORS_PER_IMAGE

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    import torch

__all__ = [
    "BACKBONES",
    "MODEL_STRIDES",
    "SSD_STRIDES",
    "RPNConfig",
    "SelectionConfig",
    "anchors_misfit",
    "embedded_config",
    "input_geometry",
    "label_in_input_frame",
    "model_anchors",
    "to_input_frame",
]


MODEL_STRIDES = (8, 16)  # the backbone's feature maps an anchor level can use
# The COCO SSD's six feature maps (RPNConfig.backbone == "ssd_mobilenet_v2"): every level
# is present, one head each, on a square input (``input_square``) with TF's cell-centred grid.
SSD_STRIDES = (16, 32, 64, 128, 256, 512)
BACKBONES = ("mobilenet_v2", "ssd_mobilenet_v2")


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
        """The keywords of :func:`rpn_core.rpn.selection.select_proposals`."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class RPNConfig:
    """Everything that defines the RPN apart from its weights (keyword-only).

    ``pre_nms_top_n`` anchors (by score) enter NMS at ``nms_iou``; ``post_nms_top_n`` are
    kept. ``min_size`` (original pixels) drops proposals narrower or lower than it.
    ``head_conv_depth`` is the number of 3x3 convolutions in torchvision's ``RPNHead``.
    Anchor sizes may sit on two levels (:attr:`AnchorConfig.size_strides`): stride 16 (the
    context map) and stride 8 (MobileNetV2's ``features[:7]``, 32 channels, its own
    ``RPNHead``), the strides in :data:`MODEL_STRIDES`.
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
    backbone: str = "mobilenet_v2"
    input_square: int = 0

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if not 0 <= self.input_square <= 4096:
            raise ValueError(f"input_square must be in [0, 4096], got {self.input_square}")
        if self.backbone == "ssd_mobilenet_v2":
            self._check_ssd()
        else:
            self._check_mobilenet()
        self._check_common()

    @property
    def is_ssd(self) -> bool:
        """The COCO SSD's six levels and predictors (version 4) rather than MobileNetV2's
        stride-8/16 maps with torchvision's ``RPNHead``."""
        return self.backbone == "ssd_mobilenet_v2"

    def _check_ssd(self) -> None:
        if tuple(sorted(set(self.anchors.strides))) != SSD_STRIDES:
            raise ValueError(
                f"the SSD backbone has one anchor level per feature map, strides {SSD_STRIDES}; "
                f"got {sorted(set(self.anchors.strides))}"
            )
        if self.anchors.centring != "cell":
            raise ValueError("the SSD's predictors need TF's cell-centred anchors")
        if self.input_square < 1:
            raise ValueError("the SSD backbone takes a square input: set input_square")
        if self.head_conv_depth != 0 or self.context:
            raise ValueError("the SSD's heads are its predictors: head_conv_depth 0, no context")

    def _check_mobilenet(self) -> None:
        if self.input_square:
            raise ValueError("input_square is for the SSD backbone only")
        if self.anchors.centring != "corner":
            raise ValueError("the MobileNetV2 backbone's anchors use torchvision's grid")
        if self.head_conv_depth < 1:
            raise ValueError(f"head_conv_depth must be >= 1, got {self.head_conv_depth}")
        if self.anchors.stride != 16:
            raise ValueError(
                f"anchor stride {self.anchors.stride}: the MobileNetV2 backbone's coarsest "
                "feature map has stride 16 (16@8 puts a size on its stride-8 level)"
            )
        if not set(self.anchors.strides) <= set(MODEL_STRIDES):
            raise ValueError(
                f"the MobileNetV2 backbone has feature maps at strides {MODEL_STRIDES}, got "
                f"anchor strides {sorted(set(self.anchors.strides))}"
            )

    def _check_common(self) -> None:
        if not (self.pre_nms_top_n >= 1 and self.post_nms_top_n >= 1):
            raise ValueError("pre_nms_top_n and post_nms_top_n must be >= 1")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        if not (math.isfinite(self.min_size) and self.min_size >= 0):
            raise ValueError(f"min_size must be >= 0, got {self.min_size}")
        if not 1 <= self.min_side <= self.max_side:
            raise ValueError(f"need 1 <= min_side <= max_side: {self.min_side}, {self.max_side}")
        n = self.max_anchors()
        if n > MAX_ANCHORS_PER_IMAGE:
            side = self.input_square
            largest = f"{side} x {side}" if side else f"{self.min_side} x {self.max_side}"
            raise ValueError(
                f"the anchors tile {n:,} boxes over the largest input ({largest}), above the "
                f"limit of {MAX_ANCHORS_PER_IMAGE:,} per image"
            )

    def max_anchors(self) -> int:
        """Anchors over the largest input this config resizes to (``min_side x max_side``,
        padded to the coarsest stride), every level."""
        stride = self.anchors.stride
        h, w = (-(-side // stride) * stride for side in (self.min_side, self.max_side))
        if self.input_square:
            h = w = self.input_square
        return sum(
            math.ceil(h / lv.stride) * math.ceil(w / lv.stride) * lv.num_anchors_per_location
            for lv in self.anchors.levels
        )

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
    def from_dict(cls, data: object) -> RPNConfig:
        """Inverse of :meth:`to_dict` for **untrusted** data (a weights file's header or
        sidecar): every field is checked for its type and a sane range
        (:data:`rpn_core.rpn.config_checks.CONFIG_RANGES`) before anything is built, so a
        hostile file cannot ask for an 8 GB input image or ten million convolutions. Raises
        :class:`~rpn_core.rpn.config_checks.ConfigError` (a
        ``ValueError``) whose ``field`` names the bad setting (``"labels.fg_iou"``)."""
        from rpn_core.rpn.config_checks import checked_fields

        return cls(**checked_fields(data))


def anchors_misfit(anchors: AnchorConfig, config: RPNConfig) -> str:
    """``""`` when a model of ``config`` can use ``anchors`` instead of its own, else why not
    (the backbone has no feature map at one of their strides, the SSD's levels are not all
    there...): a sentence for the user."""
    from dataclasses import replace

    try:
        replace(config, anchors=anchors)
    except ValueError as exc:
        return str(exc)
    return ""


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
    if config.input_square:  # squashed to N x N, as the SSD was trained
        n = config.input_square
        return (n, n), (n / h, n / w)
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
    from rpn_core.anchors.labelling import label_image

    input_size, scaled = to_input_frame(image_size, gt_boxes, config)
    return label_image(input_size, anchor_config, scaled, label_config)


def to_input_frame(
    image_size: tuple[int, int], gt_boxes: object, config: RPNConfig | None = None
) -> tuple[tuple[int, int], np.ndarray]:
    """``((H', W'), boxes')``: an ``(H, W)`` image's input-frame size and its ``gt_boxes
    (G, 4)`` (original pixels) scaled into that frame, float32 -- the one conversion the
    labelling, the anchor statistics and the anchor design all use (``config``: only
    ``min_side``/``max_side``; defaults when ``None``)."""
    import numpy as np

    (rh, rw), (sy, sx) = input_geometry(image_size, config or RPNConfig())
    gt = np.asarray(gt_boxes, dtype=np.float32).reshape(-1, 4)
    return (rh, rw), gt * np.array([sx, sy, sx, sy], dtype=np.float32)
