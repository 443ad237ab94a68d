"""The anchor lab controller: the overlay, its panels, and live relabelling.

``install_anchor_lab(document, canvas, app_state)`` adds an
:class:`~app.anchor_lab.overlay.AnchorOverlay` to the canvas scene and builds the settings,
statistics, inspector and design panels (``lab.panels``; the shell docks them). torch is
imported by a background :class:`~app.common.workers.Worker`, so the window appears first and
the overlay says "Loading..." until the labels can be computed.

The lab's ``AnchorConfig`` / ``LabelConfig`` and the active model's input frame live in the
app state (:class:`app.state.app_state.AppStateModel`): when another model becomes active the
lab shows that model's anchors and says so (``notice``). Labels always come from
:func:`rpn_core.anchors.labelling.label_image` (ARCHITECTURE.md rule 7): on every document change
and on every
``box_preview`` (one per mouse move while a GT box is dragged), where the dragged box's live
geometry replaces its stored one. Box convention: :mod:`rpn_core.boxes`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import numpy as np
from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QWidget

from app.anchor_lab.overlay import AnchorOverlay
from app.anchor_lab.settings_panel import AnchorSettingsPanel, load_configs, save_configs
from app.common.workers import Worker
from app.state.app_state import AppStateModel
from app.state.qdocument import AnnotationDocument
from rpn_core.anchors.grid import AnchorConfig, format_sizes
from rpn_core.anchors.indexing import anchor_metadata, location_starts
from rpn_core.anchors.labelling import LabelConfig
from rpn_core.anchors.view import DisplayMode, ViewOptions, categorize
from rpn_core.rpn.config import RPNConfig
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
    ``configs_changed(object, object)`` on any config change (also when following a model);
    ``notice(str)`` when the overlay switched to a newly active model's anchors."""

    labels_updated = Signal()
    ready_changed = Signal(bool)
    anchor_config_applied = Signal(object)
    configs_changed = Signal(object, object)  # (AnchorConfig, LabelConfig), from any source
    failed = Signal(str)
    notice = Signal(str)

    def __init__(
        self,
        document: AnnotationDocument,
        canvas: QWidget,
        app_state: AppStateModel,
        settings: QSettings | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.canvas = canvas
        self.app_state = app_state
        self.qsettings = settings if settings is not None else QSettings()
        self.panels: list[tuple[str, QWidget]] = []  # (title, widget): the shell docks them
        self.overlay = AnchorOverlay()
        self.canvas.scene().addItem(self.overlay)
        self.overlay.set_message(LOADING)
        self.ready = False
        self.image_size: tuple[int, int] | None = None  # (H, W)
        self.input_size: tuple[int, int] | None = None  # (H', W') of the model's input frame
        self.anchors = np.zeros((0, 4))
        self.meta = None
        self.gt = np.zeros((0, 4), dtype=np.float32)
        self.gt_index = np.zeros(0, dtype=np.int64)  # document index of each row of ``gt``
        self.labels = None  # rpn_core.anchors.labelling.AnchorLabels of the last relabel
        self.categories = np.zeros(0, dtype=np.int8)
        self.error: str | None = None
        self.last_relabel_ms = float("nan")
        self._preview: tuple[int, tuple[float, float, float, float]] | None = None
        self._worker: Worker | None = None
        self._tiled_anchor: AnchorConfig | None = None  # the anchor set the overlay shows
        self._notice: str | None = None  # to say after a model's anchor set is shown
        d = self.document
        d.image_changed.connect(self._on_image_changed)
        d.boxes_changed.connect(self._on_boxes_changed)
        d.box_preview.connect(self._on_box_preview)
        app_state.lab_changed.connect(self._on_lab_changed)
        app_state.model_changed.connect(self._on_model_changed)

    @property
    def anchor_config(self) -> AnchorConfig:
        return self.app_state.state.anchor_config

    @property
    def label_config(self) -> LabelConfig:
        return self.app_state.state.label_config

    @property
    def model_config(self) -> RPNConfig:
        """The active model's configuration: its input frame is the frame anchors live in."""
        return self.app_state.state.model_config

    @property
    def model_anchor_config(self) -> AnchorConfig:
        """The anchor set of the active model (what it proposes from)."""
        return self.app_state.state.model_config.anchors

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
        """Apply (and persist) configs through the app state; the lab rebuilds the anchors
        when the anchor set changed (:meth:`_on_lab_changed`)."""
        anchor_changed = anchor != self.anchor_config
        if persist:
            save_configs(self.qsettings, anchor, label)
        self.app_state.set_lab(anchor, label)
        if anchor_changed and persist:  # a model's own anchors are not "applied" to it
            self.anchor_config_applied.emit(anchor)

    def _on_lab_changed(self, anchor: AnchorConfig, label: LabelConfig) -> None:
        self.configs_changed.emit(anchor, label)
        if anchor != self._tiled_anchor:
            self._rebuild()
        else:
            self.relabel()
        notice, self._notice = self._notice, None
        if notice:
            self.notice.emit(notice)

    def _on_model_changed(self, config: object) -> None:
        """Another model is active: the app state moved the lab to its anchor set (the label
        rule stays the user's, and so does the anchor set stored in QSettings); its input
        frame may differ, so the anchors are re-tiled."""
        if self.anchor_config != self._tiled_anchor:  # said once the panels show the new set
            self._notice = (
                "Anchor overlay switched to the loaded model's anchors "
                f"({_describe(self.anchor_config)})"
            )
        self._rebuild()

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
        return self._current_gt()[0]

    def _current_gt(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`current_gt` and each row's index in the document (the Boxes list's row)."""
        gt = np.asarray(self.document.boxes_array(), dtype=np.float32).reshape(-1, 4)
        if self._preview is not None and 0 <= self._preview[0] < len(gt):
            gt = gt.copy()
            gt[self._preview[0]] = self._preview[1]
        w, h = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
        keep = np.isfinite(gt).all(axis=1) & (w > 0) & (h > 0)
        return gt[keep], np.flatnonzero(keep)

    def gt_names(self) -> list[str]:
        """How the user sees each labelled GT box (row of ``gt``): its number in the Boxes
        list and its class (:func:`rpn_core.anchors.explain.gt_name`)."""
        from rpn_core.anchors.explain import gt_name

        boxes = self.document.boxes
        return [gt_name(int(i), boxes[i].label if i < len(boxes) else "") for i in self.gt_index]

    # -- computing -------------------------------------------------------------------------
    def _rebuild(self) -> None:
        """New anchor geometry for the current image size and anchor config."""
        w, h = self.document.size
        if not self.ready or w < 1 or h < 1:
            self.image_size = None
            self.overlay.set_anchors(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 1)
            self.overlay.set_flagged(np.zeros((0, 4)))
            self.labels = None
            self.labels_updated.emit()
            return
        from rpn_core.anchors.grid import generate_anchors
        from rpn_core.rpn.config import input_geometry

        self.image_size = (int(h), int(w))
        cfg = self._tiled_anchor = self.anchor_config
        # The model sees the image resized to its input frame; anchors are tiled and labelled
        # there and drawn here in original pixels (rpn_core.rpn.config.label_in_input_frame).
        self.input_size, (sy, sx) = input_geometry(self.image_size, self.model_config)
        tiled = generate_anchors(self.input_size, cfg).numpy()
        self.anchors = tiled / np.array([sx, sy, sx, sy], dtype=tiled.dtype)
        self.meta = anchor_metadata(self.input_size, cfg, tiled)
        per_location = (
            location_starts(self.input_size, cfg)
            if cfg.size_strides
            else cfg.num_anchors_per_location
        )
        self.overlay.set_anchors(
            self.anchors, self.meta.size_index, self.meta.ratio_index, per_location
        )
        self.relabel()

    def relabel(self) -> None:
        """Label the anchors against the current GT and push the result to the overlay."""
        if not self.ready or self.image_size is None:
            return
        from rpn_core.rpn.config import label_in_input_frame

        t0 = time.perf_counter()
        self.gt, self.gt_index = self._current_gt()
        try:
            with _one_thread():
                labels = label_in_input_frame(
                    self.image_size,
                    self.gt,
                    self.anchor_config,
                    self.label_config,
                    self.model_config,
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


def _describe(cfg: AnchorConfig) -> str:
    ratios = ", ".join(f"{v:g}" for v in cfg.aspect_ratios)
    return f"sizes {format_sizes(cfg)}; ratios {ratios}; stride {cfg.stride}"


def install_anchor_lab(
    document: AnnotationDocument,
    canvas: QWidget,
    app_state: AppStateModel,
    settings: QSettings | None = None,
    parent: QObject | None = None,
) -> AnchorLab:
    """The anchor lab over ``canvas``: the controller with its overlay in the scene and its
    panels in ``lab.panels`` (settings, statistics, inspector, design) for the shell to dock.
    The lab's configs stored in ``settings`` (or the active model's) become the app state's.
    torch loads in the background."""
    from app.anchor_lab.design_panel import AnchorDesignPanel
    from app.anchor_lab.inspector import AnchorInspector
    from app.anchor_lab.stats_panel import AnchorStatsPanel

    qsettings = settings if settings is not None else QSettings()
    anchor, label = load_configs(qsettings, app_state.state.model_config)
    app_state.set_lab(anchor, label)
    lab = AnchorLab(document, canvas, app_state, qsettings, parent)
    panel = AnchorSettingsPanel(lab.anchor_config, lab.label_config)
    panel.configs_changed.connect(lab.set_configs)
    panel.view_changed.connect(lab.set_view_options)
    lab.overlay.set_options(panel.view_options)
    lab.settings_panel = panel
    lab.inspector = AnchorInspector(lab)
    lab.stats = AnchorStatsPanel(lab)
    lab.design = AnchorDesignPanel(lab)
    lab.panels = [
        ("Anchor settings", panel),
        ("Anchor statistics", lab.stats),
        ("Anchor inspector", lab.inspector),
        ("Anchor design", lab.design),
    ]
    lab.configs_changed.connect(panel.set_configs)
    lab.configs_changed.connect(lambda _a, _l: panel.refresh_view())
    lab.notice.connect(panel.status.setText)

    other = "proposes from other anchors"

    def say_how_lab_and_model_differ(*_args: object) -> None:
        """Read from the app state on every change, so the note follows the ACTIVE model
        (e.g. after fine-tuning with the lab's set it goes away, never stale)."""
        state = app_state.state
        if not state.lab_matches_model:
            panel.status.setText(
                f"The loaded model {other} ({_describe(state.model_config.anchors)}; "
                f"weights: {state.weights}); this set is what fine-tuning would use."
            )
        elif other in panel.status.text():
            panel.status.setText("")

    lab.anchor_config_applied.connect(say_how_lab_and_model_differ)
    app_state.changed.connect(say_how_lab_and_model_differ)
    lab.start()
    return lab
