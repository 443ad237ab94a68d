"""Experiment (issue 13): does a stride-8 anchor level reach small objects? A/B on one cache.

Not the product's code path: a development-time A/B of two heads trained on the *same*
cached features (one backbone pass gives both maps), steps and schedule, so the difference is
the level:

* ``single``: the embedded RPN's head (stride 16, context, anchors 64-512), trained by
  ``scripts/train_embedded.py``'s own loop and saved as a weights file (the cache equals that
  script's: same order, mosaics and features, so ``train_embedded.py --coco ... --scales 600
  --seeds ...`` reproduces it);
* ``two-level``: the same, plus torchvision's ``RPNHead`` on MobileNetV2's stride-8 map
  (``features[:7]``, 32 channels) with anchors ``--sizes8`` x ratios 0.5/1/2. Training uses
  torchvision's multi-level semantics: the levels' anchors are concatenated and labelled
  together (one Faster R-CNN rule, one 256-anchor minibatch); inference takes the top
  ``pre_nms_top_n`` per level, NMS per level (``batched_nms`` by level), then the best
  ``post_nms_top_n`` overall by score (``RegionProposalNetwork.filter_proposals``).

Recipe: flip x ``--scales``, plus ``--mosaics`` mosaics, the COCO backbone, one torch thread.
Reports AR@300 on the teacher hold-out (all / not vtest / vtest, and by size) and on
``--human`` boxes. The model card's "tried" table came from::

    python scripts/exp_stride8.py --coco work-data/mobilenet_v2_coco.safetensors \
        --scales 600 --mosaics 300 --steps 1000 --seeds 0 --out work-data/exp8c/exp.json
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
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import batched_nms

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import train_embedded as te  # noqa: E402
from proposals import ar_by_size, load_set  # noqa: E402

from rpn_core.anchors.grid import AnchorConfig, generate_anchors  # noqa: E402
from rpn_core.anchors.labelling import LabelConfig  # noqa: E402
from rpn_core.rpn.backbone import prepare_image  # noqa: E402
from rpn_core.rpn.config import RPNConfig
from rpn_core.rpn.proposals import proposal_metrics  # noqa: E402
from rpn_core.rpn.types import FeatureResult  # noqa: E402

SPLIT = 7  # features[:7]: stride 8, 32 channels


def features(model, rgb: np.ndarray, min_side: int):  # noqa: ANN001, ANN201
    """``(f16, f8, image_size, input_size, padded, scale)`` for one image, float32."""
    from dataclasses import replace

    cfg = model.config
    cfg = replace(cfg, min_side=min_side, max_side=round(min_side * cfg.max_side / cfg.min_side))
    prep = prepare_image(rgb, cfg, "cpu")
    bb = model._inference_backbone()
    with torch.no_grad():
        x = prep.tensor.contiguous(memory_format=torch.channels_last)
        f8 = bb[:SPLIT](x)
        f16 = bb[SPLIT:](f8)
    return (
        f16.float(),
        f8.float(),
        prep.image_size,
        prep.input_size,
        tuple(x.shape[-2:]),
        prep.scale,
    )


def level_outputs(head, fmap):  # noqa: ANN001, ANN201
    logits, deltas = head([fmap])
    b, a4, hf, wf = deltas[0].shape
    obj = logits[0].permute(0, 2, 3, 1).reshape(b, -1)
    reg = deltas[0].view(b, a4 // 4, 4, hf, wf).permute(0, 3, 4, 1, 2).reshape(b, -1, 4)
    return obj[0], reg[0]


def entry(feat: FeatureResult, f8: torch.Tensor) -> tuple:
    """The ``features()`` tuple of a cached entry, in float32."""
    geo = (feat.image_size, feat.input_size, feat.padded_size, feat.scale)
    return (feat.features.float(), f8.float(), *geo)


class TwoLevel:
    def __init__(self, model, cfg8: AnchorConfig | None) -> None:  # noqa: ANN001
        self.model, self.cfg8 = model, cfg8
        self.head8 = RPNHead(32, cfg8.num_anchors_per_location) if cfg8 else None

    def parameters(self) -> list:
        extra = list(self.head8.parameters()) if self.head8 else []
        return self.model.head_parameters() + extra

    def outputs(self, entry):  # noqa: ANN001, ANN201
        """Per level: (logits, deltas, anchors in the input frame)."""
        f16, f8, _, _, padded, _ = entry
        o16, r16 = level_outputs(self.model.rpn.head, f16)
        a16 = generate_anchors(padded, self.model.config.anchors)
        out = [(o16, r16, a16)]
        if self.head8 is not None:
            o8, r8 = level_outputs(self.head8, f8)
            out.append((o8, r8, generate_anchors(padded, self.cfg8)))
        return out

    def loss(self, entries, gts, gen):  # noqa: ANN001, ANN201
        rpn = self.model.rpn
        logits, deltas, anchors, targets = [], [], [], []
        for entry, gt in zip(entries, gts, strict=True):
            levels = self.outputs(entry)
            logits.append(torch.cat([lv[0] for lv in levels]))
            deltas.append(torch.cat([lv[1] for lv in levels]))
            anchors.append(torch.cat([lv[2] for lv in levels]))
            sy, sx = entry[5]
            gt_t = torch.as_tensor(gt, dtype=torch.float32) * torch.tensor([sx, sy, sx, sy])
            targets.append({"boxes": gt_t, "image_size": entry[3]})
        labels, matched = rpn.assign_targets_to_anchors(anchors, targets)
        reg_targets = rpn.box_coder.encode(matched, anchors)
        rpn.fg_bg_sampler.generator = gen
        try:
            return rpn.compute_loss(
                torch.cat(logits)[:, None], torch.cat(deltas), labels, reg_targets
            )
        finally:
            rpn.fg_bg_sampler.generator = None

    @torch.no_grad()
    def propose(self, entry, pre_nms: int = 3000, post_nms: int = 300, iou: float = 0.7):  # noqa: ANN001, ANN201
        boxes_all, scores_all, lvl_all = [], [], []
        h, w = entry[2]
        sy, sx = entry[5]
        for k, (obj, reg, anc) in enumerate(self.outputs(entry)):
            top = obj.topk(min(pre_nms, obj.numel())).indices
            boxes = self.model.rpn.box_coder.decode_single(reg[top], anc[top])
            boxes = boxes / torch.tensor([sx, sy, sx, sy])
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            boxes_all.append(boxes)
            scores_all.append(torch.sigmoid(obj[top]))
            lvl_all.append(torch.full((len(top),), k))
        boxes, scores, lvl = torch.cat(boxes_all), torch.cat(scores_all), torch.cat(lvl_all)
        ok = ((boxes[:, 2:] - boxes[:, :2]) >= 1e-3).all(dim=1)
        boxes, scores, lvl = boxes[ok], scores[ok], lvl[ok]
        keep = batched_nms(boxes, scores, lvl, iou)[:post_nms]  # sorted by score
        return boxes[keep].numpy()


def cache(model, items, scales, mosaics, seed, featurize=None):  # noqa: ANN001, ANN201
    """``(te_cache, f8s)``: exactly ``train_embedded``'s cache (same order, same mosaic RNG,
    the same fused float32 backbone), plus each entry's stride-8 map, from one pass.

    ``featurize`` (default :func:`features`) returns that tuple for one image; another
    function may cache another map in the first slot (``exp_unfreeze.py``'s frozen stem)."""
    featurize = featurize or features
    out, f8s = [], []

    def add(img, bx, min_side, frame):  # noqa: ANN001, ANN202
        f16, f8, image_size, input_size, padded, scale = featurize(model, img, min_side)
        feat = FeatureResult(f16.half().contiguous(), image_size, input_size, padded, scale)
        out.append((feat, bx, frame))
        f8s.append(f8.half().contiguous())

    t0 = time.perf_counter()
    for k, (path, boxes) in enumerate(items):
        rgb = te.load_rgb(path)
        w = rgb.shape[1]
        flipped = boxes.copy()
        flipped[:, [0, 2]] = w - boxes[:, [2, 0]]
        for img, bx in ((rgb, boxes), (np.ascontiguousarray(rgb[:, ::-1]), flipped)):
            for s in scales:
                add(img, bx, s, te._is_frame(path))
        if (k + 1) % 50 == 0:
            el = time.perf_counter() - t0
            print(f"cached {k + 1}/{len(items)} ({el:.0f} s)", file=sys.stderr)
    rng = np.random.default_rng(seed + 1)
    images = {}
    for m in range(mosaics):
        grid = 3 if m % 3 == 2 else 2
        picks = []
        for i in rng.choice(len(items), size=grid * grid, replace=True):
            path, bx = items[i]
            if path not in images:
                images[path] = te.load_rgb(path)
            picks.append((images[path], bx))
        canvas, bx = te.make_mosaic(picks, grid, rng)
        if len(bx):
            add(canvas, bx, te.MOSAIC_SIZE[0], False)
    print(f"cached {len(out)} entries ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return out, f8s


def train(net: TwoLevel, data, f8s, steps, batch, lr, seed):  # noqa: ANN001, ANN201
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    net.model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(len(data), (batch,), generator=gen).tolist()
        entries = [entry(data[i][0], f8s[i]) for i in idx]
        lo, lb = net.loss(entries, [data[i][1] for i in idx], gen)
        total = lo + lb
        if not torch.isfinite(total):
            raise SystemExit(f"loss not finite at step {step}")
        opt.zero_grad()
        total.backward()
        opt.step()
        if step % 500 == 0:
            print(f"step {step} obj {lo.item():.4f} box {lb.item():.4f}", file=sys.stderr)
    net.model.eval()


def evaluate(net: TwoLevel, sets: dict) -> dict:
    res = {}
    for name, items in sets.items():
        pairs = [(net.propose(features(net.model, rgb, 600)), gt) for rgb, gt in items]
        row = proposal_metrics(pairs, [300])[300]
        sizes = {k: (round(a, 4), n) for k, (a, n) in ar_by_size(pairs, 300).items()}
        res[name] = {"AR@300": round(row["AR"], 4), "n": row["num_gt"], "by_size": sizes}
    return res


def eval_sets(data: Path, human: Path, limit: int | None) -> tuple[list, dict]:
    """``(hold-out items, {set name: [(rgb, boxes)]})``: the teacher hold-out (all, not
    vtest, vtest) and the human boxes; ``limit`` (smoke tests) takes the last N hold-outs."""
    held = te.load_items(data, "holdout")[:: -1 if limit else 1][:limit]
    holdout = [(te.load_rgb(p), b) for p, b in held]
    names = [p.stem for p, _ in held]
    sets = {
        "holdout": holdout,
        "not_vtest": [h for h, n in zip(holdout, names, strict=True) if not n.startswith("vtest")],
        "vtest": [h for h, n in zip(holdout, names, strict=True) if n.startswith("vtest")],
        "human": [(rgb, gt) for _, rgb, gt in load_set(human, 100)],
    }
    return held, sets


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--coco", type=Path, required=True)
    p.add_argument("--data", type=Path, default=Path("work-data/teacher"))
    p.add_argument("--human", type=Path, default=Path("work-data/human-eval"))
    p.add_argument("--scales", type=int, nargs="+", default=[600])
    p.add_argument("--mosaics", type=int, default=450)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--sizes8", type=float, nargs="+", default=[16, 32])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", nargs="+", default=["single", "two-level"])
    p.add_argument("--limit", type=int, help="smoke test: first N images of each split")
    p.add_argument("--out", type=Path, default=Path("work-data/exp_stride8.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)  # on a shared, oversubscribed CPU 2 threads crawl
    config = RPNConfig(anchors=AnchorConfig(sizes=(64, 128, 256, 512)), context=True,
                       labels=LabelConfig.faster_rcnn())  # fmt: skip
    torch.manual_seed(args.seeds[0])
    base = te.build_model(config, None, args.coco)
    train_items = te.load_items(args.data, "train")[: args.limit]
    held, sets = eval_sets(args.data, args.human, args.limit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data, f8s = cache(base, train_items, args.scales, args.mosaics, args.seeds[0])
    ns = argparse.Namespace(
        data=args.data, scales=args.scales, mosaics=args.mosaics, steps=args.steps, batch=8,
        lr=1e-3, photo_weight=1.0, objectness_target="label", box_weight=1.0, fg_iou=0.7,
        bg_iou=0.3, coco=args.coco, imagenet=None,
    )  # fmt: skip
    results = {}
    variants = [(v, s) for v in args.variants for s in args.seeds]
    for variant, seed in variants:
        torch.manual_seed(seed)
        model = te.RPNModel(config, device="cpu")
        model.bf16_inference = False
        model.backbone.load_state_dict(base.backbone.state_dict())
        t0 = time.perf_counter()
        if variant == "single":  # train_embedded.py's own loop: a shippable weights file
            ns.seed = seed
            out = args.out.with_name(f"single_seed{seed}.safetensors")
            te.train_and_save(model, data, train_items, held, config, ns, out)
            net = TwoLevel(model, None)
        else:
            net = TwoLevel(model, AnchorConfig(sizes=tuple(args.sizes8), stride=8))
            train(net, data, f8s, args.steps, 8, 1e-3, seed)
            torch.save(net.head8.state_dict(), args.out.with_name(f"head8_seed{seed}.pt"))
            torch.save(model.state_dict(), args.out.with_name(f"two_level_seed{seed}.pt"))
        res = evaluate(net, sets)
        res["train_s"] = round(time.perf_counter() - t0)
        results[f"{variant}/seed{seed}"] = res
        print(json.dumps({f"{variant}/seed{seed}": res}), file=sys.stderr)
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
