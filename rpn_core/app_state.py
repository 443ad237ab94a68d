"""The app's shared state, Qt-free: what every panel must agree on.

One immutable :class:`AppState` value; the app's ``app.state.app_state.AppStateModel`` holds
the current one and signals its changes, and every panel receives that object in its
constructor (never another panel). What lives here:

* ``model_config``: the **active** model's :class:`~rpn_core.rpn.config.RPNConfig` (its input
  frame, anchors and label rule), and ``weights``, a short name of those weights;
* ``anchor_config`` and ``label_config``: the anchor lab's anchor set and label rule (what the
  overlay, the inspector and the statistics show);
* ``selection``: the one :class:`~rpn_core.rpn.config.SelectionConfig` of the proposals.

Panels read the model's input frame from ``model_config``, never from a default
``RPNConfig()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rpn_core.anchors.grid import AnchorConfig
from rpn_core.anchors.labelling import LabelConfig
from rpn_core.rpn.config import RPNConfig, SelectionConfig

__all__ = ["EMBEDDED", "AppState"]

EMBEDDED = "embedded"  # ``AppState.weights`` of the shipped weights


@dataclass(frozen=True, kw_only=True)
class AppState:
    """See the module docstring."""

    model_config: RPNConfig = field(default_factory=RPNConfig)
    weights: str = EMBEDDED
    anchor_config: AnchorConfig = field(default_factory=AnchorConfig)
    label_config: LabelConfig = field(default_factory=LabelConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)

    @classmethod
    def for_model(
        cls, config: RPNConfig, *, weights: str = EMBEDDED, selection: SelectionConfig | None = None
    ) -> AppState:
        """The state of a session that starts with the model of ``config``: the lab shows the
        model's own anchors and label rule, the proposals use its selection."""
        return cls(
            model_config=config,
            weights=weights,
            anchor_config=config.anchors,
            label_config=config.labels,
            selection=selection or config.selection,
        )

    def with_model(self, config: RPNConfig, weights: str) -> AppState:
        """A newly active model: the lab follows its anchor set (the overlay must show the
        anchors the model proposes from); the label rule and selection stay the user's."""
        return replace(self, model_config=config, weights=weights, anchor_config=config.anchors)

    @property
    def lab_matches_model(self) -> bool:
        """The lab shows the active model's own anchor set."""
        return self.anchor_config == self.model_config.anchors
