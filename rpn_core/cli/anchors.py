"""``rpn-studio anchors DATA_DIR --k-max 12 [--json]``: design anchors by IoU k-means.

Clusters the GT box shapes of an annotated folder (:mod:`rpn_core.anchors.design`) for
k = 1..K **in the model's input frame** (each image's boxes scaled as the model resizes that
image: shorter side ``--min-side``, longer at most ``--max-side``), so the sizes are the
anchor sizes to use as they are and an upscaled copy of a photo gives the same ones. Prints,
per k, the mean IoU of the clusters, the gain over k - 1, the mean IoU of the ``sizes x
ratios`` grid an ``AnchorConfig`` would use (shapes at a common centre: an upper bound), and
the cluster shapes; then where the curve flattens (:func:`~rpn_core.anchors.design.suggest_k`)
and, for that k's set, the mean best IoU and best-possible recall measured on the real
stride-16 grid under ``--labels`` (:func:`~rpn_core.anchors.explain.folder_statistics`, the
anchor lab's statistics). With ``--json`` stdout is ``{"frame": {...}, "k": [...],
"mean_iou": [...], "anchors": [[[w, h], ...], ...], "suggested_k": k or null,
"measured": {"k", "sizes", "aspect_ratios", "strides", "mean_iou", "recall"}}``
(``strides``: each size's level, :func:`~rpn_core.anchors.design.level_strides`).
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
    from rpn_core.annotation.formats.folder import FORMATS

    parser.add_argument(
        "data_dir", type=Path, metavar="DATA_DIR", help="folder with images and their annotations"
    )
    parser.add_argument(
        "--k-max",
        type=int,
        default=12,
        metavar="K",
        help="largest number of clusters (default: 12)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=FORMATS,
        default=None,
        help="annotation format (default: detected)",
    )
    parser.add_argument("--recursive", action="store_true", help="include sub-folders")
    parser.add_argument(
        "--restarts", type=int, default=10, help="k-means++ restarts per k (default: 10)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--stride",
        type=int,
        nargs="+",
        default=None,
        help="stride(s) of the suggested AnchorConfig; two (8 16) put each size on a level, "
        "below 64 px at stride 8 (default: the embedded model's levels, 8 16)",
    )
    parser.add_argument(
        "--n-sizes",
        type=int,
        default=None,
        metavar="N",
        help="merge each k's sizes into N for the AnchorConfig (default: one per cluster)",
    )
    parser.add_argument(
        "--n-ratios",
        type=int,
        default=None,
        metavar="N",
        help="merge each k's ratios into N (default: one per cluster)",
    )
    from rpn_core.rpn.config import RPNConfig

    d = RPNConfig()
    parser.add_argument(
        "--min-side",
        type=int,
        help=f"the model's input shorter side (default: the embedded model's input; {d.min_side} "
        "for a model that keeps the aspect ratio)",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        help=f"the model's input longer side at most (default: {d.max_side} with --min-side)",
    )
    parser.add_argument(
        "--labels",
        choices=("faster-rcnn", "guide"),
        default="faster-rcnn",
        help="label rule for the measured recall (default: faster-rcnn)",
    )


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


def _strides(args: argparse.Namespace) -> tuple[int, ...]:
    """``--stride``, else the levels of the embedded model (from its sidecar), else 16."""
    if args.stride:
        return tuple(args.stride)
    from rpn_core.rpn.config import embedded_config

    weights = getattr(args, "embedded_weights", None)
    if weights is None:
        return (16,)
    anchors = embedded_config(Path(weights).with_suffix(".json")).anchors
    return tuple(lv.stride for lv in anchors.levels)


def _embedded(args: argparse.Namespace):
    from rpn_core.rpn.config import embedded_config

    weights = getattr(args, "embedded_weights", None)
    return None if weights is None else embedded_config(Path(weights).with_suffix(".json"))


def _frame(args: argparse.Namespace):
    """The input frame: ``--min-side``/``--max-side`` when given, else the embedded model's
    (the SSD's 300 x 300 squash), else the default shorter side 600."""
    from rpn_core.rpn.config import RPNConfig

    if args.min_side is None and args.max_side is None:
        embedded = _embedded(args)
        if embedded is not None:
            return embedded
    d = RPNConfig()
    return RPNConfig(min_side=args.min_side or d.min_side, max_side=args.max_side or d.max_side)


def _keep(args: argparse.Namespace):
    """The embedded SSD's anchors, whose six levels a designed set keeps (none otherwise)."""
    if args.stride:
        return None
    embedded = _embedded(args)
    return embedded.anchors if embedded is not None and embedded.is_ssd else None


def _items(args: argparse.Namespace):
    """The folder's input-frame items and GT shapes ``(items, wh (N, 2))``, or an exit
    status after saying what is wrong."""
    import numpy as np

    from rpn_core.anchors.design import frame_shapes, input_frame_items
    from rpn_core.annotation.dataset import load_dataset
    from rpn_core.images.loading import ImageReadError

    if args.k_max < 1:
        _say(f"error: --k-max must be at least 1, got {args.k_max}")
        return 2
    try:
        frame = _frame(args)
    except ValueError as exc:
        _say(f"error: {exc}")
        return 2
    try:
        data = load_dataset(args.data_dir, args.fmt, recursive=args.recursive)
    except ImageReadError as exc:
        _say(f"error: {exc}")
        return 2
    for path, reason in [*data.unreadable, *data.problems]:
        _say(f"note: {path}: {reason}")
    items = input_frame_items(
        ((it.image_path, (it.height, it.width), it.boxes) for it in data if len(it.boxes)), frame
    )
    shapes = frame_shapes(items)
    if shapes.skipped:
        _say(f"note: skipped {shapes.skipped} zero-area or invalid box(es)")
    distinct = len(np.unique(shapes.wh, axis=0)) if len(shapes.wh) else 0
    if distinct < args.k_max:
        _say(
            f"error: {args.data_dir} has {len(shapes.wh)} valid GT box(es) with {distinct} "
            f"distinct shape(s); --k-max {args.k_max} needs at least {args.k_max}"
        )
        return 1
    _say(
        f"clustering {len(shapes.wh)} GT boxes of {len(data)} image(s), k = 1..{args.k_max}, "
        f"in the model's input frame ({_frame_text(_frame(args))})"
    )
    return items, shapes.wh


def _frame_text(frame) -> str:  # noqa: ANN001 - an RPNConfig
    if frame.input_square:
        n = frame.input_square
        return f"each image squashed to {n} x {n}; sizes in those pixels"
    return (
        f"each image resized to shorter side {frame.min_side}, longer at most "
        f"{frame.max_side}; sizes in those pixels"
    )


def _frame_json(frame) -> dict:  # noqa: ANN001 - an RPNConfig
    if frame.input_square:
        return {"input_square": frame.input_square}
    return {"min_side": frame.min_side, "max_side": frame.max_side}


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from rpn_core.anchors.design import (
        design_config,
        flatten_text,
        grid_mean_iou,
        kmeans_curve,
        suggest_k,
    )
    from rpn_core.anchors.explain import folder_statistics
    from rpn_core.anchors.grid import format_sizes
    from rpn_core.anchors.labelling import LabelConfig

    found = _items(args)
    if isinstance(found, int):
        return found
    items, wh = found
    curve = kmeans_curve(
        wh, args.k_max, rng=np.random.default_rng(args.seed), restarts=args.restarts
    )
    configs = [
        design_config(
            r.centres,
            stride=_strides(args),
            n_sizes=args.n_sizes,
            n_ratios=args.n_ratios,
            keep=_keep(args),
        )
        for r in curve
    ]
    ious = [r.mean_iou for r in curve]
    k = suggest_k(ious)
    chosen = configs[(k or len(curve)) - 1]
    labels = LabelConfig.preset(args.labels)
    stats = folder_statistics(items, chosen, labels)
    measured = {
        "k": k or len(curve), "sizes": list(chosen.sizes),
        "aspect_ratios": list(chosen.aspect_ratios), "strides": list(chosen.strides),
        "mean_iou": round(stats.mean_iou, 6), "recall": round(stats.recall(labels), 6),
    }  # fmt: skip
    if args.json:
        print(
            json.dumps(
                {
                    "frame": _frame_json(_frame(args)),
                    "k": [r.k for r in curve],
                    "mean_iou": [round(r.mean_iou, 6) for r in curve],
                    "anchors": [
                        [[round(float(w), 2), round(float(h), 2)] for w, h in r.centres]
                        for r in curve
                    ],
                    "suggested_k": k,
                    "measured": measured,
                }
            )
        )
        return 0
    grid = [grid_mean_iou(wh, c) for c in configs]
    print(f"anchor shapes in the model's input frame ({_frame_text(_frame(args))})")
    print(_table(curve, grid, configs))
    print(f"\n{flatten_text(ious)}")
    print(
        f"k = {measured['k']} as anchors (sizes {format_sizes(chosen)}; "
        f"ratios {', '.join(f'{r:g}' for r in chosen.aspect_ratios)}; stride {chosen.stride}) "
        f"measured on the grid under the {args.labels} rule: mean best IoU "
        f"{stats.mean_iou:.4f}, best-possible recall {stats.recall(labels):.1%} "
        f"of {len(stats.best_iou)} GT boxes (what the anchor lab's statistics show)"
    )
    return 0
