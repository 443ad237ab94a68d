"""The Proposals dock: run the embedded RPN (or Selective Search) on the current image in the
background, re-select proposals from the cached raw output as the controls change, list them,
and accept them as GT boxes in one undo step.

Boxes follow :mod:`rpn_core.boxes`. Data flow: a run (:mod:`rpn_core.rpn.jobs`, on a
:class:`app.common.workers.TaskRunner`) returns one :class:`~rpn_core.rpn.jobs.ProposalRun` per
source
per image; the controls only re-run :func:`rpn_core.rpn.selection.select_proposals` on the cached
``RawProposals`` (milliseconds), never the backbone. A new image supersedes any running job.
The layer (:class:`app.proposals.layer.ProposalsLayer`) and the table share one indexing:
row ``i`` of the table model is proposal ``i`` of the layer (rank ``i + 1``).
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import (
    QEvent,
    QItemSelection,
    QItemSelectionModel,
    QObject,
    QSettings,
    Qt,
    Signal,
)
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractItemView, QApplication, QVBoxLayout, QWidget

from app.canvas.box_item import HANDLE_SIZE_PX
from app.canvas.canvas import Canvas
from app.common.workers import ModelLoader, ModelState, TaskRunner
from app.proposals.controls import ProposalsControls
from app.proposals.layer import ProposalsLayer
from app.proposals.table import ProposalsTableModel, make_proxy
from app.state.app_state import AppStateModel
from app.state.qdocument import AnnotationDocument
from app.state.undo import AddBoxesCommand
from rpn_core.annotation.box_edit import pick_handle
from rpn_core.annotation.data import Box
from rpn_core.rpn.config import SelectionConfig
from rpn_core.rpn.jobs import METHODS, ProposalRun, rpn_job, selective_search_job

__all__ = ["ProposalsPanel"]

AUTO_RUN_KEY = "proposals/auto_run"  # QSettings key; default on


class ProposalsPanel(QWidget):
    """The dock's widget (the window wraps it in a ``QDockWidget``); see the module docstring.

    ``status_message(str)`` feeds the window's status bar; ``proposals_shown(int)`` follows
    every (re)selection with the number shown."""

    status_message = Signal(str)
    proposals_shown = Signal(int)
    load_weights_requested = Signal()  # "Weights..." (the shell runs Model > Load)
    reset_weights_requested = Signal()  # "Embedded" (the shell runs Model > Reset)

    def __init__(
        self,
        document: AnnotationDocument,
        canvas: Canvas,
        app_state: AppStateModel,
        loader: ModelLoader,
        parent: QWidget | None = None,
        qsettings: QSettings | None = None,
    ) -> None:
        super().__init__(parent)
        self._qsettings = qsettings
        self.document, self.canvas, self.app_state = document, canvas, app_state
        self.loader = loader
        self.runner = TaskRunner(self)
        self.layer = ProposalsLayer()
        canvas.scene().addItem(self.layer)
        self.table_model = ProposalsTableModel(self)
        self.ui = ProposalsControls(make_proxy(self.table_model, self), self)
        self.ui.set_selection(app_state.state.selection)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.ui)
        self._runs: dict[str, ProposalRun] = {}
        self._token = 0
        self._run_started: float | None = None
        self._running_method = "rpn"  # the source of the latest submitted run
        self._last_error: object = None
        self.timings: dict[str, float] = {}  # last measured: first_result_s, select_ms, ...
        self._clicks = _CanvasClicks(self)
        canvas.viewport().installEventFilter(self._clicks)
        if qsettings is not None:
            auto = qsettings.value(AUTO_RUN_KEY, True, type=bool)
            self.ui.auto_box.setChecked(bool(auto))
        self._connect()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # -- wiring ------------------------------------------------------------------------------
    def _connect(self) -> None:
        ui = self.ui
        ui.settings_changed.connect(lambda: self.app_state.set_selection(ui.settings()))
        self.app_state.selection_changed.connect(self._on_selection_changed)
        ui.method_changed.connect(self._on_method_changed)
        ui.run_button.clicked.connect(self.run)
        ui.auto_box.toggled.connect(self._remember_auto_run)
        ui.weights_button.clicked.connect(self.load_weights_requested)
        ui.embedded_button.clicked.connect(self.reset_weights_requested)
        ui.show_box.toggled.connect(self.layer.setVisible)
        ui.arrows_box.toggled.connect(self.layer.set_show_arrows)
        ui.colour_combo.currentIndexChanged.connect(
            lambda: self.layer.set_colour_by(ui.colour_by())
        )
        ui.accept_selected_button.clicked.connect(self.accept_selected)
        ui.accept_all_button.clicked.connect(self.accept_all)
        ui.table.selectionModel().selectionChanged.connect(self._on_table_selection)
        accept = QShortcut(QKeySequence(Qt.Key.Key_Return), ui.table, self.accept_selected)
        accept.setContext(Qt.ShortcutContext.WidgetShortcut)  # Return in the list accepts
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.error.connect(self._on_error)  # emitted just before ``failed``
        self.runner.failed.connect(self._on_failed)
        self.runner.busy_changed.connect(ui.set_busy)
        self.loader.state_changed.connect(self._on_model_state)
        self.loader.model_changed.connect(self._on_model_changed)
        self.document.image_changed.connect(self._on_image_changed)
        self.document.boxes_changed.connect(self._update_summary)

    def _remember_auto_run(self, on: bool) -> None:
        if self._qsettings is not None:
            self._qsettings.setValue(AUTO_RUN_KEY, bool(on))

    def shutdown(self, msecs: int = 30000) -> bool:
        """Cancel and wait for background work (call before the window goes away)."""
        return self.runner.wait(msecs)

    # -- running -----------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return self.ui.method()

    def run(self) -> None:
        """Run the current source on the current image (superseding any running job)."""
        loaded = self.document.loaded
        if loaded is None:
            self._show_status("Open an image first.", error=False)
            return
        w, h = self.document.size
        self._run_started = time.perf_counter()
        if self.method == "rpn":
            job = rpn_job
            args = (self.loader.get, loaded.pixels)
            kwargs = {"original_size": (h, w)}
        else:
            job, args, kwargs = selective_search_job, (loaded.pixels,), {}
        kwargs.update(token=self._token, scale=loaded.scale)
        self._running_method = self.method
        self._show_status(f"{METHODS[self.method]}: running...")
        self.runner.submit(job, *args, **kwargs)

    def set_weights(self, path: str | None) -> None:
        """Use another weights file (``None``: the embedded weights); re-runs if auto-run."""
        self.loader.set_weights_path(path)  # -> model_changed -> _on_model_changed

    def show_status(self, text: str, *, error: bool = False) -> None:
        """A line in the dock's status (e.g. why weights asked for here did not load)."""
        self.ui.set_status(text, error=error)

    def _on_model_changed(self) -> None:
        """New weights or a freshly fine-tuned model: the cached RPN output is stale."""
        name = self.loader.name
        self.ui.set_weights_text(None if name == "embedded" else name)
        self._runs.pop("rpn", None)
        if self.method == "rpn":
            self.reselect()
            if self.ui.auto_run() and self.document.loaded is not None:
                self.run()

    def _on_image_changed(self) -> None:
        self._token += 1
        self._runs.clear()
        self.reselect()
        if self.document.loaded is not None and self.ui.auto_run():
            self.run()
        else:
            self.runner.cancel()  # a stale run's result would be dropped anyway (token)

    def _on_method_changed(self) -> None:
        self.reselect()
        if self.method not in self._runs and self.document.loaded is not None:
            self.run()  # switching source is an explicit request for that source

    def _on_progress(self, message: object) -> None:
        self._show_status(f"{METHODS[self._running_method]}: {message}")

    def _on_finished(self, run: object) -> None:
        if not isinstance(run, ProposalRun) or run.token != self._token:
            return  # a run for an image that is no longer shown
        self._runs[run.method] = run
        if self._run_started is not None:
            self.timings["first_result_s"] = time.perf_counter() - self._run_started
            self._run_started = None
        self.timings[f"{run.method}_s"] = run.seconds
        if run.load_seconds > 0.05:
            self.timings["model_load_s"] = run.load_seconds
        load = f", model loaded in {run.load_seconds:.1f} s" if run.load_seconds > 0.05 else ""
        self._show_status(f"{METHODS[run.method]}: done in {run.seconds:.2f} s{load}.")
        if run.method == self.method:
            self.reselect()

    def _on_error(self, exc: object) -> None:
        self._last_error = exc

    def _on_failed(self, message: str) -> None:
        self._run_started = None
        from rpn_core.rpn.weights import WeightsError  # torch-free

        if isinstance(self._last_error, WeightsError):
            text = (
                f"Could not load the RPN weights -- {message}. Annotation still works; "
                "pick another file with 'Weights...' or switch to Selective Search."
            )
        else:
            text = f"{METHODS[self._running_method]} failed -- {message}"
        self._last_error = None
        self._show_status(text, error=True)

    def _on_model_state(self, state: str, message: str) -> None:
        if state == ModelState.LOADING.value:
            self._show_status(f"Loading model ({message})...")
        elif state == ModelState.READY.value:
            self.status_message.emit(f"Model ready ({message})" if message else "Model ready")

    def _show_status(self, text: str, *, error: bool = False) -> None:
        self.ui.set_status(text, error=error)
        self.status_message.emit(text)

    # -- selection from cached output --------------------------------------------------------
    def _on_selection_changed(self, selection: SelectionConfig) -> None:
        if selection != self.ui.settings():
            self.ui.set_selection(selection)
        self.reselect()

    def _selected(self, method: str, s: SelectionConfig) -> tuple[np.ndarray, np.ndarray, object]:
        """``(boxes, scores, anchors or None)`` of ``method`` under the settings ``s``."""
        run = self._runs.get(method)
        if run is None:
            return np.zeros((0, 4)), np.zeros((0,)), None
        return run.select(s)

    def reselect(self) -> None:
        """Apply the controls to the cached output of the current source (no backbone run)."""
        t0 = time.perf_counter()
        boxes, scores, anchors = self._selected(self.method, self.ui.settings())
        is_ss = self.method == "selective-search"
        self.layer.set_proposals(boxes, scores, anchors, has_scores=not is_ss)
        self.table_model.set_proposals(boxes, scores, scores_are_ranks=is_ss)
        if self.method in self._runs:
            self.timings["select_ms"] = (time.perf_counter() - t0) * 1000
        self.ui.set_counts(len(boxes), self.method in self._runs)
        self._update_summary()
        self.proposals_shown.emit(len(boxes))

    def _update_summary(self) -> None:
        """Time taken and (with GT boxes) recall@N of each source that ran on this image."""
        gt = self.document.boxes_array()
        s = self.ui.settings()
        lines = []
        for method, name in METHODS.items():
            run = self._runs.get(method)
            if run is None:
                continue
            line = f"{name}: {run.seconds:.2f} s"
            if len(gt):
                boxes = self._selected(method, s)[0]
                line += f", recall@{s.top_n} = {_recall(boxes, gt):.2f} ({len(gt)} GT, IoU 0.5)"
                if method == "rpn":  # before ranking and NMS: see the label's tooltip
                    line += f"; every anchor: {run.every_anchor_recall(gt):.2f}"
            lines.append(line)
        self.ui.set_summary("\n".join(lines))

    # -- selection sync ----------------------------------------------------------------------
    def selected_rows(self) -> list[int]:
        """Selected proposals (source rows = layer indices), ascending."""
        proxy = self.ui.table.model()
        rows = self.ui.table.selectionModel().selectedRows()
        return sorted({proxy.mapToSource(i).row() for i in rows})

    def _on_table_selection(self, *_: object) -> None:
        rows = self.selected_rows()
        self.layer.set_selected(rows)
        self.ui.accept_selected_button.setEnabled(bool(rows))
        current = self.ui.table.selectionModel().currentIndex()
        if current.isValid() and rows:
            row = self.ui.table.model().mapToSource(current).row()
            x1, y1, x2, y2 = self.layer.boxes[row]
            self.canvas.ensureVisible(float(x1), float(y1), float(x2 - x1), float(y2 - y1))

    def select_proposal(self, index: int | None, *, toggle: bool = False) -> None:
        """Select proposal ``index`` in the table (and hence on the canvas)."""
        view, sm = self.ui.table, self.ui.table.selectionModel()
        if index is None:
            sm.clearSelection()
            return
        proxy_index = view.model().mapFromSource(self.table_model.index(index, 0))
        flags = QItemSelectionModel.SelectionFlag.Rows
        flags |= (
            QItemSelectionModel.SelectionFlag.Toggle
            if toggle
            else QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        sm.select(QItemSelection(proxy_index, proxy_index), flags)
        sm.setCurrentIndex(proxy_index, QItemSelectionModel.SelectionFlag.NoUpdate)
        view.scrollTo(proxy_index, QAbstractItemView.ScrollHint.EnsureVisible)

    # -- accepting ---------------------------------------------------------------------------
    def accept_selected(self) -> int:
        return self._accept(self.selected_rows())

    def accept_all(self) -> int:
        """Accept every shown proposal scoring at least the threshold (one undo step)."""
        threshold = self.ui.settings().score_threshold
        rows = np.flatnonzero(self.layer.scores >= threshold).tolist()
        return self._accept(rows)

    def _accept(self, rows: list[int]) -> int:
        if not rows or self.document.annotation is None:
            return 0
        n = len(rows)
        label = self.canvas.label_for_new_boxes(
            "the accepted proposal" if n == 1 else f"the {n} accepted proposals"
        )
        if not label:  # the label prompt was cancelled: a box is never unlabelled
            return 0
        boxes = [Box(*map(float, self.layer.boxes[r]), label=label) for r in rows]
        n = len(boxes)
        cmd = AddBoxesCommand(
            self.document, boxes, f"Accept {n} proposals" if n != 1 else "Accept proposal"
        )
        if cmd.boxes:
            self.document.undo_stack.push(cmd)
        self._show_status(f"Accepted {len(cmd.boxes)} proposals as GT boxes (Ctrl+Z undoes).")
        return len(cmd.boxes)


def _recall(boxes: np.ndarray, gt: np.ndarray, iou: float = 0.5) -> float:
    """Fraction of GT boxes with a proposal of IoU >= ``iou`` (:mod:`rpn_core.rpn.proposals`)."""
    from rpn_core.rpn.proposals import best_iou_per_gt, recall_at_iou

    return recall_at_iou(best_iou_per_gt(boxes, gt), iou)


class _CanvasClicks(QObject):
    """Event filter on the canvas viewport: a left click on a proposal's outline (in edit mode,
    not on a GT box) selects that proposal; Ctrl+click toggles it. Everything else goes on to
    the canvas untouched, so drawing and editing GT boxes work as before."""

    def __init__(self, panel: ProposalsPanel) -> None:
        super().__init__(panel)
        self._panel = panel

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() != QEvent.Type.MouseButtonPress:
            return False
        p, canvas = self._panel, self._panel.canvas
        if event.button() != Qt.MouseButton.LeftButton or canvas.mode != "edit":
            return False
        pos = canvas.mapToScene(event.position().toPoint())
        handles = [(h.x(), h.y()) for h in canvas.handle_view_points()]
        click = (event.position().x(), event.position().y())
        if canvas.box_at(pos) is not None or (
            handles and pick_handle(handles, click, HANDLE_SIZE_PX) is not None
        ):
            return False  # GT boxes and their handles win
        index = p.layer.index_at(pos)
        if index is None:
            return False
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        p.select_proposal(index, toggle=ctrl)
        return True
