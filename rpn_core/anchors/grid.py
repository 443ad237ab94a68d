"""Anchors tiled over an image: the one implementation both the overlay and the model use.

Box convention and shape names: see :mod:`rpn_core.boxes`.

Centre convention (torchvision's ``AnchorGenerator``)
-----------------------------------------------------
The feature grid has ``Hf = ceil(H / stride)`` rows and ``Wf = ceil(W / stride)`` columns;
this is exactly the size a stack of stride-2, padding-1 convolutions produces. The anchors
of cell ``(row, col)`` are centred on the image point ``(col * stride, row * stride)`` -- the
cell's top-left corner, not its middle (detectron2 calls this ``offset=0``). A base anchor
of size ``s`` and ratio ``r = h / w`` has ``w = s / sqrt(r)`` and ``h = s * sqrt(r)`` (so its
area is ``s**2``), and its half-extents are rounded to whole pixels, as torchvision does.

Order: location-major (row, then column), then ``A`` anchors per location with the aspect
ratio as the outer index and the size as the inner one: anchor ``a = ratio_index * S +
size_index``. A parity test pins both values and order to torchvision's ``AnchorGenerator``.

The model pads its input to a multiple of ``stride`` so that torchvision's own stride
computation (``padded_size // feature_size``) equals ``stride`` exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "AnchorConfig",
    "AnchorMeta",
    "anchor_metadata",
    "base_anchors",
    "base_anchors_numpy",
    "feature_size",
    "generate_anchors",
]


@dataclass(frozen=True)
class AnchorConfig:
    """Anchor sizes (square-root of area, pixels), aspect ratios ``h / w`` and stride.

    The default is the reference guide's set: 64, 128, 256 x 1:2, 1:1, 2:1 at stride 16,
    nine anchors per location.
    """

    sizes: tuple[float, ...] = (64.0, 128.0, 256.0)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    stride: int = 16

    def __post_init__(self) -> None:
        sizes = tuple(float(s) for s in self.sizes)
        ratios = tuple(float(r) for r in self.aspect_ratios)
        if not sizes or not all(math.isfinite(s) and s > 0 for s in sizes):
            raise ValueError(f"anchor sizes must be positive numbers, got {self.sizes!r}")
        if not ratios or not all(math.isfinite(r) and r > 0 for r in ratios):
            raise ValueError(f"aspect ratios must be positive numbers, got {self.aspect_ratios!r}")
        if len(set(sizes)) != len(sizes) or len(set(ratios)) != len(ratios):
            raise ValueError("anchor sizes and aspect ratios must not repeat")
        if int(self.stride) != self.stride or self.stride < 1:
            raise ValueError(f"stride must be a positive integer, got {self.stride!r}")
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "aspect_ratios", ratios)
        object.__setattr__(self, "stride", int(self.stride))

    @property
    def num_anchors_per_location(self) -> int:
        """``A = len(sizes) * len(aspect_ratios)``."""
        return len(self.sizes) * len(self.aspect_ratios)

    def to_dict(self) -> dict:
        """A JSON-ready dict (for checkpoints and settings)."""
        return {
            "sizes": list(self.sizes),
            "aspect_ratios": list(self.aspect_ratios),
            "stride": self.stride,
        }

    @classmethod
    def from_dict(cls, data: dict) -> AnchorConfig:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on missing or bad fields."""
        try:
            return cls(
                sizes=tuple(data["sizes"]),
                aspect_ratios=tuple(data["aspect_ratios"]),
                stride=data["stride"],
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an anchor configuration: {exc}") from exc


def feature_size(image_size: tuple[int, int], config: AnchorConfig) -> tuple[int, int]:
    """Feature grid ``(Hf, Wf) = (ceil(H / stride), ceil(W / stride))``."""
    h, w = image_size
    if h < 1 or w < 1:
        raise ValueError(f"image size must be at least 1x1, got {h}x{w}")
    return math.ceil(h / config.stride), math.ceil(w / config.stride)


def base_anchors(
    config: AnchorConfig, dtype: torch.dtype | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """The ``A`` anchors of one location centred on ``(0, 0)``, ``(A, 4)``, rounded."""
    import torch

    dtype = dtype or torch.float32
    base = base_anchors_numpy(config, torch.empty(0, dtype=dtype).numpy().dtype)
    return torch.from_numpy(base).to(device=device)


def base_anchors_numpy(config: AnchorConfig, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """:func:`base_anchors` as a numpy array of ``dtype`` (float32 or float64).

    The same IEEE operations as torchvision's ``AnchorGenerator`` (sqrt, reciprocal, products,
    halving, round-half-to-even) at the same precision, so the values are identical; a dozen
    tiny numpy ops cost ~1 us each against ~5 us as torch ops, and the overlay calls this on
    every frame.
    """
    dtype = np.dtype(dtype)
    sizes = np.asarray(config.sizes, dtype=dtype)
    h_scale = np.sqrt(np.asarray(config.aspect_ratios, dtype=dtype))
    w_scale = dtype.type(1) / h_scale
    widths = (w_scale[:, None] * sizes[None, :]).reshape(-1)
    heights = (h_scale[:, None] * sizes[None, :]).reshape(-1)
    return np.round(np.stack([-widths, -heights, widths, heights], axis=1) / dtype.type(2))


def generate_anchors(
    image_size: tuple[int, int],
    config: AnchorConfig,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """All anchors over an image of ``image_size = (H, W)``: ``(T, 4)`` with ``T = Hf*Wf*A``.

    Order and centre convention: see the module docstring.
    """
    import torch

    hf, wf = feature_size(image_size, config)
    base = base_anchors(config, dtype=dtype, device=device)
    ys = torch.arange(hf, device=device, dtype=base.dtype) * config.stride
    xs = torch.arange(wf, device=device, dtype=base.dtype) * config.stride
    shift_y, shift_x = torch.meshgrid(ys, xs, indexing="ij")
    shift_x = shift_x.reshape(-1)
    shift_y = shift_y.reshape(-1)
    shifts = torch.stack([shift_x, shift_y, shift_x, shift_y], dim=1)
    return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)


@dataclass(frozen=True)
class AnchorMeta:
    """Per-anchor facts for filtering and inspection, each a numpy ``(T,)`` array.

    ``row``/``col``: feature-grid cell; ``size_index``/``ratio_index``: index into the
    config's ``sizes``/``aspect_ratios``; ``cross_boundary``: the anchor reaches outside
    ``[0, W] x [0, H]`` of the (unpadded) image.
    """

    row: np.ndarray
    col: np.ndarray
    size_index: np.ndarray
    ratio_index: np.ndarray
    cross_boundary: np.ndarray

    def __len__(self) -> int:
        return len(self.row)


def anchor_metadata(
    image_size: tuple[int, int], config: AnchorConfig, anchors: np.ndarray | None = None
) -> AnchorMeta:
    """Metadata in the order of :func:`generate_anchors` (pass its output to skip a rebuild)."""
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
    )
