"""Benchmark: does fine-tuning on a few annotated frames raise proposal recall? (issue 6)

Data: frames of opencv-doc's pedestrian video ``vtest.avi`` (768 x 576), a scene the embedded
weights never saw (``scripts/make_teacher_data.py`` keeps the video out of their training
data): 20 training frames (0, 20, ..., 380) and 20 validation frames (420, 439, ..., 781),
later in time, so the people stand elsewhere and are mostly other people. Boxes: people
(COCO class 1, score >= 0.5) found by the SSD-MobileNetV2-COCO teacher (ENVIRONMENT.md,
a development-time tool) on overlapping half-size tiles of each frame (finer boxes than on
the whole frame, see :func:`tiled_people`), stored in ``bench/data/vtest_people.json`` so the
benchmark needs no teacher; ``--relabel --teacher-dir DIR`` rebuilds that file.

Run: for each of ``--seeds`` (0 1 2), fine-tune the embedded weights (head mode) with
:func:`rpn_core.training.finetune.fine_tune` on the 20 frames, within ``--max-cpu-s`` (300)
seconds of process CPU time for feature caching and training together, and measure recall@100 at IoU
0.5 and 0.7 on the 20 validation frames before and after. "After" follows the
best-checkpoint rule of :func:`fine_tune` (issue 15): the weights a run hands back are its best
validation checkpoint (recall@100 at IoU 0.7, then the lower validation loss), and when they do
not beat the starting weights the app keeps the old ones -- so the *kept* gain of a seed is
``after - before`` when the run improved and 0 otherwise. The last step's recall is printed
too. The seed changes the initial state of nothing but the minibatch sampling and
augmentation, so the spread over seeds is the run-to-run noise. Last line
``finetune_recall_gain=<mean over seeds of the kept gain at IoU 0.7>`` (each seed's best,
final and kept gains are printed above it).

Usage: python bench/finetune.py [--steps 200] [--batch-size 4] [--lr 0.01] [--seeds 0 1 2]
[--input-size 600] (``rpn_core.rpn.adapt.with_input_size``: "before" is then measured at that
size too)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
DATA = Path(__file__).resolve().parent / "data" / "vtest_people.json"
TRAIN_FRAMES = tuple(range(0, 400, 20))
VAL_FRAMES = tuple(range(420, 800, 19))
PERSON, MIN_SCORE = 1, 0.5


def read_frames(indices: set[int]) -> dict[int, np.ndarray]:
    """RGB frames of ``vtest.avi`` by index."""
    if not VIDEO.is_file():
        raise SystemExit(f"{VIDEO} not found (Debian package opencv-doc)")
    cap = cv2.VideoCapture(str(VIDEO))
    frames, index = {}, 0
    while len(frames) < len(indices):
        ok, bgr = cap.read()
        if not ok:
            raise SystemExit(f"{VIDEO}: only {index} frames")
        if index in indices:
            frames[index] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        index += 1
    return frames


def tiled_people(teacher: object, rgb: np.ndarray) -> list[list[float]]:
    """People found by the teacher on 3 x 3 overlapping half-size tiles, merged by NMS.

    The teacher sees 300 x 300 pixels: on a whole 768 x 576 frame a person is ~10 x 25 of
    them and the boxes are coarse; on half-size tiles they are twice as fine. A box cut by an
    inner tile border is dropped (a neighbouring tile holds the whole person).
    """
    import torch
    from torchvision.ops import nms

    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    h, w = bgr.shape[:2]
    th, tw = h // 2, w // 2
    boxes, scores = [], []
    for y0 in (0, h // 4, h // 2):
        for x0 in (0, w // 4, w // 2):
            found, found_scores, classes = teacher.detect(
                bgr[y0 : y0 + th, x0 : x0 + tw], MIN_SCORE
            )
            for b, s, c in zip(found, found_scores, classes, strict=True):
                cut = (
                    (b[0] < 3 and x0 > 0) or (b[1] < 3 and y0 > 0)
                    or (b[2] > tw - 3 and x0 + tw < w) or (b[3] > th - 3 and y0 + th < h)
                )  # fmt: skip
                if c == PERSON and not cut:
                    boxes.append([b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0])
                    scores.append(float(s))
    if not boxes:
        return []
    t = torch.tensor(boxes, dtype=torch.float32)
    keep = nms(t, torch.tensor(scores), 0.4)
    return [[round(float(v), 1) for v in t[k]] for k in keep]


def relabel(teacher_dir: Path) -> None:
    """Run the teacher on the frames and write ``DATA``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from make_teacher_data import Teacher

    teacher = Teacher(teacher_dir)
    frames = read_frames(set(TRAIN_FRAMES + VAL_FRAMES))
    out = {
        "video": VIDEO.name,
        "teacher": "ssd_mobilenet_v2_coco_2018_03_29 on 3x3 overlapping half-size tiles",
        "frames": {str(i): tiled_people(teacher, rgb) for i, rgb in sorted(frames.items())},
    }
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {DATA}", file=sys.stderr)


