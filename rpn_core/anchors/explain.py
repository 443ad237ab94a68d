"""Explaining anchor labels: why an anchor got its label, what it would regress to, and
how well an anchor set covers the GT boxes of an image or a folder.

Box convention and shape names: see :mod:`rpn_core.boxes`. Labels come from
:func:`rpn_core.anchors.labelling.label_image` (never recomputed here); these functions only read
an :class:`~rpn_core.anchors.labelling.AnchorLabels` and the anchors of
:func:`rpn_core.anchors.grid.generate_anchors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rpn_core.boxes import box_iou

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rpn_core.anchors.grid import AnchorConfig
    from rpn_core.anchors.labelling import AnchorLabels, LabelConfig

__all__ = [
    "AnchorExplanation",
    "FolderStats",
    "ImageStats",
    "best_possible_recall",
    "encode_targets",
    "explain_anchor",
    "folder_statistics",
    "gt_name",
    "same_anchor",
    "image_statistics",
    "mean_best_iou",
    "reaches_fg",
]


def encode_targets(anchors: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Regression targets ``(tx, ty, tw, th)`` of ``anchors (N, 4)`` towards ``gt (N, 4)``.

    torchvision's ``BoxCoder(weights=(1, 1, 1, 1)).encode_single(gt, anchors)`` convention:
    centres ``c = x1 + w / 2``; ``tx = (gx - ax) / aw``, ``ty = (gy - ay) / ah``,
    ``tw = log(gw / aw)``, ``th = log(gh / ah)``. float64 numpy (a test pins parity).
    """
    a = np.asarray(anchors, dtype=np.float64).reshape(-1, 4)
    g = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    aw, ah = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    ax, ay = a[:, 0] + 0.5 * aw, a[:, 1] + 0.5 * ah
    gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    gx, gy = g[:, 0] + 0.5 * gw, g[:, 1] + 0.5 * gh
    return np.stack([(gx - ax) / aw, (gy - ay) / ah, np.log(gw / aw), np.log(gh / ah)], axis=1)


def gt_name(index: int, label: str) -> str:
    """How the app names GT box ``index`` (0-based, the document's order): ``"box 3 (cat)"``
    -- its row in the Boxes list counted from 1 and its class, as the canvas tags it."""
    return f"box {index + 1} ({label or 'no class'})"


def same_anchor(
    index: int,
    old: AnchorConfig,
    old_size: tuple[int, int],
    new: AnchorConfig,
    new_size: tuple[int, int],
) -> int | None:
    """The index, in the anchors of ``new`` over an input of ``new_size``, of the anchor at
    the same cell with the same size and ratio as anchor ``index`` of ``old`` over
    ``old_size``; None when the new set has no such anchor (another stride, size or ratio,
    or the cell left the grid). Order: :func:`rpn_core.anchors.grid.generate_anchors`
    (location-major, then ratio, then size)."""
    from rpn_core.anchors.indexing import anchor_index, locate_anchor

    row, col, size_i, ratio_i = locate_anchor(int(index), old_size, old)
    size, ratio = old.sizes[size_i], old.aspect_ratios[ratio_i]
    if size not in new.sizes or ratio not in new.aspect_ratios:
        return None
    size_new = new.sizes.index(size)
    if new.strides[size_new] != old.strides[size_i]:
        return None
    return anchor_index(new_size, new, row, col, size_new, new.aspect_ratios.index(ratio))


def reaches_fg(iou: np.ndarray | float, config: LabelConfig) -> np.ndarray:
    """Whether an IoU passes the foreground threshold (``>=`` or ``>`` per the config)."""
    iou = np.asarray(iou)
    return iou >= config.fg_iou if config.fg_inclusive else iou > config.fg_iou


