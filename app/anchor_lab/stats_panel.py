"""Anchor statistics: the legend with counts (its check boxes filter by label), the image's
coverage numbers, the same over the whole folder, and a histogram of the best anchor IoU per
GT box (pyqtgraph, imported when the lab is ready so the window appears first).

Numbers come from :mod:`rpn_core.anchors.explain` over the lab's labels (in the model's input frame).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.anchor_lab.overlay import CATEGORY_STYLE, category_pen
from app.common.workers import Worker
from rpn_core.anchors.explain import FolderStats, folder_statistics, image_statistics
from rpn_core.anchors.view import Category, ViewOptions

__all__ = ["AnchorStatsPanel", "legend_swatch"]

HIST_BINS = np.linspace(0.0, 1.0, 21)


def legend_swatch(category: Category) -> QPixmap:
    """A small picture of the category's pen, as drawn on the canvas."""
    pix = QPixmap(44, 18)
    pix.fill(QColor(32, 32, 36))
    p = QPainter(pix)
    p.setPen(category_pen(category))
    p.drawRect(QRectF(4, 4, 36, 10))
    p.end()
    return pix


def _folder_items(folder: str, model_config):
    """``(name, input size, GT)`` per annotated image, in the model's input frame (as the
    lab labels: :func:`rpn_core.rpn.config.label_in_input_frame`)."""
    from rpn_core.annotation.dataset import load_dataset
    from rpn_core.rpn.config import input_geometry

    items = []
    for it in load_dataset(folder):
        if not len(it.boxes):
            continue
        gt = np.asarray(it.boxes, dtype=np.float32).reshape(-1, 4)
        try:
            size, (sy, sx) = input_geometry((it.height, it.width), model_config)
        except ValueError:  # a bad size: folder_statistics skips it with its reason
            size, sx, sy = (it.height, it.width), 1.0, 1.0
        items.append((str(it.image_path), size, gt * np.array([sx, sy, sx, sy], np.float32)))
    return items


def _folder_job(folder: str, anchor_config, label_config, model_config) -> FolderStats:
    return folder_statistics(_folder_items(folder, model_config), anchor_config, label_config)


