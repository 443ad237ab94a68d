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
from PySide6.QtCore import QPoint, Qt

from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.annotation.formats.folder import open_store
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


# -- issue 15: never silently worse, never silently lost ---------------------------------------
def _train_and_activate(qtbot, window):
    """Train (the folder's 4 images) and make the result active, through the dock's buttons."""
    panel, ui = window.train_panel, window.train_panel.ui
    ui.epochs.setValue(2)
    with qtbot.waitSignal(panel.training_finished, timeout=120000):
        qtbot.mouseClick(ui.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ui.start_button.isEnabled(), timeout=5000)
    if ui.use_trained_button.isVisible():  # it did not beat the start: ask for it explicitly
        qtbot.mouseClick(ui.use_trained_button, Qt.MouseButton.LeftButton)
    assert panel.has_unsaved_weights
    assert window.weights_label.text() == "Weights: fine-tuned (unsaved)"


def test_too_little_data_is_warned_about_before_training(qtbot, window):
    panel, ui = window.train_panel, window.train_panel.ui
    panel.refresh()
    # 4 annotated images, 1 box each; 1 validation image -> 1 validation box.
    assert ui.warning_label.isVisibleTo(ui)
    assert "Only 1 validation box(es)" in ui.warning_label.text()
    messages = []
    panel.status_message.connect(messages.append)
    panel.start(TrainConfig(**FAST))
    assert "Warning: Only 1 validation box(es)" in messages[0]  # said as it starts
    qtbot.waitUntil(lambda: panel.worker is None, timeout=120000)


def test_weights_that_do_not_beat_the_active_ones_stay_inactive(qtbot, window):
    from rpn_core.training.data import DataSplit
    from rpn_core.training.jobs import TrainedModel
    from rpn_core.training.types import TrainResult

    panel, ui, loader = window.train_panel, window.train_panel.ui, window.model_loader
    active = loader.model_if_ready()
    # What the training job hands back when the run's best checkpoint is worse than the start
    # (the recall@100/0.7 1.000 -> 0.000): the active model must not change.
    worse = TrainResult(
        config=TrainConfig(**FAST), split=DataSplit((0, 1, 2), (3,)), names=("a", "b", "c", "d"),
        steps=4, epochs=2.0, stopped="completed", seconds=1.0,
        metrics_before={"recall@100/0.5": 1.0, "recall@100/0.7": 1.0},
        metrics_after={"recall@100/0.5": 0.0, "recall@100/0.7": 0.0}, data_summary={},
        best_step=2, metrics_final={"recall@100/0.5": 0.0, "recall@100/0.7": 0.0},
        improved=False, val_loss_before=0.5, val_loss_after=0.9,
    )  # fmt: skip
    trained = copy.deepcopy(active)
    panel._ensure_plot()
    with qtbot.waitSignal(panel.training_finished, timeout=5000):
        panel._on_finished(TrainedModel(trained, worse))
    assert loader.model_if_ready() is active and not panel.has_unsaved_weights
    text = ui.progress_label.text()
    assert "kept the best validation checkpoint, step 2" in text
    assert "do NOT beat the active ones" in text and "1.000 → 0.000" in text
    assert "the active weights (embedded) stay" in text
    assert ui.use_trained_button.isVisibleTo(ui)
    # The user may still choose them.
    qtbot.mouseClick(ui.use_trained_button, Qt.MouseButton.LeftButton)
    assert loader.model_if_ready() is trained and panel.has_unsaved_weights
    assert not ui.use_trained_button.isVisibleTo(ui)
    assert window.weights_label.text() == "Weights: fine-tuned (unsaved)"


def _prompt(qtbot, window):
    qtbot.waitUntil(lambda: window.weights_prompt is not None
                    and window.weights_prompt.isVisible(), timeout=5000)  # fmt: skip
    return window.weights_prompt


