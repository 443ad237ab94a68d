"""Decoded images, kept for the current image's neighbours and prefetched in the background.

:meth:`ImageCache.get` returns at once for a cached or prefetched image; otherwise it decodes
in the calling thread (waiting for a prefetch of the same file that is already under way,
rather than decoding twice). Prefetches are :class:`~app.common.workers.Worker` jobs on the
one-thread ``FILES`` lane, so the GUI thread never decodes a neighbour. A failed decode is cached too (as its
:class:`ImageReadError`), so an unreadable file is tried once per cache lifetime.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtGui import QImage

from app.common.workers import Lane, Worker, wait_for_lane
from app.state.qdocument import qimage_from_rgb
from rpn_core.images.loading import ImageReadError, LoadedImage, load_image

__all__ = ["CachedImage", "ImageCache"]


@dataclass(frozen=True)
class CachedImage:
    """A decode result: ``loaded``/``qimage`` on success, ``error`` otherwise."""

    path: Path
    loaded: LoadedImage | None = None
    qimage: QImage | None = None
    error: ImageReadError | None = None

    @property
    def nbytes(self) -> int:
        # RGB pixels (3 B/px) plus the RGB32 QImage (4 B/px)
        return 0 if self.loaded is None else int(self.loaded.pixels.nbytes) * 7 // 3


def decode(path: Path) -> CachedImage:
    """Decode one file (any thread): pixels and a QImage, or the read error."""
    try:
        loaded = load_image(path)
    except ImageReadError as exc:
        return CachedImage(path, error=exc)
    except Exception as exc:  # noqa: BLE001 - a bad file must never take the app down
        return CachedImage(path, error=ImageReadError(path, f"unexpected error: {exc}"))
    # RGB32 is what a QPixmap holds: converting here (in the prefetch thread) makes the GUI
    # thread's QPixmap.fromImage a cheap copy (12 MP: ~60 ms saved per image change).
    qimage = qimage_from_rgb(loaded.pixels).convertToFormat(QImage.Format.Format_RGB32)
    return CachedImage(path, loaded, qimage)


class ImageCache:
    """LRU cache of decoded images bounded by ``max_bytes`` and ``max_items``."""

    def __init__(self, *, max_items: int = 8, max_bytes: int = 768 * 2**20) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[Path, CachedImage] = OrderedDict()
        self._pending: dict[Path, threading.Event] = {}
        self.hits = 0
        self.misses = 0

    def _store(self, path: Path, result: CachedImage) -> None:
        with self._lock:
            self._items[path] = result
            self._items.move_to_end(path)
            self._evict()
            event = self._pending.pop(path, None)
        if event is not None:
            event.set()

    def _evict(self) -> None:
        total = sum(c.nbytes for c in self._items.values())
        too_big = lambda: total > self.max_bytes and len(self._items) > 1  # noqa: E731
        while len(self._items) > self.max_items or too_big():
            _path, old = self._items.popitem(last=False)
            total -= old.nbytes

    def cached(self, path: Path) -> CachedImage | None:
        with self._lock:
            return self._items.get(Path(path))

    def get(self, path: str | Path) -> CachedImage:
        """The decoded image, from the cache or decoded now (waiting for a running prefetch)."""
        path = Path(path)
        with self._lock:
            hit = self._items.get(path)
            if hit is not None:
                self._items.move_to_end(path)
                self.hits += 1
                return hit
            event = self._pending.get(path)
            self.misses += 1
        if event is not None:
            event.wait()
            hit = self.cached(path)
            if hit is not None:
                return hit
        result = decode(path)
        self._store(path, result)
        return result

    def prefetch(self, paths: Iterable[str | Path]) -> None:
        """Decode ``paths`` in the background unless cached or already queued."""
        for p in paths:
            path = Path(p)
            with self._lock:
                if path in self._items or path in self._pending:
                    continue
                self._pending[path] = threading.Event()
            Worker(self._prefetch_one, path).start(Lane.FILES)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def wait(self, msecs: int = 10_000) -> bool:
        """Wait for queued prefetches (tests, shutdown)."""
        return wait_for_lane(Lane.FILES, msecs)

    def _prefetch_one(self, path: Path) -> None:
        """(On the ``FILES`` thread.) Stored there, so a :meth:`get` waiting for it wakes."""
        self._store(path, decode(path))
