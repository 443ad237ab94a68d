"""Package data: icons, sample images and the embedded RPN weights.

Read with :mod:`importlib.resources` (``resources.path_of("samples/astronaut.jpg")``).
"""

from __future__ import annotations

import contextlib
from importlib import resources as _res
from pathlib import Path

SAMPLE_IMAGE = "samples/astronaut.jpg"
EMBEDDED_WEIGHTS = "weights/rpn_mobilenetv2.safetensors"
EMBEDDED_SIDECAR = "weights/rpn_mobilenetv2.json"


def path_of(relative: str) -> Path:
    """A filesystem path to a packaged resource (the package is installed unzipped)."""
    traversable = _res.files(__name__).joinpath(relative)
    with contextlib.ExitStack() as stack:
        return Path(stack.enter_context(_res.as_file(traversable)))


def embedded_weights() -> Path:
    """The embedded RPN's safetensors file (its sidecar is :func:`embedded_sidecar`)."""
    return path_of(EMBEDDED_WEIGHTS)


def embedded_sidecar() -> Path:
    """The embedded RPN's JSON sidecar: configuration, sha256 and model-card figures."""
    return path_of(EMBEDDED_SIDECAR)
