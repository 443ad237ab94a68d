"""The Train dock in the real main window: train on the folder's boxes in the background,
cancel, a NaN loss (clear message, active weights unchanged), save / load / reset weights.

A tiny randomly initialised RPN (96-pixel input) stands in for the embedded one, so each run
takes about a second.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.annotation.formats import open_store
from rpn_core.training.types import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from app_testing import make_folder, open_window  # noqa: E402
from test_train import TINY  # noqa: E402

FAST = dict(epochs=2, batch_size=2, augment_copies=1, warmup_steps=1)


@pytest.fixture(scope="module")
def tiny_model():
    from rpn_core.rpn.model import RPNModel

    torch.manual_seed(0)
    return RPNModel(TINY, device="cpu")


@pytest.fixture
def window(qtbot, app_settings, tmp_path, tiny_model):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see tests/test_train.py: 2 threads crawl on a loaded machine
    paths = make_folder(tmp_path / "imgs", n=5)
    store = open_store(tmp_path / "imgs", "voc")
    rng = np.random.default_rng(0)
    for p in paths[:4]:  # img4 stays unannotated
        x, y = (int(v) for v in rng.integers(20, 200, 2))
        store.save(ImageAnnotation(p, 320, 240, [Box(x, y, x + 80, y + 30, "obj")]))
    w = open_window(qtbot, app_settings, paths)
    w.model_loader.set_model(copy.deepcopy(tiny_model))
    yield w
    w.train_panel.wait(30000)
    torch.set_num_threads(threads)


def state_of(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_split_is_shown_and_training_activates_the_new_weights(qtbot, window):
    panel, ui = window.train_panel, window.train_panel.ui
    panel.refresh()
    # 4 of 5 images have a box; round(4 * 0.2) = 1 validation image
    assert ui.data_label.text().startswith("4 annotated images (4 boxes): 3 train, 1 validate")
    assert ui.val_list.count() == 1
    ui.epochs.setValue(2)
    old = window.model_loader.model_if_ready()
    old_state = state_of(old)
    with qtbot.waitSignal(panel.training_finished, timeout=120000) as done:
        qtbot.mouseClick(ui.start_button, Qt.MouseButton.LeftButton)
        assert not ui.start_button.isEnabled() and ui.cancel_button.isEnabled()
    result = done.args[0]
    assert result.stopped == "completed" and result.steps == 2 * 2  # ceil(3 / 2) per epoch
    new = window.model_loader.model_if_ready()
    assert new is not old and same_state(state_of(old), old_state)  # trained a copy
    assert not same_state(state_of(new), old_state)
    assert window.weights_label.text() == "Weights: fine-tuned (unsaved)"
    assert len(panel.plot.data["total"][0]) == 4 and len(panel.plot.data["val_total"][0]) == 3
    assert "recall@100, IoU 0.7" in ui.recall_label.text()
    qtbot.waitUntil(lambda: ui.start_button.isEnabled(), timeout=5000)


def test_cancel_stops_and_keeps_the_active_weights(qtbot, window):
    panel, ui = window.train_panel, window.train_panel.ui
    active = window.model_loader.model_if_ready()
    before = state_of(active)
    ui.epochs.setValue(500)
    qtbot.mouseClick(ui.start_button, Qt.MouseButton.LeftButton)
    worker = panel.worker
    qtbot.waitUntil(lambda: ui.progress_label.text().startswith("Step"), timeout=120000)
    with qtbot.waitSignal(worker.signals.cancelled, timeout=60000):
        qtbot.mouseClick(ui.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ui.start_button.isEnabled(), timeout=5000)
    assert window.model_loader.model_if_ready() is active and same_state(state_of(active), before)
    assert "Cancelled" in ui.progress_label.text()


def test_nan_loss_reports_a_clear_error_and_keeps_the_weights(qtbot, window):
    panel = window.train_panel
    active = window.model_loader.model_if_ready()
    before = state_of(active)
    with qtbot.waitSignal(panel.training_failed, timeout=120000) as failed:
        panel.start(TrainConfig(lr=1e30, **{**FAST, "warmup_steps": 0}))
    message = failed.args[0]
    assert "TrainingError" in message and "loss became nan" in message
    assert "active weights are unchanged" in panel.ui.progress_label.text()
    qtbot.waitUntil(lambda: panel.ui.start_button.isEnabled(), timeout=5000)
    assert window.model_loader.model_if_ready() is active and same_state(state_of(active), before)


def test_save_load_and_reset_weights(qtbot, window, tmp_path):
    panel, loader = window.train_panel, window.model_loader
    path = tmp_path / "ckpt" / "mine.safetensors"
    assert panel.save_weights(path)
    assert path.is_file() and path.with_suffix(".json").is_file()
    saved = state_of(loader.model_if_ready())
    with torch.no_grad():  # change the active model, then load the file back
        loader.model_if_ready().rpn.head.cls_logits.bias.add_(1.0)
    with qtbot.waitSignal(loader.model_changed, timeout=60000):
        panel.load_weights(path)
    assert same_state(state_of(loader.model_if_ready()), saved)
    assert window.weights_label.text() == f"Weights: {path}"
    panel.reset_weights()
    assert loader.weights_path is None and loader.model_if_ready() is None
    assert window.weights_label.text() == "Weights: embedded"


def test_one_set_of_weights_actions_behind_both_docks(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QFileDialog

    panel, loader = window.train_panel, window.model_loader
    menu = window.menus["model"]
    texts = [a.text().replace("&", "") for a in menu.actions()]
    assert texts == ["Load RPN Weights...", "Save RPN Weights...", "Reset to Embedded Weights"]
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles.index("Model") == titles.index("Help") - 1

    good = tmp_path / "good.safetensors"
    assert panel.save_weights(good)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"PK\x03\x04 a torch.save zip, never unpickled")
    proposals = window.proposals_panel
    button = proposals.ui.weights_button

    def click(widget):
        qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=QPoint(5, widget.height() // 2))

    # The Proposals dock's "Weights..." opens the same checked load as Model > Load.
    chosen = iter([(str(bad), ""), (str(good), "")])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: next(chosen))
    before = state_of(loader.model_if_ready())
    window.docks["proposals"].raise_()
    click(button)
    qtbot.waitUntil(lambda: "Could not load" in proposals.ui.status_label.text(), timeout=30000)
    assert str(bad) in proposals.ui.status_label.text()
    assert same_state(state_of(loader.model_if_ready()), before)  # active weights unchanged
    with qtbot.waitSignal(loader.model_changed, timeout=60000):
        click(button)
    assert window.weights_label.text() == f"Weights: {good}"
    assert proposals.ui.weights_label.text() == f"Weights: {good.name}"
    click(proposals.ui.embedded_button)
    assert loader.weights_path is None and window.weights_label.text() == "Weights: embedded"


def test_training_uses_the_anchor_labs_set_when_it_differs(qtbot, window):
    from rpn_core.anchors.grid import AnchorConfig

    panel, ui, lab = window.train_panel, window.train_panel.ui, window.anchor_lab
    qtbot.waitUntil(
        lambda: lab.ready and window.model_loader.model_if_ready() is not None, timeout=60000
    )
    model = window.model_loader.model_if_ready()
    assert lab.anchor_config == model.config.anchors  # the lab follows the loaded model
    # A set with another stride cannot run on the stride-16 backbone: clear error, no run.
    lab.set_configs(AnchorConfig(sizes=(20.0,), aspect_ratios=(1.0,), stride=8), lab.label_config)
    qtbot.mouseClick(ui.start_button, Qt.MouseButton.LeftButton)
    assert panel.worker is None and "stride 8" in ui.progress_label.text()
    designed = AnchorConfig(sizes=(20.0, 40.0), aspect_ratios=(0.5, 1.0))
    lab.set_configs(designed, lab.label_config)  # e.g. "Apply to anchors" in Anchor design
    ui.epochs.setValue(1)
    messages = []
    panel.status_message.connect(messages.append)
    with qtbot.waitSignal(panel.training_finished, timeout=120000):
        qtbot.mouseClick(ui.start_button, Qt.MouseButton.LeftButton)
    assert any("anchor lab's anchors (sizes 20, 40; ratios 0.5, 1; 4 per cell)" in m
               for m in messages)  # fmt: skip
    trained = window.model_loader.model_if_ready()
    assert trained.config.anchors == designed and trained.rpn.head.cls_logits.out_channels == 4
    assert model.config.anchors != designed  # the previous model is untouched
