"""The window opens on the embedded sample; the command line works without a display and
without importing Qt or torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app_testing import open_window

import resources

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *, display: bool = False) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    if display:
        env["QT_QPA_PLATFORM"] = "offscreen"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_window_shows_the_embedded_sample(qtbot, app_settings):
    sample = resources.path_of(resources.SAMPLE_IMAGE)
    window = open_window(qtbot, app_settings, [sample])
    assert window.document.size == (512, 512)
    assert not window.canvas.image_item.pixmap().isNull()
    assert window.windowTitle() == "astronaut.jpg [1/1] — RPN Studio"
    # The packaged sample's folder stays clean: its annotations go to the user data folder.
    assert window.workspace.store.folder.resolve() != sample.parent.resolve()
    assert window.isVisible() and window.canvas.zoom > 0


def test_help_lists_gui_usage_and_commands_without_display_or_qt():
    code = (
        "import sys\nfrom app.__main__ import main\ntry:\n    main(['--help'])\n"
        "except SystemExit as e:\n    print('exit', e.code)\n"
        "print('qt', any(m.startswith('PySide6') for m in sys.modules))\n"
        "print('torch', 'torch' in sys.modules)"
    )
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "usage: rpn-studio [-h] [--version] [--recursive] [PATH ...]" in text
    for command in ("propose", "eval", "train", "anchors", "convert"):
        assert f"  {command}" in text
    assert "exit 0" in text and "qt False" in text and "torch False" in text


def test_version_and_subcommand_delegation_without_qt():
    code = (
        "import sys\nfrom app.__main__ import main\nfor argv in (['--version'], "
        "['convert', '--help']):\n    try:\n        main(argv)\n    except SystemExit as e:\n"
        "        print('exit', e.code)\n"
        "print('qt', any(m.startswith('PySide6') for m in sys.modules))"
    )
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert "rpn-studio 0." in out.stdout
    assert "--from" in out.stdout and "--to" in out.stdout  # the convert command's own help
    assert out.stdout.count("exit 0") == 2 and "qt False" in out.stdout


def test_gui_modules_do_not_import_torch_at_import_time():
    out = run_python(
        "import sys, app.shell.main_window, app.shell.launch\nprint('torch' in sys.modules)", display=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_many_qt_calls_do_not_exhaust_none_refcount():
    """PySide6 6.12.0 on CPython 3.11 drops a reference to None per void call (see
    app/_compat.py); 50,000 calls would abort the interpreter without the work-around."""
    code = (
        "import app\nfrom PySide6.QtCore import QObject, Signal\n"
        "class O(QObject):\n    s = Signal(bool)\n"
        "o = O()\nfor _ in range(50_000):\n    o.setObjectName('x')\n    o.s.emit(True)\n"
        "print('ok')"
    )
    out = run_python(code, display=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
