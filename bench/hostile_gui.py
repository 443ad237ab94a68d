"""Benchmark: the longest GUI block on a user's big file (issue 16; goal: < 100 ms).

Opens the real main window offscreen and records the time between consecutive iterations of
the Qt event loop (a 1 ms precise timer, as ``bench/ui_responsiveness.py``) while it

1. opens a folder holding one 19999 x 20000 RGBA PNG (1.5 MB on disk, 400 MP) until the image
   is shown;
2. opens a folder whose COCO file is about 100 MB (750,000 boxes) until the first image is
   shown with its boxes;
3. adds a box there and autosaves until the 100 MB file is written.

Each scenario runs twice in the same process: the **new** path (default thresholds: decoding,
parsing and saving big files run on the store thread), then the **baseline**, the synchronous
path that every user file took before issue 16 (the app's heavy-work thresholds set to
infinity, so that work runs on the GUI thread; the core's own fixes -- PNG strips, piecewise
JSON -- apply to both). Prints the longest gap of each, the baseline / new ratio and the
wall time until the work was done, plus the longest gap of 3 s of idling after a warm-up (the
machine's own noise); last line ``hostile_gui_max_gap_ms=<float>`` (the worst of the new path).

Usage: QT_QPA_PLATFORM=offscreen python bench/hostile_gui.py [--coco-mb 75] [--side 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ui_responsiveness import GapMeter  # noqa: E402 - after the path set-up


def write_png_bomb(path: Path, width: int, height: int) -> None:
    """An opaque RGBA PNG of ``width x height`` (one colour: a few MB however large)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    packer = zlib.compressobj(9)
    row = b"\x00" + b"\x80\x40\x20\xff" * width
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def write_big_coco(folder: Path, megabytes: float) -> int:
    """Two real 640 x 480 images and a COCO file of about ``megabytes`` MB: 5,000 image entries
    and as many boxes as it takes (about 100 bytes each). Returns the number of boxes."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (640, 480), (90, 120, 150)).save(folder / name)
    images = [
        {"id": 1, "file_name": "a.png", "width": 640, "height": 480},
        {"id": 2, "file_name": "b.png", "width": 640, "height": 480},
    ]
    images += [
        {"id": i, "file_name": f"missing/{i}.png", "width": 640, "height": 480}
        for i in range(3, 5001)
    ]
    n = int(megabytes * 1e6 / 100)
    anns = [
        {
            "id": k + 1,
            "image_id": 3 + k % 4998,
            "category_id": 1 + k % 3,
            "bbox": [k % 600, k % 440, 30.5, 20.25],
            "area": 617.625,
            "iscrowd": 0,
            "segmentation": [],
        }
        for k in range(n)
    ]
    anns += [
        {
            "id": n + 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [10, 20, 40, 40],
            "area": 1600,
            "iscrowd": 0,
        }
    ]
    cats = [{"id": i, "name": name} for i, name in enumerate(("cat", "dog", "eel"), start=1)]
    text = json.dumps({"images": images, "annotations": anns, "categories": cats})
    (folder / "annotations.json").write_text(text)
    return n + 1


def run(window, meter, action, done, timeout_s: float) -> tuple[float, float]:
    """Start ``action`` from inside the event loop, spin until ``done()``; returns (longest
    gap in ms, wall seconds)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    t0 = time.perf_counter()
    meter.gaps, meter.active, meter.last = [], True, time.perf_counter()

    def poll() -> None:
        if done() or time.perf_counter() - t0 > timeout_s:
            loop.quit()
        else:
            QTimer.singleShot(5, poll)

    QTimer.singleShot(0, action)
    QTimer.singleShot(5, poll)
    loop.exec()
    meter.active = False
    return 1000 * max(meter.gaps, default=0.0), time.perf_counter() - t0


