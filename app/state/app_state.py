"""The one QObject around :class:`rpn_core.app_state.AppState` (the app's shared state).

The shell creates one :class:`AppStateModel` and hands it to every panel's constructor.
Panels read ``state`` and listen to the signals; they change it only through the setters,
which emit a signal only when something really changed.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QObject, Signal

from rpn_core.anchors.grid import AnchorConfig
from rpn_core.anchors.labelling import LabelConfig
from rpn_core.app_state import AppState
from rpn_core.rpn.config import RPNConfig, SelectionConfig

__all__ = ["AppStateModel"]


class AppStateModel(QObject):
    """Signals: ``model_changed(RPNConfig)`` when another model became active (the lab's
    anchor set follows it, so ``lab_changed`` comes too when that set differs);
    ``lab_changed(AnchorConfig, LabelConfig)``; ``selection_changed(SelectionConfig)``;
    ``changed(AppState)`` after any of them."""

    changed = Signal(object)
    model_changed = Signal(object)
    lab_changed = Signal(object, object)
    selection_changed = Signal(object)

    def __init__(self, state: AppState | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._state = state if state is not None else AppState()

    @property
    def state(self) -> AppState:
        return self._state

    def set_model(self, config: RPNConfig, weights: str) -> None:
        """A model was made active (loaded, trained or reset; see
        :meth:`AppState.with_model`). ``model_changed`` is emitted even for the same model
        again: the lab's anchor set has just been moved back to the model's."""
        self._apply(self._state.with_model(config, weights), activated=True)

    def set_lab(self, anchor: AnchorConfig, label: LabelConfig) -> None:
        self._apply(replace(self._state, anchor_config=anchor, label_config=label))

    def set_selection(self, selection: SelectionConfig) -> None:
        self._apply(replace(self._state, selection=selection))

    def _apply(self, new: AppState, *, activated: bool = False) -> None:
        old, self._state = self._state, new
        if new == old and not activated:
            return
        if activated:
            self.model_changed.emit(new.model_config)
        if (new.anchor_config, new.label_config) != (old.anchor_config, old.label_config):
            self.lab_changed.emit(new.anchor_config, new.label_config)
        if new.selection != old.selection:
            self.selection_changed.emit(new.selection)
        self.changed.emit(new)
