"""Importing torch safely from several threads at once.

Imported cheaply (no torch at module top); every background path calls :func:`import_torch`
before its first torch operation.
"""

from __future__ import annotations

import threading

_TORCH_IMPORT_LOCK = threading.Lock()


def import_torch() -> None:
    """Import torch and torchvision completely, once per process, from any thread.

    Two threads importing them at the same time (the anchor lab's warm-up and the model
    loader) let one run a torch op while the other was half-way through torchvision's import
    of ``torch._dynamo``, which failed with "'prims' object has no attribute 'sum'". Every
    background path that is about to use torch calls this first, so no torch op runs before
    the whole chain is imported.
    """
    with _TORCH_IMPORT_LOCK:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
