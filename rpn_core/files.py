"""Opening user files safely: regular files only, never more than a stated limit.

Every reader of a user's file goes through :func:`open_regular` or :func:`read_regular`:

* the file is opened with ``O_NONBLOCK``, so a FIFO (named pipe) called ``img.xml`` cannot
  block the caller, and then checked with ``fstat`` on the open descriptor (no race between
  the check and the read): a FIFO, a device such as ``/dev/zero``, a socket or a directory is
  refused as "not a regular file (a FIFO)" -- the honest reason, not "empty" or "not found";
* the size is checked against the caller's limit (:mod:`rpn_core.limits`) before a byte is
  read, and the read stops at the limit even if the file grows meanwhile.

Errors are raised as the caller's typed error (``error(path, reason)``), so a VOC reader raises
``AnnotationReadError``, the weights reader ``WeightsError``, each naming the file.
:func:`is_regular_file` answers the existence questions (``has_annotation``) and never raises,
not even for a name longer than the file system allows (``ENAMETOOLONG``).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from rpn_core.limits import describe_bytes

__all__ = ["is_regular_file", "not_regular_reason", "open_regular", "read_regular"]

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_OPEN_FLAGS |= getattr(os, "O_BINARY", 0)

ErrorFactory = Callable[[Path, str], Exception]


def not_regular_reason(mode: int) -> str | None:
    """``None`` for a regular file, else the reason it is refused ("not a regular file (a
    FIFO)")."""
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO, i.e. a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((name for test, name in kinds if test(mode)), "not a file")
    return f"not a regular file ({kind})"


def is_regular_file(path: str | Path) -> bool:
    """Whether ``path`` is (or links to) a regular file; ``False`` for any OS error
    (missing, too long a name, permission, a loop) instead of raising."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):  # ValueError: an embedded NUL byte
        return False


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "file not found"
    return f"cannot read: {exc.strerror or exc}"


def open_regular(
    path: str | Path, *, limit: int | None, what: str, error: ErrorFactory
) -> BinaryIO:
    """``path`` opened for binary reading after the regular-file and size checks.

    ``limit`` is the largest size accepted (``None``: no limit); ``what`` names the kind of
    file in the message ("a VOC file"). Raises ``error(path, reason)``.
    """
    path = Path(path)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise error(path, _os_reason(exc)) from exc
    except ValueError as exc:  # NUL in the name
        raise error(path, f"invalid file name: {exc}") from exc
    try:
        st = os.fstat(fd)
        reason = not_regular_reason(st.st_mode)
        if reason is None and limit is not None and st.st_size > limit:
            reason = (
                f"file is {describe_bytes(st.st_size)}, above the limit of"
                f" {describe_bytes(limit)} for {what}"
            )
        if reason is not None:
            raise error(path, reason)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, *, limit: int, what: str, error: ErrorFactory) -> bytes:
    """The bytes of ``path`` (see :func:`open_regular`); never more than ``limit`` bytes:
    a file that grew past the limit after the check is refused too."""
    path = Path(path)
    with open_regular(path, limit=limit, what=what, error=error) as f:
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise error(path, _os_reason(exc)) from exc
        except MemoryError as exc:
            raise error(path, f"out of memory reading {what}") from exc
    if len(data) > limit:
        raise error(path, f"file grew above the limit of {describe_bytes(limit)} for {what}")
    return data
