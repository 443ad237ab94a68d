"""Dragging one box among 1,000: milliseconds per mouse move, painting included.

Builds the real main window offscreen on a 1000 x 600 image with a 40 x 25 grid of boxes and
drags one box with real mouse events, processing Qt's update after every move (the dirty region
only, as on screen) and, separately, forcing a full-viewport repaint (as when panning). The
bench waits for the anchor lab's background torch import, so "whole app" includes its live
relabel on every ``box_preview``; "canvas alone" disconnects those listeners. Reports the
median per-move time with 10 and with 1,000 boxes (same window, same drag): similar numbers
mean no per-frame work proportional to the box count. Last line
``drag_ms_per_move_median_1000=<float>``.

Usage: ``QT_QPA_PLATFORM=offscreen .venv/bin/python bench/canvas_drag.py``
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.common.settings import AppSettings  # noqa: E402
from app.shell.launch import _torch_ready, create_application  # noqa: E402
from app.shell.main_window import MainWindow  # noqa: E402
from app.state.undo import AddBoxesCommand  # noqa: E402
from rpn_core.annotation.data import Box  # noqa: E402


def grid(n_cols: int, n_rows: int) -> list[Box]:
    return [
        Box(x * 25.0, y * 24.0, x * 25.0 + 20, y * 24.0 + 20)
        for y in range(n_rows)
        for x in range(n_cols)
    ]


def drag_times(window: MainWindow, index: int, full: bool, moves: int = 60) -> list[float]:
    canvas, doc = window.canvas, window.document
    box = doc.boxes[index]
    canvas.set_zoom(1.0)
    canvas.centerOn(QPointF((box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2))
    vp = canvas.viewport()
    start = canvas.mapFromScene(QPointF((box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2))
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    times = []
    for k in range(1, moves + 1):
        t0 = time.perf_counter()
        QTest.mouseMove(vp, start + QPoint(k % 20, k % 7))
        if full:
            vp.repaint()  # the whole viewport, as when panning or zooming
        else:
            QApplication.processEvents()  # what Qt repaints by itself: the dirty region
        times.append((time.perf_counter() - t0) * 1000)
    QTest.mouseRelease(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + QPoint(5, 5)
    )
    return times


def main() -> int:
    app = create_application()
    tmp = Path(tempfile.mkdtemp(prefix="rpn-drag-"))
    rgb = (np.random.default_rng(0).random((600, 1000, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp / "img.png")
    settings = AppSettings.in_file(tmp / "settings.ini")
    settings.autosave = False
    settings.q.setValue("proposals/auto_run", False)
    window = MainWindow(settings=settings)
    window.resize(1400, 900)
    window.show()
    window.open_paths([tmp / "img.png"])
    app.processEvents()
    deadline = time.time() + 30  # let the anchor lab finish its background torch import
    while not _torch_ready() and time.time() < deadline:
        app.processEvents()
        time.sleep(0.05)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    print(f"torch ready: {_torch_ready()}")
    results = {}
    doc = window.document
    for listeners in ("all", "canvas"):
        if listeners == "canvas":
            doc.box_preview.disconnect()  # drop the anchor lab's live relabel: canvas alone
        for n_cols, n_rows in ((5, 2), (40, 25)):
            doc.undo_stack.push(AddBoxesCommand(doc, grid(n_cols, n_rows)))
            doc.select([])
            app.processEvents()
            n = len(doc.boxes)
            for full in (False, True):
                times = drag_times(window, n // 2, full)
                median = statistics.median(times[5:])
                what = "full-viewport repaint" if full else "Qt's dirty-region update"
                who = "whole app" if listeners == "all" else "canvas alone"
                print(f"{who:12s} {n:5d} boxes: {median:6.2f} ms per move, {what}")
                results[(listeners, n, full)] = median
            doc.undo_stack.setIndex(0)  # back to no boxes
    print("(whole app = with every box_preview listener, e.g. the anchor lab's live relabel)")
    print(f"canvas_drag_ms_per_move_median_1000={results[('canvas', 1000, False)]:.2f}")
    print(f"drag_ms_per_move_median_1000={results[('all', 1000, False)]:.2f}")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
