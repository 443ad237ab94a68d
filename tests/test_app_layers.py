"""Canvas layers (issue 14): Boxes, Anchors and Proposals each switched on and off from the View
menu, the Layers tool bar and a shortcut, remembered per user; closing a feature's docks hides
its layer; anchors and proposals start light."""

from __future__ import annotations

import numpy as np
from app_testing import make_folder, open_window
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QToolButton

from app.shell.layers import LIGHT_ANCHORS, LIGHT_PROPOSALS
from app.shell.main_window import MainWindow
from rpn_core.anchors.view import Category

ALT = Qt.KeyboardModifier.AltModifier


def _window(qtbot, tmp_path, settings):
    make_folder(tmp_path / "imgs", n=1)
    return open_window(qtbot, settings, [tmp_path / "imgs"])


def test_defaults_boxes_on_anchors_and_proposals_light(qtbot, tmp_path, app_settings):
    w = _window(qtbot, tmp_path, app_settings)
    a = w.actions
    assert a.show_boxes.isChecked() and a.show_anchors.isChecked() and a.show_proposals.isChecked()
    assert w.anchor_lab.overlay.isVisible() and w.proposals_panel.layer.isVisible()
    shown = w.anchor_lab.overlay.options.categories
    assert shown == LIGHT_ANCHORS and Category.BACKGROUND not in shown
    assert w.proposals_panel.layer.draw_limit == LIGHT_PROPOSALS
    layer = w.proposals_panel.layer
    layer.set_proposals(np.tile([[1.0, 1.0, 20.0, 20.0]], (100, 1)), np.linspace(1, 0, 100))
    assert layer.drawn_count == LIGHT_PROPOSALS and len(layer.boxes) == 100
    a.all_proposals.trigger()
    assert layer.drawn_count == 100
    a.all_anchors.trigger()
    assert w.anchor_lab.overlay.options.categories == frozenset(Category)


def test_shortcuts_menu_and_toolbar_toggle_each_layer_and_are_remembered(
    qtbot, tmp_path, app_settings
):
    w = _window(qtbot, tmp_path, app_settings)
    view = w.menus["view"].actions()
    for action in (w.actions.show_boxes, w.actions.show_anchors, w.actions.show_proposals):
        assert action in view and action in w.layers_toolbar.actions()
    qtbot.keyClick(w.canvas, Qt.Key.Key_2, ALT)
    assert not w.actions.show_anchors.isChecked() and not w.anchor_lab.overlay.isVisible()
    qtbot.keyClick(w.canvas, Qt.Key.Key_3, ALT)
    assert not w.proposals_panel.layer.isVisible()
    assert not w.proposals_panel.ui.show_box.isChecked()  # the dock's check box agrees
    qtbot.keyClick(w.canvas, Qt.Key.Key_1, ALT)
    assert not w.canvas.box_items() or not w.canvas.box_items()[0].isVisible()
    assert not w.actions.show_boxes.isChecked()
    button = w.layers_toolbar.widgetForAction(w.actions.show_anchors)
    assert isinstance(button, QToolButton)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert w.anchor_lab.overlay.isVisible()
    w.close()

    again = MainWindow(settings=app_settings)  # a new session of the same user
    qtbot.addWidget(again)
    assert again.actions.show_anchors.isChecked()
    assert not again.actions.show_proposals.isChecked()
    assert not again.proposals_panel.layer.isVisible()
    assert not again.actions.show_boxes.isChecked()


def test_closing_a_features_docks_hides_its_layer_and_reopening_shows_it(
    qtbot, tmp_path, app_settings
):
    w = _window(qtbot, tmp_path, app_settings)
    dock = w.docks["proposals"]
    dock.show()
    dock.raise_()
    close = dock.findChild(QAbstractButton, "qt_dockwidget_closebutton")
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    assert dock.isHidden()
    assert not w.actions.show_proposals.isChecked() and not w.proposals_panel.layer.isVisible()
    dock.toggleViewAction().trigger()  # View ▸ Proposals (the dock)
    assert w.actions.show_proposals.isChecked() and w.proposals_panel.layer.isVisible()

    for d in w.anchor_docks:
        d.close()
    assert not w.actions.show_anchors.isChecked() and not w.anchor_lab.overlay.isVisible()
    qtbot.keyClick(w.canvas, Qt.Key.Key_2, ALT)  # the layer on again brings its dock back
    assert w.anchor_lab.overlay.isVisible() and not w.anchor_docks[0].isHidden()
