"""Display-only brightness and contrast (View ▸ Brighter, Darker, More / Less Contrast).

The app shows ``lut[v]`` for every colour channel value ``v`` of the displayed copy of the
image; the image file and the pixels the RPN reads are never changed. The rule, with integer
steps ``b`` (brightness) and ``c`` (contrast) of :data:`STEP` each:

    out = clip(round((1 + STEP * b) * (128 + (1 + STEP * c) * (v - 128))), 0, 255)

i.e. contrast stretches about mid-grey 128 (a fixed pivot: the same pixel value looks the same
in every image, unlike PIL's per-image mean) and brightness is a gain on the result (black stays
black, as labelme's PIL ``ImageEnhance.Brightness``); clipped once, at the end, so the two
commute and no allowed pair turns the whole image one value. One Brighter step takes 100 to
110; one More Contrast step takes 100 to 128 - 1.1 * 28 = 97.2 -> 97.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["ImageAdjustment", "STEP", "LIMITS"]

STEP = 0.1  # +-10 % per step
# Brightness x0.2 ... x2.0, contrast x0.2 ... x3.0: no pair turns every pixel one value (a gain
# of 3 on a low-contrast view would make the whole image white).
LIMITS = {"brightness": (-8, 10), "contrast": (-8, 20)}
PIVOT = 128.0


@dataclass(frozen=True)
class ImageAdjustment:
    """Brightness and contrast as whole steps of :data:`STEP` (0, 0: the original)."""

    brightness: int = 0
    contrast: int = 0

    def __post_init__(self) -> None:
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} {value} steps outside [{low}, {high}]")

    @property
    def is_identity(self) -> bool:
        return self.brightness == 0 and self.contrast == 0

    @property
    def brightness_factor(self) -> float:
        return 1.0 + STEP * self.brightness

    @property
    def contrast_factor(self) -> float:
        return 1.0 + STEP * self.contrast

    def stepped(self, *, brightness: int = 0, contrast: int = 0) -> ImageAdjustment:
        """This adjustment moved by the given steps, clamped to :data:`LIMITS`."""

        def clamp(name: str, v: int) -> int:
            low, high = LIMITS[name]
            return min(max(v, low), high)

        return replace(
            self,
            brightness=clamp("brightness", self.brightness + brightness),
            contrast=clamp("contrast", self.contrast + contrast),
        )

    def lut(self) -> np.ndarray:
        """The ``(256,)`` uint8 table of the rule in the module docstring."""
        v = np.arange(256, dtype=np.float64)
        out = self.brightness_factor * (PIVOT + self.contrast_factor * (v - PIVOT))
        return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)

    def describe(self) -> str:
        """E.g. ``"Brightness 110 %, contrast 80 %"``."""
        return (
            f"Brightness {round(100 * self.brightness_factor)} %, "
            f"contrast {round(100 * self.contrast_factor)} %"
        )
