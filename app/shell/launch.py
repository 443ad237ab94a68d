"""Create the QApplication and the main window (imported only when the GUI really starts).

Start-up probe (used by ``bench/startup.py``): with ``RPN_STUDIO_STARTUP_PROBE=<epoch seconds>``
the app prints ``first_window_ms=<ms since that time>`` when the canvas first paints (the
window is on screen with the image),
then ``torch_imported_ms=<ms>`` when (if) a background import of torch completes, and quits
after ``RPN_STUDIO_PROBE_WAIT_S`` seconds (default 10) at the latest.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from PySide6.QtCore import QEvent, QObject, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication

import resources
from app.shell.main_window import MainWindow

__all__ = ["create_application", "run_gui"]

ORGANIZATION = "RPN Studio"
APPLICATION = "RPN Studio"


def create_application() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    return app


def _torch_ready() -> bool:
    module = sys.modules.get("torch")
    spec = getattr(module, "__spec__", None)
    return module is not None and not getattr(spec, "_initializing", False)


class _FirstPaint(QObject):
    """Prints the time of the canvas's first paint (the sample is on screen), once."""

    def __init__(self, t0: float, parent: QObject) -> None:
        super().__init__(parent)
        self.t0 = t0
        self.done = False

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if not self.done and event.type() == QEvent.Type.Paint:
            self.done = True
            print(f"first_window_ms={(time.time() - self.t0) * 1000:.1f}", flush=True)
        return False


def _install_probe(app: QApplication, window: MainWindow, t0: float) -> None:
    painted = _FirstPaint(t0, window)
    window.canvas.viewport().installEventFilter(painted)

    deadline = time.time() + float(os.environ.get("RPN_STUDIO_PROBE_WAIT_S", "10"))
    timer = QTimer(app)

    def poll() -> None:
        if _torch_ready():
            print(f"torch_imported_ms={(time.time() - t0) * 1000:.1f}", flush=True)
        elif time.time() < deadline:
            return
        else:
            print("torch_imported_ms=nan", flush=True)
        timer.stop()
        app.quit()

    timer.timeout.connect(poll)
    timer.start(20)


def run_gui(paths: Sequence[str], *, recursive: bool = False) -> int:
    """Open the main window on ``paths`` (default: the embedded sample) and run the event loop."""
    app = create_application()
    window = MainWindow()
    targets = list(paths) or [str(resources.path_of(resources.SAMPLE_IMAGE))]
    window.open_paths(targets, recursive=recursive)
    probe = os.environ.get("RPN_STUDIO_STARTUP_PROBE")
    if probe:
        _install_probe(app, window, float(probe))
    window.show()
    code = app.exec()
    # Background jobs (a torch import, a prefetch) must finish before Python finalizes.
    QThreadPool.globalInstance().waitForDone(30_000)
    return code
