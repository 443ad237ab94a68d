"""``rpn-studio eval DATA_DIR [--weights FILE] [--top-n 10 100 300 1000]``.

Proposal recall of the RPN and of Selective Search against a folder's annotations (any
format :func:`rpn_core.annotation.dataset.load_dataset` reads): recall@N at IoU 0.5 and 0.7 and AR@N
(IoU 0.5:0.95), definitions in :mod:`rpn_core.rpn.proposals`. Prints a table; ``--json FILE``
also writes the numbers. Images without boxes are skipped; unreadable ones are reported.

``--breakdown`` says where the RPN loses its recall, from the same forward pass, in two more
rows: ``rpn-every-anchor`` (every anchor's decoded box, N = all: what the box regressor can
reach at all) and ``rpn-no-nms`` (the top N by objectness without NMS: what the ranking
keeps). Far below the first, a row points at the regressor; between the rows, at the scores;
``rpn`` below ``rpn-no-nms``, at NMS keeping poorly placed boxes of a crowd.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

METHODS = ("rpn", "selective-search")
ALL = "all"  # the N of rpn-every-anchor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR")
    parser.add_argument("--weights", type=Path, help="RPN weights (default: the embedded RPN)")
    parser.add_argument("--top-n", type=int, nargs="+", default=[10, 100, 300, 1000])
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), help="what to evaluate"
    )
    parser.add_argument(
        "--breakdown", action="store_true",
        help="also rpn-every-anchor and rpn-no-nms: where the RPN loses recall",
    )  # fmt: skip
    parser.add_argument("--format", dest="fmt", help="annotation format (default: detect)")
    parser.add_argument("--json", type=Path, help="also write the metrics as JSON")


def _proposers(args: argparse.Namespace, max_n: int) -> dict:
    """Per method, a function of an RGB image to ``{row name: ranked boxes}`` (one pass)."""
    from rpn_core.rpn.proposals import selective_search

    out = {}
    if "rpn" in args.methods:
        import numpy as np

        from rpn_core.cli._model import load_cli_model
        from rpn_core.rpn.selection import select_proposals, selection_settings

        model = load_cli_model(args)
        settings = selection_settings(model.config, top_n=max_n)

        def rpn(rgb):  # noqa: ANN001, ANN202
            raw = model.raw_proposals(model.compute_features(rgb))
            rows = {"rpn": select_proposals(raw, **settings).boxes}
            if args.breakdown:
                rows["rpn-no-nms"] = raw.boxes[np.argsort(-raw.scores, kind="stable")[:max_n]]
                rows["rpn-every-anchor"] = raw.boxes
            return rows

        out["rpn"] = rpn
    if "selective-search" in args.methods:
        out["selective-search"] = lambda rgb: {
            "selective-search": selective_search(rgb, max_boxes=max_n)
        }
    return out


def collect(args: argparse.Namespace, dataset, max_n: int) -> tuple[dict, dict, list]:  # noqa: ANN001
    """Per method: ``[(proposals, gt)]`` pairs and seconds per image; plus skipped images."""
    from rpn_core.images.loading import ImageReadError, load_image

    proposers = _proposers(args, max_n)
    pairs: dict[str, list] = {}
    seconds: dict[str, list] = {}
    skipped = []
    items = dataset.annotated
    for k, item in enumerate(items, 1):
        try:
            loaded = load_image(item.image_path)
        except ImageReadError as exc:
            skipped.append((item.image_path, exc.reason))
            continue
        for fn in proposers.values():
            start = time.perf_counter()
            rows = fn(loaded.pixels)
            elapsed = time.perf_counter() - start  # the method's; its extra rows share it
            for row, boxes in rows.items():
                seconds.setdefault(row, []).append(elapsed)
                pairs.setdefault(row, []).append((boxes / loaded.scale, item.boxes))
        print(f"[{k}/{len(items)}] {item.image_path.name}", file=sys.stderr)
    return pairs, seconds, skipped


def format_table(results: dict[str, dict[int, dict]], seconds: dict[str, float]) -> str:
    lines = [f"{'method':<17}{'N':>6}{'R@0.5':>8}{'R@0.7':>8}{'AR':>8}{'s/img':>8}"]
    for method, rows in results.items():
        for n, row in rows.items():
            lines.append(
                f"{method:<17}{n:>6}{row['recall@0.5']:>8.3f}{row['recall@0.7']:>8.3f}"
                f"{row['AR']:>8.3f}{seconds[method]:>8.3f}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from statistics import median

    from rpn_core.annotation.dataset import load_dataset
    from rpn_core.images.loading import ImageReadError
    from rpn_core.rpn.proposals import proposal_metrics

    top_ns = sorted(set(args.top_n))
    if top_ns[0] < 1:
        print("error: --top-n values must be at least 1", file=sys.stderr)
        return 2
    try:
        dataset = load_dataset(args.data_dir, args.fmt)
    except (ImageReadError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path, reason in dataset.unreadable + dataset.problems:
        print(f"warning: {path}: {reason}", file=sys.stderr)
    if not dataset.annotated:
        print(f"error: no annotated images in {args.data_dir}", file=sys.stderr)
        return 2
    try:
        pairs, seconds, skipped = collect(args, dataset, max(top_ns))
    except Exception as exc:  # WeightsError and friends: one clear line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path, reason in skipped:
        print(f"warning: {path}: {reason}", file=sys.stderr)
    if not pairs:
        print(
            f"error: none of the annotated images in {args.data_dir} could be read", file=sys.stderr
        )
        return 2
    results = {}
    for method, p in pairs.items():
        if method == "rpn-every-anchor":
            most = max(len(boxes) for boxes, _ in p)
            results[method] = {ALL: proposal_metrics(p, [most])[most]}
        else:
            results[method] = proposal_metrics(p, top_ns)
    secs = {m: median(s) if s else float("nan") for m, s in seconds.items()}
    print(format_table(results, secs))
    if args.json:
        from rpn_core.atomic import atomic_write_text

        doc = {
            "data_dir": str(args.data_dir),
            "images": len(next(iter(pairs.values()))),
            "seconds_per_image_median": secs,
            "metrics": {m: {str(n): row for n, row in r.items()} for m, r in results.items()},
        }
        atomic_write_text(args.json, json.dumps(doc, indent=1) + "\n")
    return 0
