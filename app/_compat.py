"""Work-around for a reference-counting bug of PySide6 6.12.0 on CPython 3.11.

Measured here (PySide6-Essentials 6.12.0, Python 3.11.7): every call of a Qt method that
returns ``void`` drops one reference to ``None`` (``QObject.setObjectName`` x1000 lowers
``sys.getrefcount(None)`` by 1000) and every ``Signal.emit`` drops one reference to ``True``.
From Python 3.12 on these singletons are immortal (PEP 683) and the bug is invisible; on 3.11
``None`` reaches zero after a few thousand GUI calls and the interpreter aborts with
``Fatal Python error: none_dealloc``. PySide6 6.11.3 does not have the bug.

:func:`immortalize_singletons` gives ``None``, ``True`` and ``False`` a huge reference count
(what PEP 683 does in 3.12), so no number of dropped references can free them. It is a no-op
on 3.12+ and on other interpreters. The real fix is a PySide6 without the bug (pin
``PySide6-Essentials<6.12`` for Python 3.11, or use Python >= 3.12).
"""

from __future__ import annotations

import sys

__all__ = ["immortalize_singletons"]

_DONE = False


def immortalize_singletons() -> None:
    global _DONE
    if _DONE or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    import ctypes

    for obj in (None, True, False):
        # ob_refcnt is the first field (Py_ssize_t) of every object in CPython 3.11.
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40
    _DONE = True
