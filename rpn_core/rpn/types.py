"""Result types of the RPN, torch-free so the app can hold and pass them without torch
(:class:`FeatureResult` holds tensors, but this module does not import torch).

Box convention: see :mod:`rpn_core.boxes` (every box here is in original-image pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["FeatureResult", "Proposals", "RawProposals"]


@dataclass(frozen=True)
class RawProposals:
    """Every anchor of one image, scored and refined; numpy arrays in anchor order.

    ``anchors`` ``(T, 4)``; ``logits``/``scores`` ``(T,)`` objectness (score = sigmoid);
    ``deltas`` ``(T, 4)`` the regressor's ``(dx, dy, dw, dh)`` (input frame); ``boxes``
    ``(T, 4)`` the decoded proposals clipped to the image; ``image_size`` ``(H, W)``;
    ``strides`` ``(T,)`` each anchor's level stride for a model with anchor levels (proposals
    are then selected per level), None with one level.
    """

    anchors: np.ndarray
    logits: np.ndarray
    scores: np.ndarray
    deltas: np.ndarray
    boxes: np.ndarray
    image_size: tuple[int, int]
    strides: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class Proposals:
    """Selected proposals: ``boxes`` ``(P, 4)``, ``scores`` ``(P,)`` descending and
    ``anchor_index`` ``(P,)`` (the anchor each was refined from: ``raw.anchors[i]``)."""

    boxes: np.ndarray
    scores: np.ndarray
    anchor_index: np.ndarray
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class FeatureResult:
    """The backbone's output for one image (computed once, reused by every selection).

    ``features`` ``(1, C, Hf, Wf)`` the stride-16 map; ``image_size`` original ``(H, W)``;
    ``input_size`` the resized ``(H', W')``; ``padded_size`` the padded input; ``scale``
    ``(H'/H, W'/W)``; ``fine`` the stride-8 map ``(1, 32, 2Hf, 2Wf)`` for a model with a
    stride-8 level, else None. ``levels``: the SSD backbone's six maps in ascending stride
    (``features`` is the first), empty for the MobileNetV2 backbone.
    """

    features: torch.Tensor
    image_size: tuple[int, int]
    input_size: tuple[int, int]
    padded_size: tuple[int, int]
    scale: tuple[float, float]
    fine: torch.Tensor | None = None
    levels: tuple[torch.Tensor, ...] = ()

    def to(self, device: torch.device | str) -> FeatureResult:
        fine = None if self.fine is None else self.fine.to(device)
        return FeatureResult(
            self.features.to(device),
            self.image_size,
            self.input_size,
            self.padded_size,
            self.scale,
            fine,
            tuple(m.to(device) for m in self.levels),
        )

    def maps(self) -> list[torch.Tensor]:
        """The feature map of every anchor level, in ascending stride."""
        if self.levels:
            return list(self.levels)
        return [self.features] if self.fine is None else [self.fine, self.features]
