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

Cell centring (TF's SSD grid)
-----------------------------
With ``AnchorConfig.centring == "cell"`` a level's ``Hf x Wf`` cells (still
``ceil(H / stride)`` by ``ceil(W / stride)``) divide the *unpadded* image evenly and the anchors
of cell ``(row, col)`` are centred on its middle, ``((col + 0.5) W / Wf, (row + 0.5) H / Hf)``:
TensorFlow's ``MultipleGridAnchorGenerator``, which the COCO SSD's predictors were trained
with (on a 300 x 300 input the six levels have 19, 10, 5, 3, 2 and 1 cells, steps of
15.8 to 300 px). Models that use it take their input unpadded.

Levels (a feature pyramid)
--------------------------
Each size may have its own stride (``AnchorConfig.size_strides``): the sizes that share a
stride form one *level*, tiled on that stride's grid (e.g. 16 and 32 px at stride 8, 64 to
512 px at stride 16). :func:`generate_anchors` concatenates the levels in ascending stride,
each in the order above with that level's sizes: exactly torchvision's multi-level
``AnchorGenerator(sizes=((16, 32), (64, ...)), aspect_ratios=(ratios, ratios))`` over the
levels' feature maps (a parity test pins it). A config whose sizes all share one stride is
one level and behaves exactly as before levels existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "AnchorConfig",
    "CENTRINGS",
    "base_anchors",
    "base_anchors_numpy",
    "cell_centres",
    "feature_size",
    "generate_anchors",
    "parse_sizes",
    "format_sizes",
]


CENTRINGS = ("corner", "cell")


