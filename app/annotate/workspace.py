"""The annotation session behind the main window: the image list, navigation, loading and
(auto)saving, the per-image state (with a background scan), the previous image's boxes and the
project class list.

It is a QObject without widgets, so tests drive it directly. Messages for the user go out as
``message(level, text)`` (``"info" | "warning" | "error"``) and are never modal here.

Saving: the user picks a save format (``"auto"`` = the format found in the folder, VOC if none).
Annotations are read from the save-format file if it exists, else from the detected format's
file (so a VOC folder can be re-saved as YOLO). A failed save keeps the document dirty and the
annotation in memory (``unsaved``); leaving the image does not lose it -- it is shown again,
still unsaved, when the image is revisited, and retried on the next save.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QStandardPaths, QTimer, Signal

import resources
from app.annotate.class_list import ClassList
from app.annotate.image_cache import ImageCache
from app.annotate.state_scan import StateScanner
from app.common.settings import AppSettings
from app.common.workers import Lane, Worker, describe_exception, wait_for_lane, without_gc_pauses
from app.state.qdocument import AnnotationDocument
from app.state.undo import push_boxes
from rpn_core.annotation.data import AnnotationReadError, Box, ImageAnnotation
from rpn_core.annotation.folder_stores import FolderStores, StorePolicy, annotation_folder
from rpn_core.annotation.formats.store import AnnotationStore, PerImageStore, coco_file_in
from rpn_core.annotation.image_state import ImageState, scan_one, state_of
from rpn_core.errors import RPNStudioError
from rpn_core.images.loading import IMAGE_SUFFIXES, ImageReadError, list_images, probe_image

__all__ = [
    "AUTOSAVE_DELAY_MS",
    "BUSY_NOTICE_MS",
    "HEAVY_ANNOTATION_BYTES",
    "HEAVY_IMAGE_PIXELS",
    "Workspace",
]

AUTOSAVE_DELAY_MS = 1500
# Work predicted (from the image header and the annotation file's size) to take more than
# ~100 ms on the GUI thread goes to the store thread instead (issue 16: F10 / F11): decoding
# more than 8 MP, reading or writing an annotation file of more than 2 MB.
HEAVY_IMAGE_PIXELS = 8_000_000
HEAVY_ANNOTATION_BYTES = 2 * 1024**2
SCAN_BATCH = 64  # images per state-scan job on the store thread
# A wait for the store thread (closing during a big save...) longer than this is announced
# (``busy``): the main window then shows what it waits for instead of looking frozen.
BUSY_NOTICE_MS = 300
# States set from a quick look (file exists or not): the background scan may refine them.
_GUESSED = (ImageState.UNKNOWN, ImageState.ANNOTATED)


class Workspace(QObject):
    """Signals: ``images_listed()``, ``current_changed(int)``, ``state_changed(object)``
    (a ``Path``), ``message(str, str)``, ``store_changed()``, ``saved(str)`` (a "Saved ..."
    line for the status bar after every save), ``busy(str)`` (what a long wait for the store
    thread waits for, e.g. "Saving /data/annotations.json"; ``""`` when the wait is over)."""

    saved = Signal(str)
    busy = Signal(str)
    images_listed = Signal()
    current_changed = Signal(int)
    state_changed = Signal(object)
    message = Signal(str, str)
    store_changed = Signal()

    def __init__(
        self, document: AnnotationDocument, settings: AppSettings, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.settings = settings
        self.cache = ImageCache()
        self.scanner = StateScanner(self)
        self.scanner.found.connect(self._on_scanned)
        self.classes = ClassList(self)
        self.images: list[Path] = []
        self.index = -1
        self.root: Path | None = None
        # The folder's annotation stores (rpn_core.annotation.folder_stores): where annotations
        # live, read and save formats, one store per format written this session.
        self.stores: FolderStores | None = None
        self._created: set[Path] = set()  # annotation files this session created
        self.states: dict[Path, tuple[ImageState, str]] = {}
        self.unsaved: dict[Path, ImageAnnotation] = {}
        self.previous_boxes: list[Box] = []
        # Asked before unsaved edits are dropped (opening another folder); the main window
        # asks the user. The default keeps them.
        self.confirm_discard: Callable[[list[Path]], bool] = lambda _paths: False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(AUTOSAVE_DELAY_MS)
        self._timer.timeout.connect(self.autosave_now)
        # The store thread: heavy decodes, annotation reads and saves run here, one at a time
        # and in order (a save of an image always lands before its next read). While it has
        # work, the GUI thread does not touch the stores itself (see _store_idle).
        self._store_jobs: dict[Worker, str] = {}  # in order, with what each does (for busy)
        self.saving: dict[Path, ImageAnnotation] = {}  # saves under way, by image
        self._save_next: dict[Path, tuple[ImageAnnotation, Path, int]] = {}  # queued behind
        self._save_key: dict[Path, tuple[Path, int]] = {}  # newest save's target, undo index
        self.loading: Path | None = None  # the image being read in the background
        self._opening = False  # a big folder's stores are being opened in the background
        # indexChanged follows every push/undo/redo (after the stack's clean state is updated).
        document.undo_stack.indexChanged.connect(self._schedule_autosave)
        document.dirty_changed.connect(self._on_dirty_changed)
        document.boxes_inserted.connect(self._note_labels)
        document.boxes_updated.connect(self._note_labels)
        self.classes.classes_changed.connect(self._remember_classes)

    # -- opening -------------------------------------------------------------------------------
    def open_paths(self, paths: Sequence[str | Path], *, recursive: bool = False) -> bool:
        """List the images of ``paths`` (files and/or folders) and show the first one."""
        images: list[Path] = []
        folders: list[Path] = []
        for p in (Path(x) for x in paths):
            if p.is_dir():
                folders.append(p)
                errors: list[str] = []
                try:
                    images.extend(list_images(p, recursive, errors=errors))
                except ImageReadError as exc:
                    self.message.emit("error", str(exc))
                for e in errors:
                    self.message.emit("warning", e)
            elif p.exists() or p.suffix.lower() in IMAGE_SUFFIXES:
                images.append(p)
            else:
                self.message.emit("error", f"{p}: no such file or folder")
        if not images:
            if folders:
                self.message.emit("warning", f"No images found in {', '.join(map(str, folders))}")
            return False
        if not self.leave_current() or not self._release_unsaved():
            return False
        root = folders[0] if len(folders) == 1 else _common_parent(images)
        if self._heavy_folder(root):
            self._open_in_background(root, images)
            return True
        self._set_root(root)
        self.images = list(dict.fromkeys(images))
        self.states = {p: self._initial_state(p) for p in self.images}
        self.index = -1
        self.images_listed.emit()
        self.go_to(0)
        self.scanner.start(self.images, self._scan_stores())
        return True

    def _heavy_folder(self, root: Path) -> bool:
        """A folder whose COCO file is big: its stores are opened on the store thread."""
        coco = coco_file_in(annotation_folder(root, self._policy(root)))
        try:
            return coco is not None and coco.stat().st_size > HEAVY_ANNOTATION_BYTES
        except OSError:
            return False

    def _open_in_background(self, root: Path, images: list[Path]) -> None:
        """:meth:`open_paths` for a folder with a big COCO file (100 MB: seconds to parse):
        the images are listed at once, the stores are opened (the file parsed) on the store
        thread, then the first image is shown. Navigation waits for it (``_opening``)."""
        self._forget_folder(root)
        self.stores = None
        self.images = list(dict.fromkeys(images))
        self.states = {p: (ImageState.UNKNOWN, "reading the annotations…") for p in self.images}
        self.index = -1
        self._opening = True
        self.images_listed.emit()
        self.document.set_image(None, None, error=f"Reading the annotations of {root.name}…")
        policy = self._policy(root)

        def work():
            stores = FolderStores(root, policy)
            states = {p: self._initial_state(p, (stores.save, stores.read)) for p in self.images}
            return stores, states

        def done(result) -> None:
            if self.root != root:
                return
            self._opening = False
            self.stores, states = result
            self._stores_opened()
            self.classes.reset(self.settings.classes_for(root) + self.stores.classes())
            for path, (state, tip) in states.items():
                self._set_state(path, state, tip)
            self.go_to(0)
            self._scan_on_store_thread(root, list(self.images))

        def failed(exc) -> None:
            self._opening = False
            self.message.emit("error", f"Cannot open {root}: {describe_exception(exc)}")

        coco = coco_file_in(annotation_folder(root, policy))
        self._run_on_store_thread(work, done, failed, f"Reading {coco or root}")

    def _scan_stores(self) -> Callable[[], list[AnnotationStore]]:
        """Fresh stores for the background scan (stores are not shared between threads)."""
        assert self.stores is not None
        return self.stores.fresh_copies()

    def _scan_on_store_thread(self, root: Path, pending: list[Path]) -> None:
        """The state scan of a folder with a big COCO file, with the stores already open:
        ``StateScanner`` would open (parse) the 100 MB file a second time, costing memory
        and, on the GIL, the GUI up to 1.6 s. Batches of images run on the store thread, so
        the user's own loads and saves queue between them, never behind the whole scan."""
        stores = [s for s in dict.fromkeys((self.store, self.read_store)) if s is not None]
        batch, rest = pending[:SCAN_BATCH], pending[SCAN_BATCH:]
        if not batch:
            return

        def done(results) -> None:
            if self.root != root:
                return  # another folder was opened meanwhile
            self._on_scanned(results)
            self._scan_on_store_thread(root, rest)

        self._run_on_store_thread(
            lambda: [scan_one(p, stores) for p in batch],
            done,
            lambda _exc: None,
            f"Checking the annotations of {root}",
        )

    def _on_scanned(self, results: list) -> None:
        """Fill in states the session has not determined itself (visits and saves win)."""
        for path, state, tip in results:
            if path in self.states and self.states[path][0] in _GUESSED:
                self._set_state(path, state, tip)

    def _release_unsaved(self) -> bool:
        """Before another folder replaces this one: save what autosave may save, then ask
        (``confirm_discard``) before dropping edits that are still unsaved."""
        if self.settings.autosave:
            self.save_all(wait=True)
        self.wait_for_store()
        left = list(self.unsaved)
        if left and not self.confirm_discard(left):
            self.message.emit(
                "error",
                f"{len(left)} image(s) have changes that could not be saved (see the "
                "orange entries); nothing else was opened. Fix the cause or change the save "
                "format, then save (Ctrl+S).",
            )
            return False
        return True

    def _forget_folder(self, root: Path) -> None:
        """Drop what belonged to the previous folder (after its saves landed); ``root`` next."""
        self.wait_for_store()
        self.loading = None
        self.root = root
        self.unsaved = {}
        self.previous_boxes = []
        self.cache.clear()

    def _set_root(self, root: Path) -> None:
        self._forget_folder(root)
        self.stores = FolderStores(root, self._policy(root))
        self._stores_opened()
        self.classes.reset(self.settings.classes_for(root) + self.stores.classes())

    def _policy(self, root: Path) -> StorePolicy:
        """The user's settings for ``root``; the packaged sample's folder may be read-only
        and must stay clean, so its annotations go to the user's data folder."""
        fallback = None
        samples = resources.path_of(resources.SAMPLE_IMAGE).parent.resolve()
        if root.resolve() == samples:
            base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
            fallback = Path(base) / "sample-annotations"
        save_dir = self.settings.save_dir_for(root)
        return StorePolicy(
            save_format=self.settings.save_format,
            voc_convention=self.settings.voc_convention,
            save_dir=Path(save_dir) if save_dir else None,
            fallback_dir=fallback,
        )

    def _stores_opened(self) -> None:
        assert self.stores is not None
        for w in self.stores.save.warnings:
            self.message.emit("warning", w)
        self.store_changed.emit()

    @property
    def store(self) -> AnnotationStore | None:
        """The store annotations are saved with (``None`` before a folder is open)."""
        return None if self.stores is None else self.stores.save

    @property
    def read_store(self) -> AnnotationStore | None:
        """The store of the format the folder holds, if any."""
        return None if self.stores is None else self.stores.read

    def session_stores(self) -> list[AnnotationStore]:
        """Every store opened for this folder this session (each format, VOC convention)."""
        return [] if self.stores is None else self.stores.opened()

    def annotation_folder(self) -> Path | None:
        return None if self.stores is None else self.stores.folder

    def change_annotation_folder(self, folder: str | Path | None) -> None:
        """labelImg's Change Save Dir: keep this image folder's annotations in ``folder``
        (``None``: back to the default). The open image's edits are saved first (autosave) or
        kept and written to the new folder on the next save; annotations are then read from
        the new folder."""
        if self.root is None:
            return
        self.leave_current()
        self.settings.set_save_dir_for(self.root, folder)
        self.stores = FolderStores(self.root, self._policy(self.root))
        self._stores_opened()
        self.classes.merge(self.stores.classes())
        index, self.index = self.index, -1
        self.states = {p: self._initial_state(p) for p in self.images}
        self.images_listed.emit()
        self.go_to(max(index, 0))
        self.scanner.start(self.images, self._scan_stores())
        self.saved.emit(f"Annotations now in {self.stores.folder}")

    def save_format(self) -> str:
        """The format annotations are written in now."""
        if self.stores is not None:
            return self.stores.save_format
        fmt = self.settings.save_format
        return "voc" if fmt == "auto" else fmt

    def _reopen_store(self) -> None:
        """The save format or VOC convention changed: the save store follows."""
        if self.stores is None or self.root is None:
            return
        self.stores.set_policy(self._policy(self.root))
        self._stores_opened()

    def set_save_format(self, fmt: str, voc_convention: str | None = None) -> None:
        """Change the save format (``"auto"`` or one of ``FORMATS``) and VOC convention; the
        current image is marked unsaved so that the next save writes the new format."""
        self.wait_for_store()
        self.settings.save_format = fmt
        if voc_convention is not None:
            self.settings.voc_convention = voc_convention
        self._reopen_store()
        if self.store is not None:
            self.classes.merge(self.store.classes)
        if self.document.annotation is not None and self.document.boxes:
            self.document.mark_dirty()  # so the next (auto)save writes the new format
            self._schedule_autosave()

    # -- navigation ----------------------------------------------------------------------------
    @property
    def current_path(self) -> Path | None:
        return self.images[self.index] if 0 <= self.index < len(self.images) else None

    def next_image(self) -> bool:
        return self.go_to(self.index + 1)

    def prev_image(self) -> bool:
        return self.go_to(self.index - 1)

    def leave_current(self) -> bool:
        """Save (autosave) or park the current image's edits before leaving it. Always
        succeeds: a failed save keeps the edits in ``unsaved``."""
        self._timer.stop()
        doc = self.document
        if doc.annotation is None:
            return True
        self.previous_boxes = list(doc.boxes)
        if doc.dirty:
            if not (self.settings.autosave and self.save_current()):
                self.unsaved[doc.image_path] = doc.core.copy_annotation()
                self._set_state(
                    doc.image_path,
                    ImageState.UNSAVED,
                    self.states.get(doc.image_path, (None, ""))[1] or "changes not saved yet",
                )
        return True

    def go_to(self, index: int) -> bool:
        """Show image ``index`` (saving the current one first); False if out of range."""
        if not 0 <= index < len(self.images) or index == self.index or self._opening:
            return False
        self.leave_current()
        self.index = index
        path = self.images[index]
        self._show(path)
        self.current_changed.emit(index)
        neighbours = [index + 1, index - 1, index + 2]
        self.cache.prefetch(self.images[i] for i in neighbours if 0 <= i < len(self.images))
        if (
            self.settings.keep_previous
            and self.document.annotation is not None  # not while it loads in the background
            and not self.document.boxes
            and self.previous_boxes
        ):
            push_boxes(self.document, self.previous_boxes, "Keep boxes of previous image")
        return True

    # -- the store thread -------------------------------------------------------------------
    def _store_idle(self) -> bool:
        return not self._store_jobs

    def wait_for_store(self) -> None:
        """Wait until the store thread is idle (before the rare synchronous store use:
        opening another folder, changing the save format, closing), however long its jobs
        take: a save is never abandoned. Meanwhile the event loop runs for everything but
        user input (the window repaints; the jobs' finished signals arrive, and a save they
        queue is waited for too); after ``BUSY_NOTICE_MS`` ``busy`` says what is waited for,
        and ``busy("")`` ends it."""
        start, shown = time.monotonic(), ""
        try:
            while self._store_jobs:
                wait_for_lane(Lane.STORE, 20)
                QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
                late = time.monotonic() - start >= BUSY_NOTICE_MS / 1000
                what = next(iter(self._store_jobs.values()), "") if late else ""
                if what and what != shown:
                    shown = what
                    self.busy.emit(what)
        finally:
            if shown:
                self.busy.emit("")

    def _run_on_store_thread(self, fn, on_done, on_error, what: str) -> Worker:
        """Run ``fn`` on the store thread; ``what`` it does, for the user (``busy``)."""
        worker = Worker(without_gc_pauses, fn)
        self._store_jobs[worker] = what
        worker.signals.finished.connect(on_done)
        worker.signals.error.connect(on_error)
        worker.signals.done.connect(lambda: self._store_jobs.pop(worker, None))
        return worker.start(Lane.STORE)

    def _heavy_image(self, path: Path) -> bool:
        if self.cache.cached(path) is not None:
            return False
        try:
            w, h = probe_image(path)
        except ImageReadError:
            return False  # the error is found (and cached) at once by the normal path
        return w * h > HEAVY_IMAGE_PIXELS

    def _heavy_annotation(self, path: Path) -> bool:
        """Whether reading or writing the annotation of ``path`` means a big file."""
        for store in (self.store, self.read_store):
            if store is None:
                continue
            try:
                if store.annotation_path(path).stat().st_size > HEAVY_ANNOTATION_BYTES:
                    return True
            except OSError:
                continue
        return False

    def _show(self, path: Path) -> None:
        if not self._store_idle() or self._heavy_image(path) or self._heavy_annotation(path):
            self._show_in_background(path)
            return
        self._show_now(path, self.cache.get(path))

    def _show_in_background(self, path: Path) -> None:
        """Decode and read the annotation on the store thread; the canvas says "Loading"
        meanwhile (no annotation: nothing can be edited) and the GUI stays responsive."""
        self.loading = path
        self.document.set_image(None, None, error=f"Loading {path.name}…")

        def work():
            cached = self.cache.get(path)
            if cached.loaded is None or path in self.unsaved or path in self.saving:
                return cached, None, []
            loaded = cached.loaded
            messages: list[tuple[str, str]] = []
            ann = self._read_annotation(path, loaded.width, loaded.height, messages)
            return cached, ann, messages

        def done(result) -> None:
            if self.loading != path or self.current_path != path:
                return  # the user moved on; the decode stays in the cache
            self.loading = None
            cached, ann, messages = result
            for level, text in messages:
                self.message.emit(level, text)
            self._show_now(path, cached, ann)

        def failed(exc) -> None:
            if self.loading == path:
                self.loading = None
                self.message.emit("error", f"Cannot open {path}: {describe_exception(exc)}")

        self._run_on_store_thread(work, done, failed, f"Loading {path}")

    def _show_now(self, path: Path, cached, ann: ImageAnnotation | None = None) -> None:
        if cached.error is not None:
            reason = cached.error.reason
            self._set_state(path, ImageState.UNREADABLE, reason)
            self.message.emit("error", f"Cannot open image {path}: {reason}")
            self.document.set_image(None, None, error=reason)
            return
        loaded = cached.loaded
        assert loaded is not None
        if loaded.message:
            self.message.emit("info", loaded.message)
        dirty = path in self.unsaved or path in self.saving
        if dirty:
            ann = self.unsaved.get(path) or self.saving[path]
        elif ann is None:
            ann = self._load_annotation(path, loaded.width, loaded.height)
        self.classes.merge(ann.labels)
        self.document.set_image(loaded, ann, qimage=cached.qimage, dirty=dirty)
        if not dirty:
            self._set_state(path, *state_of(ann))

    def _load_annotation(self, path: Path, width: int, height: int) -> ImageAnnotation:
        messages: list[tuple[str, str]] = []
        ann = self._read_annotation(path, width, height, messages)
        for level, text in messages:
            self.message.emit(level, text)
        return ann

    def _read_annotation(
        self, path: Path, width: int, height: int, messages: list[tuple[str, str]]
    ) -> ImageAnnotation:
        """The annotation of ``path`` from the stores (any thread: emits nothing, appends
        ``(level, text)`` to ``messages``)."""
        store = self.store
        if store is not None and not store.has_annotation(path) and self.read_store is not None:
            if self.read_store.has_annotation(path):
                store = self.read_store
        if store is None:
            return ImageAnnotation(path, width, height)
        try:
            ann = store.load(path, width=width, height=height)
        except AnnotationReadError as exc:
            messages.append(
                (
                    "error",
                    f"Annotation file {exc.path} could not be read: {exc.reason}. The image "
                    "is shown without boxes; the file is backed up before it is ever overwritten.",
                )
            )
            return ImageAnnotation(path, width, height)
        if ann.warnings:
            shown = "; ".join(ann.warnings[:5])
            more = f" (+{len(ann.warnings) - 5} more)" if len(ann.warnings) > 5 else ""
            messages.append(("warning", f"{store.annotation_path(path)}: {shown}{more}"))
        ann.width, ann.height = width, height
        return ann

    # -- saving --------------------------------------------------------------------------------
    def save_current(self) -> bool:
        """Write the current annotation now; returns False (and says why) if it failed."""
        self._timer.stop()
        doc = self.document
        ann = doc.core.copy_annotation()
        if ann is None or self.store is None:
            return True
        target = self.store.annotation_path(ann.image_path)
        background = not self._store_idle() or self._heavy_annotation(ann.image_path)
        # A single-file store (COCO) answers "has this image an entry?" from its index, which
        # a big or busy store must build on its own thread: the check then runs there.
        if (not background or self._per_image_store()) and self._nothing_to_write(ann):
            self._nothing_written(ann)
            return True
        if background:
            self._save_in_background(ann, target)
            return True
        backups_before = dict(self.store.backups)
        existed = target.exists()
        try:
            self.store.save(ann)
        except Exception as exc:  # noqa: BLE001 - whatever failed, nothing may be lost
            self._save_failed(ann, target, exc)
            return False
        self._saved(ann, backups_before, target, existed)
        doc.mark_saved()
        return True

    def _per_image_store(self) -> bool:
        return isinstance(self.store, PerImageStore)

    def _nothing_written(self, ann: ImageAnnotation, index: int | None = None) -> None:
        """An image without boxes and without a file: saved means "no file" (see
        :meth:`_nothing_to_write`); the document is marked saved if it still shows that
        state (same image, and the undo ``index`` the annotation was taken at, if given)."""
        doc = self.document
        self.unsaved.pop(ann.image_path, None)
        if doc.image_path == ann.image_path and index in (None, doc.undo_stack.index()):
            doc.mark_saved()
        self._set_state(ann.image_path, *state_of(ann))
        self.saved.emit(f"Saved: {ann.image_path.name} has no boxes, so no file is written")

    def _save_failed(self, ann: ImageAnnotation, target: Path, exc: BaseException) -> None:
        reason = exc.reason if isinstance(exc, RPNStudioError) else describe_exception(exc)
        if isinstance(exc, MemoryError):
            reason = "out of memory"
        self.unsaved[ann.image_path] = ann
        self._set_state(ann.image_path, ImageState.UNSAVED, f"save failed: {reason}")
        self.message.emit(
            "error",
            f"Could not save {target}: {reason}. Your changes are "
            "kept in memory; fix the problem or choose another save format.",
        )

    def _saved(
        self, ann: ImageAnnotation, backups_before: dict, target: Path, existed: bool
    ) -> None:
        """A save landed: say so (and which files were backed up); remember a file this
        session created (:meth:`_nothing_to_write` may remove it again)."""
        assert self.store is not None
        for original, backup in self.store.backups.items():
            if original not in backups_before:
                self.message.emit(
                    "info", f"Backed up {original.name} to {backup.name} before overwriting it"
                )
        if not existed:
            self._created.add(target)
        self.unsaved.pop(ann.image_path, None)
        self._set_state(ann.image_path, *state_of(ann))
        n = len(ann.boxes)
        self.saved.emit(f"Saved {n} box{'es' if n != 1 else ''} to {target}")

    def _save_in_background(
        self, ann: ImageAnnotation, target: Path, index: int | None = None
    ) -> None:
        """A big file (a 100 MB COCO file takes seconds to write): saved on the store thread.
        The document is marked saved when the save lands, if it still holds what was saved
        (same image, same undo index); a failure parks the annotation in ``unsaved``."""
        store, doc = self.store, self.document
        assert store is not None
        path = ann.image_path
        if index is None:  # the undo index ``ann`` was taken at (it is the document's now)
            index = doc.undo_stack.index()
        if path in self.saving:  # one save of this image under way: only the newest follows
            if self.saving[path] == ann and self._save_key.get(path) == (target, index):
                return  # the newest save already writes this (closing right after autosave)
            self.saving[path] = ann
            self._save_key[path] = (target, index)
            self._save_next[path] = (ann, target, index)
            return
        backups_before = dict(store.backups)
        existed = target.exists()
        self.saving[path] = ann
        self._save_key[path] = (target, index)
        self._set_state(path, ImageState.UNSAVED, "saving…")

        def finish() -> bool:
            self.saving.pop(path, None)
            self._save_key.pop(path, None)
            follow = self._save_next.pop(path, None)
            if follow is not None:  # edits made meanwhile: save them now (one write, not N)
                self._save_in_background(*follow)
            return follow is None

        def done(written) -> None:
            if not finish():
                return
            if not written:  # no boxes and no entry in the file: nothing was written
                self._nothing_written(ann, index)
                return
            self._saved(ann, backups_before, target, existed)
            if doc.image_path == path and doc.undo_stack.index() == index and doc.dirty:
                doc.mark_saved()

        def failed(exc) -> None:
            self._save_next.pop(path, None)
            finish()
            self._save_failed(ann, target, exc)

        def save() -> bool:  # on the store thread
            if not (ann.boxes or ann.verified) and not store.has_annotation(path):
                return False
            store.save(ann)
            return True

        self._run_on_store_thread(save, done, failed, f"Saving {target}")

    def _nothing_to_write(self, ann: ImageAnnotation) -> bool:
        """An image without boxes (and not marked verified) that had no annotation file gets
        none: opening, undoing (e.g. an accepted proposal, after autosave wrote it) or
        renaming leaves no empty files behind -- a per-image file this session created is
        removed again. One that had a file before is written (its boxes were deleted)."""
        store = self.store
        if ann.boxes or ann.verified or store is None:
            return False
        target = store.annotation_path(ann.image_path)
        if target in self._created and isinstance(store, PerImageStore):
            self._created.discard(target)
            try:
                target.unlink()
            except OSError:
                return False  # could not remove it: write it empty instead
            return True
        return not store.has_annotation(ann.image_path)

    def autosave_now(self) -> None:
        if self.settings.autosave and self.document.dirty:
            self.save_current()

    def _schedule_autosave(self, *_args) -> None:
        if self.settings.autosave and self.document.dirty:
            self._timer.start()

    def _on_dirty_changed(self, dirty: bool) -> None:
        path = self.document.image_path
        if path is not None and dirty and self.states.get(path, (None,))[0] != ImageState.UNSAVED:
            self._set_state(path, ImageState.UNSAVED, "changes not saved yet")

    def save_all(self, *, wait: bool = False) -> list[Path]:
        """Save the current image and retry parked ones; returns the paths still unsaved.

        Big files are saved on the store thread, also with ``wait`` (closing, opening another
        folder), which then waits for every save to land (see :meth:`wait_for_store`) and
        returns those that failed again; without it they are not in the list yet."""
        if self.document.dirty:
            self.save_current()
        elif self.document.annotation is not None:
            self.saved.emit(f"Saved: {self.document.image_path.name} has no unsaved changes")
        for path, ann in list(self.unsaved.items()):
            if path == self.document.image_path or self.store is None:
                continue
            background = not self._store_idle() or self._heavy_annotation(path)
            if (not background or self._per_image_store()) and self._nothing_to_write(ann):
                del self.unsaved[path]
                self._set_state(path, *state_of(ann))
                continue
            if background:
                del self.unsaved[path]  # back in unsaved if this save fails too
                self._save_in_background(ann, self.store.annotation_path(path))
                continue
            try:
                self.store.save(ann)
            except Exception as exc:  # noqa: BLE001
                self.message.emit("error", f"Could not save {path}: {exc}")
                continue
            del self.unsaved[path]
            self._set_state(path, *state_of(ann))
        if wait:
            self.wait_for_store()
        return list(self.unsaved)

    # -- states --------------------------------------------------------------------------------
    def _initial_state(
        self, path: Path, stores: tuple[AnnotationStore | None, ...] | None = None
    ) -> tuple[ImageState, str]:
        for store in stores or (self.store, self.read_store):
            if store is not None and store.has_annotation(path):
                return (ImageState.ANNOTATED, f"annotation: {store.annotation_path(path)}")
        return (ImageState.UNKNOWN, "not opened yet")

    def _set_state(self, path: Path, state: ImageState, tip: str = "") -> None:
        if self.states.get(path) != (state, tip):
            self.states[path] = (state, tip)
            self.state_changed.emit(path)

    def _note_labels(self, indices: list[int]) -> None:
        boxes = self.document.boxes
        self.classes.merge(boxes[i].label for i in indices if i < len(boxes))

    def _remember_classes(self) -> None:
        if self.root is not None:
            self.settings.set_classes_for(self.root, self.classes.names)
        if self.store is not None:
            for name in self.classes.names:
                self.store.add_class(name)


def _common_parent(paths: Sequence[Path]) -> Path:
    parents = {p.parent.resolve() for p in paths}
    if len(parents) == 1:
        return next(iter(parents))
    return Path(os.path.commonpath([str(p) for p in parents]))
