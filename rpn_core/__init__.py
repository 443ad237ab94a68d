"""Qt-free core of RPN Studio: boxes, anchors, labelling, formats, model, training.

Nothing here imports Qt (a test checks it in a fresh interpreter); torch is imported
lazily by the functions that need it, so importing :mod:`rpn_core` stays cheap.
"""

__version__ = "0.1.0"
