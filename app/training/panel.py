"""The Train dock: fine-tune the RPN on the open folder's boxes in the background (issue 6).

Data flow: Start gathers the annotated images of the folder (the current image's and unsaved
edits included), runs :func:`rpn_core.training.finetune.fine_tune` on a **copy** of the active
model in an
:class:`app.common.workers.Worker` (progress per step; cancel stops at the next step), plots the
losses, and on success makes the trained copy -- the run's best validation checkpoint -- the
active model (the proposals on the current image re-run with it), **unless** it does not beat
the active weights on the validation images: then the active weights stay, the dock says so and
"Use the fine-tuned weights anyway" makes them active on request. Too little data is warned
about before training starts. Cancel or failure leaves the active weights untouched.
``has_unsaved_weights`` tells the main window to ask before quitting. Save writes a
checkpoint (:mod:`rpn_core.rpn.checkpoint`); Load checks one (shapes, anchors) and activates it;
Reset goes back to the embedded weights. ``weights_changed(str)`` names the active weights
(the window's status bar shows it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.common.workers import Lane, ModelLoader, Worker, wait_for_lane
from app.state.app_state import AppStateModel
from app.training.controls import LossPlot, TrainControls, format_eta, recall_html
from app.training.plan import lab_anchors, lab_rule, plan_html, rule_text
from rpn_core.annotation.data import ImageAnnotation
from rpn_core.training.jobs import TrainedModel, annotated_items, train_job

__all__ = ["TrainPanel", "TrainedModel", "annotated_items", "train_job"]

PLOT_INTERVAL_S = 0.1  # redraw the curves at most 10 times a second


class TrainPanel(QWidget):
    """The dock's widget; see the module docstring."""

    status_message = Signal(str)
    weights_changed = Signal(str)
    load_failed = Signal(str)  # a weights file could not be loaded: the message
    training_finished = Signal(object)  # TrainResult
    training_failed = Signal(str)

    def __init__(
        self, workspace: Any, document: Any, app_state: AppStateModel, loader: ModelLoader,
        parent: QWidget | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.workspace, self.document, self.app_state, self.loader = (
            workspace, document, app_state, loader,
        )  # fmt: skip
        self.ui = TrainControls(self)
        scroll = QScrollArea(self)  # the dock may be short: scroll rather than squeeze
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.ui)
        self.scroll = scroll
        self.ui.setMinimumWidth(260)  # fits the narrow left dock: no control is clipped
        self.ui.setMinimumHeight(760)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(scroll)
        self.plot: LossPlot | None = None
        self.worker: Worker | None = None
        self.items: list[ImageAnnotation] = []
        self.last_result: Any = None
        self.active_weights = "embedded"
        self.has_unsaved_weights = False  # fine-tuned weights active and not written to a file
        self.held_back: Any = None  # a run's model that did not beat the active weights
        self.warnings: list[str] = []  # too little data (rpn_core.training.types.data_warnings)
        self._before: dict[str, float] = {}
        self._last_draw = 0.0
        self._connect()

    def _connect(self) -> None:
        ui = self.ui
        ui.refresh_button.clicked.connect(self.refresh)
        ui.start_button.clicked.connect(lambda: self.start())
        ui.cancel_button.clicked.connect(self.cancel)
        ui.save_button.clicked.connect(self.ask_save)
        ui.load_button.clicked.connect(self.ask_load)
        ui.reset_button.clicked.connect(self.reset_weights)
        ui.use_trained_button.clicked.connect(self.use_held_back)
        ui.lab_anchors.toggled.connect(self._show_plan)
        ui.input_size.valueChanged.connect(self._show_plan)
        ui.lab_rule.toggled.connect(self._show_plan)
        self.app_state.changed.connect(self._show_plan)
        self._show_plan()
        ui.val_fraction.valueChanged.connect(self._show_split)
        ui.seed.valueChanged.connect(self._show_split)
        if hasattr(self.workspace, "images_listed"):
            self.workspace.images_listed.connect(self.refresh)

    # -- data --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read which images have boxes and show the validation split."""
        self.items = annotated_items(self.workspace, self.document)
        self._show_split()

    def _show_split(self) -> None:
        from rpn_core.training.types import data_warnings, plan_split

        self.ui.val_list.clear()
        self.warnings = []
        self.ui.warning_label.hide()
        if not self.items:
            self.ui.data_label.setText("No image of the folder has boxes yet.")
            return
        samples, split = plan_split(self.items, self.ui.config())
        self.warnings = data_warnings(samples, split)
        if self.warnings:
            self.ui.warning_label.setText("⚠ " + "<br>⚠ ".join(self.warnings))
            self.ui.warning_label.show()
        boxes = sum(len(s.boxes) for s in samples)
        self.ui.data_label.setText(
            f"{len(samples)} annotated images ({boxes} boxes): "
            f"{len(split.train)} train, {len(split.validation)} validate"
        )
        self.ui.val_list.addItems([samples[i].name for i in split.validation])

    # -- training ----------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.worker is not None

    def start(self, config: Any = None) -> Worker | None:
        """Train on the folder's boxes with ``config`` (default: the panel's settings)."""
        if self.worker is not None:
            return None
        self.refresh()
        if not self.items:
            self._status("Nothing to train on: draw boxes on some images first.", error=True)
            return None
        config = config or self.ui.config()
        anchors, note = self._lab_anchors()
        if note.startswith("Cannot"):
            self._status(note, error=True)
            return None
        rule = self._lab_rule()
        if rule is not None:
            note = f"{note} Labelling by the anchor lab's rule {rule_text(rule)}.".strip()
        threads = max(1, (os.cpu_count() or 2) - 1)
        size = self.ui.input_size.value() or None
        if size is not None and size < 16:
            self._status(f"Input size {size} px is too small (16 at least).", error=True)
            return None
        worker = Worker(
            train_job, self.loader.get, list(self.items), config, threads=threads,
            anchors=anchors, labels=rule, input_size=size,
        )  # fmt: skip
        s = worker.signals
        s.progress.connect(self._on_progress)
        s.finished.connect(self._on_finished)
        s.failed.connect(self._on_failed)
        s.cancelled.connect(self._on_cancelled)
        s.done.connect(self._on_done)
        self._ensure_plot().clear()
        self.held_back = None  # a new run replaces an earlier one that was held back
        self.ui.use_trained_button.hide()
        self._before = {}
        self.ui.recall_label.setText(recall_html({}, {}))
        self.ui.set_running(True)
        self.worker = worker
        warned = " ".join(f"Warning: {w}" for w in self.warnings)
        self._status(
            "Training: preparing images…"
            + (f" {note}" if note else "")
            + (f" {warned}" if warned else "")
        )
        return worker.start(Lane.TRAINING)  # its own thread: the other lanes stay free

    def _lab_anchors(self) -> tuple[Any, str]:
        """``(AnchorConfig or None, note)``: :func:`app.training.plan.lab_anchors`."""
        return lab_anchors(self.app_state.state, self.ui.lab_anchors.isChecked())

    def _lab_rule(self) -> Any:
        """The lab's rule when ticked and not the model's: :func:`app.training.plan.lab_rule`."""
        return lab_rule(self.app_state.state, self.ui.lab_rule.isChecked())

    def _show_plan(self, *_args: Any) -> None:
        """Say, before Start, which input size, anchor set and label rule training will use."""
        state = self.app_state.state
        self.ui.allow_partial(not state.model_config.is_ssd)
        ui = self.ui
        self.ui.plan_label.setText(
            plan_html(
                state, ui.lab_anchors.isChecked(), ui.lab_rule.isChecked(), ui.input_size.value()
            )
        )

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self._status("Cancelling after the current step…")

    def wait(self, msecs: int = 30000) -> bool:
        """Cancel and block until the job ended (shutdown, tests)."""
        if self.worker is not None:
            self.worker.cancel()
        return wait_for_lane(Lane.TRAINING, msecs) and wait_for_lane(Lane.INTERACTIVE, msecs)

    def _ensure_plot(self) -> LossPlot:
        if self.plot is None:
            self.plot = LossPlot(self)
            self.ui.plot_placeholder.hide()
            self.ui.plot_holder.addWidget(self.plot)
        return self.plot

    def _on_progress(self, r: Any) -> None:
        ui = self.ui
        ui.progress.setRange(0, max(1, r.total_steps))
        ui.progress.setValue(r.step)
        if r.phase == "prepare":
            ui.progress_label.setText(f"Preparing images {r.step}/{r.total_steps}…")
        elif r.phase == "train":
            ui.progress_label.setText(
                f"Step {r.step}/{r.total_steps} · epoch {r.epoch} · loss {r.total:.4f} · "
                f"{r.images_per_s:.1f} img/s · ETA {format_eta(r.eta_s)}"
            )
            self.plot.add("cls", r.step, r.loss_cls)
            self.plot.add("reg", r.step, r.loss_reg)
            self.plot.add("total", r.step, r.total)
        elif r.phase == "validate":
            self.plot.add("val_cls", r.step, r.val_loss_cls)
            self.plot.add("val_reg", r.step, r.val_loss_reg)
            self.plot.add("val_total", r.step, r.val_total)
            if r.step == 0:
                self._before = dict(r.recall)
            ui.recall_label.setText(recall_html(self._before, r.recall))
        now = time.perf_counter()
        if r.phase != "train" or now - self._last_draw >= PLOT_INTERVAL_S:
            self.plot.redraw()
            self._last_draw = now

    def _on_finished(self, trained: Any) -> None:
        from rpn_core.training.types import selection_metric

        self.plot.redraw()
        result = trained.result
        self.last_result = result
        self.ui.recall_label.setText(recall_html(result.metrics_before, result.metrics_after))
        done = f"Done: {result.steps} steps in {result.seconds:.1f} s ({result.stopped})"
        if result.metrics_after:
            done += f"; kept the best validation checkpoint, step {result.best_step}"
        key = selection_metric(result.config)
        if result.improved is False:
            self.held_back = trained.model
            before = result.metrics_before.get(key, float("nan"))
            after = result.metrics_after.get(key, float("nan"))
            text = (
                f"{done}. The fine-tuned weights do NOT beat the active ones on the validation "
                f"images ({key.replace('/', ' at IoU ')}: {before:.3f} → {after:.3f}, validation "
                f"loss {result.val_loss_before:.4f} → {result.val_loss_after:.4f}), so "
                f"the active weights ({self.active_weights}) stay. 'Use the fine-tuned "
                "weights anyway' makes them active."
            )
            self.ui.progress_label.setText(text)
            self._status(text, error=True)
            self.ui.use_trained_button.show()
        else:
            unchecked = (" Nothing to validate on: not checked against the previous weights."
                         if result.improved is None else "")  # fmt: skip
            self.ui.progress_label.setText(done + "." + unchecked)
            self._activate(trained.model, "fine-tuned (unsaved)")
        self.training_finished.emit(result)

    def use_held_back(self) -> None:
        """Make the last run's weights active although they did not beat the previous ones."""
        if self.held_back is None:
            return
        model, self.held_back = self.held_back, None
        self._activate(model, "fine-tuned (unsaved)")
        self._status("The fine-tuned weights are active (at your request).")

    def _on_failed(self, message: str) -> None:
        text = f"Training stopped — {message}. The active weights are unchanged."
        self.ui.progress_label.setText(text)
        self._status(text, error=True)
        self.training_failed.emit(message)

    def _on_cancelled(self) -> None:
        self.ui.progress_label.setText("Cancelled. The active weights are unchanged.")
        self._status("Training cancelled.")

    def _on_done(self) -> None:
        self.worker = None
        self.ui.set_running(False)

    # -- weights -----------------------------------------------------------------------------
    def _activate(self, model: Any, label: str) -> None:
        """Make ``model`` the one every panel uses and re-run the proposals with it."""
        self.held_back = None
        self.ui.use_trained_button.hide()
        self.has_unsaved_weights = label == "fine-tuned (unsaved)"
        self._set_label(label)
        self.loader.set_model(model, label)  # -> model_changed: the proposals re-run

    def _set_label(self, label: str) -> None:
        self.active_weights = label
        self.ui.weights_label.setText(f"Active: {label}")
        self.weights_changed.emit(label)

    def save_weights(self, path: str | Path) -> bool:
        """Write the active model as a checkpoint; False (and a message) on failure."""
        from rpn_core.rpn.checkpoint import CheckpointError, save_checkpoint

        model = self.loader.model_if_ready()
        if model is None:
            self._status("No model loaded yet: run proposals or train first.", error=True)
            return False
        try:
            save_checkpoint(model, path, result=self.last_result, config=None)
        except CheckpointError as exc:
            self._status(f"Could not save — {exc}", error=True)
            return False
        self._set_label(str(path))
        self.has_unsaved_weights = False
        self._status(f"Saved weights to {path}")
        return True

    def load_weights(self, path: str | Path) -> Worker:
        """Check and load a checkpoint in the background, then activate it."""
        from rpn_core.rpn.checkpoint import load_checkpoint

        worker = Worker(load_checkpoint, path)
        worker.signals.finished.connect(lambda out: self._loaded(path, *out))
        worker.signals.failed.connect(self._load_failed)
        return worker.start()

    def _load_failed(self, message: str) -> None:
        text = f"Could not load — {message}. The active weights are unchanged."
        self._status(text, error=True)
        self.load_failed.emit(text)  # the Proposals dock's Weights... button may have asked

    def _loaded(self, path: str | Path, model: Any, info: Any) -> None:
        from rpn_core.rpn.checkpoint import describe_anchor_mismatch

        self.last_result = None
        current = self.app_state.state.anchor_config
        why = describe_anchor_mismatch(info.config.anchors, current)
        self._activate(model, str(path))
        if why:
            self._status(f"Loaded {Path(path).name}; note: {why} (the RPN uses its own).")
        else:
            self._status(f"Loaded {Path(path).name}")

    def reset_weights(self) -> None:
        self.last_result = None
        self.loader.set_weights_path(None)
        self.has_unsaved_weights = False
        self._set_label("embedded")
        self._status("Back to the embedded weights.")

    def default_save_path(self) -> str:
        """The Save dialog's start: ``rpn_finetuned.safetensors`` in the images' folder."""
        root = getattr(self.workspace, "root", None)
        name = "rpn_finetuned.safetensors"
        return str(Path(root) / name) if root is not None else name

    def ask_save(self) -> bool:
        """Ask where to save the active weights; True when they were saved."""
        path, _ = QFileDialog.getSaveFileName(
            self, "Save RPN weights", self.default_save_path(), "Safetensors (*.safetensors)"
        )
        return bool(path) and self.save_weights(path)

    def ask_load(self) -> None:
        root = getattr(self.workspace, "root", None)
        path, _ = QFileDialog.getOpenFileName(
            self, "Load RPN weights", str(root or ""), "Safetensors (*.safetensors);;All files (*)"
        )
        if path:
            self.load_weights(path)

    def _status(self, text: str, *, error: bool = False) -> None:
        self.ui.progress_label.setStyleSheet("color: #d03030;" if error else "")
        if error:
            self.ui.progress_label.setText(text)
        self.status_message.emit(text)
