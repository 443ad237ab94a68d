"""Make a small evaluation folder of real photos with *human* boxes from Debian's
``labelme-examples`` (``apt-get install labelme-examples``).

Development-time tool (never imported by the app; the data is never shipped nor trained on).
The teacher hold-out (``scripts/make_teacher_data.py``) has machine boxes and mostly one large
object per image; this folder is the opposite kind of check: PASCAL VOC 2011 photos annotated
by people (labelme's instance-segmentation example: each object's polygon becomes its tight
box; ``__ignore__`` regions are dropped) plus one frame of its video example (the car; the
``track`` polygons are road markings, not objects). Output: one labelme JSON beside a copy of
each image under ``OUT/``, ready for::

    rpn-studio eval OUT --top-n 10 100 300 1000 2000
    python bench/proposals.py --data OUT

Seventeen objects in four images is far too few to tune on; it shows the *kind* of object
the RPN misses (on these: the ones under ~50 px) and whether a change helps on human boxes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

EXAMPLES = Path("/usr/share/doc/labelme-examples/examples")
SOURCES = (
    ("instance_segmentation/data_annotated", "*.json"),
    ("video_annotation/data_annotated", "00000100.json"),
)
NOT_OBJECTS = {"__ignore__", "track"}


def polygon_box(points: list) -> list[list[float]]:
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return [[min(xs), min(ys)], [max(xs), max(ys)]]


def convert(src: Path, out: Path) -> int:
    """Write ``out/<stem>.jpg`` and ``.json`` (rectangles) for one labelme file; box count."""
    doc = json.loads(src.read_text())
    shapes = [
        {
            "label": s["label"],
            "points": polygon_box(s["points"]),
            "group_id": None,
            "shape_type": "rectangle",
            "flags": {},
        }
        for s in doc["shapes"]
        if s["label"] not in NOT_OBJECTS and len(s["points"]) >= 2
    ]
    image = src.parent / doc["imagePath"]
    target = out / f"{src.stem}{image.suffix}"
    shutil.copyfile(image, target)
    result = {
        "version": doc.get("version", "5.1.1"),
        "flags": {},
        "shapes": shapes,
        "imagePath": target.name,
        "imageData": None,
        "imageHeight": doc["imageHeight"],
        "imageWidth": doc["imageWidth"],
    }
    (out / f"{src.stem}.json").write_text(json.dumps(result, indent=1))
    return len(shapes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=Path, default=EXAMPLES)
    p.add_argument("--out", type=Path, default=Path("work-data/human-eval"))
    args = p.parse_args(argv)
    if not args.examples.is_dir():
        print(f"{args.examples} not found: apt-get install labelme-examples", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for folder, pattern in SOURCES:
        for src in sorted((args.examples / folder).glob(pattern)):
            n = convert(src, args.out)
            total += n
            print(f"{src.stem}: {n} boxes")
    print(f"wrote {total} boxes to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
