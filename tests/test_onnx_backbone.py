"""Inference speed-ups that must not change proposals: the backbone on ONNX Runtime
(rpn_core.rpn.onnx_backbone) and NMS that stops at the proposals wanted (model.nms_top).

Parity is checked against PyTorch's own backbone and torchvision's ``nms`` /
``batched_nms`` on the same inputs; the fallbacks (no runtime, a failing export) against
the PyTorch path's exact features.
"""

import copy
import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import resources
from rpn_core.anchors.grid import AnchorConfig
from rpn_core.rpn import onnx_backbone
from rpn_core.rpn.backbone import load_imagenet_state
from rpn_core.rpn.config import RPNConfig
from rpn_core.rpn.loading import load_embedded_model
from rpn_core.rpn.model import RPNModel
from rpn_core.rpn.selection import select_proposals

needs_ort = pytest.mark.skipif(not onnx_backbone.available(), reason="onnxruntime not installed")
SAMPLE = Path(resources.__file__).parent / "samples" / "astronaut.jpg"


TWO_LEVELS = AnchorConfig(
    sizes=(16.0, 32.0, 64.0, 128.0, 256.0, 512.0), size_strides=(8, 8, 16, 16, 16, 16)
)


@pytest.fixture(scope="module")
def embedded():
    return load_embedded_model(resources.embedded_weights(), "cpu")


def _two_level(embedded_model: RPNModel) -> RPNModel:
    """Version 3's architecture (stride-8 and stride-16 levels, the stride-32 context) on the
    COCO MobileNetV2 blocks the embedded model ships, with seeded random heads."""
    torch.manual_seed(0)
    model = RPNModel(RPNConfig(anchors=TWO_LEVELS, context=True), device="cpu")
    prefix = "backbone.features."
    coco = {
        "features." + k[len(prefix) :]: v
        for k, v in embedded_model.state_dict().items()
        if k.startswith(prefix)
    }
    load_imagenet_state(model.backbone, coco)
    return model


@pytest.fixture(scope="module")
def two_level(embedded):
    return _two_level(embedded)


def _photo(h=None, w=None):
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    return rgb if h is None else np.ascontiguousarray(cv2.resize(rgb, (w, h)))


def _features(model, rgb, onnx):
    model.onnx_inference = onnx
    try:
        return model.compute_features(rgb)
    finally:
        model.onnx_inference = True


@needs_ort
@pytest.mark.parametrize("shape", [None, (333, 517), (700, 401)])
def test_onnx_backbone_equals_pytorchs_on_a_photo(two_level, shape):
    rgb = _photo() if shape is None else _photo(*shape)
    fast, ref = _features(two_level, rgb, True), _features(two_level, rgb, False)
    assert two_level._onnx.runner is not None
    for a, b in ((fast.features, ref.features), (fast.fine, ref.fine)):
        assert a.shape == b.shape and a.dtype == torch.float32
        assert not torch.equal(a, b)  # really another engine
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-4
    raw_fast, raw_ref = two_level.raw_proposals(fast), two_level.raw_proposals(ref)
    p_fast, p_ref = select_proposals(raw_fast), select_proposals(raw_ref)
    assert len(p_fast.boxes) == len(p_ref.boxes) == 300
    # The best proposals are the same anchors, placed to a hundredth of a pixel.
    assert np.array_equal(p_fast.anchor_index[:50], p_ref.anchor_index[:50])
    np.testing.assert_allclose(p_fast.boxes[:50], p_ref.boxes[:50], atol=0.01)


@needs_ort
def test_the_embedded_ssd_on_onnx_equals_pytorch_on_a_photo(embedded):
    rgb = _photo()
    fast, ref = _features(embedded, rgb, True), _features(embedded, rgb, False)
    assert embedded._onnx.runner is not None and len(fast.levels) == len(ref.levels) == 6
    for a, b in zip(fast.levels, ref.levels, strict=True):
        assert a.shape == b.shape and not torch.equal(a, b)  # really another engine
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-4
    p_fast = select_proposals(embedded.raw_proposals(fast), top_n=300)
    p_ref = select_proposals(embedded.raw_proposals(ref), top_n=300)
    assert np.array_equal(p_fast.anchor_index[:50], p_ref.anchor_index[:50])
    np.testing.assert_allclose(p_fast.boxes[:50], p_ref.boxes[:50], atol=0.01)


@needs_ort
def test_one_level_model_runs_on_onnx_too():
    torch.manual_seed(0)
    model = RPNModel(RPNConfig(min_side=96, max_side=160), device="cpu")
    rgb = _photo(120, 90)
    fast, ref = _features(model, rgb, True), _features(model, rgb, False)
    assert fast.fine is None and ref.fine is None
    assert ((fast.features - ref.features).abs().max() / ref.features.abs().max()) < 1e-4


@needs_ort
def test_runner_is_cached_and_rebuilt_when_weights_or_threads_change():
    torch.manual_seed(1)
    model = RPNModel(RPNConfig(min_side=64, max_side=96), device="cpu")
    rgb = _photo(64, 64)
    before = model.compute_features(rgb).features.clone()
    first = model._onnx.runner
    model.compute_features(rgb)
    assert model._onnx.runner is first  # nothing changed: no second export
    with torch.no_grad():
        model.backbone[0][0].weight.mul_(2.0)
    changed = model.compute_features(rgb).features
    assert model._onnx.runner is not first and not torch.allclose(changed, before)
    threads = torch.get_num_threads()
    second = model._onnx.runner
    torch.set_num_threads(1 if threads > 1 else 2)
    try:
        model.compute_features(rgb)
        assert model._onnx.runner is not second
        assert model._onnx.runner.threads == torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)


