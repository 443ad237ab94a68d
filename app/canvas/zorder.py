"""The one z-order of the canvas scene (ARCHITECTURE.md rule 10): every item's ``setZValue`` comes from here.

Higher values are drawn on top. Gaps leave room for layers added later without renumbering.
"""

from __future__ import annotations

import enum

__all__ = ["Z"]


class Z(enum.IntEnum):
    """Scene layers, bottom to top."""

    IMAGE = 0
    ANCHORS = 10
    PROPOSALS = 20
    GT_BOXES = 30
    SELECTED_BOX = 35
    LABELS = 40
    RUBBER_BAND = 50
    HANDLES = 60
