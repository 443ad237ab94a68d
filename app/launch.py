"""Create the QApplication and the main window (imported only when the GUI really starts).

Start-up probe (used by ``bench/startup.py``): with ``RPN_STUDIO_STARTUP_PROBE=<epoch seconds>``
the app prints ``first_window_ms=<ms since that time>`` once the window is shown and painted,
then ``torch_imported_ms=<ms>`` when (if) a background import of torch completes, and quits
after ``RPN_STUDIO_PROBE_WAIT_S`` seconds (default 10) at the latest.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

import resources
from app.main_window import MainWindow

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


def _install_probe(app: QApplication, t0: float) -> None:
    def first_window() -> None:
        print(f"first_window_ms={(time.time() - t0) * 1000:.1f}", flush=True)

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

    QTimer.singleShot(0, first_window)
    timer.timeout.connect(poll)
    timer.start(20)


def run_gui(paths: Sequence[str], *, recursive: bool = False) -> int:
    """Open the main window on ``paths`` (default: the embedded sample) and run the event loop."""
    app = create_application()
    window = MainWindow()
    targets = list(paths) or [str(resources.path_of(resources.SAMPLE_IMAGE))]
    window.open_paths(targets, recursive=recursive)
    window.show()
    probe = os.environ.get("RPN_STUDIO_STARTUP_PROBE")
    if probe:
        _install_probe(app, float(probe))
    return app.exec()
