"""The anchor lab controller: the overlay, its panels, and live relabelling.

``install_anchor_lab(window)`` adds an :class:`~app.anchor_lab.overlay.AnchorOverlay` to the
canvas scene and docks the settings, inspector, statistics and design panels. torch is
imported by a background :class:`~app.common.workers.Worker`, so the window appears first and the
overlay says "Loading..." until the labels can be computed.

Labels always come from :func:`rpn_core.anchors.labelling.label_image` with the lab's
``AnchorConfig`` / ``LabelConfig`` (STYLE.md #7): on every document change and on every
``box_preview`` (one per mouse move while a GT box is dragged), where the dragged box's live
geometry replaces its stored one. Box convention: :mod:`rpn_core.boxes`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import numpy as np
from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QWidget

from app.anchor_lab.overlay import AnchorOverlay
from app.anchor_lab.settings_panel import AnchorSettingsPanel, load_configs, save_configs
from app.common.workers import ModelState, Worker
from rpn_core.anchors.grid import AnchorConfig, anchor_metadata
from rpn_core.anchors.labelling import LabelConfig
from rpn_core.anchors.view import DisplayMode, ViewOptions, categorize
from rpn_core.torch_import import import_torch

__all__ = ["AnchorLab", "install_anchor_lab"]

LOADING = "Loading torch... anchors appear in a moment"


def _warm_up() -> None:
    """Import torch and run the labelling once (first calls are slow) -- off the GUI thread."""
    import_torch()

    from rpn_core.anchors.labelling import label_image

    label_image((64, 64), AnchorConfig(), np.array([[0.0, 0.0, 32.0, 32.0]], np.float32))


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on the calling (GUI) thread with one intra-op thread. Labelling a grid is a
    few small ops: two OpenMP threads on a busy 2-core machine made it 10x slower (waits at
    each op's barrier). The setting is per thread in torch, and is restored on exit."""
    import torch

    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


