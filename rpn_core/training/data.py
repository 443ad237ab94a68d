"""Training data for :func:`rpn_core.training.finetune.fine_tune`: samples, the seeded split, augmentation.

Box convention: see :mod:`rpn_core.boxes`. Everything here is numpy (no torch import), so it
is cheap to use from the app and the command line.

Augmentation
------------
An :class:`Augment` is one deterministic variant of an image: a horizontal flip and/or a
*zoom* by a factor ``s`` (scale jitter). The image is resized by ``s`` and put back on a canvas
of its own size -- padded with the ImageNet mean colour when ``s < 1``, cropped when ``s > 1``
-- so objects change size relative to the frame, which survives the model's own resize to a
fixed shorter side. Boxes follow the pixels and are clipped to the canvas; a box that keeps
less than half its area (or becomes thinner than 2 pixels) is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rpn_core.boxes import as_boxes, invalid_box_indices

__all__ = [
    "Augment",
    "DataSplit",
    "TrainSample",
    "apply_augment",
    "as_samples",
    "augment_plan",
    "split_samples",
]

# ImageNet mean in uint8 RGB: padding with it gives zeros after the model's normalisation.
PAD_RGB = (124, 116, 104)
MIN_VISIBLE_FRACTION = 0.5
MIN_BOX_SIDE = 2.0


@dataclass(frozen=True)
class TrainSample:
    """One annotated image: ``boxes`` ``(G, 4)`` in original upright pixels.

    ``image`` is an RGB ``uint8`` array or ``None``; when ``None`` the pixels are read from
    ``path`` with :func:`rpn_core.images.loading.load_image` when needed.
    """

    name: str
    boxes: np.ndarray
    path: Path | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def pixels(self) -> np.ndarray:
        """The RGB ``uint8`` pixels in the frame of ``boxes`` (reads the file if needed)."""
        if self.image is not None:
            return self.image
        if self.path is None:
            raise ValueError(f"sample {self.name!r} has neither pixels nor a path")
        from rpn_core.images.loading import load_image

        loaded = load_image(self.path)
        if loaded.scale != 1.0:  # a downscaled display copy: bring it to original pixels
            return cv2.resize(loaded.pixels, (loaded.width, loaded.height))
        return loaded.pixels


def _sample_from(item: object, index: int) -> TrainSample:
    if isinstance(item, TrainSample):
        return item
    if hasattr(item, "image_path"):  # ImageAnnotation, rpn_core.annotation.dataset.DatasetItem
        path = Path(item.image_path)
        boxes = item.boxes_array() if hasattr(item, "boxes_array") else item.boxes
        return TrainSample(path.name, as_boxes(boxes), path=path)
    if isinstance(item, tuple) and len(item) == 2:  # (image array or path, boxes)
        image, boxes = item
        if isinstance(image, (str, Path)):
            return TrainSample(Path(image).name, as_boxes(boxes), path=Path(image))
        return TrainSample(f"image {index}", as_boxes(boxes), image=np.asarray(image))
    raise TypeError(
        f"training item {index} is a {type(item).__name__}; expected a TrainSample, an "
        "ImageAnnotation or an (image, boxes) pair"
    )


def as_samples(items: Iterable[object]) -> list[TrainSample]:
    """Normalise training items and keep the images that have at least one valid box.

    Items may be :class:`TrainSample`, :class:`~rpn_core.annotation.data.ImageAnnotation`,
    :class:`~rpn_core.annotation.dataset.DatasetItem` or ``(image_or_path, boxes)`` pairs.
    Invalid boxes (zero area, not finite) are dropped.
    """
    samples = []
    for i, item in enumerate(items):
        s = _sample_from(item, i)
        boxes = as_boxes(s.boxes, dtype=np.float32)
        bad = invalid_box_indices(boxes)
        if bad:
            boxes = np.delete(boxes, bad, axis=0)
        if len(boxes):
            samples.append(TrainSample(s.name, boxes, s.path, s.image))
    return samples


@dataclass(frozen=True)
class DataSplit:
    """Indices into the sample list: ``train`` and ``validation``, each sorted."""

    train: tuple[int, ...]
    validation: tuple[int, ...]

    def summary(self, samples: Sequence[TrainSample]) -> dict:
        """A JSON-ready description (for checkpoints): counts and image names."""
        return {
            "train_images": len(self.train),
            "validation_images": len(self.validation),
            "train_boxes": int(sum(len(samples[i].boxes) for i in self.train)),
            "validation_boxes": int(sum(len(samples[i].boxes) for i in self.validation)),
            "validation_names": [samples[i].name for i in self.validation],
        }


def split_samples(n: int, val_fraction: float, seed: int) -> DataSplit:
    """A seeded split of ``n`` samples: ``round(n * val_fraction)`` validation images.

    At least one image stays for training; with ``val_fraction > 0`` and ``n >= 2`` at least
    one goes to validation. The same ``(n, val_fraction, seed)`` always gives the same split.
    """
    if n < 1:
        raise ValueError("no annotated images to train on (every image needs at least one box)")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {val_fraction}")
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return DataSplit(
        train=tuple(sorted(int(i) for i in order[n_val:])),
        validation=tuple(sorted(int(i) for i in order[:n_val])),
    )


@dataclass(frozen=True)
class Augment:
    """One variant of an image: flip first, then zoom by ``scale`` around offset ``shift``.

    ``shift`` in ``[0, 1]^2`` places the resized image on the canvas: the fraction of the free
    (``s < 1``) or cut-off (``s > 1``) margin that lies left of / above it.
    """

    flip: bool = False
    scale: float = 1.0
    shift: tuple[float, float] = (0.5, 0.5)

    @property
    def is_identity(self) -> bool:
        return not self.flip and self.scale == 1.0


def augment_plan(
    copies: int, *, hflip: bool, scale_range: tuple[float, float], rng: np.random.Generator
) -> list[Augment]:
    """``copies`` variants: the original first, then random flips and log-uniform zooms."""
    lo, hi = scale_range
    if not 0 < lo <= hi:
        raise ValueError(f"scale jitter range must satisfy 0 < low <= high, got {scale_range}")
    plan = [Augment()]
    for k in range(1, copies):
        flip = bool(hflip and (k % 2 == 1))  # alternate, so half the copies are mirrored
        scale = float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else lo
        shift = (float(rng.uniform()), float(rng.uniform()))
        plan.append(Augment(flip=flip, scale=scale, shift=shift))
    return plan


def _flip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = image.shape[1]
    flipped = boxes.copy()
    flipped[:, 0] = w - boxes[:, 2]
    flipped[:, 2] = w - boxes[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), flipped


def _zoom(
    image: np.ndarray, boxes: np.ndarray, scale: float, shift: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (rw, rh), interpolation=interp)
    # Offset of the resized image's origin on the canvas (negative: cropped).
    ox = round((w - rw) * shift[0])
    oy = round((h - rh) * shift[1])
    canvas = np.empty_like(image)
    canvas[:] = PAD_RGB
    sx0, sy0 = max(0, -ox), max(0, -oy)
    dx0, dy0 = max(0, ox), max(0, oy)
    cw, ch = min(w - dx0, rw - sx0), min(h - dy0, rh - sy0)
    canvas[dy0 : dy0 + ch, dx0 : dx0 + cw] = resized[sy0 : sy0 + ch, sx0 : sx0 + cw]
    sx, sy = rw / w, rh / h
    moved = boxes * np.array([sx, sy, sx, sy], dtype=boxes.dtype)
    moved += np.array([ox, oy, ox, oy], dtype=boxes.dtype)
    clipped = moved.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, w)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, h)
    full = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    cw_, ch_ = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    big = (cw_ >= MIN_BOX_SIDE) & (ch_ >= MIN_BOX_SIDE)
    keep = (cw_ * ch_ >= MIN_VISIBLE_FRACTION * full) & big
    return canvas, clipped[keep]


def apply_augment(
    image: np.ndarray, boxes: np.ndarray, augment: Augment
) -> tuple[np.ndarray, np.ndarray]:
    """The augmented ``(image, boxes)``; the canvas keeps the input's size (module docstring)."""
    boxes = as_boxes(boxes, dtype=np.float32)
    if augment.flip:
        image, boxes = _flip(image, boxes)
    if augment.scale != 1.0:
        image, boxes = _zoom(image, boxes, augment.scale, augment.shift)
    return image, boxes
