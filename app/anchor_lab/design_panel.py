"""The anchor design panel: IoU k-means over the GT shapes of the image or its folder.

Everything here is in the model's **input frame** (each image's boxes scaled as the model
resizes that image, :func:`rpn_core.anchors.design.input_frame_items`), where the anchors are
tiled: the sizes shown are the sizes applied. Shows the mean IoU for k = 1..K with each step's
gain as bars (where the curve flattens, if it does, is marked), and a scatter of GT
widths/heights coloured by cluster with the cluster centres. For the chosen set it measures
mean best IoU and best-possible recall on the real strided grid with
:func:`rpn_core.anchors.explain.folder_statistics` -- the function of the statistics panel, so
after "Apply" that panel shows the same figures. "Apply" turns the chosen clusters into an
``AnchorConfig`` (:func:`rpn_core.anchors.design.design_config`) for the overlay; the lab
persists it and emits ``anchor_config_applied`` for the model. Work runs in background workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QSignalBlocker, Qt
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

from app.common.workers import TaskRunner, Worker
from rpn_core.anchors.design import (
    FrameItem,
    KMeansResult,
    design_config,
    flatten_text,
    frame_shapes,
    grid_mean_iou,
    input_frame_items,
    kmeans_curve,
    suggest_k,
)
from rpn_core.anchors.explain import FolderStats, folder_statistics
from rpn_core.anchors.grid import AnchorConfig
from rpn_core.anchors.labelling import LabelConfig
from rpn_core.rpn.config import RPNConfig

__all__ = ["AnchorDesignPanel", "DesignRun", "run_design"]

# Okabe-Ito, for cluster colours in the scatter.
CLUSTER_COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]


@dataclass(frozen=True)
class DesignRun:
    """A finished design: the input-frame ``items`` clustered, their shapes ``wh (N, 2)``,
    ``skipped`` boxes, one result per k, and for each k the config :func:`design_config`
    makes and that grid's (common-centre) mean IoU."""

    items: list[FrameItem]
    wh: np.ndarray
    skipped: int
    curve: list[KMeansResult]
    configs: list[AnchorConfig]
    grid_iou: list[float]
    source: str


def run_design(
    items: list[FrameItem],
    k_max: int,
    *,
    seed: int,
    restarts: int,
    stride: int | tuple[int, ...],
    source: str,
    keep: AnchorConfig | None = None,
) -> DesignRun:
    """Cluster the GT shapes of input-frame ``items`` (:func:`input_frame_items`) for
    k = 1..min(k_max, distinct shapes) (runs off the GUI thread). Raises ``ValueError``
    when no valid box is left."""
    shapes = frame_shapes(items)
    if len(shapes.wh) == 0:
        raise ValueError(f"no valid GT box in {source} ({shapes.skipped} skipped)")
    k_max = min(k_max, len(np.unique(shapes.wh, axis=0)))
    curve = kmeans_curve(shapes.wh, k_max, rng=np.random.default_rng(seed), restarts=restarts)
    configs = [design_config(r.centres, stride=stride, keep=keep) for r in curve]
    grid = [grid_mean_iou(shapes.wh, c) for c in configs]
    return DesignRun(items, shapes.wh, shapes.skipped, curve, configs, grid, source)


def folder_frame_items(folder: str, frame: RPNConfig) -> list[FrameItem]:
    """The annotated images of ``folder`` as input-frame items (also the statistics panel's)."""
    from rpn_core.annotation.dataset import load_dataset

    return input_frame_items(
        ((it.image_path, (it.height, it.width), it.boxes)
         for it in load_dataset(folder) if len(it.boxes)),
        frame,
    )  # fmt: skip


def _job(
    image: tuple[str, tuple[int, int], np.ndarray] | None, folder: str | None,
    frame: RPNConfig, **kwargs: object,
) -> DesignRun:  # fmt: skip
    items = folder_frame_items(folder, frame) if folder else input_frame_items([image], frame)
    return run_design(items, **kwargs)


