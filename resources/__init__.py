"""Package data: icons, sample images and the embedded RPN weights.

Read with :mod:`importlib.resources` (``resources.path_of("samples/astronaut.jpg")``).
"""

from __future__ import annotations

import contextlib
from importlib import resources as _res
from pathlib import Path

SAMPLE_IMAGE = "samples/astronaut.jpg"


def path_of(relative: str) -> Path:
    """A filesystem path to a packaged resource (the package is installed unzipped)."""
    traversable = _res.files(__name__).joinpath(relative)
    with contextlib.ExitStack() as stack:
        return Path(stack.enter_context(_res.as_file(traversable)))
