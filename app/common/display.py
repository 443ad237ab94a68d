"""Can a window open here? Checked before Qt is imported, so that a machine without a display
(or without the X11 libraries Qt's ``xcb`` plugin needs) gets one clear line instead of Qt's
plugin abort (exit 134). Qt-free; the entry point (:mod:`app.__main__`) calls it.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Callable, Mapping

__all__ = ["XCB_PACKAGES", "display_problem"]

# Libraries of Qt 6's xcb platform plugin that desktops often lack -> their Debian/Ubuntu
# package (``ldd libqxcb.so`` of PySide6 6.x; the README lists the same packages).
XCB_PACKAGES = {
    "xcb-cursor": "libxcb-cursor0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1",
    "xcb-image": "libxcb-image0",
    "xcb-render-util": "libxcb-render-util0",
    "xcb-randr": "libxcb-randr0",
    "xcb-shape": "libxcb-shape0",
    "xcb-xkb": "libxcb-xkb1",
    "xkbcommon-x11": "libxkbcommon-x11-0",
    "EGL": "libegl1",
    "fontconfig": "libfontconfig1",
}


def display_problem(
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
    find_library: Callable[[str], str | None] = ctypes.util.find_library,
) -> str | None:
    """One line saying why no window can open, or ``None`` when it can (or we cannot tell).

    Only Linux and the BSDs are checked, and only when ``QT_QPA_PLATFORM`` is not set (then the
    user chose a platform, e.g. ``offscreen``, and Qt's own message is the right one)."""
    env = os.environ if environ is None else environ
    plat = sys.platform if platform is None else platform
    if not plat.startswith(("linux", "freebsd", "openbsd")) or env.get("QT_QPA_PLATFORM"):
        return None
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return (
            "rpn-studio: no display (neither DISPLAY nor WAYLAND_DISPLAY is set): start it in "
            "a desktop session or with 'ssh -X'; the headless commands need none "
            "(rpn-studio --help)"
        )
    if env.get("WAYLAND_DISPLAY"):
        return None  # Qt uses its Wayland plugin
    missing = [pkg for lib, pkg in XCB_PACKAGES.items() if find_library(lib) is None]
    if missing:
        return (
            "rpn-studio: Qt's X11 plugin needs system libraries that are missing; on "
            f"Debian/Ubuntu: sudo apt-get install {' '.join(missing)}"
        )
    return None
