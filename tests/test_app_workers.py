"""The background worker, the superseding runner and the lazy model loader (app/common/workers.py).

Jobs here are real Qt-free functions and generators; threads are synchronised with
``threading.Event`` so no test depends on timing.
"""

from __future__ import annotations

import threading

import pytest

from app.common.workers import (
    Lane,
    ModelLoader,
    ModelState,
    TaskRunner,
    Worker,
    describe_exception,
    wait_for_lane,
)

TIMEOUT = 10_000  # ms; generous for a loaded 2-core machine


@pytest.fixture()
def pool():
    """The lane the tests' workers run on; every job of it has ended after the test."""
    yield Lane.INTERACTIVE
    assert wait_for_lane(Lane.INTERACTIVE, TIMEOUT)


def squares(n: int):
    """Yield i*i for i < n and return their sum."""
    total = 0
    for i in range(n):
        total += i * i
        yield i * i
    return total


def test_generator_progress_and_return_value(qtbot, pool):
    worker = Worker(squares, 4)
    seen: list[object] = []
    worker.signals.progress.connect(seen.append)
    with qtbot.waitSignal(worker.signals.finished, timeout=TIMEOUT) as blocker:
        worker.start(pool)
    # 0 + 1 + 4 + 9 = 14
    assert blocker.args == [14]
    assert seen == [0, 1, 4, 9]


def test_generator_without_return_gives_last_value(qtbot, pool):
    def countdown():
        yield from (3, 2, 1)

    worker = Worker(countdown)
    with qtbot.waitSignal(worker.signals.finished, timeout=TIMEOUT) as blocker:
        worker.start(pool)
    assert blocker.args == [1]


def test_plain_callable_with_arguments(qtbot, pool):
    worker = Worker(divmod, 17, 5)
    with qtbot.waitSignal(worker.signals.finished, timeout=TIMEOUT) as blocker:
        worker.start(pool)
    assert blocker.args == [(3, 2)]


def test_exception_reaches_the_user_as_a_message(qtbot, pool):
    def broken():
        yield "step 1"
        raise ValueError("weights.safetensors: truncated file")

    worker = Worker(broken)
    errors: list[object] = []
    worker.signals.error.connect(errors.append)
    finished: list[object] = []
    worker.signals.finished.connect(finished.append)
    messages: list[str] = []
    worker.signals.failed.connect(messages.append)
    with qtbot.waitSignal(worker.signals.done, timeout=TIMEOUT):
        worker.start(pool)
    assert messages == ["ValueError: weights.safetensors: truncated file"]
    assert isinstance(errors[0], ValueError)
    assert isinstance(worker.exception, ValueError)
    assert finished == []


def test_describe_exception_never_empty():
    assert describe_exception(RuntimeError()) == "RuntimeError: (no details)"
    assert describe_exception(KeyError("x")) == "KeyError: 'x'"


def test_cancel_stops_a_generator_at_its_next_step(qtbot, pool):
    entered, release = threading.Event(), threading.Event()
    steps: list[int] = []
    closed = threading.Event()

    def job():
        try:
            for i in range(100):
                steps.append(i)
                if i == 1:
                    entered.set()
                    release.wait(TIMEOUT / 1000)
                yield i
        finally:
            closed.set()

    worker = Worker(job)
    finished: list[object] = []
    worker.signals.finished.connect(finished.append)
    with qtbot.waitSignal(worker.signals.cancelled, timeout=TIMEOUT):
        worker.start(pool)
        assert entered.wait(TIMEOUT / 1000)
        worker.cancel()
        release.set()
    # Step 1 was running when cancel came; the flag is checked before step 2.
    assert steps == [0, 1]
    assert closed.is_set()  # the generator's finally block ran
    assert finished == []


def test_cancelled_plain_call_drops_its_result(qtbot, pool):
    entered, release = threading.Event(), threading.Event()

    def slow() -> str:
        entered.set()
        release.wait(TIMEOUT / 1000)
        return "stale"

    worker = Worker(slow)
    finished: list[object] = []
    worker.signals.finished.connect(finished.append)
    with qtbot.waitSignal(worker.signals.cancelled, timeout=TIMEOUT):
        worker.start(pool)
        assert entered.wait(TIMEOUT / 1000)
        worker.cancel()
        release.set()
    assert finished == []


def test_runner_supersedes_a_stale_run(qtbot, pool):
    runner = TaskRunner(lane=pool)
    entered, release = threading.Event(), threading.Event()

    def old_image() -> str:
        entered.set()
        release.wait(TIMEOUT / 1000)
        return "old"

    results: list[object] = []
    runner.finished.connect(results.append)
    busy: list[bool] = []
    runner.busy_changed.connect(busy.append)

    stale = runner.submit(old_image)
    assert entered.wait(TIMEOUT / 1000)
    with qtbot.waitSignal(runner.finished, timeout=TIMEOUT):
        runner.submit(squares, 3)  # 0 + 1 + 4 = 5
        release.set()
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=TIMEOUT)
    assert stale.is_cancelled
    assert results == [5]  # "old" never reached the runner's listeners
    assert runner.superseded == 1
    assert busy == [True, False]  # one busy period covering both runs
    assert runner.wait(TIMEOUT)


def test_runner_forwards_failures_of_the_current_run(qtbot, pool):
    runner = TaskRunner(lane=pool)
    with qtbot.waitSignal(runner.failed, timeout=TIMEOUT) as blocker:
        runner.submit(int, "not a number")
    assert blocker.args[0].startswith("ValueError: invalid literal for int()")
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=TIMEOUT)


def test_model_loader_reports_a_bad_weights_file(qtbot, pool, tmp_path):
    pytest.importorskip("rpn_core.rpn.model")
    from rpn_core.rpn.model import WeightsError

    bad = tmp_path / "rpn.safetensors"
    bad.write_bytes(b"\x80\x04this is a pickle, not safetensors")
    loader = ModelLoader(bad)
    states: list[str] = []
    loader.state_changed.connect(lambda state, _msg: states.append(state))
    worker = Worker(loader.get)
    with qtbot.waitSignal(worker.signals.failed, timeout=60_000) as blocker:
        worker.start(pool)
    assert isinstance(worker.exception, WeightsError)
    assert str(bad) in blocker.args[0]
    qtbot.waitUntil(lambda: len(states) == 2, timeout=TIMEOUT)
    assert states == [ModelState.LOADING.value, ModelState.FAILED.value]
    assert loader.model_if_ready() is None
    assert loader.state is ModelState.FAILED
