"""The widgets of the Proposals dock (layout only; behaviour lives in
:mod:`app.proposals.panel`). The controls show the app state's
:class:`rpn_core.rpn.config.SelectionConfig` (defaults there: top-N 300, NMS IoU 0.7, score
threshold 0, min size 0) and report edits as ``settings_changed``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QSignalBlocker, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.proposals.layer import ramp_colour
from rpn_core.rpn.config import SelectionConfig
from rpn_core.rpn.jobs import METHODS

__all__ = ["ProposalsControls"]


def ramp_pixmap(width: int = 120, height: int = 10) -> QPixmap:
    """The layer's score ramp (score 0 at the left, 1 at the right) over the canvas grey."""
    pixmap = QPixmap(width, height)
    pixmap.fill(QColor(48, 48, 52))
    painter = QPainter(pixmap)
    for x in range(width):
        painter.setPen(QColor(*ramp_colour(x / max(width - 1, 1))))
        painter.drawLine(x, 0, x, height - 1)
    painter.end()
    return pixmap


def _spin(lo: float, hi: float, value: float, step: float, decimals: int) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setKeyboardTracking(False)  # typing "0.85" re-selects once, not for "0." and "0.8"
    return box


class ProposalsControls(QWidget):
    """Source, run, weights, selection controls, status, table and accept buttons."""

    settings_changed = Signal()
    method_changed = Signal()

    def __init__(self, proxy: QSortFilterProxyModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        d = self._selection = SelectionConfig()
        self.method_combo = QComboBox()
        for key, name in METHODS.items():
            self.method_combo.addItem(name, key)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the selected source on the current image")
        self.auto_box = QCheckBox("Auto-run on new image")
        self.auto_box.setChecked(True)
        self.weights_label = QLabel()
        self.weights_button = QPushButton("Weights...")
        self.embedded_button = QPushButton("Embedded")
        self.set_weights_text(None)
        self.top_n_spin = QSpinBox()
        self.top_n_spin.setRange(1, 20000)
        self.top_n_spin.setValue(d.top_n)
        self.top_n_spin.setKeyboardTracking(False)
        self.threshold_spin = _spin(0.0, 1.0, d.score_threshold, 0.05, 3)
        self.nms_spin = _spin(0.05, 1.0, d.nms_iou, 0.05, 2)
        self.min_size_spin = _spin(0.0, 10000.0, d.min_size, 4.0, 1)
        self.min_size_spin.setSuffix(" px")
        self.show_box = QCheckBox("Show proposals")
        self.show_box.setChecked(True)
        self.arrows_box = QCheckBox("Regression arrows (top 20)")
        self.arrows_box.setToolTip(
            "Arrows from the anchors of the 20 best proposals to the refined boxes:\n"
            "what the box regressor did"
        )
        self.colour_combo = QComboBox()
        self.colour_combo.addItem("Rank", "rank")
        self.colour_combo.addItem("Score", "score")
        self.colour_combo.setToolTip(
            "Rank: the best eighth of the shown proposals brightest, whatever their scores.\n"
            "Score: absolute objectness (0 to 1); a trained RPN's top scores are all near 1."
        )
        self.legend = QWidget()
        legend = QHBoxLayout(self.legend)
        legend.setContentsMargins(0, 0, 0, 0)
        self.ramp_label = QLabel()
        self.ramp_label.setPixmap(ramp_pixmap())
        self.legend_low = QLabel()
        self.legend_high = QLabel()
        legend.addWidget(self.legend_low)
        legend.addWidget(self.ramp_label)
        legend.addWidget(self.legend_high)
        legend.addStretch(1)
        self._update_legend()
        self.status_label = QLabel("Proposals appear here once an image is open.")
        self.summary_label = QLabel()
        self.summary_label.setToolTip(
            "Time taken and, when the image has GT boxes, recall at IoU 0.5 of the proposals"
            " shown.\n'every anchor': the recall of every anchor's refined box, before ranking"
            " and NMS -- what the RPN's boxes reach at all. Far above the shown recall, the"
            " scores are what lose objects: raise Top-N or NMS IoU, or fine-tune."
        )
        self.count_label = QLabel()
        for label in (self.status_label, self.summary_label, self.weights_label):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = self._make_table(proxy)
        self.accept_selected_button = QPushButton("Accept selected")
        self.accept_selected_button.setToolTip(
            "Add the selected proposals as GT boxes (one undo step)"
        )
        self.accept_selected_button.setEnabled(False)
        self.accept_all_button = QPushButton("Accept all >= thr.")
        self.accept_all_button.setToolTip(
            "Accept every shown proposal scoring at least the threshold (one undo step)"
        )
        self._layout()
        self._connect()

    def _make_table(self, proxy: QSortFilterProxyModel) -> QTableView:
        table = QTableView()
        table.setModel(proxy)
        table.setSortingEnabled(True)
        table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(20)
        header = table.horizontalHeader()
        header.setMinimumSectionSize(24)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # Size columns from the first rows only: measuring all 300-3000 rows on every relayout
        # cost 0.4-0.6 s of GUI time per update (41,000 data() calls, measured).
        header.setResizeContentsPrecision(32)
        table.setAlternatingRowColors(True)
        return table

    def _layout(self) -> None:
        # Narrow on purpose (one control per row): the dock shares its column with Files and
        # must not squeeze the canvas.
        top = QHBoxLayout()
        top.addWidget(self.method_combo, 1)
        top.addWidget(self.run_button)
        weights = QHBoxLayout()
        weights.addWidget(self.weights_button)
        weights.addWidget(self.embedded_button)
        form = QFormLayout()
        form.addRow("Top-N", self.top_n_spin)
        form.addRow("Score >=", self.threshold_spin)
        form.addRow("NMS IoU", self.nms_spin)
        form.addRow("Min size", self.min_size_spin)
        form.addRow("Colour by", self.colour_combo)
        accept = QHBoxLayout()
        accept.addWidget(self.accept_selected_button)
        accept.addWidget(self.accept_all_button)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        rows = (top, self.auto_box, self.weights_label, weights, form, self.show_box,
                self.legend, self.arrows_box, self.status_label, self.summary_label,
                self.count_label)
        for item in rows:
            if isinstance(item, QWidget):
                col.addWidget(item)
            else:
                col.addLayout(item)
        col.addWidget(self.table, 1)
        col.addLayout(accept)

    def _connect(self) -> None:
        self.top_n_spin.valueChanged.connect(self.settings_changed)
        for spin in (self.threshold_spin, self.nms_spin, self.min_size_spin):
            spin.valueChanged.connect(self.settings_changed)
        self.method_combo.currentIndexChanged.connect(self._on_method)
        self.colour_combo.currentIndexChanged.connect(self._update_legend)

    def colour_by(self) -> str:
        return self.colour_combo.currentData()

    def _update_legend(self) -> None:
        rank = self.colour_by() == "rank"
        self.legend_low.setText("last" if rank else "score 0")
        self.legend_high.setText("#1" if rank else "1")
        self.ramp_label.setToolTip(
            "Outline colour and opacity by rank among the shown proposals (viridis)"
            if rank
            else "Outline colour and opacity by objectness score (viridis)"
        )

    def _on_method(self) -> None:
        rpn = self.method() == "rpn"
        # Selective Search has no scores and its own ranking: only top-N and min size apply.
        for w in (self.threshold_spin, self.nms_spin, self.arrows_box, self.colour_combo):
            w.setEnabled(rpn)
        if not rpn:  # no scores: colour by rank (its order)
            self.colour_combo.setCurrentIndex(self.colour_combo.findData("rank"))
        self.method_changed.emit()

    # -- queries / updates -------------------------------------------------------------------
    def method(self) -> str:
        return self.method_combo.currentData()

    def set_method(self, method: str) -> None:
        self.method_combo.setCurrentIndex(self.method_combo.findData(method))

    def auto_run(self) -> bool:
        return self.auto_box.isChecked()

    def settings(self) -> SelectionConfig:
        """What the controls say (sizes in original pixels); ``pre_nms_top_n``, which has no
        control, is that of the selection last set with :meth:`set_selection`."""
        return replace(
            self._selection,
            top_n=self.top_n_spin.value(),
            score_threshold=self.threshold_spin.value(),
            nms_iou=self.nms_spin.value(),
            min_size=self.min_size_spin.value(),
        )

    def set_selection(self, selection: SelectionConfig) -> None:
        """Show ``selection`` (no ``settings_changed``: the caller already has it)."""
        self._selection = selection
        pairs = (
            (self.top_n_spin, selection.top_n),
            (self.threshold_spin, selection.score_threshold),
            (self.nms_spin, selection.nms_iou),
            (self.min_size_spin, selection.min_size),
        )
        for spin, value in pairs:
            with QSignalBlocker(spin):
                spin.setValue(value)

    def set_weights_text(self, path: str | Path | None) -> None:
        name = "embedded" if path is None else Path(path).name
        self.weights_label.setText(f"Weights: {name}")
        self.weights_label.setToolTip("" if path is None else str(path))

    def set_status(self, text: str, *, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #d03030; font-weight: bold;" if error else "")

    def set_summary(self, text: str) -> None:
        self.summary_label.setText(text)
        self.summary_label.setVisible(bool(text))

    def set_counts(self, shown: int, has_run: bool) -> None:
        self.count_label.setText(f"{shown} proposals shown" if has_run else "")
        self.accept_all_button.setEnabled(shown > 0)

    def set_busy(self, busy: bool) -> None:
        self.run_button.setText("Running..." if busy else "Run")
