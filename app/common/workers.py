"""Long work off the GUI thread (ARCHITECTURE.md rule 11): the one way work leaves it.

* :class:`Worker` is the app's only ``QRunnable``: it runs a Qt-free callable or generator
  (typically from :mod:`rpn_core`) on the thread pool of a :class:`Lane` -- ``INTERACTIVE``
  (Qt's global pool: proposals, labelling, statistics, k-means, loading weights), ``FILES``
  (one thread: decoding images ahead and scanning a folder's states), ``STORE`` (one thread:
  the workspace's big reads and writes -- huge images, big annotation files -- in order) or
  ``TRAINING`` (one thread, so fine-tuning never starves the others). A started worker keeps
  itself alive until its ``done`` signal; callers hold one only to cancel it. A generator's
  yielded values arrive as ``progress(object)``; its ``return`` value (or, if it returns ``None``,
  its last yielded value) as ``finished(object)``;
  a plain callable's return value as ``finished(object)``. Every exception arrives as
  ``failed(str)`` (the message a user reads) and ``error(object)`` (the exception itself), and
  is logged with its traceback -- nothing dies silently. ``cancel()`` sets a flag that is
  checked before every step of a generator (and before/after a plain call); a cancelled run
  emits ``cancelled()`` instead of ``finished``. ``done()`` always comes last.
* :class:`TaskRunner` runs one job at a time per purpose: ``submit()`` cancels the previous run
  and forwards only the latest run's signals, so a stale result can never overwrite a fresh
  one (running on a new image supersedes the run on the old image).
* :class:`ModelLoader` loads the RPN lazily and caches it; ``get()`` is thread-safe and is meant
  to be called inside a worker, so ``import torch`` (3-4 s) never blocks the GUI. Its
  ``state_changed(str, str)`` signal drives "Loading model..." in the status bar and panels.

Signals are emitted from pool threads on QObjects that live in the GUI thread, so Qt queues
them: slots always run on the GUI thread.
"""

from __future__ import annotations

import enum
import inspect
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, Signal

from rpn_core.torch_import import import_torch

__all__ = [
    "Lane",
    "ModelLoader",
    "ModelState",
    "TaskRunner",
    "Worker",
    "WorkerSignals",
    "describe_exception",
    "thread_pool",
    "wait_for_lane",
    "without_gc_pauses",
]

log = logging.getLogger(__name__)


def describe_exception(exc: BaseException) -> str:
    """A one-line, user-facing message: the exception's type and text (which for our typed
    errors, e.g. ``WeightsError``, already names the file and the reason)."""
    text = str(exc).strip() or "(no details)"
    return f"{type(exc).__name__}: {text}"


class Lane(enum.Enum):
    """Which thread pool a :class:`Worker` runs on (module docstring)."""

    INTERACTIVE = "interactive"
    FILES = "files"
    STORE = "store"
    TRAINING = "training"


def thread_pool(lane: Lane) -> QThreadPool:
    """The pool of ``lane``: Qt's global pool, or a one-thread pool owned by the application
    (created on first use, torn down with it)."""
    if lane is Lane.INTERACTIVE:
        return QThreadPool.globalInstance()
    app = QCoreApplication.instance()
    name = f"rpn_studio_{lane.value}_pool"
    pool = app.findChild(QThreadPool, name) if app is not None else None
    if pool is None:
        pool = QThreadPool(app)
        pool.setObjectName(name)
        pool.setMaxThreadCount(1)
    return pool


def wait_for_lane(lane: Lane, msecs: int = 30_000) -> bool:
    """Block until every queued and running job of ``lane`` has ended (shutdown, tests)."""
    return thread_pool(lane).waitForDone(msecs)


class WorkerSignals(QObject):
    """The signals of one :class:`Worker` (a ``QRunnable`` cannot carry signals itself)."""

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    error = Signal(object)
    cancelled = Signal()
    done = Signal()


