"""The Proposals panel's background jobs: Qt-free generators run by
:class:`app.common.workers.Worker`.

They only wire :mod:`rpn_core` calls together and time them; nothing here imports Qt or, at
import time, torch. Boxes follow :mod:`rpn_core.boxes` (original-image pixels).

``pixels`` is the document's display copy, which for a huge image is downscaled by ``scale``
(display pixels per original pixel, :class:`rpn_core.images.loading.LoadedImage`); results are
mapped
back to original pixels here, so the app only ever sees original pixels.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rpn_core.rpn.config import SelectionConfig

__all__ = ["METHODS", "SS_SCORE", "ProposalRun", "rpn_job", "selective_search_job"]

METHODS = {"rpn": "RPN", "selective-search": "Selective Search"}
SS_SCORE = 0.6  # Selective Search has no scores: one mid-ramp colour for all its boxes


@dataclass(frozen=True)
class ProposalRun:
    """One source's output on one image.

    ``raw``: the RPN's :class:`rpn_core.rpn.types.RawProposals` (every anchor; the panel
    re-selects from it without rerunning the backbone); ``boxes``: Selective Search's boxes in
    its own ranking order (``None`` for the RPN). ``seconds``: compute time on this image
    (model loading excluded, it is ``load_seconds``); ``token``: the image this run was for.
    """

    method: str
    token: int
    seconds: float
    raw: Any = None
    boxes: np.ndarray | None = None
    load_seconds: float = 0.0
    _best_iou: dict = field(default_factory=dict, compare=False, repr=False)
    _full: dict = field(default_factory=dict, compare=False, repr=False)

    def select(self, selection: SelectionConfig) -> tuple[np.ndarray, np.ndarray, Any]:
        """``(boxes, scores, anchors or None)`` of this run under ``selection`` (original
        pixels; Selective Search has no scores, every box shows :data:`SS_SCORE`, and no
        anchors).

        NMS keeps proposals in score order, so the top-N of a selection is the first N of
        the same selection with no top-N limit: that full selection is kept for the last
        other settings, and a top-N change is a slice, not a new NMS.
        """
        key = dataclasses.replace(selection, top_n=0)  # every setting but top-N
        full = self._full.get(key)
        if full is None:
            full = self._select_all(selection)
            self._full.clear()
            self._full[key] = full
        boxes, scores, anchors = full
        n = selection.top_n
        return boxes[:n], scores[:n], (None if anchors is None else anchors[:n])

    def _select_all(self, s: SelectionConfig) -> tuple[np.ndarray, np.ndarray, Any]:
        if self.method == "rpn":
            from rpn_core.rpn.selection import select_proposals  # torch: this run produced ``raw``

            p = select_proposals(self.raw, **dataclasses.replace(s, top_n=len(self.raw)).kwargs())
            return p.boxes, p.scores, self.raw.anchors[p.anchor_index]
        b = self.boxes
        wh = b[:, 2:] - b[:, :2]
        b = b[(wh >= max(s.min_size, 1e-3)).all(axis=1)]
        return b, np.full(len(b), SS_SCORE), None

    def every_anchor_recall(self, gt: np.ndarray, iou: float = 0.5) -> float:
        """Recall of the RPN's every anchor's refined box (~20,000: before ranking and NMS)
        for GT boxes ``gt``. Each GT box's best IoU is kept, so after a box edit only the
        edited box costs a column of IoUs."""
        from rpn_core.rpn.proposals import recall_at_iou

        keys = [tuple(b) for b in np.asarray(gt, dtype=np.float32).tolist()]
        missing = [k for k in dict.fromkeys(keys) if k not in self._best_iou]
        if missing:
            import torch  # loaded: this run produced ``raw``
            from torchvision.ops import box_iou

            iou_matrix = box_iou(torch.from_numpy(self.raw.boxes), torch.tensor(missing))
            best = torch.nan_to_num(iou_matrix).amax(dim=0).tolist()
            self._best_iou.update(zip(missing, best, strict=True))
        return recall_at_iou(np.array([self._best_iou[k] for k in keys]), iou)


def _to_original(raw: Any, scale: float, size_hw: tuple[int, int]) -> Any:
    if scale == 1.0:
        return raw
    return dataclasses.replace(
        raw, anchors=raw.anchors / scale, boxes=raw.boxes / scale, image_size=size_hw
    )


def rpn_job(
    get_model: Callable[[], Any],
    pixels: np.ndarray,
    *,
    token: int,
    scale: float = 1.0,
    original_size: tuple[int, int] | None = None,
) -> Generator[str, None, ProposalRun]:
    """Load the model if needed (``get_model``, e.g. :meth:`app.common.workers.ModelLoader.get`),
    run the backbone once and score every anchor. Yields status lines between steps, where
    the worker checks for cancellation."""
    t0 = time.perf_counter()
    model = get_model()
    t1 = time.perf_counter()
    yield "Running the backbone..."
    features = model.compute_features(pixels)
    yield "Scoring anchors..."
    raw = model.raw_proposals(features)
    t3 = time.perf_counter()
    size_hw = original_size or tuple(pixels.shape[:2])
    return ProposalRun(
        method="rpn",
        token=token,
        seconds=t3 - t1,
        raw=_to_original(raw, scale, size_hw),
        load_seconds=t1 - t0,
    )


def selective_search_job(
    pixels: np.ndarray, *, token: int, scale: float = 1.0
) -> Generator[str, None, ProposalRun]:
    """Selective Search (OpenCV contrib, fast mode) via :mod:`rpn_core.rpn.proposals`."""
    yield "Running Selective Search..."
    from rpn_core.rpn.proposals import selective_search

    t0 = time.perf_counter()
    boxes = np.asarray(selective_search(pixels), dtype=np.float64).reshape(-1, 4)
    seconds = time.perf_counter() - t0
    return ProposalRun("selective-search", token, seconds, boxes=boxes / scale)