@dataclass(frozen=True)
class AnchorConfig:
    """Anchor sizes (square-root of area, pixels), aspect ratios ``h / w`` and stride.

    The default is the reference guide's set: 64, 128, 256 x 1:2, 1:1, 2:1 at stride 16,
    nine anchors per location.

    ``size_strides`` gives each size its own stride (levels: module docstring); empty means
    every size uses ``stride``. With levels, ``stride`` is the coarsest of them (the one the
    input is padded to). A per-size tuple equal to ``stride`` everywhere is stored empty, so
    a one-level config compares equal however it was written.

    ``centring``: ``"corner"`` (torchvision's grid) or ``"cell"`` (TF's; module docstring).
    """

    sizes: tuple[float, ...] = (64.0, 128.0, 256.0)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    stride: int = 16
    size_strides: tuple[int, ...] = ()
    centring: str = "corner"

    def __post_init__(self) -> None:
        sizes = tuple(float(s) for s in self.sizes)
        ratios = tuple(float(r) for r in self.aspect_ratios)
        if not sizes or not all(math.isfinite(s) and s > 0 for s in sizes):
            raise ValueError(f"anchor sizes must be positive numbers, got {self.sizes!r}")
        if not ratios or not all(math.isfinite(r) and r > 0 for r in ratios):
            raise ValueError(f"aspect ratios must be positive numbers, got {self.aspect_ratios!r}")
        if len(set(sizes)) != len(sizes) or len(set(ratios)) != len(ratios):
            raise ValueError("anchor sizes and aspect ratios must not repeat")
        if self.centring not in CENTRINGS:
            raise ValueError(f"centring must be one of {CENTRINGS}, got {self.centring!r}")
        if int(self.stride) != self.stride or self.stride < 1:
            raise ValueError(f"stride must be a positive integer, got {self.stride!r}")
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "aspect_ratios", ratios)
        object.__setattr__(self, "stride", int(self.stride))
        per_size = tuple(self.size_strides)
        if per_size:
            if len(per_size) != len(sizes):
                raise ValueError(
                    f"size_strides needs one stride per size: {len(per_size)} strides for "
                    f"{len(sizes)} sizes"
                )
            if not all(int(t) == t and t >= 1 for t in per_size):
                raise ValueError(f"strides must be positive integers, got {per_size!r}")
            per_size = tuple(int(t) for t in per_size)
            if max(per_size) != self.stride:
                raise ValueError(
                    f"stride ({self.stride}) must be the coarsest of the sizes' strides {per_size}"
                )
            if all(t == self.stride for t in per_size):
                per_size = ()
        object.__setattr__(self, "size_strides", per_size)

    @property
    def num_anchors_per_location(self) -> int:
        """``A = len(sizes) * len(aspect_ratios)``: anchor shapes, over every level."""
        return len(self.sizes) * len(self.aspect_ratios)

    @property
    def strides(self) -> tuple[int, ...]:
        """The stride of each size (``size_strides``, or ``stride`` for every size)."""
        return self.size_strides or (self.stride,) * len(self.sizes)

    @property
    def levels(self) -> tuple[AnchorConfig, ...]:
        """One single-stride config per level, in ascending stride (``(self,)`` with one)."""
        if not self.size_strides:
            return (self,)
        out = []
        for t in sorted(set(self.size_strides)):
            sizes = tuple(s for s, st in zip(self.sizes, self.size_strides, strict=True) if st == t)
            out.append(replace(self, sizes=sizes, stride=t, size_strides=()))
        return tuple(out)

    def level_size_indices(self) -> tuple[tuple[int, ...], ...]:
        """For each level of :attr:`levels`, the indices of its sizes in :attr:`sizes`."""
        strides = self.strides
        return tuple(
            tuple(i for i, st in enumerate(strides) if st == lv.stride) for lv in self.levels
        )

    def to_dict(self) -> dict:
        """A JSON-ready dict (for checkpoints and settings); ``size_strides`` only with
        levels, so a one-level config writes what every earlier version wrote."""
        out = {
            "sizes": list(self.sizes),
            "aspect_ratios": list(self.aspect_ratios),
            "stride": self.stride,
        }
        if self.size_strides:
            out["size_strides"] = list(self.size_strides)
        if self.centring != "corner":
            out["centring"] = self.centring
        return out

    @classmethod
    def from_dict(cls, data: dict) -> AnchorConfig:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on missing or bad fields."""
        try:
            return cls(
                sizes=tuple(data["sizes"]),
                aspect_ratios=tuple(data["aspect_ratios"]),
                stride=data["stride"],
                size_strides=tuple(data.get("size_strides") or ()),
                centring=data.get("centring", "corner"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not an anchor configuration: {exc}") from exc


def parse_sizes(text: str, stride: int) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """Sizes as the lab's field writes them, ``"16@8, 32@8, 64, 128"``: a size, and after
    ``@`` the stride of its level (default ``stride``). Returns ``(sizes, size_strides)``;
    ``ValueError`` names the bad item."""
    sizes, strides = [], []
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        size_text, _, stride_text = item.partition("@")
        try:
            size = float(size_text)
            step = int(stride_text) if stride_text.strip() else int(stride)
        except ValueError:
            raise ValueError(f"not a size: {item!r} (write 64, or 16@8 for stride 8)") from None
        sizes.append(size)
        strides.append(step)
    return tuple(sizes), tuple(strides)


def format_sizes(config: AnchorConfig) -> str:
    """The lab's text for ``config.sizes``: ``"16@8, 32@8, 64, 128"`` (inverse of
    :func:`parse_sizes`; ``@stride`` only on sizes finer than ``config.stride``)."""
    return ", ".join(
        f"{s:g}" if st == config.stride else f"{s:g}@{st}"
        for s, st in zip(config.sizes, config.strides, strict=True)
    )


def feature_size(image_size: tuple[int, int], config: AnchorConfig) -> tuple[int, int]:
    """Feature grid ``(Hf, Wf) = (ceil(H / stride), ceil(W / stride))`` of ``config.stride``
    (the coarsest level; a level's own grid: ``feature_size(size, level)``)."""
    h, w = image_size
    if h < 1 or w < 1:
        raise ValueError(f"image size must be at least 1x1, got {h}x{w}")
    return math.ceil(h / config.stride), math.ceil(w / config.stride)


def cell_centres(
    image_size: tuple[int, int], config: AnchorConfig, dtype: np.dtype | type = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """``(ys (Hf,), xs (Wf,))``: where the anchors of each row and column of ``config.stride``'s
    grid are centred (module docstring: ``row * stride``, or the cell's middle with
    ``centring == "cell"``)."""
    hf, wf = feature_size(image_size, config)
    if config.centring == "cell":
        h, w = image_size
        ys = (np.arange(hf, dtype=np.float64) + 0.5) * (h / hf)
        xs = (np.arange(wf, dtype=np.float64) + 0.5) * (w / wf)
    else:
        ys = np.arange(hf, dtype=np.float64) * config.stride
        xs = np.arange(wf, dtype=np.float64) * config.stride
    return ys.astype(dtype), xs.astype(dtype)


def base_anchors(
    config: AnchorConfig, dtype: torch.dtype | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """The ``A`` anchors of one location centred on ``(0, 0)``, ``(A, 4)``, rounded (every
    level's shapes, level after level, as :func:`generate_anchors` orders them)."""
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
    if config.size_strides:
        return np.concatenate([base_anchors_numpy(lv, dtype) for lv in config.levels])
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
    """All anchors over an image of ``image_size = (H, W)``: ``(T, 4)`` with ``T = Hf*Wf*A``
    (summed over levels).

    Order and centre convention: see the module docstring.
    """
    import torch

    if config.size_strides:
        return torch.cat(
            [generate_anchors(image_size, lv, dtype=dtype, device=device) for lv in config.levels]
        )
    base = base_anchors(config, dtype=dtype, device=device)
    ys_np, xs_np = cell_centres(image_size, config, base.numpy(force=True).dtype)
    ys = torch.from_numpy(ys_np).to(device)
    xs = torch.from_numpy(xs_np).to(device)
    shift_y, shift_x = torch.meshgrid(ys, xs, indexing="ij")
    shift_x = shift_x.reshape(-1)
    shift_y = shift_y.reshape(-1)
    shifts = torch.stack([shift_x, shift_y, shift_x, shift_y], dim=1)
    return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)
