"""Background scan of a folder's images so the file list shows every image's state (no boxes,
annotated, verified, unreadable + reason) before the user visits it.

The scan is the core generator :func:`rpn_core.annotation.image_state.scan_states`, run by a
:class:`~app.common.workers.Worker` on the ``FILES`` lane with *private* annotation stores;
results arrive in batches as ``found(list[(Path, ImageState, str)])`` on the GUI thread.
``cancel()`` stops a scan at its next batch (a new folder was opened).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.common.workers import Lane, Worker, wait_for_lane
from rpn_core.annotation.formats import AnnotationStore
from rpn_core.annotation.image_state import scan_states

__all__ = ["StateScanner"]


class StateScanner(QObject):
    """Signal ``found(object)``: a list of ``(path, ImageState, tooltip)``."""

    found = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._worker: Worker | None = None

    def start(
        self, paths: Sequence[Path], make_stores: Callable[[], list[AnnotationStore]]
    ) -> None:
        self.cancel()
        worker = Worker(scan_states, list(paths), make_stores)
        worker.signals.progress.connect(lambda batch, w=worker: self._forward(w, batch))
        self._worker = worker.start(Lane.FILES)

    def _forward(self, worker: Worker, batch: object) -> None:
        if worker is self._worker:  # a cancelled scan's late batches are dropped
            self.found.emit(batch)

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    def wait(self, msecs: int = 30_000) -> bool:
        return wait_for_lane(Lane.FILES, msecs)
