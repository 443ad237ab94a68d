"""Screenshots of the annotation workspace for docs/: ``workspace.png`` (boxes, anchor
overlay hidden), ``workspace_anchors.png`` (the same with the anchor lab's overlay) and
``workspace_unreadable.png`` (an unreadable file in a folder) (run under Xvfb for a real window):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/workspace_screenshots.py

Uses real photos from Debian's opencv-doc examples (not reserved for evaluation), a zero-byte
"broken.jpg" to show how an unreadable file is reported, and throw-away settings.
"""

from __future__ import annotations

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


def main(out_dir: Path) -> None:
    app = create_application()
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
    settle(app)
    window.grab().save(str(out_dir / "workspace_anchors.png"))
    overlay = getattr(getattr(window, "anchor_lab", None), "overlay", None)
    if overlay is not None:  # the annotation view on its own, without the anchor overlay
        overlay.setVisible(False)
    settle(app)
    window.grab().save(str(out_dir / "workspace.png"))
    # An unreadable file: marked in the list, reason in the message bar, the app goes on.
    window.workspace.go_to(window.workspace.images.index(folder / "broken.jpg"))
    settle(app)
    window.grab().save(str(out_dir / "workspace_unreadable.png"))
    window.workspace.save_all()
    window.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs")
