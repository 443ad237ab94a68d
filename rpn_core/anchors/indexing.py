"""Where each anchor sits in :func:`rpn_core.anchors.grid.generate_anchors`' output: the index
of a level's or a location's first anchor, an anchor's cell, size and ratio (and back), and
per-anchor metadata for filtering and inspection. The order is the grid module's (levels in
ascending stride, then location-major, then ratio-major within a location).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rpn_core.anchors.grid import AnchorConfig, feature_size, generate_anchors

__all__ = [
    "AnchorMeta",
    "anchor_index",
    "anchor_metadata",
    "level_offsets",
    "locate_anchor",
    "location_starts",
]


@dataclass(frozen=True)
class AnchorMeta:
    """Per-anchor facts for filtering and inspection, each a numpy ``(T,)`` array.

    ``row``/``col``: cell of its level's feature grid; ``size_index``/``ratio_index``: index
    into the config's ``sizes``/``aspect_ratios``; ``cross_boundary``: the anchor reaches
    outside ``[0, W] x [0, H]`` of the (unpadded) image; ``stride``: its level's stride.
    """

    row: np.ndarray
    col: np.ndarray
    size_index: np.ndarray
    ratio_index: np.ndarray
    cross_boundary: np.ndarray
    stride: np.ndarray

    def __len__(self) -> int:
        return len(self.row)


def anchor_metadata(
    image_size: tuple[int, int], config: AnchorConfig, anchors: np.ndarray | None = None
) -> AnchorMeta:
    """Metadata in the order of :func:`generate_anchors` (pass its output to skip a rebuild)."""
    if config.size_strides:
        parts, start = [], 0
        for lv, idx in zip(config.levels, config.level_size_indices(), strict=True):
            n = _level_count(image_size, lv)
            sub = None if anchors is None else np.asarray(anchors)[start : start + n]
            meta = anchor_metadata(image_size, lv, sub)
            parts.append(replace(meta, size_index=np.asarray(idx)[meta.size_index]))
            start += n
        return AnchorMeta(
            **{
                f: np.concatenate([getattr(p, f) for p in parts])
                for f in AnchorMeta.__dataclass_fields__
            }
        )
    hf, wf = feature_size(image_size, config)
    n_sizes, n_ratios = len(config.sizes), len(config.aspect_ratios)
    a = n_sizes * n_ratios
    loc = np.arange(hf * wf)
    per_anchor = np.arange(a)
    if anchors is None:
        anchors = generate_anchors(image_size, config).numpy()
    anchors = np.asarray(anchors)
    h, w = image_size
    cross = (anchors[:, 0] < 0) | (anchors[:, 1] < 0) | (anchors[:, 2] > w) | (anchors[:, 3] > h)
    return AnchorMeta(
        row=np.repeat(loc // wf, a),
        col=np.repeat(loc % wf, a),
        size_index=np.tile(per_anchor % n_sizes, hf * wf),
        ratio_index=np.tile(per_anchor // n_sizes, hf * wf),
        cross_boundary=cross,
        stride=np.full(hf * wf * a, config.stride, dtype=np.int64),
    )


def _level_count(image_size: tuple[int, int], level: AnchorConfig) -> int:
    hf, wf = feature_size(image_size, level)
    return hf * wf * level.num_anchors_per_location


def level_offsets(image_size: tuple[int, int], config: AnchorConfig) -> list[int]:
    """Where each level's anchors start in :func:`generate_anchors`' output, plus the total:
    ``[0, n_0, n_0 + n_1, ..., T]``."""
    out = [0]
    for lv in config.levels:
        out.append(out[-1] + _level_count(image_size, lv))
    return out


def location_starts(image_size: tuple[int, int], config: AnchorConfig) -> np.ndarray:
    """``(L,)`` the index of each location's first anchor, over every level: locations are
    contiguous runs of their level's ``num_anchors_per_location`` anchors."""
    offsets = level_offsets(image_size, config)
    return np.concatenate(
        [
            np.arange(start, stop, lv.num_anchors_per_location, dtype=np.int64)
            for lv, start, stop in zip(config.levels, offsets[:-1], offsets[1:], strict=True)
        ]
    )


def locate_anchor(
    index: int, image_size: tuple[int, int], config: AnchorConfig
) -> tuple[int, int, int, int]:
    """``(row, col, size_index, ratio_index)`` of anchor ``index`` (the cell is on its level's
    grid, ``size_index`` indexes ``config.sizes``); ``IndexError`` when out of range."""
    offsets = level_offsets(image_size, config)
    if not 0 <= index < offsets[-1]:
        raise IndexError(f"anchor {index} out of range (0..{offsets[-1] - 1})")
    for k, (lv, idx) in enumerate(zip(config.levels, config.level_size_indices(), strict=True)):
        if index < offsets[k + 1]:
            _, wf = feature_size(image_size, lv)
            loc, per = divmod(index - offsets[k], lv.num_anchors_per_location)
            ratio_i, size_i = divmod(per, len(lv.sizes))
            row, col = divmod(loc, wf)
            return row, col, idx[size_i], ratio_i
    raise AssertionError("unreachable")  # pragma: no cover


def anchor_index(
    image_size: tuple[int, int],
    config: AnchorConfig,
    row: int,
    col: int,
    size_index: int,
    ratio_index: int,
) -> int | None:
    """Inverse of :func:`locate_anchor`; None when the cell is outside the size's grid."""
    offsets = level_offsets(image_size, config)
    for k, (lv, idx) in enumerate(zip(config.levels, config.level_size_indices(), strict=True)):
        if size_index in idx:
            hf, wf = feature_size(image_size, lv)
            if not (0 <= row < hf and 0 <= col < wf):
                return None
            per = ratio_index * len(lv.sizes) + idx.index(size_index)
            return offsets[k] + (row * wf + col) * lv.num_anchors_per_location + per
    raise IndexError(f"size index {size_index} out of range")
