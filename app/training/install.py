"""Installing the Train dock in the main window, with the one set of weights actions.

The **Model** menu (*Load RPN Weights...*, *Save RPN Weights...*, *Reset to Embedded
Weights*) is the only way weights change by hand: the Train dock's buttons and the Proposals
dock's "Weights..." / "Embedded" trigger the same actions, so every way in validates the file
the same way (:func:`rpn_core.rpn.checkpoint.load_checkpoint`) and updates the one "active
weights" label in the status bar.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMainWindow, QMenu

from app.training.panel import TrainPanel

__all__ = ["install_train_panel"]


def install_train_panel(window: QMainWindow) -> TrainPanel:
    """Add the Train dock to the main window (which has ``workspace``, ``document``,
    ``model_loader`` and optionally ``proposals_panel``) and show the active weights in the
    status bar."""
    panel = TrainPanel(
        window.workspace, window.document, window.model_loader,
        getattr(window, "proposals_panel", None), window,
    )  # fmt: skip
    dock = window._dock("Train", "train_dock", panel, Qt.DockWidgetArea.LeftDockWidgetArea)
    window.docks["train"] = dock
    if "proposals" in window.docks:
        window.tabifyDockWidget(window.docks["proposals"], dock)
        window.docks["proposals"].raise_()
    _install_weights_actions(window, panel)
    label = QLabel("Weights: embedded")
    window.statusBar().addPermanentWidget(label)
    panel.weights_changed.connect(lambda text: label.setText(f"Weights: {text}"))
    panel.status_message.connect(lambda text: window.statusBar().showMessage(text, 8000))
    window.weights_label = label
    return panel


def _install_weights_actions(window: QMainWindow, panel: TrainPanel) -> None:
    """The Model menu's actions, also behind both docks' weights buttons (module doc)."""
    actions = {
        "load_weights": ("&Load RPN Weights...", panel._ask_load),
        "save_weights": ("&Save RPN Weights...", panel._ask_save),
        "reset_weights": ("&Reset to Embedded Weights", panel.reset_weights),
    }
    menu = QMenu("&Model", window)
    panel.weights_actions = {}
    for key, (text, slot) in actions.items():
        action = QAction(text, window)
        action.triggered.connect(slot)
        menu.addAction(action)
        panel.weights_actions[key] = action
    help_menu = window.menus.get("help")
    bar = window.menuBar()
    if help_menu is not None:
        bar.insertMenu(help_menu.menuAction(), menu)
    else:
        bar.addMenu(menu)
    window.menus["model"] = menu
    proposals = panel.proposals
    if proposals is not None:
        ui = proposals.ui
        pairs = ((ui.weights_button, "load_weights"), (ui.embedded_button, "reset_weights"))
        for button, key in pairs:
            button.clicked.disconnect()
            button.clicked.connect(panel.weights_actions[key].trigger)
