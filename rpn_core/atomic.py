"""Atomic file writes and one-time backups, so a failed save never loses a file.

A write goes to a temporary file in the target's folder (same file system), is flushed and
``fsync``-ed, then moved over the target with :func:`os.replace`; readers see either the old
or the new file, never a half-written one. On failure the temporary file is removed and an
:class:`~rpn_core.annotation.data.AnnotationWriteError` names the target and the reason.

Temporary names are short and recognisable (``.rpnst-<12 hex of the target name's hash>-
<random>.tmp``), so any legal final name (up to 255 bytes) can be saved, and a temporary file
left by a kill (``SIGKILL``, power loss) is ours beyond doubt: :func:`clean_stale_temps`
removes those older than :data:`STALE_TEMP_AGE_S` from a folder the first time this process
writes into it. Saving through a symbolic link writes the link's target (the link stays).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import time
from pathlib import Path

from rpn_core.annotation.data import AnnotationWriteError

__all__ = [
    "STALE_TEMP_AGE_S",
    "atomic_write_bytes",
    "atomic_write_text",
    "backup_once",
    "backup_path",
    "clean_stale_temps",
    "temp_prefix",
]

TEMP_PREFIX = ".rpnst-"
STALE_TEMP_AGE_S = 3600.0  # a save takes seconds; an hour-old temp file is a killed save's
# Ours: the current short form, and the long form of earlier versions (".<target>.<8>.tmp").
_OURS = re.compile(r"^\.rpnst-[0-9a-f]{12}-[a-z0-9_]{8}\.tmp$")
_OURS_OLD = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")
_cleaned: set[str] = set()  # folders already cleaned by this process


def temp_prefix(name: str) -> str:
    """``.rpnst-<hash>-``: the temporary-name prefix for a target called ``name`` (20 bytes
    whatever the name's length, so the temporary name is always legal when the name is)."""
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:12]
    return f"{TEMP_PREFIX}{digest}-"


def clean_stale_temps(folder: str | Path, *, max_age_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Remove our temporary files older than ``max_age_s`` from ``folder`` (left by a killed
    save); returns those removed. Only names this module makes are touched (the old long form
    only when its target file exists beside it); errors are ignored (best effort)."""
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    names = {e.name for e in entries}
    for entry in entries:
        name = entry.name
        if not name.endswith(".tmp"):
            continue
        old = _OURS_OLD.match(name)
        if not (_OURS.match(name) or (old and old.group("target") in names)):
            continue
        with contextlib.suppress(OSError):
            st = entry.stat(follow_symlinks=False)
            if entry.is_file(follow_symlinks=False) and now - st.st_mtime > max_age_s:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _clean_once(folder: Path) -> None:
    key = os.fspath(folder)
    if key not in _cleaned:
        _cleaned.add(key)
        clean_stale_temps(folder)


def _write_target(path: Path) -> Path:
    """The file a save of ``path`` replaces: the target of a symbolic link (followed to the
    end, relative links resolved), so the link itself survives the save."""
    if not path.is_symlink():
        return path
    target = Path(os.path.realpath(path))
    try:
        regular = stat.S_ISREG(target.stat().st_mode)
    except FileNotFoundError:
        regular = True  # a dangling link: the save creates its target
    # A link to a device or a FIFO (``/dev/zero``) is replaced by the file, never written into.
    return target if regular else path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file + fsync + ``os.replace``).

    Missing parent folders are created. An existing file's permission bits are kept.
    Raises :class:`AnnotationWriteError` on any OS error (permission, disk full, ...).
    """
    path = Path(path)
    tmp_name: str | None = None
    try:
        path = _write_target(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _clean_once(path.parent)
        fd, tmp_name = tempfile.mkstemp(
            prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent
        )
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
    except MemoryError as exc:
        raise AnnotationWriteError(path, "cannot write: out of memory") from exc
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
    from rpn_core.files import read_regular
    from rpn_core.limits import MAX_COCO_BYTES

    path = Path(path)
    if not os.path.lexists(path):
        return None
    try:
        st = path.stat()
    except OSError:
        return None  # a dangling link or a name the system refuses: nothing to copy
    if not stat.S_ISREG(st.st_mode):
        return None  # a FIFO or a device in the annotation's place: no bytes to keep
    try:
        data = read_regular(path, limit=MAX_COCO_BYTES, what="a backup", error=_backup_error)
    except AnnotationWriteError as exc:
        if exc.reason.endswith("file not found"):  # removed since the check
            return None
        raise
    target = backup_path(path)
    atomic_write_bytes(target, data)
    return target


def _backup_error(path: Path, reason: str) -> AnnotationWriteError:
    return AnnotationWriteError(path, f"cannot back up: {reason}")
