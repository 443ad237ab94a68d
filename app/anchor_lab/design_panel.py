"""The anchor design panel: IoU k-means over the GT shapes of the image or its folder.

Shows the mean IoU for k = 1..K with each step's gain as bars (the suggested k, where the
curve flattens, is marked), and a scatter of GT widths/heights coloured by cluster with the
cluster centres. "Apply" turns the chosen clusters into an ``AnchorConfig``
(:func:`rpn_core.anchors.design.design_config`) for the overlay; the lab persists it and emits
``anchor_config_applied`` for the model. The clustering runs in a background worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.common.workers import Worker
from rpn_core.anchors.design import (
    KMeansResult,
    box_shapes,
    design_config,
    grid_mean_iou,
    kmeans_curve,
    suggest_k,
)
from rpn_core.anchors.grid import AnchorConfig

__all__ = ["AnchorDesignPanel", "DesignRun", "run_design"]

# Okabe-Ito, for cluster colours in the scatter.
CLUSTER_COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]


@dataclass(frozen=True)
class DesignRun:
    """A finished design: shapes ``wh (N, 2)``, ``skipped`` boxes, one result per k, and for
    each k the config :func:`design_config` makes and that grid's mean IoU."""

    wh: np.ndarray
    skipped: int
    curve: list[KMeansResult]
    configs: list[AnchorConfig]
    grid_iou: list[float]
    source: str


def run_design(
    boxes: np.ndarray, k_max: int, *, seed: int, restarts: int, stride: int, source: str
) -> DesignRun:
    """Cluster ``boxes (N, 4)`` for k = 1..min(k_max, distinct shapes) (runs off the GUI
    thread). Raises ``ValueError`` when no valid box is left."""
    shapes = box_shapes(boxes)
    if len(shapes.wh) == 0:
        raise ValueError(f"no valid GT box in {source} ({shapes.skipped} skipped)")
    k_max = min(k_max, len(np.unique(shapes.wh, axis=0)))
    curve = kmeans_curve(shapes.wh, k_max, rng=np.random.default_rng(seed), restarts=restarts)
    configs = [design_config(r.centres, stride=stride) for r in curve]
    grid = [grid_mean_iou(shapes.wh, c) for c in configs]
    return DesignRun(shapes.wh, shapes.skipped, curve, configs, grid, source)


def _folder_boxes(folder: str) -> np.ndarray:
    from rpn_core.annotation.dataset import load_dataset

    return load_dataset(folder).all_boxes()


def _job(lab_boxes: np.ndarray | None, folder: str | None, **kwargs: object) -> DesignRun:
    boxes = lab_boxes if folder is None else _folder_boxes(folder)
    return run_design(boxes, **kwargs)


