"""The widgets of the Train dock (layout only; behaviour lives in :mod:`app.training.panel`).

Defaults come from :class:`rpn_core.training.types.TrainConfig` (ARCHITECTURE.md rule 6). The loss
plot
(:class:`LossPlot`) imports pyqtgraph (about a second) only when training first starts.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from rpn_core.training.types import TrainConfig

__all__ = ["LossPlot", "TrainControls", "format_eta", "recall_html"]

_D = TrainConfig()
MODES = {
    "head": "RPN head (fast)",
    "partial": "Head + last stage",
    "full": "Whole network (slow)",
}
# curve key -> (legend name, colour, dashed?)
CURVES = {
    "cls": ("train cls", (80, 160, 255), False),
    "reg": ("train reg", (255, 170, 60), False),
    "total": ("train total", (230, 230, 230), False),
    "val_cls": ("val cls", (80, 160, 255), True),
    "val_reg": ("val reg", (255, 170, 60), True),
    "val_total": ("val total", (230, 230, 230), True),
}


def format_eta(seconds: float) -> str:
    """``"1:05"``, ``"1:02:03"`` or ``"--:--"`` when unknown."""
    if not math.isfinite(seconds):
        return "--:--"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def recall_html(before: dict[str, float], after: dict[str, float]) -> str:
    """A small table: recall@N at IoU 0.5 / 0.7 on the validation images, before -> after."""
    if not before:
        return "<i>Recall on the validation images appears here.</i>"
    rows = ["<tr><th align=left>validation</th><th>before</th><th>after</th><th>change</th></tr>"]
    for key, b in before.items():
        a = after.get(key, math.nan)
        n, iou = key.removeprefix("recall@").split("/")
        change = f"{a - b:+.3f}" if math.isfinite(a) and math.isfinite(b) else ""
        a_text = f"{a:.3f}" if math.isfinite(a) else "…"
        rows.append(
            f"<tr><td>recall@{n}, IoU {iou}</td><td align=right>{b:.3f}</td>"
            f"<td align=right>{a_text}</td><td align=right>{change}</td></tr>"
        )
    return "<table cellspacing=4>" + "".join(rows) + "</table>"


def _double(lo: float, hi: float, value: float, step: float, decimals: int) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    return box


def _int(lo: int, hi: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    return box


class TrainControls(QWidget):
    """Data summary and validation split, settings, Start/Cancel, progress, plot, recall and
    weights buttons. ``plot_holder`` receives the :class:`LossPlot` on first use."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._data_group())
        layout.addWidget(self._settings_group())
        layout.addLayout(self._run_row())
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress_label = QLabel("Not trained yet.")
        self.progress_label.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_label)
        self.plot_holder = QVBoxLayout()
        self.plot_placeholder = QLabel("Loss curves appear here while training runs.")
        self.plot_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.plot_placeholder.setMinimumHeight(60)
        self.plot_holder.addWidget(self.plot_placeholder)
        layout.addLayout(self.plot_holder, 1)
        self.recall_label = QLabel(recall_html({}, {}))
        layout.addWidget(self.recall_label)
        layout.addWidget(self._weights_group())

    def _data_group(self) -> QGroupBox:
        box = QGroupBox("Images")
        v = QVBoxLayout(box)
        self.data_label = QLabel("Open a folder and draw boxes to train on them.")
        self.data_label.setWordWrap(True)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Re-read which images of the folder have boxes")
        v.addWidget(self.data_label)  # full width: the dock is narrow
        self.warning_label = QLabel()  # too little data: said before training starts
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #D55E00;")
        self.warning_label.hide()
        v.addWidget(self.warning_label)
        top = QHBoxLayout()
        top.addStretch(1)
        top.addWidget(self.refresh_button)
        v.addLayout(top)
        v.addWidget(QLabel("Validation images (never trained on):"))
        self.val_list = QListWidget()
        self.val_list.setMaximumHeight(80)
        v.addWidget(self.val_list)
        return box

    def _settings_group(self) -> QGroupBox:
        box = QGroupBox("Settings")
        form = QFormLayout(box)
        self.mode = QComboBox()
        for key, text in MODES.items():
            self.mode.addItem(text, key)
        self.mode.setToolTip(
            "RPN head: backbone features are computed once and cached (fastest).\n"
            "Head + last stage: also MobileNetV2's 96-channel stage and its stride-32 context.\n"
            "Whole network: every backbone layer (batch-norm statistics stay frozen)."
        )
        self.epochs = _int(1, 10000, _D.epochs)
        self.lr = _double(1e-5, 1.0, _D.lr, 0.001, 5)
        self.batch = _int(1, 64, _D.batch_size)
        self.val_fraction = _double(0.0, 0.9, _D.val_fraction, 0.05, 2)
        self.seed = _int(0, 2**31 - 1, _D.seed)
        self.budget = _int(0, 24 * 3600, 0)
        self.budget.setSpecialValueText("none")
        self.budget.setSuffix(" s")
        self.hflip = QCheckBox("Horizontal flips")
        self.hflip.setChecked(_D.hflip)
        self.jitter = QCheckBox(f"Scale jitter {_D.scale_jitter[0]:g}-{_D.scale_jitter[1]:g}x")
        self.jitter.setChecked(_D.scale_jitter != (1.0, 1.0))
        form.addRow("Train", self.mode)
        form.addRow("Epochs", self.epochs)
        form.addRow("Learning rate", self.lr)
        form.addRow("Images per step", self.batch)
        form.addRow("Validation share", self.val_fraction)
        form.addRow("Seed", self.seed)
        form.addRow("Time budget", self.budget)
        aug = QVBoxLayout()  # one per row: the dock is narrow
        aug.addWidget(self.hflip)
        aug.addWidget(self.jitter)
        form.addRow("Augment", aug)
        self.input_size = _int(0, 2048, 0)
        self.input_size.setSingleStep(100)
        self.input_size.setSpecialValueText("the model's")
        self.input_size.setSuffix(" px")
        self.input_size.setToolTip(
            "Train (and then propose) at another input size: the embedded SSD's square side\n"
            "(300), or a MobileNetV2 model's shorter side. Anchors keep their pixel sizes, so\n"
            "a larger input reaches smaller objects (e.g. 600 for distant people), and fewer\n"
            "of the largest. 'the model's': unchanged."
        )
        form.addRow("Input size", self.input_size)
        self.lab_anchors = QCheckBox("The anchor lab's set")
        self.lab_anchors.setChecked(True)
        self.lab_anchors.setToolTip(
            "Train with the anchors of the Anchor settings (e.g. applied from Anchor design).\n"
            "When they differ from the model's, each new anchor starts from the weights of\n"
            "the model's closest anchor shape. Off: keep the model's own anchors."
        )
        form.addRow("Anchors", self.lab_anchors)
        self.lab_rule = QCheckBox("The anchor lab's rule")
        self.lab_rule.setChecked(True)
        self.lab_rule.setToolTip(
            "Label anchors for the loss by the rule of the Anchor settings (the preset the\n"
            "overlay shows, e.g. guide: foreground IoU > 0.5, background < 0.1).\n"
            "Off: the active model's own rule. The checkpoint records the rule used."
        )
        form.addRow("Label rule", self.lab_rule)
        self.plan_label = QLabel()  # what Start will use, always shown before it starts
        self.plan_label.setWordWrap(True)
        self.plan_label.setTextFormat(Qt.TextFormat.RichText)
        form.addRow(self.plan_label)
        return box

    def allow_partial(self, allowed: bool) -> None:
        """Offer "Head + last stage" only for a model that has one (not the SSD's backbone);
        a selected one falls back to the head."""
        item = self.mode.model().item(self.mode.findData("partial"))
        item.setEnabled(allowed)
        item.setToolTip("" if allowed else "The embedded SSD's backbone trains as a whole")
        if not allowed and self.mode.currentData() == "partial":
            self.mode.setCurrentIndex(self.mode.findData("head"))

    def _run_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        return row

    def _weights_group(self) -> QGroupBox:
        box = QGroupBox("Weights")
        v = QVBoxLayout(box)
        self.weights_label = QLabel("Active: embedded")
        self.weights_label.setWordWrap(True)
        row = QHBoxLayout()
        self.save_button = QPushButton("Save…")
        self.load_button = QPushButton("Load…")
        self.reset_button = QPushButton("Reset to embedded")
        self.save_button.setToolTip("Write the active weights as a checkpoint (.safetensors)")
        for b in (self.save_button, self.load_button, self.reset_button):
            row.addWidget(b)
        v.addWidget(self.weights_label)
        v.addLayout(row)
        self.use_trained_button = QPushButton("Use the fine-tuned weights anyway")
        self.use_trained_button.setToolTip(
            "The last run did not beat the active weights on the validation images and was "
            "not made active; this makes its best checkpoint active all the same."
        )
        self.use_trained_button.hide()
        v.addWidget(self.use_trained_button)
        return box

    def config(self) -> TrainConfig:
        """The settings as a :class:`TrainConfig`."""
        jitter = _D.scale_jitter if self.jitter.isChecked() else (1.0, 1.0)
        augmented = self.hflip.isChecked() or self.jitter.isChecked()
        return TrainConfig(
            mode=self.mode.currentData(),
            epochs=self.epochs.value(),
            lr=self.lr.value(),
            batch_size=self.batch.value(),
            val_fraction=self.val_fraction.value(),
            seed=self.seed.value(),
            time_budget_s=float(self.budget.value()) or None,
            hflip=self.hflip.isChecked(),
            scale_jitter=jitter,
            augment_copies=_D.augment_copies if augmented else 1,
        )

    def set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for w in (self.load_button, self.reset_button, self.save_button, self.refresh_button):
            w.setEnabled(not running)