def _kept(frame: RPNConfig, anchor: AnchorConfig) -> AnchorConfig | None:
    """The levels a designed set must keep: all of the SSD's (``design_config(keep=...)``)."""
    return anchor if frame.is_ssd and anchor.centring == "cell" else None


def _levels(anchor: AnchorConfig) -> tuple[int, ...]:
    """The strides of ``anchor``'s levels: what a designed set is tiled on."""
    return tuple(lv.stride for lv in anchor.levels)


def _measure(items: list[FrameItem], anchor: AnchorConfig, label: LabelConfig) -> tuple:
    return anchor, label, folder_statistics(items, anchor, label)


def frame_text(frame: RPNConfig) -> str:
    if frame.input_square:
        n = frame.input_square
        return f"model's input frame: each image squashed to {n} x {n}"
    return (
        f"model's input frame: each image resized to shorter side {frame.min_side} "
        f"(longer at most {frame.max_side})"
    )


class AnchorDesignPanel(QWidget):
    """Design panel for an :class:`app.anchor_lab.controller.AnchorLab`."""

    def __init__(self, lab: QObject, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lab = lab
        self.run: DesignRun | None = None
        self.measured: FolderStats | None = None  # of the chosen set, on the strided grid
        self._worker: Worker | None = None
        self._measurer = TaskRunner(self)
        self._measurer.finished.connect(self._on_measured)
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
        self.measured_text = QLabel()
        self.measured_text.setWordWrap(True)
        layout.addWidget(self.measured_text)
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
        w, h = self.lab.document.size
        image = (str(path or "this image"), (int(h), int(w)), self.lab.current_gt())
        self.compute_button.setEnabled(False)
        self.summary.setText(f"Clustering the GT shapes of {source} ...")
        self._worker = Worker(
            _job,
            image,
            folder,
            self.lab.model_config,
            k_max=self.k_max.value(),
            seed=self.seed.value(),
            restarts=self.restarts.value(),
            stride=_levels(self.lab.anchor_config),
            source=source,
            keep=_kept(self.lab.model_config, self.lab.anchor_config),
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
        flat_k = suggest_k(ious)
        skipped = f", {run.skipped} zero-area/invalid skipped" if run.skipped else ""
        self.summary.setText(
            f"{len(run.wh)} GT boxes of {run.source}{skipped}, sizes in the "
            f"{frame_text(self.lab.model_config)}. Mean IoU k=1: {ious[0]:.3f}, "
            f"k={len(ious)}: {ious[-1]:.3f}; {flatten_text(ious)}."
        )
        self._ensure_plots()
        self._draw_curve(ious, flat_k)
        self.k.setMaximum(len(ious))
        chosen = flat_k or len(ious)
        with QSignalBlocker(self.k):
            self.k.setValue(chosen)
        self._show_k(chosen)
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
        self.scatter_plot.setLabel("bottom", "GT width (input-frame px)")
        self.scatter_plot.setLabel("left", "GT height (input-frame px)")
        for plot in (self.curve_plot, self.scatter_plot):
            plot.setMinimumHeight(180)
            self._plots.addWidget(plot)

    def _draw_curve(self, ious: list[float], flat_k: int | None) -> None:
        import pyqtgraph as pg

        plot = self.curve_plot
        plot.clear()
        ks = np.arange(1, len(ious) + 1)
        gains = np.diff(np.concatenate([[0.0], ious]))
        plot.addItem(
            pg.BarGraphItem(x=ks, height=gains, width=0.6, brush="#E69F00", name="gain over k-1")
        )
        plot.plot(
            ks,
            ious,
            pen=pg.mkPen("#0072B2", width=2),
            symbol="o",
            symbolBrush="#0072B2",
            name="mean IoU (clusters)",
        )
        dashed = pg.mkPen("#009E73", width=2, style=Qt.PenStyle.DashLine)
        plot.plot(ks, self.run.grid_iou, pen=dashed, name="mean IoU (sizes x ratios grid)")
        if flat_k is not None:
            plot.addItem(
                pg.InfiniteLine(
                    flat_k,
                    angle=90,
                    pen=pg.mkPen("#D55E00", width=2),
                    label=f"flat at k={flat_k}",
                    labelOpts={"position": 0.1},
                )
            )
        plot.setYRange(0, 1)

    def _show_k(self, k: int) -> None:
        if self.run is None or not 1 <= k <= len(self.run.curve):
            return
        import pyqtgraph as pg

        result, config = self.run.curve[k - 1], self.chosen_config()
        plot = self.scatter_plot
        plot.clear()
        brushes = [pg.mkBrush(CLUSTER_COLOURS[a % len(CLUSTER_COLOURS)]) for a in result.assignment]
        plot.addItem(
            pg.ScatterPlotItem(
                self.run.wh[:, 0], self.run.wh[:, 1], size=5, brush=brushes, pen=None
            )
        )
        plot.addItem(
            pg.ScatterPlotItem(
                result.centres[:, 0],
                result.centres[:, 1],
                size=16,
                symbol="x",
                brush="w",
                pen=pg.mkPen("k", width=1),
            )
        )
        shapes = ", ".join(f"{w:.0f}x{h:.0f}" for w, h in result.centres)
        self.k_text.setText(
            f"k={k}: clusters (w x h) {shapes}; mean IoU {result.mean_iou:.3f}<br>"
            f"as AnchorConfig: sizes {', '.join(f'{s:g}' for s in config.sizes)}; ratios "
            f"{', '.join(f'{r:g}' for r in config.aspect_ratios)}; "
            f"{config.num_anchors_per_location} anchors/location; grid mean IoU "
            f"{grid_mean_iou(self.run.wh, config):.3f} (one size/ratio per cluster: "
            f"{self.run.configs[k - 1].num_anchors_per_location} anchors, "
            f"{self.run.grid_iou[k - 1]:.3f}); shapes at a common centre, an upper bound"
        )
        self.measure(config)

    # -- measuring the chosen set ----------------------------------------------------------
    def measure(self, config: AnchorConfig) -> None:
        """Measure ``config`` on the real grid over the run's items, in the background."""
        self.measured = None
        self.measured_text.setText("Measuring the set on the anchor grid ...")
        self._measurer.submit(_measure, self.run.items, config, self.lab.label_config)

    def _on_measured(self, out: tuple) -> None:
        anchor, label, stats = out
        self.measured = stats
        n = len(stats.best_iou)
        recall = "n/a" if n == 0 else f"{stats.recall(label):.1%}"
        self.measured_text.setText(
            f"<b>Measured</b> on the stride-{'/'.join(map(str, _levels(anchor)))} grid "
            f"({frame_text(self.lab.model_config)}; rule {label.preset_name}): mean best IoU "
            f"{stats.mean_iou:.3f}, best-possible recall {recall} of {n} GT box(es); "
            f"{stats.unlearnable} with no foreground anchor. Anchor statistics shows the same "
            "once applied."
        )

    def chosen_config(self) -> AnchorConfig:
        """The chosen k's clusters as an AnchorConfig: sizes and ratios merged to the chosen
        counts (:func:`design_config`), on the lab's current strides (each size on its level
        when the lab's anchors have levels)."""
        result = self.run.curve[self.k.value() - 1]
        return design_config(
            result.centres,
            stride=_levels(self.lab.anchor_config),
            n_sizes=self.n_sizes.value() or None,
            n_ratios=self.n_ratios.value() or None,
            keep=_kept(self.lab.model_config, self.lab.anchor_config),
        )

    def apply(self) -> None:
        """Use the chosen k's config (with the lab's current stride) for the overlay."""
        if self.run is None:
            return
        self.lab.set_configs(self.chosen_config(), self.lab.label_config)
