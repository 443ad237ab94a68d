"""The SSD-MobileNetV2-COCO teacher as a class-agnostic proposal method, for benchmarks only.

The graph runs in another interpreter with OpenCV 4 (``cv2.dnn.readNetFromTensorflow``;
OpenCV 5, the app's, has no TensorFlow importer): see ``resources/weights/MODEL_CARD.md``
("Reproduce") for that venv and the teacher files. Never imported by the app.

:func:`teacher_proposals` sends every image once to that interpreter and gets back, per
image, every detection of any COCO class (OpenCV's detection output: at most 100 after the
graph's own per-class NMS) ranked by score, in original pixels, and the seconds each took.
The teacher sees the whole image at 300 x 300, as in training-data generation.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

_TEACHER_SIDE = """
import json, sys, time, cv2, numpy as np
folder, pb, pbtxt = sys.argv[1:4]
cv2.setNumThreads(int(sys.argv[5]))
net = cv2.dnn.readNetFromTensorflow(pb, pbtxt)
out = []
for k in range(int(sys.argv[4])):
    rgb = np.load(f"{folder}/{k}.npy")
    h, w = rgb.shape[:2]
    t0 = time.perf_counter()
    net.setInput(cv2.dnn.blobFromImage(rgb, size=(300, 300), swapRB=False, crop=False))
    det = net.forward().reshape(-1, 7)
    dt = time.perf_counter() - t0
    det = det[np.argsort(-det[:, 2], kind="stable")]
    boxes = (det[:, 3:7] * np.array([w, h, w, h], np.float32)).clip(0, [w, h, w, h])
    out.append({"boxes": boxes.tolist(), "scores": det[:, 2].tolist(), "seconds": dt})
json.dump(out, open(f"{folder}/out.json", "w"))
"""


def teacher_proposals(
    images: list[np.ndarray], python: str, teacher_dir: Path, threads: int = 1
) -> list[tuple[np.ndarray, float]]:
    """``[(boxes (N, 4) ranked by score, seconds)]`` for RGB ``uint8`` images."""
    pb = teacher_dir / "frozen_inference_graph.pb"
    pbtxt = teacher_dir / "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
    if not (pb.is_file() and pbtxt.is_file()):
        raise SystemExit(f"teacher graph not found in {teacher_dir}")
    with tempfile.TemporaryDirectory() as tmp:
        for k, rgb in enumerate(images):
            np.save(Path(tmp) / f"{k}.npy", rgb)
        cmd = [python, "-c", _TEACHER_SIDE, tmp, str(pb), str(pbtxt), str(len(images))]
        subprocess.run([*cmd, str(threads)], check=True)
        rows = json.loads((Path(tmp) / "out.json").read_text())
    return [(np.asarray(r["boxes"], np.float32).reshape(-1, 4), r["seconds"]) for r in rows]
