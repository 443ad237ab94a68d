"""The arithmetic of ``scripts/convert_ssd_backbone.py`` (TF SSD MobileNetV2 -> torchvision).

Golden values with the arithmetic in comments, an equivalence check of both foldings on a
tiny random conv + batch-norm, and the protocol-buffer reader on a hand-encoded GraphDef.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from script_modules import load_script


@pytest.fixture(scope="module")
def conv():
    return load_script("convert_ssd_backbone")


def test_bn_eps_folding_golden(conv):
    # var + 1e-3 - 1e-5: 1.0 -> 1.00099, 0.25 -> 0.25099
    var = np.array([1.0, 0.25], np.float32)
    out = conv.fold_bn_eps(var, 1e-3, 1e-5)
    np.testing.assert_allclose(out, [1.00099, 0.25099], rtol=0, atol=1e-7)
    # the scale BN applies is unchanged: 1/sqrt(var' + 1e-5) == 1/sqrt(var + 1e-3)
    np.testing.assert_allclose(1 / np.sqrt(out + 1e-5), 1 / np.sqrt(var + 1e-3), rtol=1e-6)


def test_input_scale_folding_golden(conv):
    # One 1x1 filter W = [1, 2, 3] over RGB; mean m = (0.5, 0.25, 0.75), std s = (0.5, 0.25,
    # 0.125). TF input t = 2 s x + (2 m - 1), so W' = 2 s W = [1*1, 2*0.5, 3*0.25] =
    # [1, 1, 0.75] and the constant b = sum W (2 m - 1) = 1*0 + 2*(-0.5) + 3*0.5 = 0.5,
    # subtracted from the BN's running mean: 10 -> 9.5.
    w = np.array([1.0, 2.0, 3.0], np.float32).reshape(1, 3, 1, 1)
    new_w, new_mean = conv.fold_input_scaling(
        w, np.array([10.0], np.float32), (0.5, 0.25, 0.75), (0.5, 0.25, 0.125)
    )
    np.testing.assert_array_equal(new_w.reshape(-1), [1.0, 1.0, 0.75])
    np.testing.assert_array_equal(new_mean, [9.5])


def test_foldings_reproduce_the_tf_layer(conv):
    """TF: BN(eps 1e-3)(conv(W, p / 127.5 - 1)); torch: BN(eps 1e-5)(conv(W', ImageNet x))."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, 3, 3, generator=g)
    gamma, beta = torch.rand(4, generator=g) + 0.5, torch.randn(4, generator=g)
    mean, var = torch.randn(4, generator=g), torch.rand(4, generator=g) * 0.01  # eps matters
    pixels = torch.randint(0, 256, (1, 3, 9, 9), generator=g).float()
    tf_out = torch.nn.functional.batch_norm(
        torch.nn.functional.conv2d(pixels / 127.5 - 1, w), mean, var, gamma, beta, eps=1e-3
    )
    m, s = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    new_w, new_mean = conv.fold_input_scaling(w.numpy(), mean.numpy(), m, s)
    new_var = conv.fold_bn_eps(var.numpy(), 1e-3, 1e-5)
    x = (pixels / 255 - torch.tensor(m).view(1, 3, 1, 1)) / torch.tensor(s).view(1, 3, 1, 1)
    torch_out = torch.nn.functional.batch_norm(
        torch.nn.functional.conv2d(x, torch.from_numpy(new_w)),
        torch.from_numpy(new_mean), torch.from_numpy(new_var), gamma, beta, eps=1e-5,
    )  # fmt: skip
    torch.testing.assert_close(torch_out, tf_out, rtol=1e-4, atol=1e-4)


def _varint(n: int) -> bytes:
    out = b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def _field(number: int, payload: bytes) -> bytes:  # length-delimited (wire type 2)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _const_node(name: str, dims: list[int], values: list[float], packed: bool) -> bytes:
    shape = b"".join(_field(2, _varint(1 << 3) + _varint(d)) for d in dims)
    raw = struct.pack(f"<{len(values)}f", *values)
    tensor = _varint(1 << 3) + _varint(1) + _field(2, shape)  # dtype DT_FLOAT, shape
    tensor += _field(5, raw) if packed else _field(4, raw)  # float_val or tensor_content
    attr = _field(1, b"value") + _field(2, _field(8, tensor))
    return _field(1, name.encode()) + _field(2, b"Const") + _field(5, attr)


def test_graphdef_reader_on_hand_encoded_graph(conv):
    graph = (
        _field(1, _const_node("FeatureExtractor/MobilenetV2/Conv/weights", [1, 2], [1, 2], False))
        + _field(1, _const_node("FeatureExtractor/MobilenetV2/eps", [], [0.001], True))
        + _field(1, _const_node("BoxPredictor_0/weights", [1], [5], False))
        + _field(1, _field(1, b"input") + _field(2, b"Placeholder"))
    )
    consts = conv.read_constants(graph)
    assert sorted(consts) == ["Conv/weights", "eps"]  # prefix stripped, other scopes skipped
    np.testing.assert_array_equal(consts["Conv/weights"], [[1.0, 2.0]])
    assert consts["eps"].shape == () and consts["eps"] == np.float32(0.001)
