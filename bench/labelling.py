"""Benchmark: our label_anchors vs torchvision's box_iou + Matcher, same run, same data.

1000x600 image (W x H), default anchors (64/128/256 x 0.5/1/2, stride 16: 21,546 anchors),
1 / 20 / 100 random GT boxes. Prints medians, the ratio torchvision/ours, and last
``label_anchors_ms_median_20gt=<float>``. Goal: <= 2 ms at 20 GT (the overlay relabels on
every mouse move) and never slower than the torchvision path.

Both paths run with the same number of torch intra-op threads, 1 by default: the overlay
relabels on the GUI thread with one thread (two OpenMP threads on a busy 2-core machine made
these millisecond-sized ops up to 10x slower, waiting at each op's barrier).

Usage: python bench/labelling.py [--repeats 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

from rpn_core.anchors.grid import AnchorConfig, generate_anchors
from rpn_core.anchors.labelling import label_image

IMAGE_SIZE = (600, 1000)  # (H, W)


def random_gt(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h, w = IMAGE_SIZE
    wh = 24 + torch.rand(n, 2, generator=g) * 250
    xy = torch.rand(n, 2, generator=g) * (torch.tensor([w, h]) - wh)
    return torch.cat([xy, xy + wh], dim=1)


def median_ms(fn, repeats: int) -> float:
    for _ in range(10):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = AnchorConfig()
    anchors = generate_anchors(IMAGE_SIZE, config)
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, anchors {len(anchors)}")
    print(f"{'GT':>5} {'ours ms':>9} {'torchvision ms':>15} {'speed-up':>9}")
    ours_20 = float("nan")
    for n in (1, 20, 100):
        gt = random_gt(n, seed=n)
        ours = median_ms(lambda gt=gt: label_image(IMAGE_SIZE, config, gt), args.repeats)
        # The torchvision path does less (no per-GT statistics, no labels tensor).
        theirs = median_ms(lambda gt=gt: matcher(box_iou(gt, anchors)), args.repeats)
        print(f"{n:>5} {ours:>9.3f} {theirs:>15.3f} {theirs / ours:>8.2f}x")
        if n == 20:
            ours_20 = ours
    print(f"label_anchors_ms_median_20gt={ours_20:.3f}")


if __name__ == "__main__":
    main()
