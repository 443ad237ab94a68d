"""Draw ``docs/rpn_vs_selective_search.jpg``: top-15 RPN vs Selective Search proposals.

Held-out teacher-labelled images from ``scripts/make_teacher_data.py`` (never trained on);
green: teacher boxes, orange: proposals. Development tool, not part of the app::

    python scripts/figure_rpn_vs_ss.py [--data work-data/teacher/holdout]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

import resources
from rpn_core.rpn.loading import load_embedded_model
from rpn_core.rpn.model import propose
from rpn_core.rpn.proposals import selective_search

NAMES = ("vtest_00690", "Megamind_00252", "building")


def panel(bgr: np.ndarray, gt: list, boxes: np.ndarray, title: str) -> np.ndarray:
    im = bgr.copy()
    for (x1, y1), (x2, y2) in gt:
        cv2.rectangle(im, (int(x1), int(y1)), (int(x2), int(y2)), (0, 255, 0), 3)
    for b in boxes[::-1]:
        cv2.rectangle(im, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 140, 255), 1)
    cv2.putText(im, title, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
    return cv2.resize(im, (480, round(480 * im.shape[0] / im.shape[1])))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=Path("work-data/teacher/holdout"))
    p.add_argument("--out", type=Path, default=Path("docs/rpn_vs_selective_search.jpg"))
    args = p.parse_args()
    model = load_embedded_model(resources.embedded_weights(), "cpu")
    rows = []
    for name in NAMES:
        doc = json.loads((args.data / f"{name}.json").read_text())
        bgr = cv2.imread(str(args.data / doc["imagePath"]))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        gt = [s["points"] for s in doc["shapes"]]
        left = panel(bgr, gt, propose(model, rgb, top_n=15).boxes, "RPN top-15")
        right = panel(bgr, gt, selective_search(rgb, max_boxes=15), "Selective Search top-15")
        rows.append(np.hstack([left, right]))
    im = np.vstack(rows)
    im = cv2.resize(im, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(args.out), im, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
