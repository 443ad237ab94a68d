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
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, QTimer, Signal

import resources
from app.annotate.class_list import ClassList
from app.annotate.image_cache import ImageCache
from app.annotate.state_scan import StateScanner
from app.common.settings import AppSettings
from app.common.workers import describe_exception
from app.state.qdocument import AnnotationDocument
from app.state.undo import push_boxes
from rpn_core.annotation.data import AnnotationReadError, Box, ImageAnnotation
from rpn_core.annotation.formats import AnnotationStore, detect_format, open_store
from rpn_core.annotation.image_state import ImageState, state_of
from rpn_core.errors import RPNStudioError
from rpn_core.images.loading import IMAGE_SUFFIXES, ImageReadError, list_images

__all__ = ["AUTOSAVE_DELAY_MS", "Workspace"]

AUTOSAVE_DELAY_MS = 1500
# States set from a quick look (file exists or not): the background scan may refine them.
_GUESSED = (ImageState.UNKNOWN, ImageState.ANNOTATED)


class Workspace(QObject):
    """Signals: ``images_listed()``, ``current_changed(int)``, ``state_changed(object)``
    (a ``Path``), ``message(str, str)``, ``store_changed()``."""

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
        self.store: AnnotationStore | None = None
        self.read_store: AnnotationStore | None = None
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
        self._set_root(root)
        self.images = list(dict.fromkeys(images))
        self.states = {p: self._initial_state(p) for p in self.images}
        self.index = -1
        self.images_listed.emit()
        self.go_to(0)
        self.scanner.start(self.images, self._scan_stores())
        return True

    def _scan_stores(self) -> Callable[[], list[AnnotationStore]]:
        """A factory of fresh stores for the background scan, built from plain values read
        here in the GUI thread (settings and stores are not shared with the scan thread)."""
        fmts = [self.save_format()]
        if self.read_store is not None and self.read_store.fmt not in fmts:
            fmts.append(self.read_store.fmt)
        folder, root = self._annotation_folder(), self.root
        convention = self.settings.voc_convention
        return lambda: [
            open_store(folder, f, image_root=root, voc_convention=convention) for f in fmts
        ]

    def _on_scanned(self, results: list) -> None:
        """Fill in states the session has not determined itself (visits and saves win)."""
        for path, state, tip in results:
            if path in self.states and self.states[path][0] in _GUESSED:
                self._set_state(path, state, tip)

    def _release_unsaved(self) -> bool:
        """Before another folder replaces this one: save what autosave may save, then ask
        (``confirm_discard``) before dropping edits that are still unsaved."""
        if self.settings.autosave:
            self.save_all()
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

    def _set_root(self, root: Path) -> None:
        self.root = root
        self.unsaved = {}
        self.previous_boxes = []
        self.cache.clear()
        self.read_store = None
        detected = detect_format(self._annotation_folder())
        if detected is not None:
            self.read_store = self._open_store(detected)
        self._reopen_store()
        names = self.settings.classes_for(root)
        for store in (self.store, self.read_store):
            if store is not None:
                names += store.classes
        self.classes.reset(names)

    def _annotation_folder(self) -> Path:
        """Where annotations live: beside the images, except for the packaged sample (whose
        folder may be read-only and must stay clean) -> the user's data folder."""
        assert self.root is not None
        samples = resources.path_of(resources.SAMPLE_IMAGE).parent.resolve()
        if self.root.resolve() == samples:
            base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
            return Path(base) / "sample-annotations"
        return self.root

    def _open_store(self, fmt: str) -> AnnotationStore:
        return open_store(
            self._annotation_folder(),
            fmt,
            image_root=self.root,
            voc_convention=self.settings.voc_convention,
        )

    def save_format(self) -> str:
        """The format annotations are written in now."""
        fmt = self.settings.save_format
        if fmt == "auto":
            fmt = self.read_store.fmt if self.read_store is not None else "voc"
        return fmt

    def _reopen_store(self) -> None:
        if self.root is None:
            return
        fmt = self.save_format()
        rs = self.read_store
        if (
            rs is not None
            and rs.fmt == fmt
            and getattr(rs, "voc_convention", None) in (None, self.settings.voc_convention)
        ):
            self.store = rs
        else:
            self.store = self._open_store(fmt)
        for w in self.store.warnings:
            self.message.emit("warning", w)
        self.store_changed.emit()

    def set_save_format(self, fmt: str, voc_convention: str | None = None) -> None:
        """Change the save format (``"auto"`` or one of ``FORMATS``) and VOC convention; the
        current image is marked unsaved so that the next save writes the new format."""
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
        if not 0 <= index < len(self.images) or index == self.index:
            return False
        self.leave_current()
        self.index = index
        path = self.images[index]
        self._show(path)
        self.current_changed.emit(index)
        neighbours = [index + 1, index - 1, index + 2]
        self.cache.prefetch(self.images[i] for i in neighbours if 0 <= i < len(self.images))
        if self.settings.keep_previous and not self.document.boxes and self.previous_boxes:
            push_boxes(self.document, self.previous_boxes, "Keep boxes of previous image")
        return True

    def _show(self, path: Path) -> None:
        cached = self.cache.get(path)
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
        dirty = path in self.unsaved
        ann = (
            self.unsaved[path]
            if dirty
            else self._load_annotation(path, loaded.width, loaded.height)
        )
        self.classes.merge(ann.labels)
        self.document.set_image(loaded, ann, qimage=cached.qimage, dirty=dirty)
        if not dirty:
            self._set_state(path, *state_of(ann))

    def _load_annotation(self, path: Path, width: int, height: int) -> ImageAnnotation:
        store = self.store
        if store is not None and not store.has_annotation(path) and self.read_store is not None:
            if self.read_store.has_annotation(path):
                store = self.read_store
        if store is None:
            return ImageAnnotation(path, width, height)
        try:
            ann = store.load(path, width=width, height=height)
        except AnnotationReadError as exc:
            self.message.emit(
                "error",
                f"Annotation file {exc.path} could not be read: {exc.reason}. The image "
                "is shown without boxes; the file is backed up before it is ever overwritten.",
            )
            return ImageAnnotation(path, width, height)
        if ann.warnings:
            shown = "; ".join(ann.warnings[:5])
            more = f" (+{len(ann.warnings) - 5} more)" if len(ann.warnings) > 5 else ""
            self.message.emit("warning", f"{store.annotation_path(path)}: {shown}{more}")
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
        backups_before = dict(self.store.backups)
        try:
            self.store.save(ann)
        except Exception as exc:  # noqa: BLE001 - whatever failed, nothing may be lost
            reason = exc.reason if isinstance(exc, RPNStudioError) else describe_exception(exc)
            self.unsaved[ann.image_path] = ann
            self._set_state(ann.image_path, ImageState.UNSAVED, f"save failed: {reason}")
            self.message.emit(
                "error",
                f"Could not save {target}: {reason}. Your changes are "
                "kept in memory; fix the problem or choose another save format.",
            )
            return False
        for original, backup in self.store.backups.items():
            if original not in backups_before:
                self.message.emit(
                    "info", f"Backed up {original.name} to {backup.name} before overwriting it"
                )
        self.unsaved.pop(ann.image_path, None)
        doc.mark_saved()
        self._set_state(ann.image_path, *state_of(ann))
        return True

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

    def save_all(self) -> list[Path]:
        """Save the current image and retry parked ones; returns the paths still unsaved."""
        if self.document.dirty:
            self.save_current()
        for path, ann in list(self.unsaved.items()):
            if path == self.document.image_path or self.store is None:
                continue
            try:
                self.store.save(ann)
            except Exception as exc:  # noqa: BLE001
                self.message.emit("error", f"Could not save {path}: {exc}")
                continue
            del self.unsaved[path]
            self._set_state(path, *state_of(ann))
        return list(self.unsaved)

    # -- states --------------------------------------------------------------------------------
    def _initial_state(self, path: Path) -> tuple[ImageState, str]:
        for store in (self.store, self.read_store):
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
