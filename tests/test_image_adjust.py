"""Display-only brightness / contrast lookup tables (rpn_core.images.adjust), golden values by
hand from the rule out = round((1 + 0.1 b) * (128 + (1 + 0.1 c) * (v - 128))), clipped."""

from __future__ import annotations

import numpy as np
import pytest

from rpn_core.images.adjust import LIMITS, ImageAdjustment

B_MIN, B_MAX = LIMITS["brightness"]
C_MIN, C_MAX = LIMITS["contrast"]


def test_identity_lut_is_every_value():
    adj = ImageAdjustment()
    assert adj.is_identity
    np.testing.assert_array_equal(adj.lut(), np.arange(256, dtype=np.uint8))
    assert adj.lut().dtype == np.uint8 and adj.lut().shape == (256,)


@pytest.mark.parametrize(
    ("brightness", "contrast", "value", "expected"),
    [
        (1, 0, 100, 110),  # 100 * 1.1
        (-1, 0, 100, 90),  # 100 * 0.9
        (1, 0, 250, 255),  # 275 clipped
        (1, 0, 0, 0),  # a gain: black stays black
        (0, 1, 100, 97),  # 128 + 1.1 * (100 - 128) = 97.2
        (0, 1, 200, 207),  # 128 + 1.1 * 72 = 207.2
        (0, 1, 128, 128),  # the pivot stays
        (0, -1, 100, 103),  # 128 + 0.9 * (-28) = 102.8
        (0, 1, 5, 0),  # 128 + 1.1 * (-123) = -7.3 clipped
        (1, 1, 100, 107),  # 1.1 * (128 + 1.1 * (100 - 128)) = 1.1 * 97.2 = 106.92
        (B_MIN, C_MAX, 255, 102),  # 0.2 * (128 + 3 * 127) = 101.8: not clipped between
        (2, 0, 100, 120),  # 100 * 1.2 (steps add, they do not compound)
        (B_MIN, 0, 100, 20),  # 100 * 0.2
        (B_MAX, C_MIN, 0, 205),  # 2 * (128 + 0.2 * (-128)) = 204.8
    ],
)
def test_lut_golden_values(brightness, contrast, value, expected):
    lut = ImageAdjustment(brightness=brightness, contrast=contrast).lut()
    assert lut[value] == expected


def test_steps_clamp_to_the_range():
    adj = ImageAdjustment()
    for _ in range(50):
        adj = adj.stepped(brightness=1, contrast=-1)
    assert (adj.brightness, adj.contrast) == (B_MAX, C_MIN)
    assert adj.brightness_factor == pytest.approx(2.0)
    assert adj.contrast_factor == pytest.approx(0.2)
    assert adj.describe() == "Brightness 200 %, contrast 20 %"
    for _ in range(50):
        adj = adj.stepped(brightness=-1, contrast=1)
    assert (adj.brightness_factor, adj.contrast_factor) == pytest.approx((0.2, 3.0))
    assert ImageAdjustment(brightness=1, contrast=-2).describe() == (
        "Brightness 110 %, contrast 80 %"
    )


@pytest.mark.parametrize("bad", [{"brightness": B_MAX + 1}, {"contrast": C_MIN - 1}])
def test_out_of_range_steps_are_refused(bad):
    with pytest.raises(ValueError, match="steps outside"):
        ImageAdjustment(**bad)


def test_luts_are_monotonic_and_never_all_one_value():
    for b in (B_MIN, -1, 0, 1, B_MAX):
        for c in (C_MIN, 0, C_MAX):
            lut = ImageAdjustment(brightness=b, contrast=c).lut().astype(int)
            assert np.all(np.diff(lut) >= 0)
            assert lut.max() > lut.min()