class LossPlot(QWidget):
    """Loss curves (classification, regression, total; train per step, validation per pass)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        import pyqtgraph as pg

        self.widget = pg.PlotWidget()
        self.widget.setMinimumHeight(150)
        self.widget.addLegend(offset=(-5, 5), labelTextSize="7pt")
        self.widget.setLabel("bottom", "step")
        self.widget.setLabel("left", "loss")
        self.widget.getAxis("left").enableAutoSIPrefix(False)
        self.widget.showGrid(x=True, y=True, alpha=0.2)
        self.curves = {}
        for key, (name, colour, dashed) in CURVES.items():
            style = Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine
            pen = pg.mkPen(colour, width=1.5, style=style)
            symbol = "o" if dashed else None
            self.curves[key] = self.widget.plot(
                [], [], pen=pen, name=name, symbol=symbol, symbolSize=5, symbolBrush=colour
            )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.widget)
        self.data: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in CURVES}

    def clear(self) -> None:
        for key in self.data:
            self.data[key] = ([], [])
        self.redraw()

    def add(self, key: str, step: float, value: float) -> None:
        if math.isfinite(value):
            xs, ys = self.data[key]
            xs.append(step)
            ys.append(value)

    def redraw(self) -> None:
        for key, (xs, ys) in self.data.items():
            self.curves[key].setData(xs, ys)
