"""Canvas layers: Boxes, Anchors and Proposals, each switched on and off from the View menu,
the Layers tool bar and a shortcut (Alt+1 / Alt+2 / Alt+3), remembered per user.

A layer belongs to a feature with docks (the anchor lab's four, Proposals): closing all of
them switches the layer off, opening one switches it on again, and switching the layer on
opens the first dock. The Anchors and Proposals layers start *light* so the photo stays
readable: only foreground anchors (the anchor statistics' category check boxes) and only the
best :data:`LIGHT_PROPOSALS` ranks of the listed proposals; "All Anchor Labels" and "All
Listed Proposals" draw everything. The Boxes layer is View ▸ Boxes
(:class:`app.annotate.view_options.DisplayOptions`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QMainWindow, QToolBar

from rpn_core.anchors.view import Category

__all__ = ["LIGHT_ANCHORS", "LIGHT_PROPOSALS", "Layers", "install_layers"]

LIGHT_PROPOSALS = 20  # proposals drawn in the light mode (the list keeps them all)
LIGHT_ANCHORS = frozenset({Category.FOREGROUND, Category.LOW_QUALITY})


class Layers(QObject):
    """The window's layers; :meth:`add` registers one."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.settings = window.settings
        self.actions: dict[str, QAction] = {}
        self._docks: dict[str, list[QDockWidget]] = {}
        self._closed: dict[str, bool] = {}

    def add(
        self,
        name: str,
        action: QAction,
        show: Callable[[bool], None],
        docks: Sequence[QDockWidget] = (),
        *,
        default: bool = True,
    ) -> None:
        """``show(on)`` shows or hides the layer's canvas item; ``docks`` are its feature's."""
        self.actions[name] = action
        self._docks[name] = list(docks)
        self._closed[name] = False
        action.setChecked(self.settings.layer_shown(name, default))
        show(action.isChecked())
        action.toggled.connect(show)
        action.toggled.connect(lambda on, n=name: self._on_toggled(n, on))
        for dock in docks:
            dock.visibilityChanged.connect(lambda _v, n=name: self.sync_docks(n))

    def _on_toggled(self, name: str, on: bool) -> None:
        self.settings.set_layer_shown(name, on)
        docks = self._docks[name]
        if on and docks and all(d.isHidden() for d in docks):
            docks[0].show()  # a layer's controls come with it
            docks[0].raise_()

    def sync_docks(self, name: str | None = None) -> None:
        """Follow dock closing / reopening (also call after the window state is restored)."""
        for n in [name] if name else list(self._docks):
            docks = self._docks[n]
            if not docks:
                continue
            closed = all(d.isHidden() for d in docks)
            if closed != self._closed[n]:
                self._closed[n] = closed
                self.actions[n].setChecked(not closed)

    def shown(self, name: str) -> bool:
        return self.actions[name].isChecked()


def install_layers(window: QMainWindow) -> Layers:
    """Register the window's layers and put them in the View menu and a Layers tool bar.
    Needs ``window.anchor_lab`` (and ``anchor_docks``), ``window.proposals_panel`` and
    ``window.docks``."""
    a, settings = window.actions, window.settings
    layers = Layers(window)
    layers.actions["boxes"] = a.show_boxes

    lab = window.anchor_lab
    layers.add("anchors", a.show_anchors, lab.overlay.setVisible, window.anchor_docks)
    checks = lab.stats.checks

    def anchors_full(on: bool) -> None:
        settings.set_layer_shown("anchors_all", on)
        for category, box in checks.items():
            box.setChecked(on or category in LIGHT_ANCHORS)

    a.all_anchors.setChecked(settings.layer_shown("anchors_all", False))
    anchors_full(a.all_anchors.isChecked())
    a.all_anchors.toggled.connect(anchors_full)

    panel = window.proposals_panel
    show_box = panel.ui.show_box

    def show_proposals(on: bool) -> None:
        panel.layer.setVisible(on)
        show_box.setChecked(on)

    layers.add("proposals", a.show_proposals, show_proposals, [window.docks["proposals"]])
    show_box.toggled.connect(a.show_proposals.setChecked)

    def proposals_full(on: bool) -> None:
        settings.set_layer_shown("proposals_all", on)
        panel.layer.set_draw_limit(None if on else LIGHT_PROPOSALS)

    a.all_proposals.setText(f"All Listed Proposals (off: the best {LIGHT_PROPOSALS})")
    a.all_proposals.setChecked(settings.layer_shown("proposals_all", False))
    proposals_full(a.all_proposals.isChecked())
    a.all_proposals.toggled.connect(proposals_full)

    view = window.menus["view"]  # after Boxes and Box Labels, before the image adjustments
    view.insertActions(a.brighter, [a.show_anchors, a.show_proposals])
    view.insertSeparator(a.brighter)
    view.insertActions(a.brighter, [a.all_anchors, a.all_proposals])
    view.insertSeparator(a.brighter)
    tb = QToolBar("Layers", window)
    tb.setObjectName("layers_toolbar")
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    tb.setMovable(False)
    tb.addActions([a.show_boxes, a.show_anchors, a.show_proposals])
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
    window.layers_toolbar = tb
    return layers
