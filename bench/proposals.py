"""Benchmark: embedded RPN vs Selective Search on real, non-reserved photos (not a test).

    .venv/bin/python bench/proposals.py [--data work-data/teacher/holdout] [--max-images 100]
                                        [--threads 1] [--weights W] [--min-side 600]
                                        [--teacher-python PY --teacher-dir DIR]

Times both methods on the same images in one run (seconds per image, medians, and their
ratio) and measures AR@300 of the RPN against AR@2000 of Selective Search on the held-out
teacher-labelled split made by ``scripts/make_teacher_data.py`` (never trained on; see the
model card). Without that folder it falls back to opencv-doc photos, timing only.
The RPN is timed end to end (resize, backbone, head, decode, top-k + NMS) at shorter side
600; Selective Search in fast mode at :data:`rpn_core.rpn.proposals.SS_WORKING_SIZE`.
Wall-clock medians and CPU-time medians are both printed (with the load average): on a
shared machine wall time mostly measures the neighbours. The last line is
``rpn_vs_ss_speedup=<float>`` (ratio of the wall-clock medians).

Recall is also split by object size (COCO's areas, in original pixels: small < 32², medium,
large >= 96²). With ``--teacher-python`` (a Python with OpenCV 4, see
``bench/ssd_teacher.py``) the SSD teacher's class-agnostic detections (at most 100 per image)
are scored on the same images, and timed in that interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import resources
from rpn_core.rpn.loading import load_embedded_model, load_model
from rpn_core.rpn.model import propose
from rpn_core.rpn.proposals import (
    average_recall,
    best_iou_per_gt,
    proposal_metrics,
    selective_search,
)

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
FALLBACK = ("messi5.jpg", "fruits.jpg", "squirrel_cls.jpg", "basketball1.png", "home.jpg")


def load_set(folder: Path, limit: int) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    items = []
    if folder.is_dir():
        for js in sorted(folder.glob("*.json"))[:limit]:
            doc = json.loads(js.read_text())
            boxes = [s["points"][0] + s["points"][1] for s in doc["shapes"]]
            bgr = cv2.imread(str(js.with_name(doc["imagePath"])))
            items.append((js.stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.array(boxes)))
    if not items:
        print(f"{folder} not found: timing on opencv-doc photos only", file=sys.stderr)
        for name in FALLBACK:
            bgr = cv2.imread(str(OPENCV_DATA / name))
            if bgr is not None:
                items.append((name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None))
    return items


SIZE_BINS = (("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, np.inf))


def ar_by_size(pairs: list[tuple[np.ndarray, np.ndarray]], top_n: int) -> dict[str, tuple]:
    """``{bin: (AR@top_n, number of GT boxes)}`` by GT box area (:data:`SIZE_BINS`)."""
    best = [best_iou_per_gt(props, gt, top_n) for props, gt in pairs]
    best_all = np.concatenate(best) if best else np.zeros(0)
    gts = [np.asarray(gt, np.float64).reshape(-1, 4) for _, gt in pairs]
    area = np.concatenate([(g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]) for g in gts] or [best_all])
    out = {}
    for name, lo, hi in SIZE_BINS:
        pick = (area >= lo) & (area < hi)
        out[name] = (average_recall(best_all[pick]), int(pick.sum()))
    return out


def size_line(label: str, pairs: list, top_n: int) -> str:
    parts = [f"{k}={ar:.4f} (n={n})" for k, (ar, n) in ar_by_size(pairs, top_n).items()]
    return f"{label} AR@{top_n} by size: " + " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=Path("work-data/teacher/holdout"))
    p.add_argument("--max-images", type=int, default=100)
    p.add_argument("--rpn-top-n", type=int, default=300)
    p.add_argument("--ss-top-n", type=int, default=2000)
    p.add_argument("--weights", type=Path, help="RPN weights (default: the embedded RPN)")
    p.add_argument("--float32", action="store_true", help="no bfloat16 backbone")
    p.add_argument("--min-side", type=int, help="RPN input size (default: the model's config)")
    p.add_argument("--teacher-python", help="a Python with OpenCV 4: also score the SSD teacher")
    p.add_argument("--teacher-dir", type=Path, help="folder of the teacher's .pb and .pbtxt")
    # One thread by default: Selective Search runs on one core, so this compares core for
    # core, and on a shared machine a second OpenMP thread mostly waits for its neighbours.
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    items = load_set(args.data, args.max_images)
    if args.weights:
        model = load_model(args.weights, "cpu")
    else:
        model = load_embedded_model(resources.embedded_weights(), "cpu")
    model.bf16_inference = not args.float32
    if args.min_side:
        from dataclasses import replace

        cfg = model.config
        max_side = round(args.min_side * cfg.max_side / cfg.min_side)
        model.config = replace(cfg, min_side=args.min_side, max_side=max_side)
    propose(model, items[0][1])  # warm-up (allocator, oneDNN kernels)
    rpn_s, ss_s, rpn_cpu, ss_cpu, rpn_pairs, ss_pairs = [], [], [], [], [], []
    kinds: list[str] = []
    for k, (name, rgb, gt) in enumerate(items, 1):
        c0, t0 = time.process_time(), time.perf_counter()
        props = propose(model, rgb, top_n=args.rpn_top_n)
        c1, t1 = time.process_time(), time.perf_counter()
        ss = selective_search(rgb, max_boxes=args.ss_top_n)
        c2, t2 = time.process_time(), time.perf_counter()
        rpn_s.append(t1 - t0)
        ss_s.append(t2 - t1)
        rpn_cpu.append(c1 - c0)
        ss_cpu.append(c2 - c1)
        if gt is not None:
            rpn_pairs.append((props.boxes, gt))
            ss_pairs.append((ss, gt))
            kinds.append("vtest" if name.startswith("vtest") else "not-vtest")
        print(f"[{k}/{len(items)}] {name} {rgb.shape[1]}x{rgb.shape[0]}: "
              f"rpn {1e3 * (t1 - t0):.0f} ms, ss {1e3 * (t2 - t1):.0f} ms ({len(ss)} boxes)",
              file=sys.stderr)  # fmt: skip
    rpn_med, ss_med = statistics.median(rpn_s), statistics.median(ss_s)
    print(f"images={len(items)} torch_threads={torch.get_num_threads()}")
    print(f"rpn_seconds_per_image_median={rpn_med:.4f}")
    print(f"ss_seconds_per_image_median={ss_med:.4f}")
    # CPU seconds (all threads) are less distorted than wall time on a shared machine.
    rpn_c, ss_c = statistics.median(rpn_cpu), statistics.median(ss_cpu)
    print(f"rpn_cpu_seconds_median={rpn_c:.4f} ss_cpu_seconds_median={ss_c:.4f}")
    print(f"rpn_vs_ss_cpu_ratio={ss_c / rpn_c:.2f}")
    print(f"load_average_1min={os.getloadavg()[0]:.2f} cores={os.cpu_count()}")
    if rpn_pairs:
        rpn_m = proposal_metrics(rpn_pairs, [10, 100, args.rpn_top_n])
        ss_m = proposal_metrics(ss_pairs, [10, 100, args.rpn_top_n, args.ss_top_n])
        for n, row in rpn_m.items():
            print(f"rpn AR@{n}={row['AR']:.4f} recall@0.5={row['recall@0.5']:.4f} "
                  f"recall@0.7={row['recall@0.7']:.4f} (gt={row['num_gt']})")  # fmt: skip
        for n, row in ss_m.items():
            print(f"ss  AR@{n}={row['AR']:.4f} recall@0.5={row['recall@0.5']:.4f} "
                  f"recall@0.7={row['recall@0.7']:.4f}")  # fmt: skip
        # By kind: vtest.avi's small pedestrians vs everything else (photos, crops, animation).
        for kind in sorted(set(kinds)):
            pick = [i for i, k in enumerate(kinds) if k == kind]
            r = proposal_metrics([rpn_pairs[i] for i in pick], [args.rpn_top_n])[args.rpn_top_n]
            s = proposal_metrics([ss_pairs[i] for i in pick], [args.ss_top_n])[args.ss_top_n]
            print(f"{kind} ({len(pick)} images, {r['num_gt']} boxes): rpn AR@{args.rpn_top_n}="
                  f"{r['AR']:.4f} ss AR@{args.ss_top_n}={s['AR']:.4f}")  # fmt: skip
        print(size_line("rpn", rpn_pairs, args.rpn_top_n))
        print(size_line("ss ", ss_pairs, args.ss_top_n))
        if args.teacher_python:
            from ssd_teacher import teacher_proposals

            labelled = [(rgb, gt) for _, rgb, gt in items if gt is not None]
            outs = teacher_proposals(
                [rgb for rgb, _ in labelled], args.teacher_python, args.teacher_dir, args.threads
            )
            t_pairs = [(boxes, gt) for (boxes, _), (_, gt) in zip(outs, labelled, strict=True)]
            t_m = proposal_metrics(t_pairs, [100])[100]
            t_med = statistics.median(s for _, s in outs)
            print(f"teacher AR@100={t_m['AR']:.4f} recall@0.5={t_m['recall@0.5']:.4f} "
                  f"recall@0.7={t_m['recall@0.7']:.4f} "
                  f"seconds_per_image_median={t_med:.4f}")  # fmt: skip
            print(size_line("teacher", t_pairs, 100))
        rpn_ar, ss_ar = rpn_m[args.rpn_top_n]["AR"], ss_m[args.ss_top_n]["AR"]
        verdict = ">=" if rpn_ar >= ss_ar else "<"
        print(f"rpn_AR@{args.rpn_top_n}={rpn_ar:.4f} {verdict} ss_AR@{args.ss_top_n}={ss_ar:.4f}")
    print(f"rpn_vs_ss_speedup={ss_med / rpn_med:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
