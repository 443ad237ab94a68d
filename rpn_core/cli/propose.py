"""``rpn-studio propose PATH... [--weights FILE] [--top-n 300] [--method rpn|selective-search]``.

Writes ``{"images": [{"file", "width", "height", "boxes", "scores"}], "errors": [{"file",
"reason"}], ...}``: boxes in original-image pixels (:mod:`rpn_core.boxes`), best first. RPN
scores are objectness probabilities; Selective Search has no scores, so its ``scores`` are
``1 / (1 + rank)`` (``"score_kind": "rank"``). An unreadable image is listed under
``errors`` and the batch goes on (exit status 1 at the end); a bad weights file stops the
command before any image (exit status 2). Torch is imported only when the RPN runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rpn_core.images.loading import ImageReadError, list_images

METHODS = ("rpn", "selective-search")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="images or folders")
    parser.add_argument("--weights", type=Path, help="RPN weights (default: the embedded RPN)")
    parser.add_argument("--top-n", type=int, default=300, help="proposals per image (300)")
    parser.add_argument("--method", choices=METHODS, default="rpn")
    parser.add_argument("--out", type=Path, help="JSON file to write (default: stdout)")
    parser.add_argument("--recursive", action="store_true", help="walk sub-folders")


def collect_images(paths: list[Path], recursive: bool) -> tuple[list[Path], list[dict]]:
    """Image files named or inside folders, plus ``{"file", "reason"}`` for bad paths."""
    files: list[Path] = []
    errors: list[dict] = []
    for path in paths:
        if path.is_dir():
            listing: list[str] = []
            try:
                files += list_images(path, recursive=recursive, errors=listing)
            except ImageReadError as exc:
                errors.append({"file": str(path), "reason": exc.reason})
            errors += [{"file": str(path), "reason": msg} for msg in listing]
        elif path.exists():
            files.append(path)
        else:
            errors.append({"file": str(path), "reason": "no such file or folder"})
    return files, errors


def make_proposer(args: argparse.Namespace):  # noqa: ANN201 - returns a closure
    """``rgb -> (boxes, scores)`` for the chosen method (loads the model once)."""
    import numpy as np

    if args.method == "selective-search":
        from rpn_core.rpn.proposals import selective_search

        def run_ss(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            boxes = selective_search(rgb, max_boxes=args.top_n)
            return boxes, 1.0 / (1.0 + np.arange(len(boxes)))

        return run_ss

    from rpn_core.cli._model import load_cli_model
    from rpn_core.rpn.model import propose

    model = load_cli_model(args)

    def run_rpn(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        props = propose(model, rgb, top_n=args.top_n)
        return props.boxes, props.scores

    return run_rpn


def propose_file(path: Path, proposer) -> dict:  # noqa: ANN001
    """One image's JSON entry; raises ``ImageReadError`` or ``ValueError``."""
    from rpn_core.images.loading import load_image

    loaded = load_image(path)
    boxes, scores = proposer(loaded.pixels)
    boxes = boxes / loaded.scale  # display copy -> original pixels
    return {
        "file": str(path),
        "width": loaded.width,
        "height": loaded.height,
        "boxes": [[round(float(v), 2) for v in b] for b in boxes],
        "scores": [round(float(s), 5) for s in scores],
    }


def run(args: argparse.Namespace) -> int:
    if args.top_n < 1:
        print("error: --top-n must be at least 1", file=sys.stderr)
        return 2
    files, errors = collect_images(args.paths, args.recursive)
    try:
        proposer = make_proposer(args)
    except Exception as exc:  # WeightsError and friends: one clear line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    images = []
    for k, path in enumerate(files, 1):
        start = time.perf_counter()
        try:
            entry = propose_file(path, proposer)
        except (ImageReadError, ValueError) as exc:
            reason = getattr(exc, "reason", str(exc))
            errors.append({"file": str(path), "reason": reason})
            print(f"[{k}/{len(files)}] {path}: skipped ({reason})", file=sys.stderr)
            continue
        ms = (time.perf_counter() - start) * 1e3
        print(
            f"[{k}/{len(files)}] {path}: {len(entry['boxes'])} boxes, {ms:.0f} ms", file=sys.stderr
        )
        images.append(entry)
    doc = {
        "method": args.method,
        "score_kind": "rank" if args.method == "selective-search" else "objectness",
        "images": images,
        "errors": errors,
    }
    text = json.dumps(doc) + "\n"
    if args.out:
        from rpn_core.annotation.data import AnnotationWriteError
        from rpn_core.atomic import atomic_write_text

        try:
            atomic_write_text(args.out, text)
        except AnnotationWriteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {len(images)} images to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 1 if errors else 0
