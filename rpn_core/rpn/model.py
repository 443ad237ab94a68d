"""The embedded Region Proposal Network: MobileNetV2 (stride 16) + torchvision's RPN.

Import lazily (torch at module top). Box convention and shape names: see
:mod:`rpn_core.boxes`; input frame vs original pixels: see :mod:`rpn_core.rpn.config`.

Pieces
------
* backbone: :mod:`rpn_core.rpn.backbone` (frozen MobileNetV2 ``features[:14]``, 96 channels, plus
  the stride-32 context of ``features[14:17]`` upsampled onto the same stride-16 grid: 256);
* anchors: :class:`ConfigAnchorGenerator`, a module calling
  :func:`rpn_core.anchors.grid.generate_anchors` -- the overlay's function and config;
  with a stride-8 level (``AnchorConfig.size_strides``) a second ``RPNHead``
  (``rpn.fine_head``) scores its anchors on the backbone's stride-8 map, and the levels are
  concatenated (stride 8 first) as torchvision's multi-level RPN does;
* head and loss: torchvision's ``RPNHead`` and ``RegionProposalNetwork``, whose training
  targets come from :func:`rpn_core.anchors.labelling.label_anchors` and whose minibatch comes from
  :func:`rpn_core.anchors.labelling.sample_minibatch` with a caller's ``torch.Generator``.

Inference runs the backbone on ONNX Runtime when it is installed
(:mod:`rpn_core.rpn.onnx_backbone`: the same float32 network, ~2x faster on the CPU);
training always runs it in PyTorch.

Use: ``feats = model.compute_features(rgb)`` (the backbone, once), then
``raw = model.raw_proposals(feats)`` (every anchor scored and refined), then
:func:`rpn_core.rpn.selection.select_proposals` as often as the controls change (top-k,
NMS: milliseconds).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RPNHead

from rpn_core.anchors.indexing import level_offsets
from rpn_core.rpn.backbone import (
    FEATURE_CHANNELS,
    FINE_CHANNELS,
    FINE_SPLIT,
    backbone_channels,
    build_backbone,
    fold_frozen_bn,
    prepare_image,
)
from rpn_core.rpn.config import SSD_STRIDES, RPNConfig
from rpn_core.rpn.loss import rpn_losses
from rpn_core.rpn.modules import (
    ConfigAnchorGenerator,
    ContextRPNHead,
    LabelledRPN,
    LevelHeads,
    PredictorHead,
)
from rpn_core.rpn.onnx_backbone import OnnxBackbone, RunnerSlot, build_runner
from rpn_core.rpn.selection import select_proposals, selection_settings
from rpn_core.rpn.ssd_backbone import SSD_CHANNELS, SSDBackbone
from rpn_core.rpn.types import FeatureResult, Proposals, RawProposals
from rpn_core.rpn.weights import WeightsError

__all__ = [
    "ConfigAnchorGenerator",
    "ContextRPNHead",
    "Proposals",
    "RPNConfig",
    "RPNModel",
    "RawProposals",
    "WeightsError",
    "default_device",
    "propose",
]


def default_device() -> torch.device:
    """CUDA when present, the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.cache
def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # private helper: absent means "don't know"
        return False


