"""Experiment (issue 13): does un-freezing MobileNetV2's last blocks, once the heads are good,
lift recall? Starts from a trained weights file (default: the embedded v3).

Not the product's code path. The frozen stem is run once per cached entry:
``backbone[:7]`` gives the stride-8 map (the fine head's input, kept frozen) and
``backbone[7:11]`` the 64-channel stride-16 map; blocks 11-13 and the stride-32 context
(blocks 14-16) then train with both heads, at a low learning rate (``--lr-backbone``) with a
cosine schedule. Batch-norm stays frozen (its statistics and affine terms are MobileNetV2's),
only convolution weights move. Data and augmentation are ``exp_stride8.py``'s cache (same
images, flips, mosaics, RNG); the loss is :meth:`RPNModel.losses`, the product's own.

Writes the tuned model as a weights file (``--out``) and prints AR@300 on the teacher
hold-out (all / vtest / not vtest) and the human boxes, with the product's
``propose`` (per-level NMS 0.7), next to the starting model's, measured in the same run::

    python scripts/exp_unfreeze.py --steps 800 --out work-data/unfreeze/seed0.safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import exp_stride8 as e8  # noqa: E402
import train_embedded as te  # noqa: E402
from proposals import ar_by_size  # noqa: E402

import resources  # noqa: E402
from rpn_core.rpn.backbone import prepare_image  # noqa: E402
from rpn_core.rpn.loading import load_model, save_weights  # noqa: E402
from rpn_core.rpn.model import propose  # noqa: E402
from rpn_core.rpn.proposals import proposal_metrics  # noqa: E402
from rpn_core.rpn.types import FeatureResult  # noqa: E402

STEM = 11  # backbone[:11] stays frozen (and cached); blocks 11.. train


def stem_features(model, rgb: np.ndarray, min_side: int):  # noqa: ANN001, ANN201
    """``(x11, f8, image_size, input_size, padded, scale)``: the frozen stem's two maps."""
    from dataclasses import replace

    cfg = model.config
    cfg = replace(cfg, min_side=min_side, max_side=round(min_side * cfg.max_side / cfg.min_side))
    prep = prepare_image(rgb, cfg, "cpu")
    with torch.no_grad():
        x = prep.tensor.contiguous(memory_format=torch.channels_last)
        f8 = model.backbone[: e8.SPLIT](x)
        x11 = model.backbone[e8.SPLIT : STEM](f8)
    padded = tuple(x.shape[-2:])
    return x11.float(), f8.float(), prep.image_size, prep.input_size, padded, prep.scale


def evaluate(model, sets: dict) -> dict:  # noqa: ANN001
    model.eval()
    res = {}
    for name, items in sets.items():
        pairs = [(propose(model, rgb).boxes, gt) for rgb, gt in items]
        row = proposal_metrics(pairs, [300])[300]
        sizes = {k: (round(a, 4), n) for k, (a, n) in ar_by_size(pairs, 300).items()}
        res[name] = {"AR@300": round(row["AR"], 4), "n": row["num_gt"], "by_size": sizes}
    return res


def train(model, data, f8s, args) -> None:  # noqa: ANN001
    blocks = [p for p in model.backbone[STEM:].parameters() if p.ndim == 4]
    for p in blocks:
        p.requires_grad_(True)
    heads = model.head_parameters()
    opt = torch.optim.AdamW(
        [
            {"params": blocks, "lr": args.lr_backbone, "base": args.lr_backbone},
            {"params": heads, "lr": args.lr_head, "base": args.lr_head},
        ],
        weight_decay=1e-4,
    )
    gen = torch.Generator().manual_seed(args.seed)
    model.train()
    t0 = time.perf_counter()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = g["base"] * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        idx = torch.randint(len(data), (args.batch,), generator=gen).tolist()
        feats = []
        for i in idx:
            cached, _, _ = data[i]
            x16, _ = model.run_backbone(cached.features.float(), start=STEM, fine=f8s[i].float())
            feats.append(
                FeatureResult(
                    x16,
                    cached.image_size,
                    cached.input_size,
                    cached.padded_size,
                    cached.scale,
                    f8s[i].float(),
                )  # fmt: skip
            )
        losses = model.losses(feats, [data[i][1] for i in idx], gen)
        total = losses["loss_objectness"] + losses["loss_rpn_box_reg"]
        if not torch.isfinite(total):
            raise SystemExit(f"loss not finite at step {step}")
        opt.zero_grad()
        total.backward()
        opt.step()
        if step % 100 == 0:
            el = time.perf_counter() - t0
            print(f"step {step} obj {losses['loss_objectness'].item():.4f} "
                  f"box {losses['loss_rpn_box_reg'].item():.4f} ({el:.0f} s)",
                  file=sys.stderr)  # fmt: skip
    for p in blocks:
        p.requires_grad_(False)
    model.eval()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--start", type=Path, help="weights to start from (default: embedded)")
    p.add_argument("--data", type=Path, default=Path("work-data/teacher"))
    p.add_argument("--human", type=Path, default=Path("work-data/human-eval"))
    p.add_argument("--scales", type=int, nargs="+", default=[600])
    p.add_argument("--mosaics", type=int, default=900)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr-backbone", type=float, default=1e-4)
    p.add_argument("--lr-head", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, help="smoke test: first N images of each split")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = args.start or resources.embedded_weights()
    model = load_model(start, "cpu")
    model.bf16_inference = False
    train_items = te.load_items(args.data, "train")[: args.limit]
    _, sets = e8.eval_sets(args.data, args.human, args.limit)
    results = {"start": str(start), "args": {k: str(v) for k, v in vars(args).items()}}
    results["before"] = evaluate(model, sets)
    print(json.dumps(results["before"]), file=sys.stderr)
    data, f8s = e8.cache(model, train_items, args.scales, args.mosaics, args.seed,
                         featurize=stem_features)  # fmt: skip
    t0 = time.perf_counter()
    train(model, data, f8s, args)
    results["train_s"] = round(time.perf_counter() - t0)
    results["after"] = evaluate(model, sets)
    print(json.dumps(results["after"]), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"experiment": "exp_unfreeze", "steps": args.steps, "seed": args.seed,
            "lr_backbone": args.lr_backbone, "lr_head": args.lr_head}  # fmt: skip
    save_weights(model, args.out, meta)
    args.out.with_suffix(".json.result").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
