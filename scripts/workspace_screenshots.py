"""Screenshots of the annotation workspace for docs/: ``workspace.png`` (the window a first-time
user sees: ``scripts/run`` with a fresh profile on the sample image, default layers, the
embedded RPN's proposals), ``workspace_boxes.png`` (GT boxes on a photo, anchor overlay hidden),
``workspace_anchors.png`` (the same with every anchor label drawn) and
``workspace_unreadable.png`` (an unreadable file in a folder) (run under Xvfb for a real window):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/workspace_screenshots.py

Uses real photos from Debian's opencv-doc examples (not reserved for evaluation), a zero-byte
"broken.jpg" to show how an unreadable file is reported, and throw-away settings.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.common.settings import AppSettings  # noqa: E402
from app.shell.launch import create_application  # noqa: E402
from app.shell.main_window import MainWindow  # noqa: E402
from app.state.undo import AddBoxesCommand  # noqa: E402
from rpn_core.annotation.data import Box  # noqa: E402

PHOTOS = Path("/usr/share/doc/opencv-doc/examples/data")
NAMES = ["messi5.jpg", "fruits.jpg", "squirrel_cls.jpg", "home.jpg", "basketball1.png"]
# Hand-placed boxes on messi5.jpg (548 x 342), checked by eye on the screenshot.
MESSI = [
    Box(68, 60, 458, 336, "person"),
    Box(336, 288, 388, 336, "ball"),
    Box(368, 145, 440, 258, "person", difficult=True),
]


def settle(app, rounds: int = 20) -> None:
    for _ in range(rounds):
        app.processEvents()


def wait_for_torch(app, seconds: float = 30.0) -> None:
    """Let the anchor lab's background torch import finish, so the shot shows a settled app."""
    import time

    from app.shell.launch import _torch_ready

    deadline = time.time() + seconds
    while not _torch_ready() and time.time() < deadline:
        app.processEvents()
        time.sleep(0.05)
    for _ in range(100):
        app.processEvents()
        time.sleep(0.05)
    print(f"torch ready: {_torch_ready()}")


def wait_for_proposals(app, window, seconds: float = 60.0) -> None:
    import time

    panel = window.proposals_panel
    deadline = time.time() + seconds
    while (panel.runner.is_busy() or "rpn" not in panel._runs) and time.time() < deadline:
        app.processEvents()
        time.sleep(0.05)
    settle(app, 50)
    print(f"proposals shown: {len(panel.layer.boxes)} listed, {panel.layer.drawn_count} drawn")


def default_window(app, out_dir: Path) -> None:
    """What ``scripts/run`` shows a new user: fresh settings and data folders, the sample."""
    import resources

    tmp = Path(tempfile.mkdtemp(prefix="rpn-first-run-"))
    window = MainWindow(settings=AppSettings.in_file(tmp / "settings.ini"))
    window.open_paths([str(resources.path_of(resources.SAMPLE_IMAGE))])
    window.show()
    wait_for_torch(app)
    wait_for_proposals(app, window)
    window.grab().save(str(out_dir / "workspace.png"))
    window.close()
    settle(app)
    shutil.rmtree(tmp, ignore_errors=True)


def main(out_dir: Path) -> None:
    fresh = Path(tempfile.mkdtemp(prefix="rpn-profile-"))  # no annotations of earlier runs
    os.environ["XDG_DATA_HOME"] = str(fresh / "data")
    os.environ["XDG_CONFIG_HOME"] = str(fresh / "config")
    app = create_application()
    default_window(app, out_dir)
    tmp = Path(tempfile.mkdtemp(prefix="rpn-shots-"))
    folder = tmp / "photos"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(PHOTOS / name, folder / name)
    (folder / "broken.jpg").write_bytes(b"")
    settings = AppSettings.in_file(tmp / "settings.ini")
    settings.q.setValue("proposals/auto_run", False)
    window = MainWindow(settings=settings)
    window.resize(1500, 900)
    window.show()
    window.open_paths([folder])
    window.workspace.go_to(window.workspace.images.index(folder / "messi5.jpg"))
    for name in ("person", "ball", "dog"):
        window.workspace.classes.add(name)
    window.workspace.classes.set_default("person")
    doc = window.document
    doc.undo_stack.push(AddBoxesCommand(doc, MESSI, "Draw boxes"))
    doc.select([0])
    wait_for_torch(app)
    settle(app)
    window.canvas.zoom_fit()
    window.actions.all_anchors.setChecked(True)
    settle(app)
    window.grab().save(str(out_dir / "workspace_anchors.png"))
    overlay = getattr(getattr(window, "anchor_lab", None), "overlay", None)
    if overlay is not None:  # the annotation view on its own, without the anchor overlay
        overlay.setVisible(False)
    settle(app)
    window.grab().save(str(out_dir / "workspace_boxes.png"))
    # An unreadable file: marked in the list, reason in the message bar, the app goes on.
    window.workspace.go_to(window.workspace.images.index(folder / "broken.jpg"))
    settle(app)
    window.grab().save(str(out_dir / "workspace_unreadable.png"))
    window.workspace.save_all()
    window.close()
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(fresh, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs")
