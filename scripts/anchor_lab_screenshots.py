"""Screenshots of the anchor lab for docs/: ``anchor_lab_faster_rcnn.png`` and
``anchor_lab_guide.png`` (the two label presets on the sample image with five GT boxes),
``anchor_inspector.png`` (one foreground anchor inspected) and ``anchor_design.png`` (IoU
k-means on a synthetic demo set). Run under Xvfb for a real window::

    xvfb-run -a -s "-screen 0 1800x1100x24" .venv/bin/python scripts/anchor_lab_screenshots.py

Uses the shipped sample (``resources/samples/astronaut.jpg``) with hand-drawn boxes (for the
picture only) and throw-away settings; the lab starts from the embedded model's anchors.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import resources  # noqa: E402
from app.anchor_lab.design_panel import run_design  # noqa: E402
from app.anchor_lab.settings_panel import PRESETS  # noqa: E402
from app.common.settings import AppSettings  # noqa: E402
from app.shell.launch import create_application  # noqa: E402
from app.shell.main_window import MainWindow  # noqa: E402
from rpn_core.annotation.data import Box  # noqa: E402

GT = [
    Box(175, 25, 320, 225, "head"),
    Box(0, 0, 120, 330, "flag"),
    Box(395, 20, 470, 330, "rocket"),
    Box(155, 320, 235, 395, "patch"),
    Box(325, 330, 512, 512, "helmet"),
]


def pump(app, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        app.processEvents()
        time.sleep(0.01)


def main(out_dir: Path) -> None:
    app = create_application()
    tmp = Path(tempfile.mkdtemp(prefix="rpn-lab-shots-"))
    image = tmp / "astronaut.jpg"
    shutil.copy(resources.path_of(resources.SAMPLE_IMAGE), image)
    settings = AppSettings.in_file(tmp / "settings.ini")
    settings.q.setValue("proposals/auto_run", False)  # the anchors on their own
    settings.set_layer_shown("anchors_all", True)  # every label, not the light default
    window = MainWindow(settings=settings)
    window.proposals_panel.ui.show_box.setChecked(False)
    window.open_paths([image])
    window.resize(1700, 1050)
    window.show()
    lab = window.anchor_lab
    while not lab.ready:
        pump(app, 0.05)
    window.document.insert_boxes(GT)
    window.document.select([])
    pump(app, 0.5)
    for name, preset in PRESETS.items():
        lab.settings_panel.preset.setCurrentText(name)
        pump(app, 0.5)
        window.anchor_docks[1].raise_()
        pump(app, 0.5)
        window.grab().save(str(out_dir / f"anchor_lab_{preset.replace('-', '_')}.png"))
    faster = next(name for name, preset in PRESETS.items() if preset == "faster-rcnn")
    lab.settings_panel.preset.setCurrentText(faster)
    pump(app, 0.3)
    window.document.select([0])
    pump(app, 0.3)
    window.anchor_docks[2].raise_()
    labels = lab.labels.labels.numpy()
    matched = lab.labels.matched_gt.numpy()
    index = int(np.flatnonzero((labels == 1) & (matched == 0))[0])  # a foreground of "head"
    lab.inspector.pinned = True
    lab.inspector.set_anchor(index)
    pump(app, 0.5)
    window.grab().save(str(out_dir / "anchor_inspector.png"))
    rng = np.random.default_rng(0)
    centres = np.array([[40, 40], [90, 180], [200, 110], [300, 300], [60, 120]])
    wh = centres[rng.integers(0, len(centres), 400)] * np.exp(rng.normal(0, 0.25, (400, 2)))
    xy = rng.uniform(0, 200, (400, 2))
    items = [("demo", (600, 800), np.concatenate([xy, xy + wh], 1))]  # input-frame boxes
    levels = tuple(lv.stride for lv in lab.anchor_config.levels)  # the lab's (model's) levels
    run = run_design(items, 12, seed=0, restarts=5, stride=levels,
                     source="a synthetic demo set")  # fmt: skip
    window.anchor_docks[3].raise_()
    lab.design.show_run(run)
    pump(app, 0.8)
    window.grab().save(str(out_dir / "anchor_design.png"))
    window.workspace.save_all()
    window.close()
    pump(app, 0.2)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs")
