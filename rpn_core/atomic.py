"""Atomic file writes and one-time backups, so a failed save never loses a file.

A write goes to a temporary file in the target's folder (same file system), is flushed and
``fsync``-ed, then moved over the target with :func:`os.replace`; readers see either the old
or the new file, never a half-written one. On failure the temporary file is removed and an
:class:`~rpn_core.annotation.data.AnnotationWriteError` names the target and the reason.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from rpn_core.annotation.data import AnnotationWriteError

__all__ = ["atomic_write_bytes", "atomic_write_text", "backup_once", "backup_path"]


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file + fsync + ``os.replace``).

    Missing parent folders are created. An existing file's permission bits are kept.
    Raises :class:`AnnotationWriteError` on any OS error (permission, disk full, ...).
    """
    path = Path(path)
    tmp_name: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp_name, _mode_for(path))
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise AnnotationWriteError(path, f"cannot write: {exc.strerror or exc}") from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """:func:`atomic_write_bytes` for text (UTF-8, newlines kept as given)."""
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise AnnotationWriteError(path, f"text cannot be encoded as {encoding}: {exc}") from exc
    atomic_write_bytes(path, data)


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the platform allows opening folders (not Windows)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def backup_path(path: str | Path) -> Path:
    """The first free name among ``name.bak``, ``name.bak1``, ``name.bak2``..."""
    path = Path(path)
    candidate = path.with_name(path.name + ".bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak{n}")
        n += 1
    return candidate


def backup_once(path: str | Path) -> Path | None:
    """Copy ``path`` to a fresh backup name (never overwriting an older backup).

    Returns the backup's path, or ``None`` when ``path`` does not exist. Callers call it once
    per damaged or foreign file, before the first overwrite. Raises
    :class:`AnnotationWriteError` if the copy fails (then the original must not be overwritten).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AnnotationWriteError(path, f"cannot back up: {exc.strerror or exc}") from exc
    target = backup_path(path)
    atomic_write_bytes(target, data)
    return target
