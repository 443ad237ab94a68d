"""Start-up without a display (issue 14): one clear line and a non-zero exit, never Qt's abort."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.common.display import XCB_PACKAGES, display_problem

ROOT = Path(__file__).resolve().parents[1]


def test_no_display_is_one_clear_line():
    text = display_problem({}, "linux", lambda _lib: "found")
    assert text is not None and "\n" not in text and "DISPLAY" in text


def test_missing_xcb_libraries_name_the_debian_packages():
    have = {"xcb-cursor", "EGL", "fontconfig"}
    text = display_problem({"DISPLAY": ":0"}, "linux", lambda lib: "x" if lib in have else None)
    assert "apt-get install" in text and "libxcb-icccm4" in text and "libxcb-cursor0" not in text
    assert display_problem({"DISPLAY": ":0"}, "linux", lambda _lib: "found") is None


def test_a_chosen_platform_wayland_and_other_systems_are_not_second_guessed():
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux", lambda _l: None) is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux", lambda _l: None) is None
    assert display_problem({}, "darwin", lambda _l: None) is None
    assert display_problem({}, "win32", lambda _l: None) is None
    assert set(XCB_PACKAGES.values()) >= {"libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0"}


def test_the_gui_entry_point_without_a_display_exits_2_without_importing_qt():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env["PYTHONPATH"] = str(ROOT)
    code = (
        "import sys, app.__main__ as m; rc = m.main([]); "
        "print('qt' if 'PySide6' in sys.modules else 'no-qt'); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stdout.strip() == "no-qt"
    assert len(done.stderr.strip().splitlines()) == 1 and "no display" in done.stderr