class AnchorLab(QObject):
    """State and wiring of the anchor lab. Signals: ``labels_updated()`` after each relabel;
    ``ready_changed(bool)``; ``anchor_config_applied(object)`` with an AnchorConfig the user
    applied (for the model; it is also stored in QSettings, see ``app.anchor_lab.settings_panel``);
    ``configs_changed(object, object)`` on any config change (also when following a model)."""

    labels_updated = Signal()
    ready_changed = Signal(bool)
    anchor_config_applied = Signal(object)
    configs_changed = Signal(object, object)  # (AnchorConfig, LabelConfig), from any source
    failed = Signal(str)

    def __init__(self, window: QMainWindow, settings: QSettings | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.canvas = window.canvas
        self.qsettings = settings if settings is not None else QSettings()
        self.anchor_config, self.label_config = load_configs(self.qsettings)
        self.overlay = AnchorOverlay()
        self.canvas.scene().addItem(self.overlay)
        self.overlay.set_message(LOADING)
        self.ready = False
        self.image_size: tuple[int, int] | None = None  # (H, W)
        self.input_size: tuple[int, int] | None = None  # (H', W') of the model's input frame
        self.anchors = np.zeros((0, 4))
        self.meta = None
        self.gt = np.zeros((0, 4), dtype=np.float32)
        self.labels = None  # rpn_core.anchors.labelling.AnchorLabels of the last relabel
        self.categories = np.zeros(0, dtype=np.int8)
        self.error: str | None = None
        self.last_relabel_ms = float("nan")
        self._preview: tuple[int, tuple[float, float, float, float]] | None = None
        self.model_anchor_config: AnchorConfig | None = None  # of the last loaded model
        self._worker: Worker | None = None
        d = self.document
        d.image_changed.connect(self._on_image_changed)
        d.boxes_changed.connect(self._on_boxes_changed)
        d.box_preview.connect(self._on_box_preview)

    # -- start-up --------------------------------------------------------------------------
    def start(self) -> None:
        """Import torch in the background; the overlay fills in when it is done."""
        self._worker = Worker(_warm_up)
        self._worker.signals.finished.connect(self._on_ready)
        self._worker.signals.failed.connect(self._on_failed)
        self._worker.start()

    def _on_ready(self, _result: object = None) -> None:
        self.ready = True
        self.overlay.set_message("")
        self._rebuild()
        self.ready_changed.emit(True)

    def _on_failed(self, message: str) -> None:
        self.error = message
        self.overlay.set_message(f"Anchors unavailable: {message}")
        self.failed.emit(message)

    # -- configuration ---------------------------------------------------------------------
    def set_configs(
        self, anchor: AnchorConfig, label: LabelConfig, *, persist: bool = True
    ) -> None:
        """Apply (and persist) configs; rebuilds the anchors when the anchor set changed."""
        anchor_changed = anchor != self.anchor_config
        self.anchor_config, self.label_config = anchor, label
        if persist:
            save_configs(self.qsettings, anchor, label)
        self.configs_changed.emit(anchor, label)
        if anchor_changed and persist:  # a model's own anchors are not "applied" to it
            self.anchor_config_applied.emit(anchor)
        if anchor_changed:
            self._rebuild()
        else:
            self.relabel()

    def follow_model(self, model: object) -> bool:
        """Adopt the anchor set of a freshly loaded model (``model.config.anchors``) so the
        overlay shows the anchors the model proposes from (STYLE.md #7). Returns True when
        the lab's anchor set changed. The label rule stays the user's, and the user's stored
        anchor set is kept in QSettings (it is what they chose, e.g. for fine-tuning)."""
        cfg = getattr(getattr(model, "config", None), "anchors", None)
        self.model_anchor_config = cfg if isinstance(cfg, AnchorConfig) else None
        if self.model_anchor_config is None or cfg == self.anchor_config:
            return False
        self.set_configs(cfg, self.label_config, persist=False)
        return True

    def set_view_options(self, options: ViewOptions) -> None:
        self.overlay.set_options(options)
        if options.mode is DisplayMode.MINIBATCH:
            self.relabel()  # the minibatch is sampled with the options' seed

    # -- document --------------------------------------------------------------------------
    def _on_image_changed(self) -> None:
        self._preview = None
        self._rebuild()

    def _on_boxes_changed(self) -> None:
        self._preview = None
        self.relabel()

    def _on_box_preview(self, index: int, xyxy: object) -> None:
        self._preview = (int(index), tuple(float(v) for v in xyxy))
        self.relabel()

    @property
    def dragging(self) -> bool:
        """A GT box is being dragged (labels follow its live geometry)."""
        return self._preview is not None

    def current_gt(self) -> np.ndarray:
        """The GT boxes ``(G, 4)`` float32 as labelled now (with a dragged box's live
        geometry); invalid boxes (zero area mid-drag) are dropped, as the model would."""
        gt = np.asarray(self.document.boxes_array(), dtype=np.float32).reshape(-1, 4)
        if self._preview is not None and 0 <= self._preview[0] < len(gt):
            gt = gt.copy()
            gt[self._preview[0]] = self._preview[1]
        w, h = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
        return gt[np.isfinite(gt).all(axis=1) & (w > 0) & (h > 0)]

    # -- computing -------------------------------------------------------------------------
    def _rebuild(self) -> None:
        """New anchor geometry for the current image size and anchor config."""
        w, h = self.document.size
        if not self.ready or w < 1 or h < 1:
            self.image_size = None
            self.overlay.set_anchors(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 1, 1)
            self.overlay.set_flagged(np.zeros((0, 4)))
            self.labels = None
            self.labels_updated.emit()
            return
        from rpn_core.anchors.grid import generate_anchors
        from rpn_core.rpn.config import RPNConfig, input_geometry

        self.image_size = (int(h), int(w))
        cfg = self.anchor_config
        # The model sees the image resized to its input frame; anchors are tiled and labelled
        # there and drawn here in original pixels (rpn_config.label_in_input_frame).
        self.input_size, (sy, sx) = input_geometry(self.image_size, RPNConfig())
        tiled = generate_anchors(self.input_size, cfg).numpy()
        self.anchors = tiled / np.array([sx, sy, sx, sy], dtype=tiled.dtype)
        self.meta = anchor_metadata(self.input_size, cfg, tiled)
        self.overlay.set_anchors(
            self.anchors, self.meta.size_index, self.meta.ratio_index,
            cfg.num_anchors_per_location, cfg.stride,
        )
        self.relabel()

    def relabel(self) -> None:
        """Label the anchors against the current GT and push the result to the overlay."""
        if not self.ready or self.image_size is None:
            return
        from rpn_core.rpn.config import label_in_input_frame

        t0 = time.perf_counter()
        self.gt = self.current_gt()
        try:
            with _one_thread():
                labels = label_in_input_frame(
                    self.image_size, self.gt, self.anchor_config, self.label_config
                )
                minibatch = self._minibatch(labels)
        except (ValueError, RuntimeError, MemoryError) as exc:  # e.g. out of memory
            self.error = f"{type(exc).__name__}: {exc}"
            self.overlay.set_message(f"Labelling failed: {self.error}")
            self.failed.emit(self.error)
            return
        if self.error is not None:
            self.error = None
            self.overlay.set_message("")
        self.labels = labels
        self.categories = categorize(
            labels.labels.numpy(), labels.low_quality.numpy(), labels.cross_boundary.numpy()
        )
        self.overlay.set_labels(self.categories, minibatch)
        self.overlay.set_flagged(self.gt[labels.gt_num_positive.numpy() == 0])
        self.last_relabel_ms = (time.perf_counter() - t0) * 1000
        self.labels_updated.emit()

    def _minibatch(self, labels: object) -> np.ndarray | None:
        options = self.overlay.options
        if options.mode is not DisplayMode.MINIBATCH:
            return None
        import torch

        from rpn_core.anchors.labelling import sample_minibatch

        generator = torch.Generator().manual_seed(options.seed)
        pos, neg = sample_minibatch(
            labels.labels,
            batch_size=self.label_config.batch_size_per_image,
            positive_fraction=self.label_config.positive_fraction,
            generator=generator,
        )
        return torch.cat([pos, neg]).numpy()


def _dock(window: QMainWindow, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
    dock = QDockWidget(title, window)
    dock.setObjectName(f"anchor_lab_{title.lower().replace(' ', '_')}")
    scroll = QScrollArea()  # the panels' height never forces the window's
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(widget)
    dock.setWidget(scroll)
    window.addDockWidget(area, dock)
    menus = getattr(window, "menus", None)
    if isinstance(menus, dict) and "view" in menus:  # the main window's View menu
        menus["view"].addAction(dock.toggleViewAction())
    return dock


def _describe(cfg: AnchorConfig) -> str:
    sizes = ", ".join(f"{v:g}" for v in cfg.sizes)
    ratios = ", ".join(f"{v:g}" for v in cfg.aspect_ratios)
    return f"sizes {sizes}; ratios {ratios}; stride {cfg.stride}"


def _follow_model_loader(window: QMainWindow, lab: AnchorLab) -> None:
    """When the window's ``model_loader`` has loaded a model, show its anchors and say so."""
    loader = getattr(window, "model_loader", None)
    if loader is None:
        return

    def on_state(state: str, _message: str) -> None:
        model = loader.model_if_ready()
        if state != ModelState.READY.value or model is None or not lab.follow_model(model):
            return
        cfg = _describe(lab.anchor_config)
        text = f"Anchor overlay switched to the loaded model's anchors ({cfg})"
        lab.settings_panel.status.setText(text)
        bar = getattr(window, "message_bar", None)
        if bar is not None:
            bar.show_message("info", text)

    loader.state_changed.connect(on_state)


def install_anchor_lab(window: QMainWindow, settings: QSettings | None = None) -> AnchorLab:
    """Add the anchor lab to a main window that has ``document`` and ``canvas``; returns the
    controller (kept alive as the window's child). torch loads in the background."""
    from app.anchor_lab.design_panel import AnchorDesignPanel
    from app.anchor_lab.inspector import AnchorInspector
    from app.anchor_lab.stats_panel import AnchorStatsPanel

    lab = AnchorLab(window, settings)
    panel = AnchorSettingsPanel(lab.anchor_config, lab.label_config)
    panel.configs_changed.connect(lab.set_configs)
    panel.view_changed.connect(lab.set_view_options)
    lab.overlay.set_options(panel.view_options)
    lab.settings_panel = panel
    lab.inspector = AnchorInspector(lab)
    lab.stats = AnchorStatsPanel(lab)
    lab.design = AnchorDesignPanel(lab)
    right = Qt.DockWidgetArea.RightDockWidgetArea
    lab.docks = [
        _dock(window, "Anchor settings", panel, right),
        _dock(window, "Anchor statistics", lab.stats, right),
        _dock(window, "Anchor inspector", lab.inspector, right),
        _dock(window, "Anchor design", lab.design, right),
    ]
    for dock in lab.docks[1:]:  # one tab group: the window keeps its height
        window.tabifyDockWidget(lab.docks[0], dock)
    lab.docks[0].raise_()
    lab.configs_changed.connect(panel.set_configs)
    lab.configs_changed.connect(lambda _a, _l: panel.refresh_view())

    def warn_if_unlike_model(cfg: AnchorConfig) -> None:
        model_cfg = lab.model_anchor_config
        if model_cfg is not None and cfg != model_cfg:
            panel.status.setText(
                f"The loaded model proposes from other anchors ({_describe(model_cfg)}); "
                "this set is what fine-tuning would use."
            )

    lab.anchor_config_applied.connect(warn_if_unlike_model)
    _follow_model_loader(window, lab)
    lab.start()
    return lab
