"""Crash safety in the Train dock (issue 7): out-of-memory and an infinite loss in the middle of
a real background training run. The user is told, the active model is the same object with the
same weights, and the checkpoint on disk is untouched. (Cancel and a NaN loss are covered by
``test_app_train_panel.py``.) Failures are injected into ``LossModule.forward`` at step 2.
"""

from __future__ import annotations

import copy
import hashlib

import numpy as np
import pytest
from app_testing import make_folder, open_window

torch = pytest.importorskip("torch")

from rpn_core.annotation.data import Box, ImageAnnotation  # noqa: E402
from rpn_core.annotation.formats import open_store  # noqa: E402
from rpn_core.rpn.checkpoint import save_checkpoint  # noqa: E402
from rpn_core.rpn.config import RPNConfig  # noqa: E402
from rpn_core.training import engine as train_engine  # noqa: E402 - after the torch skip
from rpn_core.training.types import TrainConfig  # noqa: E402

CONFIG = TrainConfig(epochs=2, batch_size=1, augment_copies=1, warmup_steps=0, val_fraction=0.25)


@pytest.fixture
def window(qtbot, app_settings, tmp_path):
    from rpn_core.rpn.model import RPNModel

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    paths = make_folder(tmp_path / "imgs", n=4)
    store = open_store(tmp_path / "imgs", "voc")
    for i, p in enumerate(paths):
        store.save(ImageAnnotation(p, 320, 240, [Box(20 + 30 * i, 40, 140 + 30 * i, 150, "o")]))
    torch.manual_seed(0)
    model = RPNModel(RPNConfig(min_side=96, max_side=160), device="cpu")
    w = open_window(qtbot, app_settings, paths)
    w.model_loader.set_model(copy.deepcopy(model))
    yield w
    w.train_panel.wait(30000)
    torch.set_num_threads(threads)


def _fail_at_step_2(monkeypatch, failure) -> None:
    real = train_engine.LossModule.forward
    calls = {"n": 0}

    def forward(self, inputs, gt_boxes, generator):
        calls["n"] += 1
        losses = real(self, inputs, gt_boxes, generator)
        return failure(losses) if calls["n"] == 2 else losses

    monkeypatch.setattr(train_engine.LossModule, "forward", forward)


def _oom(_losses):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def _inf(losses):
    return {k: v * float("inf") for k, v in losses.items()}


@pytest.mark.parametrize(("failure", "words"), [(_oom, "out of memory"), (_inf, "loss became inf")],
                         ids=["out-of-memory", "inf-loss"])
def test_failed_training_keeps_the_active_model_and_the_file(
    qtbot, window, tmp_path, monkeypatch, failure, words
):
    panel = window.train_panel
    active = window.model_loader.model_if_ready()
    before = {k: v.clone() for k, v in active.state_dict().items()}
    checkpoint = tmp_path / "previous.safetensors"
    save_checkpoint(active, checkpoint)
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    _fail_at_step_2(monkeypatch, failure)
    with qtbot.waitSignal(panel.training_failed, timeout=180_000) as failed:
        panel.start(CONFIG)
    assert words in failed.args[0]
    text = panel.ui.progress_label.text()
    assert text.startswith("Training stopped") and "active weights are unchanged" in text
    qtbot.waitUntil(lambda: panel.ui.start_button.isEnabled(), timeout=10_000)
    assert window.model_loader.model_if_ready() is active
    after = active.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == digest
    # The app is still usable: the boxes of the current image are there and editable.
    assert window.document.boxes and np.isfinite(window.document.boxes_array()).all()
