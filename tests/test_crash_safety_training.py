"""Fine-tuning that goes wrong (issue 7): NaN/Inf losses, out-of-memory, cancel. The previous
weights file stays intact and loadable, the model in memory holds the weights of the last good
step, and the message says what happened.

Failures are injected into the training step (``LossModule.forward``): the k-th training
step's loss is multiplied by NaN/Inf, or the step raises the error PyTorch raises when memory
runs out. Validation calls ``model.losses`` directly and is never affected.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rpn_core.rpn.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from rpn_core.rpn.config import RPNConfig  # noqa: E402
from rpn_core.rpn.model import RPNModel  # noqa: E402
from rpn_core.training import engine as train_engine  # noqa: E402 - after the torch skip
from rpn_core.training.finetune import TrainConfig, TrainingError, fine_tune  # noqa: E402

FAIL_AT = 3  # the 3rd training step fails; steps 1-2 are good


def _items(n: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    items = []
    for _ in range(n):
        image = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
        image[32:96, 40:100] = (220, 30, 30)  # an object where the box is
        items.append((image, np.array([[40.0, 32.0, 100.0, 96.0]])))
    return items


CONFIG = TrainConfig(epochs=1, augment_copies=1, batch_size=1, val_fraction=0.25,
                     device="cpu", warmup_steps=0)


@pytest.fixture(scope="module")
def _fresh():
    torch.manual_seed(0)
    model = RPNModel(RPNConfig(min_side=128, max_side=128), device="cpu")
    return model, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def setup(tmp_path, _fresh):
    model, state = _fresh
    model.load_state_dict(state)
    path = tmp_path / "previous.safetensors"
    save_checkpoint(model, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return model, path, digest


def _head(model: RPNModel) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.rpn.head.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _inject(monkeypatch, failure) -> None:
    """Make training step ``FAIL_AT`` fail with ``failure(losses) -> losses`` (or raise)."""
    real = train_engine.LossModule.forward
    calls = {"n": 0}

    def forward(self, inputs, gt_boxes, generator):
        calls["n"] += 1
        losses = real(self, inputs, gt_boxes, generator)
        return failure(losses) if calls["n"] == FAIL_AT else losses

    monkeypatch.setattr(train_engine.LossModule, "forward", forward)


def _train_until_failure(model) -> tuple[dict[int, list[torch.Tensor]], BaseException]:
    """Run fine_tune; returns the head weights after each step (0: before) and the exception."""
    after = {0: _head(model)}
    gen = fine_tune(model, _items(), CONFIG)
    try:
        for record in gen:
            if record.phase == "train":
                after[record.step] = _head(model)
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        return after, exc
    pytest.fail("training did not fail")


def _previous_intact(path, digest) -> None:
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    load_checkpoint(path, device="cpu")  # still loads


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_with_a_message_and_keeps_the_last_good_weights(
    setup, monkeypatch, bad
):
    model, path, digest = setup
    _inject(monkeypatch, lambda losses: {k: v * bad for k, v in losses.items()})
    after, exc = _train_until_failure(model)
    assert isinstance(exc, TrainingError)
    word = "nan" if bad != bad else "inf"
    assert f"the loss became {word} at step {FAIL_AT}" in exc.reason
    # The update of step 2 led to the bad loss of step 3, so step 1's weights are the last
    # known good ones (train.py's rule); the message says which step is kept.
    assert exc.step == FAIL_AT - 2 and f"weights of step {exc.step}" in exc.reason
    assert _same(_head(model), after[exc.step])
    assert not any(p.requires_grad for p in model.backbone.parameters())  # frozen again
    _previous_intact(path, digest)


@pytest.mark.parametrize(
    "error",
    [
        lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:116] DefaultCPUAllocator: "
                             "not enough memory: you tried to allocate 8589934592 bytes."),
    ],
    ids=["cuda-oom", "cpu-oom"],
)
def test_out_of_memory_keeps_the_last_good_weights(setup, monkeypatch, error):
    model, path, digest = setup

    def boom(_losses):
        raise error()

    _inject(monkeypatch, boom)
    after, exc = _train_until_failure(model)
    assert isinstance(exc, TrainingError) and exc.step == FAIL_AT - 1
    assert exc.reason.startswith(f"ran out of memory at step {FAIL_AT} (")
    assert f"the weights of step {FAIL_AT - 1} are kept" in exc.reason and "batch" in exc.reason
    assert _same(_head(model), after[FAIL_AT - 1])  # failed before any update of step 3
    assert not any(p.requires_grad for p in model.backbone.parameters())
    _previous_intact(path, digest)


def test_out_of_memory_inside_the_optimiser_step_restores_the_weights(setup, monkeypatch):
    """An OOM in ``optimizer.step()`` after a partial update: the snapshot is put back."""
    model, path, digest = setup
    real_step = torch.optim.SGD.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == FAIL_AT:
            with torch.no_grad():
                for group in self.param_groups:
                    group["params"][0].add_(1.0)  # half-done update
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    after, exc = _train_until_failure(model)
    assert isinstance(exc, TrainingError) and "ran out of memory at step 3" in exc.reason
    assert _same(_head(model), after[FAIL_AT - 1])
    _previous_intact(path, digest)


def test_cancel_stops_after_the_current_step_and_keeps_the_file(setup):
    model, path, digest = setup
    cancel = threading.Event()
    records = []
    gen = fine_tune(model, _items(), CONFIG, cancel=cancel)
    for record in gen:
        records.append(record)
        if record.phase == "train" and record.step == 2:
            cancel.set()
    done = records[-1]
    assert done.phase == "done" and done.result.stopped == "cancelled"
    assert done.result.steps == 2 and done.result.metrics_after == {}
    assert [r.step for r in records if r.phase == "train"] == [1, 2]
    _previous_intact(path, digest)
