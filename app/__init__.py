"""RPN Studio's Qt GUI (PySide6). Qt-free logic lives in :mod:`rpn_core`.

Start-up path (``rpn-studio`` with no arguments) must not import torch: GUI modules import it
lazily inside the functions that need a model.
"""
