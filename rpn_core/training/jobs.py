"""The Train dock's Qt-free work: the training job run in a :class:`app.common.workers.Worker` and
the gathering of the folder's annotated images (the shown image's live boxes and unsaved edits
included)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpn_core.annotation.data import AnnotationReadError, ImageAnnotation
from rpn_core.images.loading import ImageReadError, probe_image

__all__ = ["TrainedModel", "annotated_items", "train_job"]


@dataclass(frozen=True)
class TrainedModel:
    """What a successful training job hands back: the trained copy and the run's result."""

    model: Any
    result: Any


def _lower_thread_priority(niceness: int = 10) -> None:
    """Make the calling thread yield the CPU to the GUI (Linux: per-thread nice; elsewhere a
    no-op). Only for threads of the Train dock's own pool, which nothing else uses."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            tid = threading.get_native_id()
            os.setpriority(
                os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), niceness)
            )


def train_job(
    get_model: Any, items: list, config: Any, *, threads: int | None = None, anchors: Any = None,
    labels: Any = None, input_size: int | None = None,
):  # fmt: skip
    """Generator for :class:`Worker`: fine-tune a deep copy of ``get_model()`` (moved to
    ``anchors`` first when given: :func:`rpn_core.rpn.model.with_anchors`; labelling by the
    rule ``labels`` when given: :func:`rpn_core.rpn.model.with_labels`; at ``input_size``
    when given: :func:`rpn_core.rpn.adapt.with_input_size`); returns a
    :class:`TrainedModel` whose ``model.config`` records the anchors and rule it trained with.
    ``threads`` caps torch's intra-op threads meanwhile (one core stays
    free for the GUI), and the thread runs at a lower priority."""
    import copy

    from rpn_core.torch_import import import_torch

    import_torch()
    import torch

    from rpn_core.rpn.adapt import with_anchors, with_input_size, with_labels
    from rpn_core.training.finetune import fine_tune

    _lower_thread_priority()
    model = copy.deepcopy(get_model())
    if input_size:
        model = with_input_size(model, input_size)
    if anchors is not None:
        model = with_anchors(model, anchors)
    if labels is not None:
        model = with_labels(model, labels)
    import cv2

    previous = torch.get_num_threads(), cv2.getNumThreads()
    if threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)  # resizing in augmentation: OpenCV's own thread pool
    try:
        result = yield from fine_tune(model, items, config)
    finally:
        torch.set_num_threads(previous[0])
        cv2.setNumThreads(previous[1])
    return TrainedModel(model, result)


def annotated_items(workspace: Any, document: Any) -> list[ImageAnnotation]:
    """The folder's images with at least one box: the shown image's live boxes, unsaved edits,
    else the annotation files (unreadable ones are skipped)."""
    items = []
    current = document.image_path
    for path in workspace.images:
        if current is not None and path == current and document.annotation is not None:
            ann = document.core.copy_annotation()
        elif path in workspace.unsaved:
            ann = workspace.unsaved[path]
        else:
            ann = _stored(workspace, path)
        if ann is not None and ann.boxes:
            items.append(ann)
    return items


def _stored(workspace: Any, path: Path) -> ImageAnnotation | None:
    for store in (workspace.store, getattr(workspace, "read_store", None)):
        if store is not None and store.has_annotation(path):
            try:
                w, h = probe_image(path)
                return store.load(path, width=w, height=h)
            except (AnnotationReadError, ImageReadError):
                return None
    return None