@dataclass(frozen=True)
class AnchorExplanation:
    """Everything the inspector shows about one anchor.

    ``box``: the anchor ``(x1, y1, x2, y2)``; ``size``/``ratio``: its config size and ratio
    (h/w); ``cell``: ``(row, col)`` on its level's grid, of stride ``stride``; ``ious``: its IoU
    with each GT box;
    ``label``: -1/0/1; ``rule``: why, in words; ``matched_gt``: -1 if none; ``targets``:
    ``(tx, ty, tw, th)`` towards the matched GT, or None for non-foreground anchors;
    ``gt_names``: how each GT box is named (:func:`gt_name`), ``matched_name`` the matched one's.
    """

    index: int
    box: tuple[float, float, float, float]
    size: float
    ratio: float
    cell: tuple[int, int]
    ious: tuple[float, ...]
    label: int
    rule: str
    matched_gt: int
    targets: tuple[float, float, float, float] | None
    gt_names: tuple[str, ...] = ()
    stride: int = 16

    @property
    def matched_name(self) -> str:
        return self.gt_names[self.matched_gt] if self.matched_gt >= 0 else "none"


def _rule(
    i: int, labels: AnchorLabels, config: LabelConfig, best: float, gt: int, name: str
) -> str:
    op = ">=" if config.fg_inclusive else ">"
    label = int(labels.labels[i])
    if bool(labels.cross_boundary[i]):
        return "ignored: crosses the image border (ignore-cross-boundary is on)"
    if gt < 0:
        return "background: there are no GT boxes"
    if bool(labels.low_quality[i]):
        return (
            f"foreground by the best-anchor rule: no anchor beats IoU {best:.3f} with {name}, "
            f"below the threshold {op} {config.fg_iou:g}"
        )
    if label == 1:
        return f"foreground: IoU {best:.3f} with {name} is {op} {config.fg_iou:g}"
    if label == 0:
        return f"background: best IoU {best:.3f} ({name}) is < {config.bg_iou:g}"
    return (
        f"ignored: best IoU {best:.3f} ({name}) lies between {config.bg_iou:g} and "
        f"{config.fg_iou:g}; it does not enter the loss"
    )


def explain_anchor(
    index: int,
    image_size: tuple[int, int],
    anchors: np.ndarray,
    gt_boxes: np.ndarray,
    labels: AnchorLabels,
    anchor_config: AnchorConfig,
    label_config: LabelConfig,
    gt_names: Sequence[str] | None = None,
) -> AnchorExplanation:
    """Explain anchor ``index`` of ``anchors (T, 4) = generate_anchors(image_size,
    anchor_config)`` given the ``labels`` that ``label_image`` gave them against
    ``gt_boxes (G, 4)`` under ``label_config``. ``gt_names``: how the user sees each GT box
    (default :func:`gt_name` of its row, without a class)."""
    from rpn_core.anchors.indexing import locate_anchor

    box = np.asarray(anchors[index], dtype=np.float64)
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    ious = box_iou(box[None, :], gt)[0] if len(gt) else np.zeros(0)
    row, col, size_i, ratio_i = locate_anchor(int(index), image_size, anchor_config)
    matched = int(labels.matched_gt[index]) if len(gt) else -1
    label = int(labels.labels[index])
    if gt_names is None:
        gt_names = [gt_name(g, "") for g in range(len(gt))]
    names = tuple(gt_names)
    if len(names) != len(gt):
        raise ValueError(f"{len(names)} GT names for {len(gt)} GT boxes")
    targets = None
    if label == 1 and matched >= 0:
        targets = tuple(float(t) for t in encode_targets(box[None, :], gt[matched][None, :])[0])
    return AnchorExplanation(
        index=int(index),
        box=tuple(float(v) for v in box),
        size=anchor_config.sizes[size_i],
        ratio=anchor_config.aspect_ratios[ratio_i],
        cell=(row, col),
        stride=anchor_config.strides[size_i],
        ious=tuple(float(v) for v in ious),
        label=label,
        rule=_rule(
            int(index),
            labels,
            label_config,
            float(labels.max_iou[index]),
            matched,
            names[matched] if matched >= 0 else "",
        ),
        matched_gt=matched,
        targets=targets,
        gt_names=names,
    )


