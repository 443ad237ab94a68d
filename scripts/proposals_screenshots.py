"""Screenshots of the Proposals dock for docs/: ``proposals_window.png`` (the embedded RPN's top
50 on the sample image with a few GT boxes, rank colouring, regression arrows, the best
proposal selected) and ``proposals_selective_search.png`` (Selective Search on the same
image). Run under Xvfb for a real window::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/proposals_screenshots.py

Uses the shipped sample (``resources/samples/astronaut.jpg``) and throw-away settings; the
GT boxes are drawn by hand for the picture only (never used for training or tuning).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import resources  # noqa: E402
from app.common.settings import AppSettings  # noqa: E402
from app.shell.launch import create_application  # noqa: E402
from app.shell.main_window import MainWindow  # noqa: E402
from app.state.undo import AddBoxesCommand  # noqa: E402
from rpn_core.annotation.data import Box  # noqa: E402

# Hand-placed on astronaut.jpg (512 x 512), checked by eye on the screenshot.
GT = [
    Box(5, 5, 507, 502, "person"),
    Box(175, 25, 330, 210, "head"),
    Box(330, 330, 512, 502, "helmet"),
    Box(0, 0, 108, 256, "flag"),
    Box(395, 20, 460, 340, "rocket"),
]


def pump(app, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        app.processEvents()
        time.sleep(0.02)


def wait_idle(app, panel, seconds: float = 120.0) -> None:
    deadline = time.time() + seconds
    pump(app, 0.5)
    while panel.runner.is_busy() and time.time() < deadline:
        pump(app, 0.1)
    pump(app, 1.0)


def main(out_dir: Path) -> None:
    app = create_application()
    tmp = Path(tempfile.mkdtemp(prefix="rpn-prop-shots-"))
    image = tmp / "astronaut.jpg"
    shutil.copy(resources.path_of(resources.SAMPLE_IMAGE), image)
    window = MainWindow(settings=AppSettings.in_file(tmp / "settings.ini"))
    window.resize(1500, 950)
    window.show()
    window.open_paths([image])
    for name in ("person", "head", "helmet", "flag", "rocket"):
        window.workspace.classes.add(name)
    doc = window.document
    doc.undo_stack.push(AddBoxesCommand(doc, GT, "Draw boxes"))
    doc.select([])
    lab = getattr(window, "anchor_lab", None)
    if lab is not None:  # the proposals on their own, without the anchor overlay
        lab.overlay.setVisible(False)
    window.docks["proposals"].raise_()
    panel = window.proposals_panel
    wait_idle(app, panel)
    ui = panel.ui
    ui.top_n_spin.setValue(50)
    ui.arrows_box.setChecked(True)
    pump(app, 0.5)
    ui.table.selectRow(0)
    window.canvas.zoom_fit()
    pump(app, 1.0)
    window.grab().save(str(out_dir / "proposals_window.png"))
    ui.set_method("selective-search")
    panel.run()
    wait_idle(app, panel)
    ui.table.selectRow(0)
    pump(app, 1.0)
    window.grab().save(str(out_dir / "proposals_selective_search.png"))
    window.workspace.save_all()
    window.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs")
