"""The moving parts of :func:`rpn_core.training.finetune.fine_tune`: cached inputs, the loss
module, the
distributed context and validation. Imported lazily (torch at module top).

Box convention: see :mod:`rpn_core.boxes`. Frames: see :mod:`rpn_core.rpn.config`; training
works in the *input frame* (each image is resized once to the network's input size, so its
features have scale 1 and the GT boxes are scaled once).

Caching (why head mode is fast)
-------------------------------
The backbone is a fixed stack of 14 blocks (15 elements with the stride-32 context, which
counts as one). A mode trains the elements from ``first_trainable`` on (``head``: none, 14
or 15; ``partial``: the 96-channel stage and the context, 11; ``full``: all, 0), so the output
of the frozen prefix ``backbone[:first_trainable]`` never changes: it is computed once per
image and augmentation copy and kept. ``full`` mode keeps the augmented ``uint8`` pixels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rpn_core.rpn.backbone import FINE_SPLIT, NUM_BLOCKS, prepare_image
from rpn_core.rpn.config import input_geometry
from rpn_core.rpn.model import RPNModel
from rpn_core.rpn.proposals import best_iou_per_gt
from rpn_core.rpn.selection import select_proposals, selection_settings
from rpn_core.rpn.types import FeatureResult
from rpn_core.training.data import Augment, TrainSample, apply_augment

__all__ = [
    "CachedInput",
    "DistContext",
    "LossModule",
    "first_trainable_block",
    "prepare_sample",
    "recall_counts",
]

PARTIAL_FIRST_BLOCK = 11  # blocks 11-13 (the 96-channel stage) and the context element 14
RECALL_IOUS = (0.5, 0.7)


def first_trainable_block(mode: str, num_blocks: int = NUM_BLOCKS) -> int:
    """Index of the first of ``num_blocks`` backbone elements that trains in ``mode``
    (``num_blocks``: none)."""
    return {"head": num_blocks, "partial": PARTIAL_FIRST_BLOCK, "full": 0}[mode]


def prepare_sample(sample: TrainSample, model: RPNModel) -> tuple[np.ndarray, np.ndarray]:
    """The sample's pixels resized to the network input size, and its boxes in that frame."""
    import cv2

    pixels = sample.pixels()
    if not pixels.flags.writeable:  # e.g. a decoded image's buffer; torch wants writable
        pixels = pixels.copy()
    h, w = pixels.shape[:2]
    (rh, rw), (sy, sx) = input_geometry((h, w), model.config)
    if (rh, rw) != (h, w):
        interp = cv2.INTER_AREA if rh * rw < h * w else cv2.INTER_LINEAR
        pixels = cv2.resize(np.ascontiguousarray(pixels[:, :, :3]), (rw, rh), interpolation=interp)
    boxes = sample.boxes.astype(np.float32) * np.array([sx, sy, sx, sy], dtype=np.float32)
    return pixels, boxes


@dataclass(frozen=True)
class CachedInput:
    """One augmentation copy of one image: the frozen prefix's output (or ``uint8`` pixels
    in ``full`` mode) and the GT boxes ``(G, 4)`` in the input frame."""

    data: torch.Tensor | np.ndarray
    boxes: np.ndarray
    input_size: tuple[int, int]
    padded_size: tuple[int, int]
    fine: torch.Tensor | None = None  # the stride-8 map, when the prefix computed it


@torch.no_grad()
def cache_input(
    model: RPNModel, pixels: np.ndarray, boxes: np.ndarray, augment: Augment, first: int
) -> CachedInput:
    """Augment, then run the frozen backbone prefix ``backbone[:first]`` once (keeping the
    stride-8 map on the way when the model has that level and the prefix passes it)."""
    image, gt = apply_augment(pixels, boxes, augment)
    prep = prepare_image(image, model.config, model.device)
    padded = tuple(prep.tensor.shape[-2:])
    x = prep.tensor.contiguous(memory_format=torch.channels_last)  # faster convolutions
    fine = None
    if model.config.is_ssd:  # one frozen unit: its six maps are the cached input
        data = tuple(model.backbone(x)) if first else image
    elif first == 0:
        data = image
    elif model.fine_head is not None and first > FINE_SPLIT:
        fine = model.backbone[:FINE_SPLIT](x)
        data = model.backbone[FINE_SPLIT:first](fine)
    else:
        data = model.backbone[:first](x)
    return CachedInput(data, gt, prep.input_size, padded, fine)