class RPNModel(nn.Module):
    """Backbone + anchors + RPN head, configured by one :class:`RPNConfig`."""

    def __init__(
        self, config: RPNConfig | None = None, *, device: torch.device | str | None = None
    ):
        super().__init__()
        self.config = config or RPNConfig()
        levels = self.config.anchors.levels
        self.anchor_generator = ConfigAnchorGenerator(self.config.anchors)
        if self.config.is_ssd:  # version 4: the SSD's six maps, one predictor head each
            self.backbone = SSDBackbone()
            head = LevelHeads(
                [
                    PredictorHead(c, lv.num_anchors_per_location)
                    for c, lv in zip(SSD_CHANNELS, levels, strict=True)
                ]
            )
            self.rpn = LabelledRPN(self.config, self.anchor_generator, head)
        else:
            a = levels[-1].num_anchors_per_location  # the stride-16 level
            context = self.config.context
            self.backbone = build_backbone(context=context)
            depth = self.config.head_conv_depth
            if context:
                head = ContextRPNHead(backbone_channels(True), FEATURE_CHANNELS, a, depth)
            else:
                head = RPNHead(FEATURE_CHANNELS, a, conv_depth=depth)
            self.rpn = LabelledRPN(self.config, self.anchor_generator, head)
            if len(levels) > 1:  # the stride-8 level (RPNConfig allows strides 8 and 16)
                fine = RPNHead(FINE_CHANNELS, levels[0].num_anchors_per_location, conv_depth=depth)
                self.rpn.fine_head = fine
        self._fused: tuple | None = None  # (key, module): see _inference_backbone
        self._onnx = RunnerSlot()  # see _onnx_runner
        # Used by compute_features only; turn both off for PyTorch's own float32 features
        # (bit-exact with training's backbone pass).
        self.bf16_inference = True
        self.onnx_inference = True
        self.to(device or default_device())
        self.eval()

    def _apply(self, fn, recurse=True):  # noqa: ANN001 - nn.Module's signature
        # channels_last after every move: oneDNN's depthwise convolutions run ~10x faster in
        # NHWC than in NCHW on the CPU (measured: 2.0 s vs 0.16 s for a 608 x 976 input).
        super()._apply(fn, recurse)
        for module in (self.backbone, self.rpn.head, self.fine_head):
            if module is None:
                continue
            for p in module.parameters():
                if p.ndim == 4:
                    p.data = p.data.contiguous(memory_format=torch.channels_last)
        return self

    @property
    def fine_head(self) -> nn.Module | None:
        """The stride-8 level's ``RPNHead`` (``rpn.fine_head``), or None with one level."""
        return getattr(self.rpn, "fine_head", None)

    @property
    def device(self) -> torch.device:
        return next(self.rpn.head.parameters()).device

    def train(self, mode: bool = True) -> RPNModel:
        super().train(mode)
        self.backbone.eval()  # frozen: never in training mode
        return self

    def head_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters (the RPN heads; the backbone is frozen)."""
        if self.config.is_ssd:
            return list(self.rpn.head.parameters())
        fine = [] if self.fine_head is None else list(self.fine_head.parameters())
        return fine + list(self.rpn.head.parameters())

    def level_head_prefix(self, stride: int) -> str:
        """The state-dict prefix of the head of the anchor level at ``stride``."""
        if self.config.is_ssd:
            return f"rpn.head.heads.{SSD_STRIDES.index(stride)}."
        return "rpn.head." if stride == self.config.anchors.stride else "rpn.fine_head."

    @property
    def backbone_blocks(self) -> int:
        """Elements of the backbone that training modes count in (the SSD's is one unit)."""
        return 1 if self.config.is_ssd else len(self.backbone)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded batch ``(B, 3, Hp, Wp)`` -> logits ``(B, T)`` and deltas ``(B, T, 4)``."""
        with torch.no_grad():
            if self.config.is_ssd:
                return self.head_outputs(list(self.backbone(images)))
            coarse, fine = self.run_backbone(images)
        return self._head(coarse, fine)

    def head_outputs(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, T)`` and deltas ``(B, T, 4)`` from every level's map (ascending
        stride, as :meth:`FeatureResult.maps` lists them)."""
        if self.config.is_ssd:
            return self._head_levels(list(zip(self.rpn.head.heads, maps, strict=True)))
        if len(maps) == 2:
            return self._head(maps[1], maps[0])
        return self._head(maps[0])

    def run_backbone(
        self,
        x: torch.Tensor,
        start: int = 0,
        fine: torch.Tensor | None = None,
        backbone: nn.Module | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(stride-16 map, stride-8 map or None)`` from ``x``, the output of
        ``backbone[:start]`` (the input image for 0). The stride-8 map is
        ``backbone[:FINE_SPLIT]``'s output, computed on the way when ``start <= FINE_SPLIT``,
        else ``fine`` (cached by the caller); None for a model with one level."""
        backbone = self.backbone if backbone is None else backbone
        if self.fine_head is None:
            return backbone[start:](x), None
        if start <= FINE_SPLIT:
            fine = backbone[start:FINE_SPLIT](x)
            x, start = fine, FINE_SPLIT
        if fine is None:
            raise ValueError("this model has a stride-8 level: pass its cached stride-8 map")
        return backbone[start:](x), fine

    def _head(
        self, feats: torch.Tensor, fine: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, T)`` and deltas ``(B, T, 4)`` over every level (stride 8 first)."""
        levels = [(self.rpn.head, feats)]
        if self.fine_head is not None:
            if fine is None:
                raise ValueError("this model has a stride-8 level but no stride-8 map was given")
            levels.insert(0, (self.fine_head, fine))
        return self._head_levels(levels)

    @staticmethod
    def _head_levels(levels: list[tuple[nn.Module, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
        objs, regs = [], []
        for head, fmap in levels:
            logits, deltas = head([fmap])
            b, a4, hf, wf = deltas[0].shape
            # (B, A, Hf, Wf) -> (B, Hf, Wf, A): location-major, the anchors' order.
            objs.append(logits[0].permute(0, 2, 3, 1).reshape(b, -1))
            regs.append(
                deltas[0].view(b, a4 // 4, 4, hf, wf).permute(0, 3, 4, 1, 2).reshape(b, -1, 4)
            )
        if len(objs) == 1:
            return objs[0], regs[0]
        return torch.cat(objs, dim=1), torch.cat(regs, dim=1)

    @torch.no_grad()
    def compute_features(
        self, image_rgb_uint8: np.ndarray, *, min_side: int | None = None
    ) -> FeatureResult:
        """Run the backbone once on an RGB ``uint8 (H, W, 3)`` image (``ValueError`` if bad).

        ``min_side`` overrides the config's input size for this call (scale jitter in
        training); ``max_side`` scales with it.
        """
        config = self.config
        if min_side is not None and min_side != config.min_side:
            max_side = round(min_side * config.max_side / config.min_side)
            config = replace(config, min_side=min_side, max_side=max_side)
        prep = prepare_image(image_rgb_uint8, config, self.device)
        padded = tuple(prep.tensor.shape[-2:])
        if config.is_ssd:
            maps = self._ssd_maps(prep.tensor)
            return FeatureResult(
                maps[0], prep.image_size, prep.input_size, padded, prep.scale, None, maps
            )
        runner = self._onnx_runner()
        if runner is not None:
            feats, fine = runner(prep.tensor)
        else:
            x = self._backbone_input(prep.tensor)
            feats, fine = self.run_backbone(x, backbone=self._inference_backbone())
        fine = None if fine is None else fine.float()
        return FeatureResult(
            feats.float(), prep.image_size, prep.input_size, padded, prep.scale, fine
        )

    def _ssd_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        runner = self._onnx_runner()
        if runner is not None:
            return runner.maps(x)
        return tuple(m.float() for m in self._inference_backbone()(self._backbone_input(x)))

    def _backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        """The PyTorch backbone's input: channels-last, in bfloat16 where that is used."""
        x = x.contiguous(memory_format=torch.channels_last)
        return x.to(torch.bfloat16) if self._use_bf16() else x

    def _inference_backbone(self) -> nn.Module:
        """The backbone with batch-norm folded into its convolutions (~1.5x faster on the
        CPU), in bfloat16 when :attr:`bf16_inference` is on; rebuilt whenever a backbone
        tensor changed (moved, loaded or fine-tuned) or the flag did."""
        key = (self._backbone_key(), self._use_bf16())
        if self._fused is None or self._fused[0] != key:
            fused = fold_frozen_bn(self.backbone).to(memory_format=torch.channels_last)
            self._fused = (key, fused.to(torch.bfloat16) if key[-1] else fused)
        return self._fused[1]

    def _backbone_key(self) -> tuple:
        """Identifies the backbone's current weights (storage and version of every tensor):
        it changes whenever they are moved, loaded or trained."""
        return tuple((t.data_ptr(), t._version) for t in self.backbone.state_dict().values())

    def prepare_inference(self) -> None:
        """Build what :meth:`compute_features` needs ahead of the first image (the folded
        backbone and its ONNX Runtime session, ~1.5 s), e.g. while a loader shows "loading"."""
        if self._onnx_runner() is None:
            self._inference_backbone()

    def _onnx_runner(self) -> OnnxBackbone | None:
        """The backbone on ONNX Runtime (:mod:`rpn_core.rpn.onnx_backbone`) when
        :attr:`onnx_inference` is on, the model is on the CPU and bfloat16 is not in use;
        exported on first use (~1.5 s; ~0.1 s from the disk cache of
        :mod:`~rpn_core.rpn.onnx_backbone`) and again whenever a backbone tensor or torch's
        thread count changed. None: run the backbone in PyTorch (also when it cannot be
        built, which is logged once per backbone)."""
        if not self.onnx_inference or self.device.type != "cpu" or self._use_bf16():
            return None
        threads = torch.get_num_threads()
        key = (self._backbone_key(), threads)
        slot = self._onnx
        if slot.key != key:
            fine_split = FINE_SPLIT if self.fine_head is not None else None
            square = self.config.input_square or None
            slot.runner = build_runner(self._inference_backbone(), fine_split, threads, square)
            slot.key = key
        return slot.runner

    def _use_bf16(self) -> bool:
        """bfloat16 backbone only on a CPU with native bf16 (AVX512-BF16/AMX), where it costs
        less CPU time for the same proposals (figures: the model card); elsewhere bf16 would
        be slower, so float32 is used."""
        return self.bf16_inference and self.device.type == "cpu" and _cpu_has_bf16()

    def _anchors(self, feat: FeatureResult) -> torch.Tensor:
        images = ImageList(feat.features.new_zeros((1, 1, *feat.padded_size)), [feat.input_size])
        return self.anchor_generator(images, feat.maps())[0]

    @torch.no_grad()
    def raw_proposals(self, features: FeatureResult) -> RawProposals:
        """Every anchor, its objectness and refined box, in original pixels (numpy)."""
        feat = features.to(self.device)
        logits, deltas = self.head_outputs(feat.maps())
        anchors = self._anchors(feat)
        boxes = self.rpn.box_coder.decode_single(deltas[0], anchors)
        sy, sx = feat.scale
        to_orig = torch.tensor([sx, sy, sx, sy], device=anchors.device, dtype=anchors.dtype)
        h, w = feat.image_size
        boxes = boxes / to_orig
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        return RawProposals(
            anchors=(anchors / to_orig).cpu().numpy(),
            logits=logits[0].cpu().numpy(),
            scores=torch.sigmoid(logits[0]).cpu().numpy(),
            deltas=deltas[0].cpu().numpy(),
            boxes=boxes.cpu().numpy(),
            image_size=feat.image_size,
            strides=self._anchor_strides(feat),
        )

    def _anchor_strides(self, feat: FeatureResult) -> np.ndarray | None:
        """Each anchor's level stride (None with one level: selection needs no levels)."""
        if len(self.config.anchors.levels) == 1:
            return None
        anchors = self.config.anchors
        per_level = np.diff(level_offsets(feat.padded_size, anchors))
        return np.repeat(np.array([lv.stride for lv in anchors.levels], np.int16), per_level)

    def losses(
        self,
        features: FeatureResult | Sequence[FeatureResult],
        gt_boxes_list: Sequence[object],
        generator: torch.Generator | None = None,
        *,
        objectness_target: str = "label",
    ) -> dict[str, torch.Tensor]:
        """torchvision's RPN loss on images' features and GT boxes (original pixels).

        Targets from :func:`label_anchors`, minibatch from :func:`sample_minibatch` drawn
        with ``generator``. Returns ``{"loss_objectness", "loss_rpn_box_reg"}`` (with grad
        through the head). GT boxes must be valid (``ValueError`` names a bad one).

        ``objectness_target="iou"`` keeps the same minibatch and box loss but gives each
        sampled foreground anchor the IoU of *its decoded box* with its GT box as the
        cross-entropy target (background stays 0): the score then ranks how well a proposal
        fits, so NMS keeps the better-placed of two overlapping boxes (see
        :func:`rpn_core.rpn.loss.iou_aware_objectness_loss`). Computed by
        :func:`rpn_core.rpn.loss.rpn_losses`.
        """
        feats = [features] if isinstance(features, FeatureResult) else list(features)
        return rpn_losses(self, feats, gt_boxes_list, generator, objectness_target)


def propose(model: RPNModel, image: np.ndarray, **select_kwargs: object) -> Proposals:
    """Backbone, head and selection for one RGB ``uint8`` image; selection settings default
    to the model's :class:`RPNConfig` (keywords of :func:`select_proposals` override)."""
    raw = model.raw_proposals(model.compute_features(image))
    return select_proposals(raw, **selection_settings(model.config, **select_kwargs))
