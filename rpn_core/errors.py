"""The one base of RPN Studio's typed errors.

Every error the core raises about a user's file or run derives from :class:`RPNStudioError`,
so a caller can catch one type and show ``reason`` (what is wrong) next to ``path`` (which
file, or ``None`` when no file is involved) without duck typing.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["RPNStudioError"]


class RPNStudioError(Exception):
    """``path`` names the file (or is ``None``), ``reason`` says what is wrong."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        super().__init__(reason if self.path is None else f"{self.path}: {reason}")