def test_quitting_with_unsaved_fine_tuned_weights_asks(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    _train_and_activate(qtbot, window)
    # Cancel: the window stays, the weights too.
    window.close()
    box = _prompt(qtbot, window)
    assert "not saved" in box.text()
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.weights_prompt is None, timeout=5000)
    assert window.isVisible() and window.train_panel.has_unsaved_weights
    # Save: the dialog opens in the images' folder; the file is written, then the window closes.
    asked = []
    target = tmp_path / "saved" / "tuned.safetensors"

    def save_dialog(parent, title, start, filters):
        asked.append(start)
        return str(target), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    window.close()
    box = _prompt(qtbot, window)
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Save), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10000)
    assert asked == [str(tmp_path / "imgs" / "rpn_finetuned.safetensors")]
    assert target.is_file() and not window.train_panel.has_unsaved_weights


def test_quitting_and_discarding_fine_tuned_weights(qtbot, window, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    _train_and_activate(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)  # File > Quit
    box = _prompt(qtbot, window)
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Discard), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10000)
    assert not list(tmp_path.rglob("*.safetensors"))  # nothing written


def test_one_rule_and_one_config_across_overlay_inspector_statistics_training_checkpoint(
    qtbot, window, tmp_path
):
    # Issue 15: with the overlay on the guide rule and designed anchors, training labels by
    # that rule with that set, the checkpoint records both, and once the fine-tuned model is
    # active every lab panel reads ITS configuration (input frame, anchors), never a default.
    from rpn_core.anchors.explain import folder_statistics, image_statistics
    from rpn_core.anchors.grid import AnchorConfig
    from rpn_core.anchors.labelling import LabelConfig
    from rpn_core.rpn.checkpoint import read_checkpoint
    from rpn_core.rpn.config import input_geometry, label_in_input_frame

    panel, ui, lab, state = (window.train_panel, window.train_panel.ui, window.anchor_lab,
                             window.app_state)  # fmt: skip
    qtbot.waitUntil(lambda: lab.ready and state.state.model_config == TINY, timeout=60000)
    guide = LabelConfig.guide()
    designed = AnchorConfig(sizes=(20.0, 40.0), aspect_ratios=(0.5, 1.0))
    lab.set_configs(designed, guide)  # e.g. the guide preset, then "Apply to anchors"
    assert lab.model_config == TINY and TINY.labels == LabelConfig.faster_rcnn()
    # Before Start, the dock says what it will use.
    plan = ui.plan_label.text()
    assert "the anchor lab's anchors (sizes 20, 40; ratios 0.5, 1; 4 per cell)" in plan
    assert "the anchor lab's label rule guide (foreground IoU > 0.5, background < 0.1)" in plan
    assert "proposes from other anchors" in lab.settings_panel.status.text()
    _train_and_activate(qtbot, window)
    trained = window.model_loader.model_if_ready()
    assert trained.config.anchors == designed and trained.config.labels == guide  # training
    # The app state and every panel now read the fine-tuned model's configuration.
    assert state.state.model_config == trained.config
    assert lab.model_config == trained.config and lab.anchor_config == designed
    assert lab.label_config == guide
    assert "proposes from other anchors" not in lab.settings_panel.status.text()
    assert lab.settings_panel.sizes.text() == "20, 40"
    size = lab.image_size
    assert lab.input_size == input_geometry(size, TINY)[0] == (96, 128)  # min_side 96, not 600
    # overlay: the labels are those training computes for this image (same rule, set, frame)
    expected = label_in_input_frame(size, lab.gt, designed, guide, trained.config)
    np.testing.assert_array_equal(lab.labels.labels.numpy(), expected.labels.numpy())
    # inspector: explains the best-overlapping anchor in the same frame with the same label
    fg = int(expected.max_iou.argmax())
    lab.inspector.set_anchor(fg)
    e = lab.inspector.explanation()
    assert e.label == int(expected.labels[fg])
    assert any(t in e.rule for t in ("> 0.5", "between 0.1 and 0.5", "< 0.1"))  # guide's
    sy, sx = input_geometry(size, TINY)[1]
    np.testing.assert_allclose(e.box, lab.anchors[fg] * np.array([sx, sy, sx, sy]), rtol=1e-6)
    # statistics: this image's and the folder's, in the model's frame under the guide rule
    stats = image_statistics(lab.labels, guide)
    assert f"best-possible recall: {stats.recall:.0%}" in lab.stats.image_text.text()
    qtbot.mouseClick(lab.stats.folder_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: lab.stats.folder_stats is not None, timeout=60000)
    from app.anchor_lab.design_panel import folder_frame_items

    folder = str(window.workspace.root)
    again = folder_statistics(folder_frame_items(folder, TINY), designed, guide)
    np.testing.assert_array_equal(lab.stats.folder_stats.best_iou, again.best_iou)
    assert lab.stats.folder_stats.images == 4
    # design: clusters in the same frame
    from app.anchor_lab.design_panel import frame_text

    assert "shorter side 96" in frame_text(lab.model_config)
    # checkpoint: records the rule and the set that were used
    path = tmp_path / "tuned.safetensors"
    assert panel.save_weights(path)
    info, _ = read_checkpoint(path)
    assert info.config.anchors == designed and info.config.labels == guide
    assert info.metadata["label_preset"] == "guide" and info.metadata["labels"] == guide.to_dict()