def best_possible_recall(gt_best_iou: np.ndarray, config: LabelConfig) -> float:
    """Share of GT boxes whose best anchor IoU passes the foreground threshold (NaN if no
    GT): the recall ceiling of the anchor set before any learning."""
    best = np.asarray(gt_best_iou, dtype=np.float64).reshape(-1)
    return float(reaches_fg(best, config).mean()) if len(best) else float("nan")


def mean_best_iou(gt_best_iou: np.ndarray) -> float:
    """Mean over GT boxes of their best anchor IoU (NaN if no GT): what the anchor design
    step reports for a set, measured on the real strided grid."""
    best = np.asarray(gt_best_iou, dtype=np.float64).reshape(-1)
    return float(best.mean()) if len(best) else float("nan")


@dataclass(frozen=True)
class ImageStats:
    """Statistics of one image's labels. ``counts``: anchors per label (see
    ``AnchorLabels.counts``); per GT box: ``positives``, ``best_iou``; ``unlearnable``: GT
    boxes no anchor labels foreground; ``recall``: :func:`best_possible_recall`."""

    counts: dict[str, int]
    positives: np.ndarray
    best_iou: np.ndarray
    unlearnable: tuple[int, ...]
    recall: float

    @property
    def mean_iou(self) -> float:
        return mean_best_iou(self.best_iou)


def image_statistics(labels: AnchorLabels, config: LabelConfig) -> ImageStats:
    """Summarise one image's :class:`AnchorLabels` under ``config``."""
    positives = np.asarray(labels.gt_num_positive).astype(np.int64)
    best = np.asarray(labels.gt_best_iou).astype(np.float64)
    return ImageStats(
        counts=labels.counts(),
        positives=positives,
        best_iou=best,
        unlearnable=tuple(int(i) for i in np.flatnonzero(positives == 0)),
        recall=best_possible_recall(best, config),
    )


@dataclass
class FolderStats:
    """Statistics over many images: summed ``counts``, every GT box's ``best_iou`` and
    ``positives`` concatenated, ``images`` labelled and ``skipped`` (path, reason) pairs."""

    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("foreground", "background", "ignored", "low_quality"), 0
        )
    )
    best_iou: np.ndarray = field(default_factory=lambda: np.zeros(0))
    positives: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    images: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def recall(self, config: LabelConfig) -> float:
        return best_possible_recall(self.best_iou, config)

    @property
    def mean_iou(self) -> float:
        return mean_best_iou(self.best_iou)

    @property
    def unlearnable(self) -> int:
        return int((self.positives == 0).sum())


def folder_statistics(
    items: Iterable[tuple[str, tuple[int, int], np.ndarray]],
    anchor_config: AnchorConfig,
    label_config: LabelConfig,
) -> FolderStats:
    """Label every ``(name, image_size (H, W), gt_boxes (G, 4))`` with ``label_image`` and
    aggregate. Items with invalid boxes or sizes are skipped with their reason (imports
    torch)."""
    from rpn_core.anchors.labelling import label_image

    stats = FolderStats()
    best, pos = [], []
    for name, size, gt in items:
        try:
            labels = label_image(
                size, anchor_config, np.asarray(gt, dtype=np.float32), label_config
            )
        except ValueError as exc:
            stats.skipped.append((str(name), str(exc)))
            continue
        for key, value in labels.counts().items():
            stats.counts[key] += value
        best.append(labels.gt_best_iou.numpy().astype(np.float64))
        pos.append(labels.gt_num_positive.numpy().astype(np.int64))
        stats.images += 1
    if best:
        stats.best_iou = np.concatenate(best)
        stats.positives = np.concatenate(pos)
    return stats