def scenarios(window, png_folder: Path, coco_folder: Path, timeout_s: float) -> dict:
    from app.state.undo import AddBoxesCommand
    from rpn_core.annotation.data import Box

    ws, doc = window.workspace, window.document
    meter = GapMeter()
    # Warm-up on a small image: the first image shown imports the panels' plotting modules
    # (about 1 s, whatever the file), which is not the cost of a big file.
    small = coco_folder.parent / "warm-up"  # not the COCO folder: its background state scan
    small.mkdir(exist_ok=True)  # (a second parse of 100 MB) would overlap the next scenarios
    if not (small / "s.png").exists():
        from PIL import Image

        Image.new("RGB", (64, 48)).save(small / "s.png")
    run(
        window,
        meter,
        lambda: window.open_paths([str(small)]),
        lambda: doc.annotation is not None,
        timeout_s,
    )
    # The anchor lab imports torch in the background, then builds its plots on the GUI thread
    # (pyqtgraph, about 0.5 s): a start-up cost, whatever the file. Wait for it, then idle.
    lab = getattr(window, "anchor_lab", None)
    run(window, meter, lambda: None, lambda: lab is None or lab.ready, timeout_s)
    idle_until = time.perf_counter() + 3.0
    run(window, meter, lambda: None, lambda: time.perf_counter() > idle_until, timeout_s)
    out = {}
    idle_until = time.perf_counter() + 3.0  # the machine's own noise, nothing running
    out["idle (noise)"] = run(
        window, meter, lambda: None, lambda: time.perf_counter() > idle_until, timeout_s
    )
    out["open 400 MP PNG"] = run(
        window,
        meter,
        lambda: window.open_paths([str(png_folder)]),
        lambda: doc.annotation is not None and doc.image_path is not None,
        timeout_s,
    )
    out["open 100 MB COCO"] = run(
        window,
        meter,
        lambda: window.open_paths([str(coco_folder)]),
        lambda: doc.annotation is not None and doc.image_path == coco_folder / "a.png",
        timeout_s,
    )

    def edit_and_autosave() -> None:
        doc.undo_stack.push(AddBoxesCommand(doc, [Box(100, 100, 200, 180, "dog")]))
        ws.autosave_now()

    out["autosave 100 MB COCO"] = run(
        window, meter, edit_and_autosave, lambda: not doc.dirty and not ws.saving, timeout_s
    )
    meter.timer.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coco-mb", type=float, default=75.0, help="about 100 MB on disk")
    parser.add_argument("--side", type=int, default=20000, help="PNG is (side - 1) x side")
    parser.add_argument("--timeout-s", type=float, default=300.0)
    args = parser.parse_args()
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.annotate import workspace as ws_module
    from app.common.settings import AppSettings
    from app.shell.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="rpn-hostile-gui-"))
    t = time.perf_counter()
    png_folder = tmp / "png"
    png_folder.mkdir()
    write_png_bomb(png_folder / "big.png", args.side - 1, args.side)
    boxes = write_big_coco(tmp / "coco-source", args.coco_mb)
    size = (tmp / "coco-source" / "annotations.json").stat().st_size
    print(
        f"corpus: {args.side - 1}x{args.side} RGBA PNG"
        f" ({(png_folder / 'big.png').stat().st_size / 1e6:.1f} MB), COCO {size / 1e6:.0f} MB"
        f" with {boxes:,} boxes; written in {time.perf_counter() - t:.0f} s"
    )
    results = {}
    defaults = (ws_module.HEAVY_IMAGE_PIXELS, ws_module.HEAVY_ANNOTATION_BYTES)
    # The new path first: the baseline's big documents, parsed on the GUI thread, are never
    # frozen away from the garbage collector, whose full passes would then lengthen the new
    # path's gaps (a cost of the old path, not of the new one).
    for mode, limits in (("new", defaults), ("baseline", (float("inf"), float("inf")))):
        ws_module.HEAVY_IMAGE_PIXELS, ws_module.HEAVY_ANNOTATION_BYTES = limits
        import gc
        import shutil

        gc.collect()

        coco_folder = tmp / f"coco-{mode}"
        shutil.copytree(tmp / "coco-source", coco_folder)
        settings = AppSettings(QSettings(str(tmp / f"{mode}.ini"), QSettings.Format.IniFormat))
        settings.q.setValue("proposals/auto_run", False)
        settings.save_format = "auto"
        window = MainWindow(settings=settings)
        window.resize(1400, 900)
        window.show()
        app.processEvents()
        results[mode] = scenarios(window, png_folder, coco_folder, args.timeout_s)
        window.close()
        app.processEvents()
    ws_module.HEAVY_IMAGE_PIXELS, ws_module.HEAVY_ANNOTATION_BYTES = defaults
    print(
        f"{'scenario':<24}{'baseline gap':>14}{'new gap':>10}{'ratio':>8}"
        f"{'baseline wall':>15}{'new wall':>10}"
    )
    for name in results["new"]:
        (bg, bw), (ng, nw) = results["baseline"][name], results["new"][name]
        print(
            f"{name:<24}{bg:>12.0f} ms{ng:>7.0f} ms{bg / max(ng, 1e-3):>7.0f}x"
            f"{bw:>13.1f} s{nw:>8.1f} s"
        )
    worst = max(g for name, (g, _w) in results["new"].items() if name != "idle (noise)")
    print(f"hostile_gui_max_gap_ms={worst:.1f}")


if __name__ == "__main__":
    main()
