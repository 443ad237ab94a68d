"""Anchor lab settings: the label preset and thresholds, the anchor set, and the view.

The panel edits two frozen configs -- :class:`rpn_core.anchors.grid.AnchorConfig` and
:class:`rpn_core.anchors.labelling.LabelConfig` -- plus the overlay's
:class:`rpn_core.anchors.view.ViewOptions`. Every valid change applies at once
(``configs_changed`` / ``view_changed``); invalid text is marked and not applied. The configs
persist in ``QSettings`` under :data:`ANCHOR_KEY` / :data:`LABEL_KEY` as JSON, which is also
where the model reads the anchor set the user applied.
"""

from __future__ import annotations

import json
import logging

from PySide6.QtCore import QSettings, QSignalBlocker, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from rpn_core.anchors.grid import AnchorConfig, format_sizes, parse_sizes
from rpn_core.anchors.labelling import LabelConfig
from rpn_core.anchors.view import DisplayMode, ViewOptions
from rpn_core.rpn.config import RPNConfig

__all__ = [
    "ANCHOR_KEY",
    "LABEL_KEY",
    "AnchorSettingsPanel",
    "load_configs",
    "parse_numbers",
    "save_configs",
]

log = logging.getLogger(__name__)
ANCHOR_KEY = "anchor_lab/anchor_config"
LABEL_KEY = "anchor_lab/label_config"
PRESETS = {"Guide (0.5 / 0.1)": "guide", "Faster R-CNN (0.7 / 0.3 + best)": "faster-rcnn"}
MODES = {
    "Density (all non-background, sampled background)": DisplayMode.DENSITY,
    "All anchors": DisplayMode.ALL,
    "Training minibatch": DisplayMode.MINIBATCH,
    "Anchor centres": DisplayMode.CENTRES,
}
_INVALID = "QLineEdit { background: #f4c7c3; }"


def parse_numbers(text: str) -> tuple[float, ...]:
    """``"64, 128 256"`` -> ``(64.0, 128.0, 256.0)``; raises ``ValueError`` on bad text."""
    parts = text.replace(",", " ").split()
    if not parts:
        raise ValueError("enter at least one number")
    return tuple(float(p) for p in parts)


def load_configs(settings: QSettings, model_config: RPNConfig) -> tuple[AnchorConfig, LabelConfig]:
    """The persisted configs, or where nothing (valid) is stored the active model's own
    anchors and label rule (for the shipped RPN: what it was trained with)."""
    anchor, label = model_config.anchors, model_config.labels
    try:
        raw = settings.value(ANCHOR_KEY)
        if raw:
            anchor = AnchorConfig.from_dict(json.loads(str(raw)))
        raw = settings.value(LABEL_KEY)
        if raw:
            label = LabelConfig.from_dict(json.loads(str(raw)))
    except (ValueError, TypeError) as exc:  # a hand-edited or old settings file
        log.warning("ignoring stored anchor lab settings: %s", exc)
    return anchor, label


def save_configs(settings: QSettings, anchor: AnchorConfig, label: LabelConfig) -> None:
    settings.setValue(ANCHOR_KEY, json.dumps(anchor.to_dict()))
    settings.setValue(LABEL_KEY, json.dumps(label.to_dict()))


def _fmt(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in values)


