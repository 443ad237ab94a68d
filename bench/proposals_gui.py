"""How fast the Proposals panel answers, in the real main window (offscreen).

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/proposals_gui.py [IMAGE] [--weights FILE]

Prints, one ``key=value`` per line:
``first_proposals_s``  opening the image -> proposals listed, in a fresh process (imports
                       torch and loads the weights in the background: the cold start);
``model_load_s``       the part of it spent importing torch and loading the weights;
``run_ms``             median of warm runs on the same image (backbone + head, worker thread);
``reselect_ms``        median of control changes (top-N, NMS IoU, threshold, min size) applied
                       to the cached raw output: ``select_proposals`` + layer + table + summary;
``select_ms``          median of ``select_proposals`` alone on the same changes;
``gui_stall_max_ms``   longest the GUI thread did not answer a 10 ms timer during the
                       first run (and its 99th percentile): the background work's GIL share.
The default image is the shipped sample (``resources/samples/astronaut.jpg``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

import app  # noqa: E402,F401 - PySide6 work-around first
import resources  # noqa: E402

SETTINGS = [
    dict(top_n=100),
    dict(top_n=1000),
    dict(nms_iou=0.5),
    dict(nms_iou=0.9),
    dict(score_threshold=0.5),
    dict(score_threshold=0.0),
    dict(min_size=32.0),
    dict(top_n=300),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", default=str(resources.path_of(resources.SAMPLE_IMAGE)))
    parser.add_argument("--weights", default=None, help="weights file (default: embedded)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    _qapp = QApplication.instance() or QApplication([])  # kept alive for the run
    from app.common.settings import AppSettings
    from app.shell.main_window import MainWindow

    ini = Path(f"/tmp/rpn_studio_bench_{time.time_ns()}.ini")
    window = MainWindow(settings=AppSettings(QSettings(str(ini), QSettings.Format.IniFormat)))
    window.resize(1400, 880)
    window.show()
    panel = window.proposals_panel
    if args.weights:
        panel.set_weights(args.weights)

    def wait_idle(timeout_s: float = 300) -> None:
        """Run the real event loop (idle between events, as in the app) until the run ends."""
        loop, timer, t = QEventLoop(), QTimer(), time.perf_counter()

        def check() -> None:
            status = panel.ui.status_label.text()
            if "Could not" in status or "failed" in status:
                loop.exit(1)
            elif not panel.runner.is_busy() and "rpn" in panel._runs:
                loop.exit(0)
            elif time.perf_counter() - t > timeout_s:
                loop.exit(2)

        timer.timeout.connect(check)
        timer.start(5)
        code = loop.exec()
        timer.stop()
        if code:
            raise SystemExit(f"run did not finish: {panel.ui.status_label.text()}")

    # GUI stalls: the longest gap between ticks of a 10 ms timer while the first run (torch
    # import, weights, backbone) goes on in the background.
    ticks: list[float] = []
    ticker = QTimer()
    ticker.timeout.connect(lambda: ticks.append(time.perf_counter()))
    ticker.start(10)
    t0 = time.perf_counter()
    window.open_paths([args.image])
    wait_idle()
    first = time.perf_counter() - t0
    ticker.stop()
    gaps = np.diff(ticks) * 1000 if len(ticks) > 1 else np.zeros(1)
    print(f"image={args.image} size={panel._runs['rpn'].raw.image_size}")
    print(f"first_proposals_s={first:.2f}")
    print(f"model_load_s={panel.timings.get('model_load_s', 0.0):.2f}")
    print(f"gui_stall_max_ms={gaps.max():.0f} gui_stall_p99_ms={np.percentile(gaps, 99):.0f}")

    runs = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        panel.run()
        wait_idle()
        runs.append((time.perf_counter() - t) * 1000)
    print(f"run_ms={statistics.median(runs):.1f}")

    from rpn_core.rpn.selection import select_proposals

    ui = panel.ui
    spins = dict(
        top_n=ui.top_n_spin,
        nms_iou=ui.nms_spin,
        score_threshold=ui.threshold_spin,
        min_size=ui.min_size_spin,
    )
    reselect, select = [], []
    raw = panel._runs["rpn"].raw
    for _ in range(args.repeats):
        for change in SETTINGS:
            ((name, value),) = change.items()
            t = time.perf_counter()
            spins[name].setValue(value)  # valueChanged -> reselect, synchronously
            reselect.append((time.perf_counter() - t) * 1000)
            s = ui.settings()
            t = time.perf_counter()
            select_proposals(
                raw,
                top_n=s.top_n,
                score_threshold=s.score_threshold,
                nms_iou=s.nms_iou,
                min_size=s.min_size,
            )
            select.append((time.perf_counter() - t) * 1000)
    print(f"reselect_ms={statistics.median(reselect):.1f}")
    print(f"select_ms={statistics.median(select):.1f}")
    panel.shutdown()
    ini.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