def test_unticking_the_lab_rule_trains_with_the_models_rule(qtbot, window):
    from rpn_core.anchors.labelling import LabelConfig

    ui, lab = window.train_panel.ui, window.anchor_lab
    qtbot.waitUntil(lambda: lab.ready and lab.model_config == TINY, timeout=60000)
    lab.set_configs(lab.anchor_config, LabelConfig.guide())
    box = ui.lab_rule
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(6, box.height() // 2))
    assert not ui.lab_rule.isChecked()
    assert "the model's label rule faster-rcnn (foreground IoU >= 0.7" in ui.plan_label.text()
    _train_and_activate(qtbot, window)
    assert window.model_loader.model_if_ready().config.labels == LabelConfig.faster_rcnn()


def test_the_input_size_control_trains_at_that_size(qtbot, window):
    panel, ui = window.train_panel, window.train_panel.ui
    qtbot.waitUntil(lambda: window.model_loader.model_if_ready() is not None, timeout=60000)
    model = window.model_loader.model_if_ready()
    side = 2 * model.config.min_side
    ui.input_size.setFocus()
    ui.input_size.selectAll()
    qtbot.keyClicks(ui.input_size, str(side))
    qtbot.keyClick(ui.input_size, Qt.Key.Key_Return)
    assert ui.input_size.value() == side
    assert f"at input size {side} px" in ui.plan_label.text()  # said before Start
    ui.epochs.setValue(1)
    with qtbot.waitSignal(panel.training_finished, timeout=120000):
        qtbot.mouseClick(ui.start_button, Qt.MouseButton.LeftButton)
    trained = panel.held_back or window.model_loader.model_if_ready()
    assert trained is not model
    ratio = model.config.max_side / model.config.min_side
    assert (trained.config.min_side, trained.config.max_side) == (side, round(side * ratio))
    assert model.config.min_side == side // 2  # the previous model is untouched


def test_the_ssd_model_offers_no_last_stage_mode(qtbot, window):
    import resources
    from rpn_core.rpn.loading import load_embedded_model

    ui = window.train_panel.ui
    item = ui.mode.model().item(ui.mode.findData("partial"))
    assert item.isEnabled()  # the tiny MobileNetV2 model of this window has a last stage
    ui.mode.setCurrentIndex(ui.mode.findData("partial"))
    with qtbot.waitSignal(window.model_loader.model_changed, timeout=60000):
        window.model_loader.set_model(load_embedded_model(resources.embedded_weights(), "cpu"))
    qtbot.waitUntil(lambda: not item.isEnabled(), timeout=10000)
    assert ui.mode.currentData() == "head"