class Worker(QRunnable):
    """Run ``fn(*args, **kwargs)`` on a thread pool; see the module docstring for signals."""

    _running: set[Worker] = set()  # started, not yet done: kept alive here (GUI thread only)

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        # Python owns the object (see ``_running``); Qt must not delete it under us.
        self.setAutoDelete(False)
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.signals = WorkerSignals()
        self._cancel = threading.Event()
        self._running = threading.Event()
        self.exception: BaseException | None = None

    # -- API for the GUI thread -------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the run to stop at its next step (a running numpy/torch call is not interrupted;
        its result is then dropped)."""
        self._cancel.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def start(self, lane: Lane = Lane.INTERACTIVE) -> Worker:
        """Queue the worker on ``lane``'s pool and return it; it stays alive until ``done``."""
        Worker._running.add(self)
        self.signals.done.connect(lambda: Worker._running.discard(self))
        thread_pool(lane).start(self)
        return self

    # -- runs on the pool thread ------------------------------------------------------------
    def run(self) -> None:  # noqa: D102 - QRunnable API
        self._running.set()
        try:
            if self.is_cancelled:
                self._emit("cancelled")
                return
            result = self.fn(*self.args, **self.kwargs)
            if inspect.isgenerator(result):
                outcome, value = self._drive(result)
            else:
                outcome, value = ("cancelled" if self.is_cancelled else "finished"), result
            if outcome == "cancelled":
                self._emit("cancelled")
            else:
                self._emit("finished", value)
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the user
            self.exception = exc
            if not _shutting_down():
                log.error("background job %s failed", _name(self.fn), exc_info=exc)
            self._emit("error", exc)
            self._emit("failed", describe_exception(exc))
        finally:
            self._emit("done")

    def _emit(self, name: str, *args: Any) -> None:
        """Emit unless the signals' QObject is gone (app teardown): nobody is listening then,
        and an exception escaping ``QRunnable.run`` would only print noise."""
        try:
            getattr(self.signals, name).emit(*args)
        except RuntimeError:
            if shiboken6.isValid(self.signals):
                raise

    def _drive(self, gen: Iterator[Any]) -> tuple[str, Any]:
        """Step a generator, emitting each value; check the cancel flag before every step."""
        last: Any = None
        while True:
            if self.is_cancelled:
                gen.close()  # runs the generator's ``finally`` blocks
                return "cancelled", None
            try:
                last = next(gen)
            except StopIteration as stop:
                return "finished", (stop.value if stop.value is not None else last)
            self._emit("progress", last)


def _shutting_down() -> bool:
    """The interpreter is exiting (a job still running then fails on imports; stay quiet)."""
    return sys.is_finalizing() or not threading.main_thread().is_alive()


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class TaskRunner(QObject):
    """One job at a time: a new ``submit()`` cancels the previous run and forwards only the
    newest run's ``progress`` / ``finished`` / ``failed`` / ``cancelled`` signals.

    ``busy_changed(bool)`` is true while the latest submitted run has not ended.
    """

    started = Signal()
    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    error = Signal(object)
    cancelled = Signal()
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, lane: Lane = Lane.INTERACTIVE) -> None:
        super().__init__(parent)
        self._lane = lane
        self._current: Worker | None = None
        self._alive: set[Worker] = set()  # this runner's runs until their ``done`` (to cancel)
        self.superseded = 0  # how many runs were cancelled by a newer submit (for tests/logs)

    @property
    def current(self) -> Worker | None:
        return self._current

    def is_busy(self) -> bool:
        return self._current is not None

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Worker:
        """Cancel the current run (its results are ignored from now on) and start a new one."""
        if self._current is not None:
            self._current.cancel()
            self.superseded += 1
        worker = Worker(fn, *args, **kwargs)
        s = worker.signals
        s.progress.connect(lambda v, w=worker: self._forward(w, self.progress, v))
        s.finished.connect(lambda v, w=worker: self._forward(w, self.finished, v))
        s.failed.connect(lambda m, w=worker: self._forward(w, self.failed, m))
        s.error.connect(lambda e, w=worker: self._forward(w, self.error, e))
        s.cancelled.connect(lambda w=worker: self._forward(w, self.cancelled))
        s.done.connect(lambda w=worker: self._on_done(w))
        was_busy = self._current is not None
        self._current = worker
        self._alive.add(worker)
        worker.start(self._lane)
        self.started.emit()
        if not was_busy:
            self.busy_changed.emit(True)
        return worker

    def cancel(self) -> None:
        """Cancel the current run; ``cancelled`` follows when it reaches its next step."""
        if self._current is not None:
            self._current.cancel()

    def wait(self, msecs: int = 30000) -> bool:
        """Cancel and block until every run of this runner has ended (for shutdown/tests)."""
        for w in list(self._alive):
            w.cancel()
        if self._current is not None:  # late signals of cancelled runs are dropped
            self._current = None
            self.busy_changed.emit(False)
        return wait_for_lane(self._lane, msecs)

    def _forward(self, worker: Worker, signal: Signal, *value: Any) -> None:
        # A superseded run's signals are dropped here, and so is everything arriving after
        # the runner's owner (a panel, a window) has been deleted.
        if worker is self._current and shiboken6.isValid(self):
            signal.emit(*value)

    def _on_done(self, worker: Worker) -> None:
        self._alive.discard(worker)
        if worker is self._current and shiboken6.isValid(self):
            self._current = None
            self.busy_changed.emit(False)


