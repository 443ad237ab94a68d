"""Check converted MobileNetV2 weights against the TF SSD graph they came from (dev tool).

Used by ``scripts/convert_ssd_backbone.py --verify-with PYTHON``: the graph runs in
``PYTHON`` (OpenCV 4's ``cv2.dnn``; OpenCV 5 has no TensorFlow importer) on a 300 x 300 RGB
image, and torchvision's ``mobilenet_v2`` with the converted weights runs here on the same
pixels, ImageNet-normalised, with TensorFlow's "SAME" padding on the stride-2 convolutions
(0 before / 1 after on even sizes) and, on the first convolution, a pad value that is TF's
zero after the input-scale folding. Each listed block output is compared.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from torchvision.models import mobilenet_v2

MEAN = torch.tensor([0.485, 0.456, 0.406])
STD = torch.tensor([0.229, 0.224, 0.225])

_TF_SIDE = """
import sys, cv2, numpy as np
pb, pbtxt, image, out = sys.argv[1:5]
names = sys.argv[5:]
net = cv2.dnn.readNetFromTensorflow(pb, pbtxt)
rgb = np.load(image)
net.setInput(cv2.dnn.blobFromImage(rgb, swapRB=False, crop=False))
outs = net.forward(names)
np.savez(out, **{f"o{i}": o for i, o in enumerate(outs)})
"""


class TFSame(nn.Module):
    """``conv`` with TensorFlow's SAME padding, computed from the input size; ``fill`` is the
    per-channel value the padding holds (TF pads its own input with zeros)."""

    def __init__(self, conv: nn.Conv2d, fill: torch.Tensor | None = None) -> None:
        super().__init__()
        conv.padding = (0, 0)
        self.conv, self.fill = conv, fill

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        sizes = (x.shape[-1], x.shape[-2])  # F.pad's order: last dimension first
        for size, k, s in zip(
            sizes, self.conv.kernel_size[::-1], self.conv.stride[::-1], strict=True
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if self.fill is None:
            return self.conv(nn.functional.pad(x, pads))
        fill = self.fill.view(1, -1, 1, 1)
        return self.conv(nn.functional.pad(x - fill, pads) + fill)


def tf_same_features(weights: Path) -> nn.Sequential:
    net = mobilenet_v2(weights=None)
    net.load_state_dict(load_file(str(weights)), strict=False)  # no classifier in the file
    feats = net.features.eval()
    first = feats[0][0]
    # x with t = 2 s x + 2 m - 1 = 0: TF's zero padding, in ImageNet-normalised units.
    feats[0][0] = TFSame(first, (1 - 2 * MEAN) / (2 * STD))
    for module in list(feats.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d) and child.stride == (2, 2) and child is not first:
                setattr(module, name, TFSame(child))
    return feats


def compare(
    weights: Path, pb: Path, pbtxt: Path, image: Path, tf_python: str, points: dict[str, int]
) -> dict[str, dict]:
    """``{tf_node: {block, shape, rel_max_abs_diff, mean_abs_diff}}`` for each check point."""
    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {image}")
    rgb = cv2.cvtColor(cv2.resize(bgr, (300, 300), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    names = [f"FeatureExtractor/MobilenetV2/{n}" for n in points]
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "rgb.npy", rgb)
        out = Path(tmp) / "tf.npz"
        cmd = [tf_python, "-c", _TF_SIDE, str(pb), str(pbtxt), str(Path(tmp) / "rgb.npy"), str(out)]
        subprocess.run(cmd + names, check=True)
        tf_outs = dict(np.load(out))
    x = (torch.from_numpy(rgb).float() / 255 - MEAN) / STD
    x = x.permute(2, 0, 1)[None]
    feats = tf_same_features(weights)
    report, last = {}, max(points.values())
    with torch.no_grad():
        for i, block in enumerate(feats[: last + 1]):
            x = block(x)
            for k, (node, b) in enumerate(points.items()):
                if b == i:
                    ref = torch.from_numpy(tf_outs[f"o{k}"])
                    diff = (x - ref).abs()
                    report[node] = {
                        "block": b, "shape": list(ref.shape),
                        "rel_max_abs_diff": float(diff.max() / ref.abs().max()),
                        "mean_abs_diff": float(diff.mean()),
                        "mean_abs_value": float(ref.abs().mean()),
                    }  # fmt: skip
    return report


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    print(json.dumps(compare(*map(Path, sys.argv[1:5]), sys.argv[5], {"expanded_conv_12/add": 13})))