def load_items() -> tuple[list, list]:
    labels = json.loads(DATA.read_text())["frames"]
    frames = read_frames(set(TRAIN_FRAMES + VAL_FRAMES))

    def items(indices: tuple[int, ...]) -> list:
        out = []
        for i in indices:
            boxes = np.asarray(labels[str(i)], dtype=np.float32).reshape(-1, 4)
            if len(boxes):
                out.append((frames[i], boxes))
        return out

    return items(TRAIN_FRAMES), items(VAL_FRAMES)


def run_seed(model_factory, train: list, val: list, args: argparse.Namespace, seed: int) -> dict:
    """One fine-tuning run from fresh weights; returns the before/after metrics and costs."""
    from rpn_core.training.finetune import TrainConfig, fine_tune

    config = TrainConfig(
        mode=args.mode, epochs=1000, max_steps=args.steps, seed=seed,
        batch_size=args.batch_size, lr=args.lr, augment_copies=4, recall_top_n=(100,),
        validate_every=5,
    )  # fmt: skip
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = None
    run = fine_tune(model_factory(), train, config, validation_items=val)
    for record in run:
        if record.phase == "validate":
            r = record.recall
            print(
                f"seed {seed} step {record.step:4d}  val loss {record.val_total:.4f}  "
                f"recall@100 IoU0.5 {r['recall@100/0.5']:.3f}  IoU0.7 {r['recall@100/0.7']:.3f}",
                file=sys.stderr,
            )
        if record.phase == "done":
            result = record.result
        if record.phase == "train" and time.process_time() - cpu0 > args.max_cpu_s - 3.0:
            run.close()  # leave ~3 CPU-s for the final validation
            raise SystemExit(
                f"CPU budget of {args.max_cpu_s:g} s reached before the end: lower --steps"
            )
    return {
        "before": result.metrics_before,
        "after": result.metrics_after,
        "final": result.metrics_final,
        "best_step": result.best_step,
        "improved": result.improved,
        "steps": result.steps,
        "cpu": time.process_time() - cpu0,
        "wall": time.perf_counter() - wall0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="optimiser steps at most")
    parser.add_argument("--max-cpu-s", type=float, default=300.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--mode", choices=("head", "partial", "full"), default="head")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--weights", type=Path, help="start from these weights, not the embedded")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--input-size", type=int, help="fine-tune at this input size (rpn-studio train's option)"
    )
    parser.add_argument("--relabel", action="store_true")
    parser.add_argument("--teacher-dir", type=Path)
    args = parser.parse_args()
    if args.relabel:
        relabel(args.teacher_dir)
    import torch

    torch.set_num_threads(args.threads)  # CPU time ~ wall time; a loaded machine stays fair
    import resources
    from rpn_core.rpn.adapt import with_input_size
    from rpn_core.rpn.loading import load_embedded_model, load_model

    def model_factory():  # noqa: ANN202 - fresh weights for every seed
        model = (
            load_model(args.weights, "cpu")
            if args.weights
            else load_embedded_model(resources.embedded_weights(), "cpu")
        )
        return with_input_size(model, args.input_size) if args.input_size else model

    train, val = load_items()
    n_val = sum(len(b) for _, b in val)
    print(f"images: {len(train)} train, {len(val)} validation ({n_val} people); "
          f"threads {torch.get_num_threads()}")  # fmt: skip
    gains, kept = [], []
    for seed in args.seeds:
        out = run_seed(model_factory, train, val, args, seed)
        before, after, final = out["before"], out["after"], out["final"]
        cost = f"CPU {out['cpu']:.1f} s, wall {out['wall']:.1f} s"
        print(
            f"seed {seed}: steps {out['steps']}, best checkpoint at step {out['best_step']}, "
            f"improved {out['improved']}, {cost}"
        )
        for key in ("recall@100/0.5", "recall@100/0.7"):
            print(
                f"  {key}: before {before[key]:.3f}  best {after[key]:.3f}  "
                f"last step {final[key]:.3f}"
            )
        gains.append(after["recall@100/0.7"] - before["recall@100/0.7"])
        kept.append(gains[-1] if out["improved"] else 0.0)
        print(
            f"  gain at IoU 0.7: best checkpoint {gains[-1]:+.4f}, last step "
            f"{final['recall@100/0.7'] - before['recall@100/0.7']:+.4f}, kept {kept[-1]:+.4f}"
        )
    print(
        f"best-checkpoint gain over {len(gains)} seeds: mean {np.mean(gains):+.4f}, "
        f"min {min(gains):+.4f}, max {max(gains):+.4f}; kept (old weights when not better): "
        f"mean {np.mean(kept):+.4f} (one validation person = {1 / max(n_val, 1):.4f})"
    )
    print(f"finetune_recall_gain={np.mean(kept):.4f}")


if __name__ == "__main__":
    main()
