"""Helpers for the pytest-qt tests of the annotation workspace (tests/test_app_*.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt

from app.canvas.canvas import Canvas
from app.shell.main_window import MainWindow


def pixel_colour(index: int, x: int, y: int) -> tuple[int, int, int]:
    """The colour written at (x, y) of test image ``index``: a function we can check."""
    return ((x * 3 + index * 40) % 256, (y * 5) % 256, (index * 70 + 20) % 256)


def make_image(path: Path, index: int, size: tuple[int, int] = (320, 240)) -> Path:
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    rgb = np.stack(
        [(xs * 3 + index * 40) % 256, (ys * 5) % 256, np.full_like(xs, (index * 70 + 20) % 256)],
        axis=-1,
    ).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def make_folder(folder: Path, n: int = 3, size: tuple[int, int] = (320, 240)) -> list[Path]:
    return [make_image(folder / f"img{i}.png", i, size) for i in range(n)]


def open_window(qtbot, settings, paths, *, fmt: str = "voc") -> MainWindow:
    settings.save_format = fmt
    settings.q.setValue("proposals/auto_run", False)  # no model runs while we test annotation
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    with qtbot.waitActive(window):  # window-wide shortcuts (W, D, Ctrl+Z...) need it active
        window.show()
        window.activateWindow()
    assert window.open_paths([str(p) for p in paths])
    window.canvas.setFocus()
    return window


def view_pos(canvas: Canvas, x: float, y: float) -> QPoint:
    """The viewport pixel showing image point (x, y)."""
    return canvas.mapFromScene(QPointF(x, y))


def drag_view(
    qtbot,
    canvas: Canvas,
    start: QPoint,
    end: QPoint,
    steps: int = 5,
    button=Qt.MouseButton.LeftButton,
    modifier=Qt.KeyboardModifier.NoModifier,
) -> None:
    """A real press / several moves / release on the viewport, in viewport pixels."""
    vp = canvas.viewport()
    qtbot.mousePress(vp, button, modifier, start)
    for k in range(1, steps + 1):
        p = start + (end - start) * (k / steps)
        qtbot.mouseMove(vp, QPoint(round(p.x()), round(p.y())))
    qtbot.mouseRelease(vp, button, modifier, end)


def drag_image(
    qtbot, canvas: Canvas, p0: tuple[float, float], p1: tuple[float, float], steps: int = 5
) -> None:
    drag_view(qtbot, canvas, view_pos(canvas, *p0), view_pos(canvas, *p1), steps)


def show_zoom(canvas: Canvas, zoom: float, centre: tuple[float, float]) -> None:
    canvas.set_zoom(zoom)
    canvas.centerOn(QPointF(*centre))