class AnchorDesignPanel(QWidget):
    """Design panel for an :class:`app.anchor_lab.controller.AnchorLab`."""

    def __init__(self, lab: QObject, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lab = lab
        self.run: DesignRun | None = None
        self._worker: Worker | None = None
        self.curve_plot = self.scatter_plot = None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.source = QComboBox()
        self.source.addItems(["This image", "This image's folder"])
        self.k_max = QSpinBox(minimum=1, maximum=30, value=12)
        self.restarts = QSpinBox(minimum=1, maximum=50, value=5)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        form.addRow("GT boxes of", self.source)
        form.addRow("k up to", self.k_max)
        form.addRow("Restarts", self.restarts)
        form.addRow("Seed", self.seed)
        layout.addLayout(form)
        self.compute_button = QPushButton("Cluster GT shapes")
        self.compute_button.clicked.connect(self.compute)
        layout.addWidget(self.compute_button)
        self.summary = QLabel("IoU k-means over GT (w, h): pick k where the curve flattens.")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self._plots = QVBoxLayout()
        layout.addLayout(self._plots)
        row = QHBoxLayout()
        self.k = QSpinBox(minimum=1, maximum=30)
        self.k.valueChanged.connect(self._show_k)
        self.apply_button = QPushButton("Apply to anchors")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply)
        self.n_sizes = QSpinBox(minimum=0, maximum=30, value=3, specialValueText="all")
        self.n_ratios = QSpinBox(minimum=0, maximum=30, value=3, specialValueText="all")
        for w in (self.n_sizes, self.n_ratios):
            w.setToolTip("Merge the clusters' sizes / ratios into this many (all: keep each)")
            w.valueChanged.connect(lambda _v: self._show_k(self.k.value()))
        row.addWidget(QLabel("k"))
        row.addWidget(self.k)
        row.addWidget(QLabel("sizes"))
        row.addWidget(self.n_sizes)
        row.addWidget(QLabel("x ratios"))
        row.addWidget(self.n_ratios)
        row.addWidget(self.apply_button)
        layout.addLayout(row)
        self.k_text = QLabel()
        self.k_text.setWordWrap(True)
        layout.addWidget(self.k_text)
        layout.addStretch(1)

    # -- running ---------------------------------------------------------------------------
    def compute(self) -> None:
        path = self.lab.document.image_path
        folder = None
        if self.source.currentIndex() == 1:
            if path is None:
                self.summary.setText("Open an image of an annotated folder first.")
                return
            folder = str(path.parent)
        source = folder or "this image"
        self.compute_button.setEnabled(False)
        self.summary.setText(f"Clustering the GT shapes of {source} ...")
        self._worker = Worker(
            _job, self.lab.document.boxes_array(), folder, k_max=self.k_max.value(),
            seed=self.seed.value(), restarts=self.restarts.value(),
            stride=self.lab.anchor_config.stride, source=source,
        )
        self._worker.signals.finished.connect(self.show_run)
        self._worker.signals.failed.connect(self._on_failed)
        self._worker.start()

    def _on_failed(self, message: str) -> None:
        self.compute_button.setEnabled(True)
        self.summary.setText(f"Anchor design failed: {message}")

    # -- showing ---------------------------------------------------------------------------
    def show_run(self, run: DesignRun) -> None:
        self.compute_button.setEnabled(True)
        self.run = run
        ious = [r.mean_iou for r in run.curve]
        best_k = suggest_k(ious)
        skipped = f", {run.skipped} zero-area/invalid skipped" if run.skipped else ""
        self.summary.setText(
            f"{len(run.wh)} GT boxes of {run.source}{skipped}. Mean IoU k=1: {ious[0]:.3f}, "
            f"k={len(ious)}: {ious[-1]:.3f}; flattens at k = {best_k}."
        )
        self._ensure_plots()
        self._draw_curve(ious, best_k)
        self.k.setMaximum(len(ious))
        self.k.setValue(best_k)
        self._show_k(best_k)
        self.apply_button.setEnabled(True)

    def _ensure_plots(self) -> None:
        if self.curve_plot is not None:
            return
        import pyqtgraph as pg

        self.curve_plot = pg.PlotWidget()
        self.curve_plot.setLabel("bottom", "k (clusters)")
        self.curve_plot.setLabel("left", "mean IoU / gain")
        self.curve_plot.addLegend(offset=(-10, 60))
        self.scatter_plot = pg.PlotWidget()
        self.scatter_plot.setLabel("bottom", "GT width (px)")
        self.scatter_plot.setLabel("left", "GT height (px)")
        for plot in (self.curve_plot, self.scatter_plot):
            plot.setMinimumHeight(180)
            self._plots.addWidget(plot)

    def _draw_curve(self, ious: list[float], best_k: int) -> None:
        import pyqtgraph as pg

        plot = self.curve_plot
        plot.clear()
        ks = np.arange(1, len(ious) + 1)
        gains = np.diff(np.concatenate([[0.0], ious]))
        plot.addItem(pg.BarGraphItem(x=ks, height=gains, width=0.6, brush="#E69F00",
                                     name="gain over k-1"))
        plot.plot(ks, ious, pen=pg.mkPen("#0072B2", width=2), symbol="o",
                  symbolBrush="#0072B2", name="mean IoU (clusters)")
        dashed = pg.mkPen("#009E73", width=2, style=Qt.PenStyle.DashLine)
        plot.plot(ks, self.run.grid_iou, pen=dashed, name="mean IoU (sizes x ratios grid)")
        plot.addItem(pg.InfiniteLine(best_k, angle=90, pen=pg.mkPen("#D55E00", width=2),
                                     label=f"k={best_k}", labelOpts={"position": 0.1}))
        plot.setYRange(0, 1)

    def _show_k(self, k: int) -> None:
        if self.run is None or not 1 <= k <= len(self.run.curve):
            return
        import pyqtgraph as pg

        result, config = self.run.curve[k - 1], self.chosen_config()
        plot = self.scatter_plot
        plot.clear()
        brushes = [pg.mkBrush(CLUSTER_COLOURS[a % len(CLUSTER_COLOURS)]) for a in result.assignment]
        plot.addItem(pg.ScatterPlotItem(self.run.wh[:, 0], self.run.wh[:, 1], size=5,
                                        brush=brushes, pen=None))
        plot.addItem(pg.ScatterPlotItem(result.centres[:, 0], result.centres[:, 1], size=16,
                                        symbol="x", brush="w", pen=pg.mkPen("k", width=1)))
        shapes = ", ".join(f"{w:.0f}x{h:.0f}" for w, h in result.centres)
        self.k_text.setText(
            f"k={k}: clusters (w x h) {shapes}; mean IoU {result.mean_iou:.3f}<br>"
            f"as AnchorConfig: sizes {', '.join(f'{s:g}' for s in config.sizes)}; ratios "
            f"{', '.join(f'{r:g}' for r in config.aspect_ratios)}; "
            f"{config.num_anchors_per_location} anchors/location; grid mean IoU "
            f"{grid_mean_iou(self.run.wh, config):.3f} (one size/ratio per cluster: "
            f"{self.run.configs[k - 1].num_anchors_per_location} anchors, "
            f"{self.run.grid_iou[k - 1]:.3f})"
        )

    def chosen_config(self) -> AnchorConfig:
        """The chosen k's clusters as an AnchorConfig: sizes and ratios merged to the chosen
        counts (:func:`design_config`), with the lab's current stride."""
        result = self.run.curve[self.k.value() - 1]
        return design_config(
            result.centres, stride=self.lab.anchor_config.stride,
            n_sizes=self.n_sizes.value() or None, n_ratios=self.n_ratios.value() or None,
        )

    def apply(self) -> None:
        """Use the chosen k's config (with the lab's current stride) for the overlay."""
        if self.run is None:
            return
        self.lab.set_configs(self.chosen_config(), self.lab.label_config)