class AnchorSettingsPanel(QWidget):
    """Preset, thresholds, anchor set and view options. Signals: ``configs_changed(object,
    object)`` (AnchorConfig, LabelConfig), ``view_changed(object)`` (ViewOptions),
    ``reseed_requested()``."""

    configs_changed = Signal(object, object)
    view_changed = Signal(object)
    reseed_requested = Signal()

    def __init__(self, anchor: AnchorConfig, label: LabelConfig, parent=None) -> None:
        super().__init__(parent)
        self._anchor, self._label = anchor, label
        self._view = ViewOptions()
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_labels())
        layout.addWidget(self._build_anchors())
        layout.addWidget(self._build_view())
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.set_configs(anchor, label)

    # -- building --------------------------------------------------------------------------
    def _build_labels(self) -> QGroupBox:
        box = QGroupBox("Labelling rule")
        form = QFormLayout(box)
        self.preset = QComboBox()
        self.preset.addItems([*PRESETS, "Custom"])
        self.fg = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.05)
        self.bg = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.05)
        self.best_per_gt = QCheckBox("Best anchor of each GT is foreground")
        self.cross = QCheckBox("Ignore cross-boundary anchors")
        form.addRow("Preset", self.preset)
        form.addRow("Foreground IoU", self.fg)
        form.addRow("Background IoU <", self.bg)
        form.addRow(self.best_per_gt)
        form.addRow(self.cross)
        self.preset.currentTextChanged.connect(self._on_preset)
        for w in (self.fg, self.bg):
            w.valueChanged.connect(self._on_edit)
        for c in (self.best_per_gt, self.cross):
            c.toggled.connect(self._on_edit)
        return box

    def _build_anchors(self) -> QGroupBox:
        box = QGroupBox("Anchor set")
        form = QFormLayout(box)
        self.sizes = QLineEdit()
        self.sizes.setToolTip(
            "Anchor sizes: square root of the area, in the model's input pixels. "
            "16@8 puts a size on the stride-8 level (a feature pyramid); "
            "sizes without @ use the stride below."
        )
        self.ratios = QLineEdit()
        self.ratios.setToolTip("Aspect ratios h / w (0.5 = wide, 2 = tall)")
        self.stride = QSpinBox(minimum=1, maximum=512)
        form.addRow("Sizes", self.sizes)
        form.addRow("Ratios (h/w)", self.ratios)
        form.addRow("Stride", self.stride)
        self.sizes.editingFinished.connect(self._on_edit)
        self.ratios.editingFinished.connect(self._on_edit)
        self.stride.valueChanged.connect(self._on_edit)
        return box

    def _build_view(self) -> QGroupBox:
        box = QGroupBox("View")
        form = QFormLayout(box)
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.sample = QSpinBox(minimum=0, maximum=100000, singleStep=100, value=800)
        self.sample.setToolTip("Background anchors kept by the density mode")
        self.size_filter = QLineEdit()
        self.size_filter.setPlaceholderText("all sizes")
        self.ratio_filter = QLineEdit()
        self.ratio_filter.setPlaceholderText("all ratios")
        self.reseed = QPushButton("Reseed sample / minibatch")
        row = QHBoxLayout()
        row.addWidget(self.reseed)
        form.addRow("Mode", self.mode)
        form.addRow("Background sample", self.sample)
        form.addRow("Only sizes", self.size_filter)
        form.addRow("Only ratios", self.ratio_filter)
        form.addRow(row)
        self.mode.currentTextChanged.connect(self._on_view)
        self.sample.valueChanged.connect(self._on_view)
        self.size_filter.editingFinished.connect(self._on_view)
        self.ratio_filter.editingFinished.connect(self._on_view)
        self.reseed.clicked.connect(self._on_reseed)
        return box

    # -- state -----------------------------------------------------------------------------
    @property
    def anchor_config(self) -> AnchorConfig:
        return self._anchor

    @property
    def label_config(self) -> LabelConfig:
        return self._label

    @property
    def view_options(self) -> ViewOptions:
        return self._view

    def set_configs(self, anchor: AnchorConfig, label: LabelConfig) -> None:
        """Show configs (e.g. applied by the design panel) without emitting."""
        self._anchor, self._label = anchor, label
        blockers = [
            QSignalBlocker(w)
            for w in (self.preset, self.fg, self.bg, self.best_per_gt, self.cross, self.stride)
        ]
        name = label.preset_name
        self.preset.setCurrentText(next((k for k, v in PRESETS.items() if v == name), "Custom"))
        self.fg.setValue(label.fg_iou)
        self.bg.setValue(label.bg_iou)
        self.best_per_gt.setChecked(label.allow_low_quality)
        self.cross.setChecked(label.ignore_cross_boundary)
        self.sizes.setText(format_sizes(anchor))
        self.ratios.setText(_fmt(anchor.aspect_ratios))
        for field in (self.sizes, self.ratios):  # a long set reads from its start
            field.setCursorPosition(0)
        self.stride.setValue(anchor.stride)
        del blockers

    def _on_preset(self, text: str) -> None:
        if text not in PRESETS:
            return
        base = LabelConfig.preset(PRESETS[text])
        label = LabelConfig.from_dict(
            {**base.to_dict(), "ignore_cross_boundary": self.cross.isChecked()}
        )
        self._apply(self._anchor, label)

    def _on_edit(self, *_args: object) -> None:
        try:
            sizes, strides = parse_sizes(self.sizes.text(), self.stride.value())
            anchor = AnchorConfig(
                sizes=sizes,
                aspect_ratios=parse_numbers(self.ratios.text()),
                stride=max(strides, default=self.stride.value()),
                size_strides=strides,
                centring=self._anchor.centring,  # the model's grid (TF's for the SSD)
            )
        except ValueError as exc:
            self.status.setText(f"Anchor set not applied: {exc}")
            self.sizes.setStyleSheet(_INVALID)
            self.ratios.setStyleSheet(_INVALID)
            return
        self.sizes.setStyleSheet("")
        self.ratios.setStyleSheet("")
        try:
            label = LabelConfig.from_dict(
                {
                    **self._label.to_dict(),
                    "fg_iou": self.fg.value(),
                    "bg_iou": self.bg.value(),
                    "allow_low_quality": self.best_per_gt.isChecked(),
                    "ignore_cross_boundary": self.cross.isChecked(),
                }
            )
        except ValueError as exc:
            self.status.setText(f"Thresholds not applied: {exc}")
            return
        self._apply(anchor, label)

    def _apply(self, anchor: AnchorConfig, label: LabelConfig) -> None:
        self.status.setText("")
        if (anchor, label) == (self._anchor, self._label):
            return
        self.set_configs(anchor, label)
        self.configs_changed.emit(anchor, label)

    def _indices(self, text: str, values: tuple[float, ...]) -> frozenset[int] | None:
        if not text.strip():
            return None
        wanted = parse_numbers(text)
        return frozenset(i for i, v in enumerate(values) if any(abs(v - w) < 1e-6 for w in wanted))

    def refresh_view(self) -> None:
        """Re-read the view widgets (size/ratio filters name values of the current config)."""
        self._on_view()

    def _on_view(self, *_args: object) -> None:
        try:
            sizes = self._indices(self.size_filter.text(), self._anchor.sizes)
            ratios = self._indices(self.ratio_filter.text(), self._anchor.aspect_ratios)
        except ValueError as exc:
            self.status.setText(f"Filter not applied: {exc}")
            return
        self.status.setText("")
        self.set_view(
            ViewOptions(
                mode=MODES[self.mode.currentText()],
                categories=self._view.categories,
                sizes=sizes,
                ratios=ratios,
                background_sample=self.sample.value(),
                seed=self._view.seed,
            )
        )

    def _on_reseed(self) -> None:
        o = self._view
        self.set_view(
            ViewOptions(
                mode=o.mode,
                categories=o.categories,
                sizes=o.sizes,
                ratios=o.ratios,
                background_sample=o.background_sample,
                seed=o.seed + 1,
            )
        )
        self.reseed_requested.emit()

    def set_view(self, options: ViewOptions) -> None:
        if options != self._view:
            self._view = options
            self.view_changed.emit(options)
