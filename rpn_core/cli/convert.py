"""``rpn-studio convert SRC --from FMT --to FMT --out DEST``: annotations between formats.

Every image of ``SRC`` (or of ``--images DIR`` when the annotations live apart from the
images; its upright size is read from the header, so YOLO can be converted both ways) is
paired with its ``--from`` annotation and written as ``--to`` into ``DEST``, which mirrors the
image folder's sub-folders; images themselves are not copied. An image whose annotation
cannot be read is reported and not written, so a damaged file never becomes an empty one.
Progress goes to stderr, then a summary of what was written and what was skipped and why.
Exit status: 0 when everything converted, 1 when something was skipped, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rpn_core.annotation.data import AnnotationWriteError
from rpn_core.annotation.formats import FORMATS, open_store
from rpn_core.annotation.formats.voc import CONVENTIONS

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, metavar="SRC", help="folder with images + annotations")
    parser.add_argument("--from", dest="src_fmt", choices=FORMATS, required=True)
    parser.add_argument("--to", dest="dst_fmt", choices=FORMATS, required=True)
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DEST",
        help="folder for the converted annotations (created if needed)",
    )
    parser.add_argument("--images", type=Path, metavar="DIR",
                        help="folder of the images when they are not in SRC itself")
    parser.add_argument("--recursive", action="store_true", help="include sub-folders")
    parser.add_argument(
        "--voc-in",
        choices=CONVENTIONS,
        default="devkit",
        help="coordinate convention of VOC input (default: devkit)",
    )
    parser.add_argument(
        "--voc-out",
        choices=CONVENTIONS,
        default="devkit",
        help="coordinate convention of VOC output (default: devkit)",
    )
    parser.add_argument(
        "--include-empty",
        action="store_true",
        help="also write (empty) files for images that have no annotation",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-image progress")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    # Imported here so that ``rpn-studio --help`` stays instant.
    from rpn_core.annotation.dataset import load_dataset
    from rpn_core.images.loading import ImageReadError

    src, out = Path(args.src), Path(args.out)
    images = Path(args.images) if args.images else src
    for folder in (src, images):
        if not folder.is_dir():
            _say(f"error: {folder} is not a folder")
            return 2
    same_place = out.resolve() == src.resolve()
    if same_place and args.src_fmt == args.dst_fmt and args.voc_in == args.voc_out:
        _say("error: source and destination are the same folder and format")
        return 2
    try:
        source = open_store(src, args.src_fmt, voc_convention=args.voc_in, image_root=images)
        data = load_dataset(images, recursive=args.recursive, store=source)
    except ImageReadError as exc:
        _say(f"error: {exc}")
        return 2
    target = open_store(out, args.dst_fmt, voc_convention=args.voc_out, image_root=images)
    for name in source.classes:  # keep the source's class ids/order where the target allows
        target.add_class(name)
    written, boxes, failed = 0, 0, []
    total = len(data.items)
    for k, item in enumerate(data.items, start=1):
        if item.annotation_error is not None:
            continue  # unreadable source: reported in the summary, never written as empty
        annotated = bool(item.annotation.boxes) or source.has_annotation(item.image_path)
        if not annotated and not args.include_empty:
            continue
        try:
            target.save(item.annotation)
        except AnnotationWriteError as exc:
            failed.append((item.image_path, str(exc)))
            continue
        written += 1
        boxes += len(item.annotation.boxes)
        if not args.quiet:
            _say(f"[{k}/{total}] {item.image_path.name}: {len(item.annotation.boxes)} boxes")
    _summary(data, written, boxes, failed, args)
    if target.backups:
        _say(f"backed up {len(target.backups)} existing files before overwriting them (*.bak)")
    return 1 if (data.unreadable or data.problems or failed) else 0


def _summary(data, written: int, boxes: int, failed: list, args: argparse.Namespace) -> None:
    _say(
        f"converted {written} of {len(data.items)} images ({boxes} boxes) "
        f"from {args.src_fmt} to {args.dst_fmt} into {args.out}"
    )
    bad = sum(1 for it in data.items if it.annotation_error is not None)
    if bad:
        _say(f"skipped {bad} images whose annotation could not be read")
    skipped = len(data.items) - written - len(failed) - bad
    if skipped and not args.include_empty:
        _say(f"skipped {skipped} images without annotations (--include-empty writes them)")
    if data.unreadable:
        _say(f"skipped {len(data.unreadable)} unreadable images:")
        for path, reason in data.unreadable:
            _say(f"  {path}: {reason}")
    if data.problems:
        _say(f"{len(data.problems)} annotation problems (bad entries were skipped):")
        for path, reason in data.problems:
            _say(f"  {reason}" if str(path) in reason else f"  {path}: {reason}")
    for path, reason in failed:
        _say(f"  not written: {path}: {reason}")
