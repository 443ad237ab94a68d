"""RPN Studio's Qt GUI (PySide6). Qt-free logic lives in :mod:`rpn_core`.

Start-up path (``rpn-studio`` with no arguments) must not import torch: GUI modules import it
lazily inside the functions that need a model.
"""

from app._compat import immortalize_singletons

# Before any Qt call: PySide6 6.12.0 drops references to None/True on CPython 3.11 (see _compat).
immortalize_singletons()