@needs_ort
def test_deep_copy_builds_its_own_session():
    torch.manual_seed(2)
    model = RPNModel(RPNConfig(min_side=64, max_side=96), device="cpu")
    rgb = _photo(64, 80)
    ref = model.compute_features(rgb).features
    twin = copy.deepcopy(model)  # what a training job does with the app's model
    assert twin._onnx.runner is None
    torch.testing.assert_close(twin.compute_features(rgb).features, ref)
    assert twin._onnx.runner is not model._onnx.runner


def test_without_onnxruntime_the_backbone_runs_in_pytorch(monkeypatch):
    torch.manual_seed(3)
    model = RPNModel(RPNConfig(min_side=64, max_side=96), device="cpu")
    rgb = _photo(70, 90)
    ref = _features(model, rgb, False).features
    monkeypatch.setattr(onnx_backbone, "available", lambda: False)
    fast = model.compute_features(rgb).features
    assert model._onnx.runner is None
    assert torch.equal(fast, ref)  # exactly the PyTorch path


@needs_ort
def test_a_failing_export_falls_back_with_a_logged_reason(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("RPN_STUDIO_CACHE", str(tmp_path))  # nothing cached: it must export
    torch.manual_seed(4)
    model = RPNModel(RPNConfig(min_side=64, max_side=96), device="cpu")
    rgb = _photo(70, 90)
    ref = _features(model, rgb, False).features

    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with caplog.at_level(logging.WARNING, logger=onnx_backbone.__name__):
        got = model.compute_features(rgb).features
        model.compute_features(rgb)  # not retried for the same backbone: one message
    assert torch.equal(got, ref)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "exporter exploded" in messages[0]


@needs_ort
def test_prepare_inference_builds_the_session_ahead_of_the_first_image():
    torch.manual_seed(5)
    model = RPNModel(RPNConfig(min_side=64, max_side=96), device="cpu")
    assert model._onnx.runner is None
    model.prepare_inference()
    runner = model._onnx.runner
    assert runner is not None
    model.compute_features(_photo(64, 64))
    assert model._onnx.runner is runner


def _twin(model):
    twin = RPNModel(model.config, device="cpu")
    twin.load_state_dict(model.state_dict())
    return twin


def _counting_export(monkeypatch):
    calls = []
    real = torch.onnx.export

    def export(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export)
    return calls


@needs_ort
def test_exported_graph_is_kept_on_disk_and_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("RPN_STUDIO_CACHE", str(tmp_path))
    torch.manual_seed(7)
    model = RPNModel(RPNConfig(min_side=64, max_side=96), device="cpu")
    rgb = _photo(64, 96)
    calls = _counting_export(monkeypatch)
    ref = model.compute_features(rgb)
    graphs = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(calls) == 1 and len(graphs) == 1
    assert (
        graphs[0].with_suffix(".sha256").read_text()
        == hashlib.sha256(graphs[0].read_bytes()).hexdigest()
    )
    again = _twin(model).compute_features(rgb)  # another process would do the same
    assert len(calls) == 1  # opened from the cache, not exported
    assert torch.equal(again.features, ref.features)
    other = RPNModel(RPNConfig(min_side=64, max_side=96), device="cpu")  # other weights
    other.compute_features(rgb)
    assert len(calls) == 2 and len(list((tmp_path / "onnx").glob("*.onnx"))) == 2


@needs_ort
@pytest.mark.parametrize("damage", ["truncate", "flip", "sidecar"])
def test_a_damaged_cached_graph_is_exported_again(monkeypatch, tmp_path, damage):
    monkeypatch.setenv("RPN_STUDIO_CACHE", str(tmp_path))
    torch.manual_seed(8)
    model = RPNModel(RPNConfig(min_side=64, max_side=96), device="cpu")
    rgb = _photo(64, 96)
    ref = model.compute_features(rgb).features
    (graph,) = (tmp_path / "onnx").glob("*.onnx")
    data = graph.read_bytes()
    if damage == "truncate":
        graph.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # still a loadable graph, with one weight byte changed
        graph.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    else:
        graph.with_suffix(".sha256").write_text("0" * 64)
    calls = _counting_export(monkeypatch)
    got = _twin(model).compute_features(rgb).features
    assert len(calls) == 1  # exported again ...
    assert torch.equal(got, ref)
    assert graph.read_bytes() == data  # ... and the cache entry repaired
    assert graph.with_suffix(".sha256").read_text() == hashlib.sha256(data).hexdigest()


@needs_ort
def test_an_unwritable_cache_only_costs_the_export(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("RPN_STUDIO_CACHE", str(blocker))
    torch.manual_seed(9)
    model = RPNModel(RPNConfig(min_side=64, max_side=96), device="cpu")
    rgb = _photo(64, 96)
    fast = model.compute_features(rgb)
    assert model._onnx.runner is not None
    ref = _features(model, rgb, False).features
    assert ((fast.features - ref).abs().max() / ref.abs().max()) < 1e-4


@needs_ort
def test_one_and_two_level_models_with_the_same_backbone_get_their_own_graphs(
    monkeypatch, tmp_path
):
    # A version-2 checkpoint (one level) and version 3 (two levels) share the COCO backbone.
    monkeypatch.setenv("RPN_STUDIO_CACHE", str(tmp_path))
    one = RPNModel(RPNConfig(min_side=64, max_side=96), device="cpu")
    two = _two_level(load_embedded_model(resources.embedded_weights(), "cpu"))
    state = {
        k[len("backbone.") :]: v for k, v in two.state_dict().items() if k.startswith("backbone.")
    }
    one.backbone.load_state_dict(state)
    rgb = _photo(64, 96)
    assert two.compute_features(rgb).fine is not None
    feat = one.compute_features(rgb)
    assert feat.fine is None and one._onnx.runner is not None
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2