class ModelState(str, enum.Enum):
    """What :class:`ModelLoader` is doing; the value is the text a status bar shows."""

    NOT_LOADED = "Model not loaded"
    LOADING = "Loading model..."
    READY = "Model ready"
    FAILED = "Model failed to load"


class ModelLoader(QObject):
    """Load the RPN once, lazily, off the GUI thread, and cache it.

    ``weights_path=None`` loads the embedded weights (``rpn_core.rpn.loading.load_embedded_model``);
    a path loads that file (``load_model``). Errors such as ``WeightsError`` (bad, truncated or
    pickle files) propagate out of :meth:`get` to the worker that called it, which reports them;
    the state becomes ``FAILED`` with the message and the next :meth:`get` tries again.
    ``state_changed(state_value, message)`` is emitted on every transition;
    ``model_changed()`` when :meth:`set_weights_path` or :meth:`set_model` replaces the model
    (e.g. after fine-tuning), so views showing its output can re-run.
    """

    state_changed = Signal(str, str)
    model_changed = Signal()

    def __init__(
        self,
        weights_path: str | Path | None = None,
        parent: QObject | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(parent)
        # ``_lock`` guards the fields and is only ever held briefly (the GUI thread takes it);
        # ``_load_lock`` serialises loads, which take seconds (only worker threads take it).
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._weights_path = Path(weights_path) if weights_path is not None else None
        self._device = device
        self._model: Any = None
        self._name = "embedded" if weights_path is None else str(weights_path)
        self._generation = 0  # bumped when the weights change; a stale load is not cached
        self.state = ModelState.NOT_LOADED
        self.message = ""

    @property
    def weights_path(self) -> Path | None:
        return self._weights_path

    @property
    def name(self) -> str:
        """What the active weights are: ``"embedded"``, a file's path, or the name given to
        :meth:`set_model` (e.g. ``"fine-tuned (unsaved)"``)."""
        return self._name

    def model_if_ready(self) -> Any:
        """The cached model, or ``None`` (never loads)."""
        return self._model

    def set_weights_path(self, path: str | Path | None) -> None:
        """Use other weights from now on (``None``: the embedded ones); drops the cached model.
        Never blocks: a load already running finishes but is not cached."""
        with self._lock:
            self._weights_path = Path(path) if path is not None else None
            self._name = "embedded" if path is None else str(path)
            self._model = None
            self._generation += 1
        self._set_state(ModelState.NOT_LOADED, "")
        self.model_changed.emit()

    def set_model(self, model: Any, name: str = "fine-tuned (unsaved)") -> None:
        """Install an already-built model (e.g. one just fine-tuned), called ``name``."""
        with self._lock:
            self._model = model
            self._name = name
            self._generation += 1
        self._set_state(ModelState.READY, "")
        self.model_changed.emit()

    def get(self) -> Any:
        """The model, loading it first if needed. Call from a worker thread: it may import
        torch and read weights for seconds. Thread-safe; concurrent callers load once."""
        with self._load_lock:
            with self._lock:
                model, path, generation = self._model, self._weights_path, self._generation
            if model is not None:
                return model
            self._set_state(ModelState.LOADING, self._source_text(path))
            try:
                import_torch()
                from rpn_core.rpn import loading as rpn_loading

                if path is None:
                    import resources

                    model = rpn_loading.load_embedded_model(
                        resources.embedded_weights(), device=self._device
                    )
                else:
                    model = rpn_loading.load_model(path, device=self._device)
                model.prepare_inference()  # the first proposals then take their usual time
            except BaseException as exc:
                self._set_state(ModelState.FAILED, describe_exception(exc))
                raise
            with self._lock:
                current = generation == self._generation
                if current:
                    self._model = model
            if current:
                self._set_state(ModelState.READY, self._source_text(path))
            return model

    @staticmethod
    def _source_text(path: Path | None) -> str:
        return "embedded weights" if path is None else str(path)

    def _set_state(self, state: ModelState, message: str) -> None:
        self.state = state
        self.message = message
        self.state_changed.emit(state.value, message)


def without_gc_pauses(fn: Callable[[], object]) -> object:
    """Run ``fn`` (on a worker thread) with the cyclic garbage collector paused, then freeze
    what it built. Parsing a 100 MB COCO file creates millions of dicts and lists; each full
    collection over them holds the GIL for up to a second -- a freeze of the GUI thread, although
    the work runs elsewhere. JSON data has no reference cycles, so reference counting alone
    frees it; frozen objects are simply never scanned again."""
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return fn()
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
