"""Result types of the RPN, torch-free so the app can hold and pass them without torch.

Box convention: see :mod:`rpn_core.boxes` (every box here is in original-image pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Proposals", "RawProposals"]


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
