"""``rpn-studio anchors DATA_DIR --k-max 12 [--json]``: design anchors by IoU k-means.

Clusters the GT box shapes of an annotated folder (:mod:`rpn_core.anchors.design`) for
k = 1..K and prints, per k, the mean IoU of the clusters, the gain over k - 1, the mean IoU
of the ``sizes x ratios`` grid an ``AnchorConfig`` would use, and the cluster shapes. With
``--json`` stdout is ``{"k": [...], "mean_iou": [...], "anchors": [[[w, h], ...], ...]}``.
Notes (skipped boxes, unreadable files) go to stderr. Exit status: 0 on success, 1 when the
folder has too few valid boxes, 2 for a folder that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rpn_core.annotation.formats import FORMATS

    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR",
                        help="folder with images and their annotations")
    parser.add_argument("--k-max", type=int, default=12, metavar="K",
                        help="largest number of clusters (default: 12)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default=None,
                        help="annotation format (default: detected)")
    parser.add_argument("--recursive", action="store_true", help="include sub-folders")
    parser.add_argument("--restarts", type=int, default=10,
                        help="k-means++ restarts per k (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--stride", type=int, default=16,
                        help="stride of the suggested AnchorConfig (default: 16)")
    parser.add_argument("--n-sizes", type=int, default=None, metavar="N",
                        help="merge each k's sizes into N for the AnchorConfig (default: one "
                        "per cluster)")
    parser.add_argument("--n-ratios", type=int, default=None, metavar="N",
                        help="merge each k's ratios into N (default: one per cluster)")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _table(curve: list, grid: list[float], configs: list) -> str:
    rows = [f"{'k':>3}  {'mean IoU':>8}  {'gain':>7}  {'grid IoU':>8}  anchors (w x h)"]
    previous = 0.0
    for result, grid_iou, config in zip(curve, grid, configs, strict=True):
        shapes = " ".join(f"{w:.0f}x{h:.0f}" for w, h in result.centres)
        rows.append(
            f"{result.k:>3}  {result.mean_iou:8.4f}  {result.mean_iou - previous:+7.4f}  "
            f"{grid_iou:8.4f}  {shapes}   [sizes {', '.join(f'{s:g}' for s in config.sizes)}; "
            f"ratios {', '.join(f'{r:g}' for r in config.aspect_ratios)}]"
        )
        previous = result.mean_iou
    return "\n".join(rows)


def _shapes(args: argparse.Namespace):
    """The folder's GT shapes ``(N, 2)``, or an exit status after saying what is wrong."""
    import numpy as np

    from rpn_core.anchors.design import box_shapes
    from rpn_core.annotation.dataset import load_dataset
    from rpn_core.images.loading import ImageReadError

    if args.k_max < 1:
        _say(f"error: --k-max must be at least 1, got {args.k_max}")
        return 2
    try:
        data = load_dataset(args.data_dir, args.fmt, recursive=args.recursive)
    except ImageReadError as exc:
        _say(f"error: {exc}")
        return 2
    for path, reason in [*data.unreadable, *data.problems]:
        _say(f"note: {path}: {reason}")
    shapes = box_shapes(data.all_boxes())
    if shapes.skipped:
        _say(f"note: skipped {shapes.skipped} zero-area or invalid box(es)")
    distinct = len(np.unique(shapes.wh, axis=0)) if len(shapes.wh) else 0
    if distinct < args.k_max:
        _say(
            f"error: {args.data_dir} has {len(shapes.wh)} valid GT box(es) with {distinct} "
            f"distinct shape(s); --k-max {args.k_max} needs at least {args.k_max}"
        )
        return 1
    _say(f"clustering {len(shapes.wh)} GT boxes of {len(data)} image(s), k = 1..{args.k_max}")
    return shapes.wh


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from rpn_core.anchors.design import design_config, grid_mean_iou, kmeans_curve, suggest_k

    wh = _shapes(args)
    if isinstance(wh, int):
        return wh
    curve = kmeans_curve(wh, args.k_max, rng=np.random.default_rng(args.seed),
                         restarts=args.restarts)
    if args.json:
        print(json.dumps({
            "k": [r.k for r in curve],
            "mean_iou": [round(r.mean_iou, 6) for r in curve],
            "anchors": [[[round(float(w), 2), round(float(h), 2)] for w, h in r.centres]
                        for r in curve],
        }))
        return 0
    configs = [
        design_config(r.centres, stride=args.stride, n_sizes=args.n_sizes,
                      n_ratios=args.n_ratios)
        for r in curve
    ]
    grid = [grid_mean_iou(wh, c) for c in configs]
    print(_table(curve, grid, configs))
    print(f"\nthe curve flattens at k = {suggest_k([r.mean_iou for r in curve])} "
          "(next cluster gains < 0.01 mean IoU)")
    return 0