class AnchorStatsPanel(QWidget):
    """Statistics panel for an :class:`app.anchor_lab.controller.AnchorLab`."""

    def __init__(self, lab: QObject, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lab = lab
        self.counts: dict[Category, QLabel] = {}
        self.checks: dict[Category, QCheckBox] = {}
        self.plot = None
        self._bars = None
        self._fg_line = None
        self._worker: Worker | None = None
        self.folder_stats: FolderStats | None = None
        layout = QVBoxLayout(self)
        grid = QGridLayout()
        for row, category in enumerate(reversed(Category)):
            swatch = QLabel()
            swatch.setPixmap(legend_swatch(category))
            check = QCheckBox(CATEGORY_STYLE[category][3])
            check.setChecked(True)
            check.toggled.connect(self._on_filter)
            count = QLabel("-")
            count.setAlignment(Qt.AlignmentFlag.AlignRight)
            grid.addWidget(swatch, row, 0)
            grid.addWidget(check, row, 1)
            grid.addWidget(count, row, 2)
            self.counts[category], self.checks[category] = count, check
        layout.addLayout(grid)
        flag = QLabel("<font color='#D55E00'>- - -</font> around a GT box: no anchor is "
                      "foreground for it (the anchor set cannot learn it)")
        flag.setWordWrap(True)
        layout.addWidget(flag)
        self.image_text = QLabel("Loading torch...")
        self.image_text.setWordWrap(True)
        layout.addWidget(self.image_text)
        row = QHBoxLayout()
        self.folder_button = QPushButton("Folder statistics")
        self.folder_button.clicked.connect(self.compute_folder)
        row.addWidget(self.folder_button)
        layout.addLayout(row)
        self.folder_text = QLabel()
        self.folder_text.setWordWrap(True)
        layout.addWidget(self.folder_text)
        self._plot_holder = QVBoxLayout()
        layout.addLayout(self._plot_holder)
        layout.addStretch(1)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self._refresh_image)
        lab.labels_updated.connect(self.refresh)
        lab.ready_changed.connect(lambda _ready: self._ensure_plot())

    # -- filters ---------------------------------------------------------------------------
    def _on_filter(self) -> None:
        shown = frozenset(c for c, box in self.checks.items() if box.isChecked())
        panel = getattr(self.lab, "settings_panel", None)
        o = panel.view_options if panel is not None else self.lab.overlay.options
        new = ViewOptions(mode=o.mode, categories=shown, sizes=o.sizes, ratios=o.ratios,
                          background_sample=o.background_sample, seed=o.seed)
        if panel is not None:
            panel.set_view(new)  # emits view_changed -> lab
        else:
            self.lab.set_view_options(new)

    # -- image -----------------------------------------------------------------------------
    def refresh(self) -> None:
        lab = self.lab
        if lab.labels is None:
            for label in self.counts.values():
                label.setText("-")
            self.image_text.setText("No image." if lab.ready else "Loading torch...")
            return
        cats = np.bincount(lab.categories.astype(np.int64), minlength=len(Category))
        for category, label in self.counts.items():
            label.setText(f"{int(cats[category]):,}")
        if lab.dragging:  # text and histogram follow at the end of the drag
            self._timer.start()
            return
        self._refresh_image()

    def _refresh_image(self) -> None:
        lab = self.lab
        if lab.labels is None:
            return
        stats = image_statistics(lab.labels, lab.label_config)
        n_gt = len(stats.best_iou)
        recall = "n/a" if n_gt == 0 else f"{stats.recall:.0%}"
        positives = ", ".join(str(int(p)) for p in stats.positives) or "-"
        self.image_text.setText(
            f"<b>This image</b>: {len(lab.categories):,} anchors, {n_gt} GT box(es)<br>"
            f"positives per GT: {positives}<br>"
            f"best-possible recall: {recall}; GT with no foreground anchor: "
            f"{len(stats.unlearnable)}<br>relabel {lab.last_relabel_ms:.1f} ms"
        )
        if self.folder_stats is None:
            self._set_histogram(stats.best_iou, "this image")

    # -- folder ----------------------------------------------------------------------------
    def compute_folder(self) -> None:
        path = self.lab.document.image_path
        if path is None or not self.lab.ready:
            self.folder_text.setText("Open an image of an annotated folder first.")
            return
        self.folder_button.setEnabled(False)
        self.folder_text.setText(f"Labelling every image of {path.parent} ...")
        lab = self.lab
        self._worker = Worker(
            _folder_job, str(path.parent), lab.anchor_config, lab.label_config, lab.model_config
        )
        self._worker.signals.finished.connect(self._on_folder)
        self._worker.signals.failed.connect(self._on_folder_failed)
        self._worker.start()

    def _on_folder(self, stats: FolderStats) -> None:
        self.folder_button.setEnabled(True)
        self.folder_stats = stats
        n = len(stats.best_iou)
        recall = "n/a" if n == 0 else f"{stats.recall(self.lab.label_config):.0%}"
        c = stats.counts
        skipped = f"; {len(stats.skipped)} image(s) skipped" if stats.skipped else ""
        self.folder_text.setText(
            f"<b>Folder</b>: {stats.images} image(s), {n} GT box(es){skipped}<br>"
            f"foreground {c['foreground']:,} (best-anchor rule {c['low_quality']:,}), "
            f"ignored {c['ignored']:,}, background {c['background']:,}<br>"
            f"best-possible recall: {recall}; GT with no foreground anchor: {stats.unlearnable}"
        )
        self._set_histogram(stats.best_iou, "folder")

    def _on_folder_failed(self, message: str) -> None:
        self.folder_button.setEnabled(True)
        self.folder_text.setText(f"Folder statistics failed: {message}")

    # -- histogram -------------------------------------------------------------------------
    def _ensure_plot(self) -> None:
        if self.plot is not None:
            return
        import pyqtgraph as pg

        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(140)
        self.plot.setLabel("bottom", "best anchor IoU per GT box")
        self.plot.setLabel("left", "GT boxes")
        self._plot_holder.addWidget(self.plot)
        self.refresh()

    def _set_histogram(self, best_iou: np.ndarray, scope: str) -> None:
        if self.plot is None:
            return
        import pyqtgraph as pg

        counts, edges = np.histogram(np.clip(best_iou, 0, 1), bins=HIST_BINS)
        if self._bars is not None:
            self.plot.removeItem(self._bars)
        self._bars = pg.BarGraphItem(
            x0=edges[:-1], x1=edges[1:], height=counts, brush="#0072B2", pen="w"
        )
        self.plot.addItem(self._bars)
        fg = self.lab.label_config.fg_iou
        if self._fg_line is None:
            self._fg_line = pg.InfiniteLine(fg, angle=90, pen=pg.mkPen("#D55E00", width=2))
            self.plot.addItem(self._fg_line)
        self._fg_line.setValue(fg)
        self.plot.setTitle(f"Best anchor IoU per GT ({scope}); line: fg threshold {fg:g}")