class LossModule(nn.Module):
    """``forward(inputs, gt_boxes, generator) -> loss dict``: the trainable backbone suffix
    and the RPN's own loss (:meth:`RPNModel.losses`) as one module, so that
    DistributedDataParallel can wrap it (its gradient hooks need a ``forward`` call)."""

    def __init__(self, model: RPNModel, first_trainable: int) -> None:
        super().__init__()
        self.model = model
        self.first = first_trainable

    def features(self, item: CachedInput) -> FeatureResult:
        data = item.data
        if self.first == 0:
            data = prepare_image(data, self.model.config, self.model.device).tensor
            data = data.contiguous(memory_format=torch.channels_last)
        geometry = (item.input_size, item.input_size, item.padded_size, (1.0, 1.0))
        if self.model.config.is_ssd:
            maps = tuple(self.model.backbone(data)) if self.first == 0 else tuple(data)
            return FeatureResult(maps[0], *geometry, None, maps)
        coarse, fine = self.model.run_backbone(data, self.first, item.fine)
        return FeatureResult(coarse, *geometry, fine)

    def forward(
        self,
        inputs: Sequence[CachedInput],
        gt_boxes: Sequence[np.ndarray],
        generator: torch.Generator | None,
    ) -> dict[str, torch.Tensor]:
        feats = [self.features(item) for item in inputs]
        return self.model.losses(feats, list(gt_boxes), generator)


def set_trainable(model: RPNModel, first: int) -> list[nn.Parameter]:
    """Unfreeze the head and ``backbone[first:]``; return the trainable parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = model.head_parameters()
    if model.config.is_ssd:
        if first == 0:
            params.extend(model.backbone.parameters())
    else:
        for block in model.backbone[first:]:
            params.extend(block.parameters())
    for p in params:
        p.requires_grad_(True)
    return params


def freeze_backbone(model: RPNModel) -> None:
    """Back to the model's resting state: frozen backbone, trainable head, eval mode."""
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    for p in model.head_parameters():
        p.requires_grad_(True)
    model.eval()


def recall_counts(
    model: RPNModel, feat: FeatureResult, gt: np.ndarray, top_ns: Sequence[int]
) -> np.ndarray:
    """GT boxes found, ``(len(top_ns), len(RECALL_IOUS))``: a box is found at IoU ``t`` when
    one of the ``N`` best proposals (the model's NMS) overlaps it by ``>= t``."""
    out = np.zeros((len(top_ns), len(RECALL_IOUS)), dtype=np.int64)
    if len(gt) == 0:
        return out
    raw = model.raw_proposals(feat)
    cfg = model.config
    props = select_proposals(raw, **selection_settings(cfg, top_n=max(top_ns)))
    for i, n in enumerate(top_ns):
        best = best_iou_per_gt(props.boxes, gt, top_n=n)  # the eval command's definition
        for j, t in enumerate(RECALL_IOUS):
            out[i, j] = int((best >= t).sum())
    return out


def recall_dict(found: np.ndarray, total: int, top_ns: Sequence[int]) -> dict[str, float]:
    """``{"recall@100/0.5": ..., ...}`` from summed :func:`recall_counts`."""
    return {
        f"recall@{n}/{t}": (float(found[i, j]) / total if total else math.nan)
        for i, n in enumerate(top_ns)
        for j, t in enumerate(RECALL_IOUS)
    }


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a ``torchrun`` job (``world_size == 1``: alone)."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def current(cls) -> DistContext:
        """From an initialised default process group, else a single process."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a float64 tensor over all processes (identity when alone)."""
        if not self.active:
            return values
        import torch.distributed as dist

        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        t = values.to(device=device, dtype=torch.float64)
        dist.all_reduce(t)
        return t.cpu()


def torchrun_env() -> dict[str, int] | None:
    """``{"rank", "local_rank", "world_size"}`` when started by ``torchrun`` with N > 1."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return None
    if world <= 1 or "RANK" not in os.environ:
        return None
    return {
        "rank": int(os.environ["RANK"]),
        "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
        "world_size": world,
    }


def init_distributed(device: str) -> tuple[DistContext, str]:
    """Join the ``torchrun`` job named by the environment, if any: ``(context, device)``.

    The backend is NCCL for CUDA (each process takes GPU ``LOCAL_RANK``) and gloo on the CPU.
    """
    env = torchrun_env()
    if env is None:
        return DistContext(), device
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(env["local_rank"])
        device = f"cuda:{env['local_rank']}"
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size()), device
