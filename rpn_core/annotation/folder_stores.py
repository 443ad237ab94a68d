"""The annotation stores of one image folder, and the policy that places them (Qt-free).

Where a folder's annotations live, in which format they are read and written, and one store
per format this session wrote (so that switching the save format back reuses the store that
knows which files it wrote, and makes no needless backups):

1. the folder chosen with Change Save Dir (``StorePolicy.save_dir``), else
2. the ``labels/`` tree of a YOLO dataset whose ``images/`` tree holds the images (class
   names from its ``data.yaml`` when there is no ``classes.txt``), else
3. ``StorePolicy.fallback_dir`` when the caller gives one (the app's packaged sample, whose
   folder must stay clean), else
4. beside the images.

Building a :class:`FolderStores` reads the folder (a big COCO file takes seconds): the app
builds it on a worker thread for such folders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rpn_core.annotation.formats.folder import detect_format, open_store
from rpn_core.annotation.formats.store import AnnotationStore
from rpn_core.annotation.yolo_layout import find_data_yaml, labels_folder_for, read_yaml_names

__all__ = ["FolderStores", "StorePolicy", "annotation_folder", "yolo_layout"]


@dataclass(frozen=True, kw_only=True)
class StorePolicy:
    """The user's choices for one image folder (see the module docstring).

    ``save_format``: ``"auto"`` (the folder's own format, else VOC) or a format name;
    ``voc_convention``: ``"devkit"`` or ``"labelimg"``.
    """

    save_format: str = "auto"
    voc_convention: str = "devkit"
    save_dir: Path | None = None
    fallback_dir: Path | None = None


def yolo_layout(root: Path, policy: StorePolicy) -> tuple[Path, Path | None] | None:
    """``(labels folder, data.yaml or None)`` when ``root`` is (inside) a YOLO dataset's
    ``images/`` tree with a matching ``labels/`` tree and no Change Save Dir is set."""
    if policy.save_dir is not None:
        return None
    labels = labels_folder_for(root)
    if labels is None:
        return None
    return labels, find_data_yaml(labels.parent if labels.name == "labels" else labels)


def annotation_folder(root: Path, policy: StorePolicy) -> Path:
    """Where the annotations of the images in ``root`` live (module docstring, 1-4)."""
    if policy.save_dir is not None:
        return Path(policy.save_dir)
    layout = yolo_layout(root, policy)
    if layout is not None:
        return layout[0]
    if policy.fallback_dir is not None:
        return Path(policy.fallback_dir)
    return root


class FolderStores:
    """``read``: the store of the format the folder holds (``None`` if it holds none);
    ``save``: the store annotations are written with (``read`` itself when its format and
    VOC convention are the ones to save in); every store opened is kept, by format."""

    def __init__(self, root: str | Path, policy: StorePolicy) -> None:
        self.root = Path(root)
        self.policy = policy
        self.folder = annotation_folder(self.root, policy)
        layout = yolo_layout(self.root, policy)
        self.yaml_classes = read_yaml_names(layout[1]) if layout and layout[1] else []
        self._stores: dict[tuple[str, str], AnnotationStore] = {}
        detected = detect_format(self.folder) or ("yolo" if layout else None)
        self.read: AnnotationStore | None = self.open(detected) if detected else None
        self.save: AnnotationStore = self._save_store()

    @property
    def save_format(self) -> str:
        """The format annotations are written in."""
        fmt = self.policy.save_format
        if fmt == "auto":
            return self.read.fmt if self.read is not None else "voc"
        return fmt

    def set_policy(self, policy: StorePolicy) -> None:
        """Another save format or VOC convention for the same folder (a new Change Save Dir
        is a new :class:`FolderStores`)."""
        self.policy = policy
        self.save = self._save_store()

    def open(self, fmt: str) -> AnnotationStore:
        """The store of ``fmt`` (in the policy's VOC convention), opened once per session."""
        convention = self.policy.voc_convention
        key = (fmt, convention if fmt == "voc" else "")
        store = self._stores.get(key)
        if store is None:
            store = open_store(self.folder, fmt, image_root=self.root, voc_convention=convention)
            if fmt == "yolo" and not store.classes:
                for name in self.yaml_classes:  # ids of the data.yaml, when no classes.txt
                    store.add_class(name)
            self._stores[key] = store
        return store

    def opened(self) -> list[AnnotationStore]:
        """Every store opened for this folder this session."""
        return list(self._stores.values())

    def classes(self) -> list[str]:
        """The class names the folder's stores know (save store first)."""
        names: list[str] = []
        for store in dict.fromkeys(s for s in (self.save, self.read) if s is not None):
            names += store.classes
        return names

    def fresh_copies(self) -> Callable[[], list[AnnotationStore]]:
        """A factory of new stores of the save and read formats, for another thread (a
        store is not shared between threads); it captures plain values only."""
        fmts = [self.save_format]
        if self.read is not None and self.read.fmt not in fmts:
            fmts.append(self.read.fmt)
        folder, root, convention = self.folder, self.root, self.policy.voc_convention
        return lambda: [
            open_store(folder, f, image_root=root, voc_convention=convention) for f in fmts
        ]

    def _save_store(self) -> AnnotationStore:
        fmt, read = self.save_format, self.read
        if (
            read is not None
            and read.fmt == fmt
            and getattr(read, "voc_convention", None) in (None, self.policy.voc_convention)
        ):
            return read
        return self.open(fmt)
