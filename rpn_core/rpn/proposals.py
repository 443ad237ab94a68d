"""Selective Search proposals and proposal-recall metrics, as pure functions on arrays.

Box convention: see :mod:`rpn_core.boxes`. Proposals are ``(P, 4)`` arrays ranked best
first; GT boxes are ``(G, 4)``.

Metrics (Hosang et al., "What makes for effective detection proposals?", 2016)
-------------------------------------------------------------------------------
A GT box is *recalled* by the top ``N`` proposals at IoU ``t`` when its best IoU with any of
them is ``>= t`` (no one-to-one matching: one proposal may recall several boxes).
``recall@N`` pools every GT box of a data set. ``AR@N`` is the mean of ``recall@N`` over
the ten IoU thresholds ``0.50, 0.55, ..., 0.95`` (COCO's grid).

Selective Search
----------------
OpenCV-contrib's ``createSelectiveSearchSegmentation`` in *fast* mode (Uijlings et al. 2013,
as used by R-CNN), run on the image resized so that its longer side is
:data:`SS_WORKING_SIZE` pixels (never enlarged); boxes are scaled back to original pixels.
Its output order (OpenCV's randomised hierarchical ranking) is kept as the ranking.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rpn_core.boxes import as_boxes, box_iou

__all__ = [
    "AR_IOUS",
    "SS_WORKING_SIZE",
    "average_recall",
    "best_iou_per_gt",
    "proposal_metrics",
    "recall_at_iou",
    "selective_search",
]

SS_WORKING_SIZE = 500
AR_IOUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def best_iou_per_gt(proposals: np.ndarray, gt: np.ndarray, top_n: int | None = None) -> np.ndarray:
    """``(G,)`` best IoU of each GT box with the first ``top_n`` proposals (0 if none)."""
    gt = as_boxes(gt)
    props = as_boxes(proposals)
    if top_n is not None:
        props = props[: max(0, int(top_n))]
    if len(gt) == 0 or len(props) == 0:
        return np.zeros(len(gt), dtype=np.float64)
    iou = np.nan_to_num(box_iou(props, gt), nan=0.0)  # (P, G); NaN only for 0-area pairs
    return iou.max(axis=0)


def recall_at_iou(best_ious: np.ndarray, iou: float) -> float:
    """Fraction of GT boxes whose best IoU is ``>= iou`` (``nan`` when there are none)."""
    best = np.asarray(best_ious, dtype=np.float64)
    return float((best >= iou).mean()) if best.size else float("nan")


def average_recall(best_ious: np.ndarray, ious: Sequence[float] = AR_IOUS) -> float:
    """Mean of :func:`recall_at_iou` over ``ious`` (default 0.5:0.95 step 0.05)."""
    best = np.asarray(best_ious, dtype=np.float64)
    if not best.size:
        return float("nan")
    return float(np.mean([recall_at_iou(best, t) for t in ious]))


def proposal_metrics(
    per_image: Sequence[tuple[np.ndarray, np.ndarray]],
    top_ns: Sequence[int],
    ious: Sequence[float] = (0.5, 0.7),
) -> dict[int, dict[str, float]]:
    """Pooled metrics over images given as ``(ranked proposals, GT boxes)`` pairs.

    Returns ``{N: {"recall@0.5": r, "recall@0.7": r, "AR": ar, "num_gt": G}}`` (keys of
    the recall entries follow ``ious``).
    """
    out: dict[int, dict[str, float]] = {}
    for n in top_ns:
        best = [best_iou_per_gt(props, gt, n) for props, gt in per_image]
        pooled = np.concatenate(best) if best else np.zeros(0)
        row = {f"recall@{t:g}": recall_at_iou(pooled, t) for t in ious}
        row["AR"] = average_recall(pooled)
        row["num_gt"] = int(pooled.size)
        out[int(n)] = row
    return out


def selective_search(
    image_rgb: np.ndarray, *, working_size: int = SS_WORKING_SIZE, max_boxes: int | None = None
) -> np.ndarray:
    """Selective Search (fast mode) boxes ``(N, 4)`` float32 in original pixels, ranked.

    ``image_rgb``: ``uint8 (H, W, 3)`` (grey ``(H, W)`` accepted). Raises ``ValueError``
    for an empty image.
    """
    import cv2

    img = np.asarray(image_rgb)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"expected an image (H, W, 3), got shape {img.shape}")
    h, w = img.shape[:2]
    scale = min(1.0, working_size / max(h, w))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    bgr = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2BGR)
    if (sw, sh) != (w, h):
        bgr = cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_AREA)
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(bgr)
    ss.switchToSelectiveSearchFast()
    rects = np.asarray(ss.process(), dtype=np.float32).reshape(-1, 4)
    if max_boxes is not None:
        rects = rects[:max_boxes]
    boxes = rects.copy()
    boxes[:, 2:] += boxes[:, :2]  # (x, y, w, h) -> (x1, y1, x2, y2) in the working image
    boxes *= np.array([w / sw, h / sh, w / sw, h / sh], dtype=np.float32)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    return boxes
