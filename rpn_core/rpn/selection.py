"""Proposal selection: from every scored anchor to the top-N proposals (torch, no model).

:func:`select_proposals` is the stage the Proposals dock reruns on every control change
without rerunning the backbone: the ``pre_nms_top_n`` best anchors per level, score and size
filters, NMS per level (:func:`nms_top`, which stops once a level has the proposals wanted),
then the ``top_n`` best overall -- torchvision's ``RegionProposalNetwork.filter_proposals``
(parity tests). :func:`selection_settings` turns an :class:`RPNConfig`'s selection into its
keywords. Box convention: see :mod:`rpn_core.boxes`.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from torchvision.ops import nms

from rpn_core.rpn.config import RPNConfig, SelectionConfig
from rpn_core.rpn.types import Proposals, RawProposals

__all__ = ["nms_top", "select_proposals", "selection_settings"]


def nms_top(boxes: torch.Tensor, scores: torch.Tensor, iou: float, limit: int) -> torch.Tensor:
    """The first ``limit`` indices that greedy NMS at ``iou`` keeps, best score first (ties:
    input order) -- ``torchvision.ops.nms(boxes, scores, iou)[:limit]``, computed faster.

    Greedy NMS decides each box from higher-scored boxes only, so NMS over the ``P``
    best-scored boxes keeps exactly the kept boxes among them. NMS therefore runs on a prefix
    until it keeps ``limit`` boxes or covers them all: first ``1.25 * limit`` boxes, then as
    many as the kept fraction so far says are needed (at least twice as many). Its cost
    grows with kept x candidates, so on v3's stride-8 level, where ~80 % of the boxes
    survive, the 300 wanted come from ~400 candidates instead of 3000 (27 -> ~1 ms).
    """
    limit = max(0, int(limit))
    order = torch.sort(scores, descending=True, stable=True).indices
    n = order.numel()
    if limit == 0 or n == 0:
        return order[:0]
    size = min(n, limit + limit // 4 + 16)
    while True:
        head = order[:size]
        keep = head[nms(boxes[head], scores[head], iou)]
        if keep.numel() >= limit or size >= n:
            return keep[:limit]
        wanted = math.ceil(size * limit / max(keep.numel(), 1) * 1.25)
        size = min(n, max(2 * size, wanted))


def _level_members(strides: np.ndarray) -> list[torch.Tensor]:
    """Indices of each level's anchors, by ascending stride. The model's anchors come level
    by level (contiguous runs): then the runs are cut without a sort."""
    strides = np.asarray(strides)
    if strides.size == 0:
        return []
    if np.all(strides[1:] >= strides[:-1]):
        cuts = [0, *(np.flatnonzero(np.diff(strides)) + 1).tolist(), strides.size]
        return [torch.arange(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    return [torch.from_numpy(np.flatnonzero(strides == t)) for t in np.unique(strides)]


def select_proposals(
    raw: RawProposals,
    *,
    top_n: int = SelectionConfig.top_n,
    score_threshold: float = SelectionConfig.score_threshold,
    nms_iou: float = SelectionConfig.nms_iou,
    min_size: float = SelectionConfig.min_size,
    pre_nms_top_n: int = SelectionConfig.pre_nms_top_n,
) -> Proposals:
    """Top-``top_n`` proposals after score/size filters and NMS (no backbone rerun).

    The ``pre_nms_top_n`` best-scoring anchors with score ``>= score_threshold`` and
    width and height ``>= min_size`` (original pixels, and > 0) enter NMS at ``nms_iou``.
    With anchor levels (``raw.strides``) this happens per level, as torchvision's
    ``RegionProposalNetwork.filter_proposals`` does: the ``pre_nms_top_n`` best of each
    level, NMS within each level, then the ``top_n`` best overall by score. NMS stops once
    a level has kept ``top_n`` boxes (:func:`nms_top`): no later box of that level could
    make the overall top ``top_n``, so the result is the same (a test compares it with
    ``batched_nms``).
    """
    top_n = max(0, int(top_n))
    scores = torch.from_numpy(raw.scores)
    if raw.strides is None:
        k = min(pre_nms_top_n, scores.numel())
        empty = (scores[:0], torch.zeros(0, dtype=torch.int64))
        top_scores, order = scores.topk(k) if k else empty
        level = None
    else:
        strides = torch.from_numpy(raw.strides.astype(np.int64))
        picks = []
        for idx in _level_members(raw.strides):
            k = min(pre_nms_top_n, idx.numel())
            picks.append(idx[scores[idx].topk(k).indices])
        order = torch.cat(picks) if picks else torch.zeros(0, dtype=torch.int64)
        top_scores, level = scores[order], strides[order]
    boxes = torch.from_numpy(raw.boxes)[order]
    wh = boxes[:, 2:] - boxes[:, :2]
    ok = (top_scores >= score_threshold) & (wh >= max(min_size, 1e-3)).all(dim=1)
    order, boxes, top_scores = order[ok], boxes[ok], top_scores[ok]
    if level is None:
        keep = nms_top(boxes, top_scores, nms_iou, top_n)
    else:
        level = level[ok]
        kept = []
        for t in torch.unique(level).tolist():
            idx = torch.nonzero(level == t).flatten()
            kept.append(idx[nms_top(boxes[idx], top_scores[idx], nms_iou, top_n)])
        keep = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.int64)
        best = torch.sort(top_scores[keep], descending=True, stable=True).indices
        keep = keep[best[:top_n]]
    return Proposals(
        boxes=boxes[keep].numpy(),
        scores=top_scores[keep].numpy(),
        anchor_index=order[keep].numpy(),
        image_size=raw.image_size,
    )


def selection_settings(config: RPNConfig, **overrides: object) -> dict:
    """Keywords of :func:`select_proposals`: ``config``'s selection (every field), with
    ``overrides`` (fields of :class:`SelectionConfig`) applied."""
    return replace(config.selection, **overrides).kwargs()
