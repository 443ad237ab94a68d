"""Benchmark: one live-drag frame of the anchor overlay -- relabel + panels + repaint.

Offscreen, a 1000x600 image, the default anchors (9 per location, stride 16: 21,546), 20 GT
boxes. Each step moves GT box 0 by a few pixels through ``document.preview_box`` (exactly
what the canvas emits on a mouse move), which makes the lab relabel with ``label_image`` and
refresh its panels; then the canvas viewport is repainted synchronously. Prints medians per
stage, the paint cost per anchor category, and last ``overlay_frame_ms_median=<float>``.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python bench/overlay.py [--steps 60] [--mode density]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtGui import QImage, QPainter  # noqa: E402
from PySide6.QtWidgets import QApplication, QMainWindow, QStyleOptionGraphicsItem  # noqa: E402

H, W, N_GT = 600, 1000, 20


class BenchWindow(QMainWindow):
    """The canvas and document of the real app, without the rest of the main window."""

    def __init__(self) -> None:
        super().__init__()
        from app.canvas.canvas import Canvas
        from app.state.qdocument import AnnotationDocument

        self.document = AnnotationDocument(self)
        self.canvas = Canvas(self.document, self)
        self.setCentralWidget(self.canvas)


def _gt(rng: np.random.Generator) -> np.ndarray:
    wh = rng.uniform(40, 300, size=(N_GT, 2))
    xy = rng.uniform(0, 1, size=(N_GT, 2)) * (np.array([W, H]) - wh)
    return np.concatenate([xy, xy + wh], axis=1)


def _open_image(window: BenchWindow, folder: Path, gt: np.ndarray) -> None:
    from PIL import Image

    from rpn_core.annotation.data import Box, ImageAnnotation
    from rpn_core.images.loading import load_image

    yy, xx = np.mgrid[0:H, 0:W]
    pixels = np.stack([xx * 255 // W, yy * 255 // H, (xx + yy) % 256], axis=2).astype(np.uint8)
    path = folder / "bench.png"
    Image.fromarray(pixels).save(path)
    loaded = load_image(path)
    boxes = [Box(*map(float, b)) for b in gt]
    window.document.set_image(loaded, ImageAnnotation(path, W, H, boxes))


def _category_paint_ms(overlay, repeats: int = 5) -> dict[str, float]:
    """Median paint time of each category alone, into a 1000x600 image."""
    from app.anchor_lab.overlay import CATEGORY_STYLE
    from rpn_core.anchors.view import Category, ViewOptions

    base = overlay.options
    out = {}
    image = QImage(W, H, QImage.Format.Format_ARGB32_Premultiplied)
    option = QStyleOptionGraphicsItem()
    option.exposedRect = overlay.boundingRect()
    for category in Category:
        overlay.set_options(ViewOptions(**{**base.__dict__, "categories": frozenset([category])}))
        times = []
        for _ in range(repeats):
            painter = QPainter(image)
            t = time.perf_counter()
            overlay.paint(painter, option)
            times.append((time.perf_counter() - t) * 1000)
            painter.end()
        n = len(overlay.visible().get(category, ()))
        out[f"{CATEGORY_STYLE[category][3]} ({n})"] = statistics.median(times)
    overlay.set_options(base)
    return out


def _start(args: argparse.Namespace, folder: Path):
    """The lab on a 1000x600 image at 100 % zoom, torch loaded, preset and mode applied."""
    from app.anchor_lab.controller import install_anchor_lab
    from app.state.app_state import AppStateModel
    from rpn_core.anchors.grid import AnchorConfig, parse_sizes
    from rpn_core.anchors.labelling import LabelConfig
    from rpn_core.anchors.view import DisplayMode, ViewOptions

    app = QApplication.instance()
    settings = QSettings(str(folder / "bench.ini"), QSettings.Format.IniFormat)
    window = BenchWindow()
    window.resize(W + 40, H + 40)
    gt = _gt(np.random.default_rng(0))
    _open_image(window, folder, gt)
    lab = install_anchor_lab(window.document, window.canvas, AppStateModel(), settings, window)
    for _title, panel in lab.panels:  # measure the canvas at 1:1, panels still refresh
        panel.show()
    window.show()
    window.canvas.resize(W + 4, H + 4)
    window.canvas.set_zoom(1.0)
    while not lab.ready:
        app.processEvents()
        time.sleep(0.005)
    if args.sizes:  # e.g. the embedded model's two levels: "16@8, 32@8, 64, 128, 256, 512"
        sizes, strides = parse_sizes(args.sizes, args.stride)
        anchors = AnchorConfig(sizes=sizes, stride=max(strides), size_strides=strides)
    else:
        anchors = AnchorConfig(stride=args.stride)  # default sizes and ratios
    lab.set_configs(anchors, LabelConfig.preset(args.preset))
    lab.settings_panel.set_view(ViewOptions(mode=DisplayMode(args.mode)))
    app.processEvents()
    return window, lab, gt


def _drag(window, lab, gt: np.ndarray, steps: int) -> tuple[dict[str, list[float]], list[float]]:
    """Move GT box 0 back and forth, 4 px per step; wall time per stage and CPU per frame."""
    stages: dict[str, list[float]] = {"relabel": [], "panels": [], "repaint": [], "frame": []}
    cpu: list[float] = []  # CPU time of the GUI thread per frame (robust to a busy machine)
    viewport = window.canvas.viewport()
    x1, y1, x2, y2 = gt[0]
    for step in range(steps + 5):
        dx = 4.0 * ((step % 40) - 20)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        window.document.preview_box(0, (x1 + dx, y1, x2 + dx, y2))
        t1 = time.perf_counter()
        viewport.repaint()
        t2 = time.perf_counter()
        c1 = time.thread_time()
        if step < 5:  # warm-up
            continue
        relabel = lab.last_relabel_ms
        stages["relabel"].append(relabel)
        stages["panels"].append((t1 - t0) * 1000 - relabel)
        stages["repaint"].append((t2 - t1) * 1000)
        stages["frame"].append((t2 - t0) * 1000)
        cpu.append((c1 - c0) * 1000)
    return stages, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument(
        "--mode", default="density", choices=["density", "all", "minibatch", "centres"]
    )
    parser.add_argument("--preset", default="faster-rcnn", choices=["faster-rcnn", "guide"])
    parser.add_argument(
        "--stride",
        type=int,
        default=16,
        help="anchor stride (8 gives ~84k anchors: the 10^5 regime)",
    )
    parser.add_argument(
        "--sizes",
        help="anchor sizes as the lab writes them; 16@8 puts a size on the stride-8 level "
        "(default: the guide's 64, 128, 256)",
    )
    args = parser.parse_args()
    QApplication.instance() or QApplication([])
    tmp = tempfile.TemporaryDirectory()
    window, lab, gt = _start(args, Path(tmp.name))
    stages, cpu = _drag(window, lab, gt, args.steps)

    per_location = lab.anchor_config.num_anchors_per_location
    print(
        f"image {W}x{H}, {len(lab.anchors):,} anchors ({per_location}/location), {N_GT} GT, "
        f"preset {args.preset}, mode {args.mode}, {args.steps} steps"
    )
    print(f"labels at the last step: {lab.labels.counts()}")
    for name, values in stages.items():
        print(
            f"  {name:<8} median {statistics.median(values):7.2f} ms   "
            f"p90 {np.percentile(values, 90):7.2f} ms"
        )
    print(
        f"  frame CPU time (GUI thread) median {statistics.median(cpu):7.2f} ms; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times grow with load)"
    )
    print("paint per category (alone, into a 1000x600 image):")
    for name, ms in _category_paint_ms(lab.overlay).items():
        print(f"  {name:<40} {ms:7.2f} ms")
    print(f"overlay_frame_ms_median={statistics.median(stages['frame']):.2f}")
    window.close()
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
