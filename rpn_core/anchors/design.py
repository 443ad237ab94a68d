"""Anchor design by k-means over GT box shapes with distance ``1 - IoU`` (YOLOv2's recipe).

Box convention: see :mod:`rpn_core.boxes`. Only a box's width and height matter here: two
shapes are compared as if both boxes were centred on the same point, so
``IoU((w1, h1), (w2, h2)) = min(w1, w2) * min(h1, h2) / (w1*h1 + w2*h2 - inter)``. This is the
IoU an anchor of that shape reaches with the box when the anchor grid puts a centre right on
the box's centre -- an upper bound; the grid's stride costs a little on top.

Clusters become an :class:`~rpn_core.anchors.grid.AnchorConfig` through :func:`design_config`,
which is an approximation (see its docstring): the config is a *grid* ``sizes x ratios``,
whereas k-means finds ``k`` free ``(w, h)`` shapes. :func:`grid_mean_iou` scores the grid the
model would actually use.

Frame: the model sees every image resized to its *input frame* (shorter side ``min_side``,
see :mod:`rpn_core.rpn.config`), and its anchors are tiled there. Design therefore clusters
the GT shapes *in that frame* (:func:`input_frame_items` scales each image's boxes by its
own scale), so a photo and its 4x upscaled copy give the same anchor sizes, and the sizes
apply to the anchor set as they are. What a designed set really reaches on the strided grid
is measured by :func:`rpn_core.anchors.explain.folder_statistics` over the same items -- the
very function of the anchor statistics panel, so the two figures cannot drift.

Randomness comes only from the ``np.random.Generator`` passed in (ARCHITECTURE.md rule 5).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from rpn_core.anchors.grid import AnchorConfig
from rpn_core.rpn.config import RPNConfig, to_input_frame

__all__ = [
    "level_strides",
    "nearest_levels",
    "FLATTEN_GAIN",
    "FrameItem",
    "KMeansResult",
    "ShapeSet",
    "box_shapes",
    "design_config",
    "flatten_text",
    "frame_shapes",
    "grid_mean_iou",
    "grid_shapes",
    "input_frame_items",
    "kmeans_curve",
    "kmeans_iou",
    "shape_iou",
    "suggest_k",
]


FLATTEN_GAIN = 0.01  # mean-IoU gain over k - 1 below which the curve counts as flat

FrameItem = tuple[str, tuple[int, int], np.ndarray]  # (name, input size (H', W'), GT (G, 4))


def input_frame_items(
    annotations: Iterable[tuple[str, tuple[int, int], np.ndarray]], config: RPNConfig
) -> list[FrameItem]:
    """``(name, (H', W'), boxes')`` per ``(name, (H, W), boxes)`` of original images: each
    image's input-frame size and its GT boxes scaled by its own input scale
    (:func:`rpn_core.rpn.config.to_input_frame`; ``config``'s ``min_side``/``max_side``).
    An image with an invalid size keeps its size and boxes (the statistics skip it with
    its reason). The items :func:`rpn_core.anchors.explain.folder_statistics` takes."""
    items: list[FrameItem] = []
    for name, size, boxes in annotations:
        try:
            input_size, scaled = to_input_frame(size, boxes, config)
        except ValueError:
            input_size = size
            scaled = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        items.append((str(name), tuple(int(v) for v in input_size), scaled))
    return items


@dataclass(frozen=True)
class ShapeSet:
    """GT shapes ``wh (N, 2)`` ready for clustering, and how many boxes were skipped."""

    wh: np.ndarray
    skipped: int


@dataclass(frozen=True)
class KMeansResult:
    """One clustering: ``centres (k, 2)`` as ``(w, h)`` sorted by area, the ``assignment (N,)``
    of each shape to a centre, and ``mean_iou`` = mean over shapes of the best centre IoU."""

    centres: np.ndarray
    assignment: np.ndarray
    mean_iou: float

    @property
    def k(self) -> int:
        return len(self.centres)


def box_shapes(boxes: np.ndarray) -> ShapeSet:
    """Widths and heights of ``boxes (N, 4)``; boxes with zero/negative area or non-finite
    corners are skipped and counted (never silently used)."""
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wh = arr[:, 2:] - arr[:, :2]
    ok = np.isfinite(wh).all(axis=1) & (wh > 0).all(axis=1)
    return ShapeSet(wh=wh[ok], skipped=int((~ok).sum()))


def frame_shapes(items: Iterable[FrameItem]) -> ShapeSet:
    """:func:`box_shapes` of every GT box of input-frame ``items`` (:func:`input_frame_items`)."""
    boxes = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for _, _, b in items]
    return box_shapes(np.concatenate(boxes) if boxes else np.zeros((0, 4)))


def shape_iou(wh: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """IoU ``(N, K)`` of shapes ``wh (N, 2)`` with ``centres (K, 2)`` at a common centre."""
    wh = np.asarray(wh, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    inter = np.minimum(wh[:, None, 0], centres[None, :, 0]) * np.minimum(
        wh[:, None, 1], centres[None, :, 1]
    )
    union = (wh[:, 0] * wh[:, 1])[:, None] + (centres[:, 0] * centres[:, 1])[None, :] - inter
    return inter / union


def _seed_plus_plus(wh: np.ndarray, k: int, rng: np.random.Generator, start: np.ndarray | None):
    """k-means++ seeding with distance ``1 - IoU``; ``start`` centres are kept as the first."""
    centres = [] if start is None else list(start)
    if not centres:
        centres.append(wh[rng.integers(len(wh))])
    while len(centres) < k:
        d = 1.0 - shape_iou(wh, np.array(centres)).max(axis=1)
        weights = d**2
        total = weights.sum()
        if total <= 0:  # every shape already sits on a centre: pick any
            pick = rng.integers(len(wh))
        else:
            pick = rng.choice(len(wh), p=weights / total)
        centres.append(wh[pick])
    return np.array(centres, dtype=np.float64)


def _lloyd(wh: np.ndarray, centres: np.ndarray, max_iter: int) -> KMeansResult:
    """Assign-to-best-IoU / mean-update iterations; returns the best state seen.

    The mean is not the exact minimiser of ``1 - IoU``, so an update can in principle lower
    the mean IoU; keeping the best state (the initial one included) makes the result never
    worse than its seed, which :func:`kmeans_curve` relies on.
    """
    best: KMeansResult | None = None
    assignment = None
    for _ in range(max_iter + 1):
        iou = shape_iou(wh, centres)
        new_assignment = iou.argmax(axis=1)
        score = float(iou.max(axis=1).mean())
        if best is None or score > best.mean_iou:
            best = KMeansResult(centres.copy(), new_assignment, score)
        if assignment is not None and np.array_equal(assignment, new_assignment):
            break
        assignment = new_assignment
        for j in range(len(centres)):
            members = wh[assignment == j]
            if len(members):
                centres[j] = members.mean(axis=0)
            else:  # empty cluster: move it to the worst-covered shape
                centres[j] = wh[iou.max(axis=1).argmin()]
    assert best is not None
    return best


def _sorted(result: KMeansResult) -> KMeansResult:
    order = np.argsort(result.centres[:, 0] * result.centres[:, 1], kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return KMeansResult(result.centres[order], rank[result.assignment], result.mean_iou)


def kmeans_iou(
    wh: np.ndarray,
    k: int,
    *,
    rng: np.random.Generator,
    restarts: int = 10,
    max_iter: int = 100,
    start: np.ndarray | None = None,
) -> KMeansResult:
    """Best of ``restarts`` k-means runs over shapes ``wh (N, 2)`` with distance ``1 - IoU``.

    Seeds by k-means++ from ``rng``; ``start (j, 2)``, if given, seeds one extra run whose
    first ``j`` centres are ``start``. Raises ``ValueError`` if ``k < 1`` or there are fewer
    distinct shapes than ``k``.
    """
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not (np.isfinite(wh).all() and (wh > 0).all()):
        raise ValueError("shapes must be finite and positive; filter them with box_shapes()")
    n_distinct = len(np.unique(wh, axis=0))
    if n_distinct < k:
        raise ValueError(
            f"cannot make {k} clusters from {n_distinct} distinct box shape(s) "
            f"({len(wh)} boxes); lower k or annotate more boxes"
        )
    seeds = [_seed_plus_plus(wh, k, rng, None) for _ in range(max(restarts, 1))]
    if start is not None and len(start) < k:
        seeds.append(_seed_plus_plus(wh, k, rng, np.asarray(start, dtype=np.float64)))
    best = max((_lloyd(wh, s, max_iter) for s in seeds), key=lambda r: r.mean_iou)
    return _sorted(best)


def kmeans_curve(
    wh: np.ndarray, k_max: int, *, rng: np.random.Generator, restarts: int = 10
) -> list[KMeansResult]:
    """Results for ``k = 1 .. k_max``; mean IoU never decreases with ``k``.

    Each ``k`` also restarts from the best ``k - 1`` centres plus one k-means++ centre, and
    :func:`_lloyd` never returns worse than its seed, so ``mean_iou[k] >= mean_iou[k - 1]``.
    ``k_max`` is capped at the number of distinct shapes only by the ``ValueError`` of
    :func:`kmeans_iou`.
    """
    results: list[KMeansResult] = []
    for k in range(1, k_max + 1):
        start = results[-1].centres if results else None
        results.append(kmeans_iou(wh, k, rng=rng, restarts=restarts, start=start))
    return results


def _group_log(values: np.ndarray, n: int | None, decimals: int) -> tuple[float, ...]:
    """Distinct rounded values; with ``n``, merge to ``n`` groups split at the largest gaps
    in log space, each group represented by its geometric mean."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    if n is not None and n < len(np.unique(np.round(v, decimals))):
        logs = np.log(v)
        cuts = np.sort(np.argsort(np.diff(logs))[::-1][: n - 1]) + 1
        v = np.array([np.exp(g.mean()) for g in np.split(logs, cuts)])
    return tuple(sorted(set(np.round(v, decimals).tolist())))


def level_strides(sizes: tuple[float, ...], strides: tuple[int, ...]) -> tuple[int, ...]:
    """The level of each anchor size when the model has feature maps at ``strides``: the
    coarsest stride ``s`` with ``size >= 4 * s`` (an anchor spans at least four cells, as in a
    feature pyramid's canonical assignment), else the finest. With strides (8, 16): sizes
    below 64 px go to stride 8, the rest to stride 16."""
    ordered = sorted(set(int(t) for t in strides))
    out = []
    for size in sizes:
        fits = [t for t in ordered if size >= 4 * t]
        out.append(fits[-1] if fits else ordered[0])
    return tuple(out)


def nearest_levels(sizes: tuple[float, ...], keep: AnchorConfig) -> tuple[int, ...]:
    """The stride of the level of ``keep`` whose sizes (geometric mean) are nearest each
    size in log space: how a designed size joins a model whose levels are fixed (the SSD's
    six, each tuned to a band of sizes)."""
    refs = [(lv.stride, float(np.exp(np.log(lv.sizes).mean()))) for lv in keep.levels]
    return tuple(min(refs, key=lambda r: abs(math.log(size / r[1])))[0] for size in sizes)


def design_config(
    centres: np.ndarray,
    *,
    stride: int | tuple[int, ...] = 16,
    n_sizes: int | None = None,
    n_ratios: int | None = None,
    keep: AnchorConfig | None = None,
) -> AnchorConfig:
    """An :class:`AnchorConfig` from cluster ``centres (k, 2)``: sizes ``sqrt(w*h)`` (whole
    pixels) and ratios ``h / w`` (two decimals). ``stride`` may list the model's levels
    (``(8, 16)``): each size then goes to its level by :func:`level_strides`.

    Approximation: ``AnchorConfig`` tiles every size with every ratio, so ``k`` clusters give
    up to ``k`` sizes x ``k`` ratios = ``k**2`` shapes per location. That grid contains each
    cluster's shape (up to rounding), so its mean IoU is at least the clusters' -- at the
    price of ``A = k**2`` anchors. ``n_sizes`` / ``n_ratios`` merge sizes and ratios (largest
    gaps in log space) to keep ``A`` small, which costs IoU; :func:`grid_mean_iou` says how
    much. torchvision also rounds each anchor's half-extents to whole pixels.

    ``keep``: the anchors of a model whose levels are all required (the SSD's six): each
    size joins its nearest level (:func:`nearest_levels`, ``stride`` is then ignored), a
    level no size joins keeps its sizes from ``keep``, and ``keep``'s grid centring stays.
    """
    c = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    if len(c) == 0:
        raise ValueError("no cluster centres")
    sizes = _group_log(np.sqrt(c[:, 0] * c[:, 1]), n_sizes, 0)
    ratios = _group_log(c[:, 1] / c[:, 0], n_ratios, 2)
    if keep is not None:
        joined = dict(zip(sizes, nearest_levels(sizes, keep), strict=True))
        for lv in keep.levels:
            if lv.stride not in joined.values():
                joined.update({s: lv.stride for s in lv.sizes if s not in joined})
        pairs = sorted(joined.items(), key=lambda p: (p[1], p[0]))
        return AnchorConfig(
            sizes=tuple(s for s, _ in pairs),
            aspect_ratios=ratios,
            stride=keep.stride,
            size_strides=tuple(t for _, t in pairs),
            centring=keep.centring,
        )
    strides = (stride,) if isinstance(stride, int) else tuple(stride)
    per_size = level_strides(sizes, strides)
    return AnchorConfig(
        sizes=sizes, aspect_ratios=ratios, stride=max(per_size), size_strides=per_size
    )


def grid_shapes(config: AnchorConfig) -> np.ndarray:
    """The ``(A, 2)`` widths and heights of the config's anchors, exactly as the model
    builds them (:func:`rpn_core.anchors.grid.base_anchors`, imports torch)."""
    from rpn_core.anchors.grid import base_anchors

    base = base_anchors(config).numpy().astype(np.float64)
    return base[:, 2:] - base[:, :2]


def grid_mean_iou(wh: np.ndarray, config: AnchorConfig) -> float:
    """Mean over shapes ``wh (N, 2)`` of the best IoU with the config's anchor shapes
    (common centre; an upper bound on what the strided grid achieves)."""
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    if len(wh) == 0:
        return math.nan
    return float(shape_iou(wh, grid_shapes(config)).max(axis=1).mean())


def suggest_k(mean_ious: list[float], min_gain: float = FLATTEN_GAIN) -> int | None:
    """Where the curve flattens: the smallest ``k`` (1-based, among the ``k`` computed) whose
    gain over ``k - 1`` is below ``min_gain`` mean IoU; None when every computed step gains
    at least that much (the curve did not flatten within ``k_max``; never "k_max")."""
    for k in range(2, len(mean_ious) + 1):
        if mean_ious[k - 1] - mean_ious[k - 2] < min_gain:
            return k
    return None


def flatten_text(mean_ious: list[float], min_gain: float = FLATTEN_GAIN) -> str:
    """The sentence the CLI and the design panel print about :func:`suggest_k`."""
    k = suggest_k(mean_ious, min_gain)
    if k is None:
        return (
            f"the curve did not flatten within k-max = {len(mean_ious)} (every k gains "
            f">= {min_gain:g} mean IoU over k - 1); try a larger k-max"
        )
    gain = mean_ious[k - 1] - mean_ious[k - 2]
    return (
        f"the curve flattens at k = {k}: its gain over k = {k - 1} is {gain:+.4f} mean IoU, "
        f"below {min_gain:g}"
    )
