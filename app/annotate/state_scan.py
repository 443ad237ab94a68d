"""Background scan of a folder's images so the file list shows every image's state (no boxes,
annotated, verified, unreadable + reason) before the user visits it.

Runs on its own one-thread pool with *private* annotation stores (a store is not shared between
threads); results arrive in batches as ``found(list[(Path, ImageState, str)])`` on the GUI
thread. ``cancel()`` stops a scan (a new folder was opened).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from app.common.workers import without_gc_pauses
from rpn_core.annotation.data import AnnotationReadError
from rpn_core.annotation.formats import AnnotationStore
from rpn_core.annotation.image_state import ImageState, state_of
from rpn_core.images.loading import ImageReadError, probe_image

__all__ = ["StateScanner"]

BATCH = 64


class _Signals(QObject):
    found = Signal(object)


def scan_one(path: Path, stores: Sequence[AnnotationStore]) -> tuple[Path, ImageState, str]:
    """The state of one image from its header and its annotation file (if any)."""
    try:
        width, height = probe_image(path)
    except ImageReadError as exc:
        return (path, ImageState.UNREADABLE, exc.reason)
    for store in stores:
        if store.has_annotation(path):
            try:
                ann = store.load(path, width=width, height=height)
            except AnnotationReadError as exc:
                return (path, ImageState.EMPTY, f"annotation unreadable: {exc.reason}")
            return (path, *state_of(ann))
    return (path, ImageState.EMPTY, "no annotation file")


class _Scan(QRunnable):
    def __init__(
        self,
        paths: list[Path],
        make_stores: Callable[[], list[AnnotationStore]],
        signals: _Signals,
        cancelled: threading.Event,
    ) -> None:
        super().__init__()
        self.paths, self.make_stores = paths, make_stores
        self.signals, self.cancelled = signals, cancelled

    def run(self) -> None:
        try:
            stores = without_gc_pauses(self.make_stores)  # a 100 MB COCO file: no GC pauses
        except Exception:  # noqa: BLE001 - no scan rather than a crash; visits still work
            return
        batch = []
        for path in self.paths:
            if self.cancelled.is_set():
                return
            batch.append(scan_one(path, stores))
            if len(batch) >= BATCH:
                self.signals.found.emit(batch)
                batch = []
        if batch and not self.cancelled.is_set():
            self.signals.found.emit(batch)


class StateScanner(QObject):
    """Signal ``found(object)``: a list of ``(path, ImageState, tooltip)``."""

    found = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._cancelled = threading.Event()
        self._signals = _Signals()
        self._signals.found.connect(self.found)

    def start(
        self, paths: Sequence[Path], make_stores: Callable[[], list[AnnotationStore]]
    ) -> None:
        self.cancel()
        self._cancelled = threading.Event()
        self._pool.start(_Scan(list(paths), make_stores, self._signals, self._cancelled))

    def cancel(self) -> None:
        self._cancelled.set()

    def wait(self, msecs: int = 30_000) -> bool:
        return self._pool.waitForDone(msecs)
