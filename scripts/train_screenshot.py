"""Screenshot of the Train dock for docs/: ``train_panel.png`` -- the embedded RPN fine-tuned
in the real window on the fine-tuning benchmark's 20 ``vtest.avi`` frames (people boxed by the
teacher, ``bench/data/vtest_people.json``), with the loss curves and recall before/after.
Run under Xvfb for a real window::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/train_screenshot.py

Needs Debian's opencv-doc (the video); writes the frames and YOLO boxes to a temporary folder.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from finetune import load_items  # noqa: E402
from PIL import Image  # noqa: E402

from app.common.settings import AppSettings  # noqa: E402
from app.shell.launch import create_application  # noqa: E402
from app.shell.main_window import MainWindow  # noqa: E402
from rpn_core.annotation.data import Box, ImageAnnotation  # noqa: E402
from rpn_core.annotation.formats import open_store  # noqa: E402


def pump(app, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        app.processEvents()
        time.sleep(0.02)


def main(out_dir: Path) -> None:
    app = create_application()
    tmp = Path(tempfile.mkdtemp(prefix="rpn-train-shot-"))
    folder = tmp / "vtest"
    folder.mkdir()
    train, val = load_items()
    store = open_store(folder, "yolo")
    for i, (rgb, boxes) in enumerate(train[:16] + val[:4]):
        path = folder / f"frame{i:02d}.png"
        Image.fromarray(rgb).save(path)
        h, w = rgb.shape[:2]
        store.save(ImageAnnotation(path, w, h, [Box(*b, label="person") for b in boxes.tolist()]))
    settings = AppSettings.in_file(tmp / "settings.ini")
    settings.q.setValue("proposals/auto_run", False)
    window = MainWindow(settings=settings)
    window.resize(1500, 950)
    window.show()
    window.open_paths([folder])
    lab = getattr(window, "anchor_lab", None)
    if lab is not None:
        lab.overlay.setVisible(False)
    window.docks["train"].raise_()
    panel = window.train_panel
    pump(app, 1.0)
    panel.ui.epochs.setValue(8)
    panel.start()
    deadline = time.time() + 600
    while panel.is_running() and time.time() < deadline:
        pump(app, 0.2)
    pump(app, 2.0)
    panel.scroll.ensureWidgetVisible(panel.ui.recall_label)  # curves and recall in view
    pump(app, 1.0)
    window.grab().save(str(out_dir / "train_panel.png"))
    window.close()
    pump(app, 0.2)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs")
