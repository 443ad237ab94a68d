"""Checkpoints: written atomically with their training story, read back exactly, and refused
with an explanation when shapes, anchors or values do not fit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from rpn_core.anchors.grid import AnchorConfig
from rpn_core.rpn.checkpoint import (
    CheckpointError,
    describe_anchor_mismatch,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from rpn_core.rpn.config import RPNConfig
from rpn_core.rpn.loading import load_model
from rpn_core.rpn.model import RPNModel
from rpn_core.rpn.weights import WeightsError, write_weights
from rpn_core.training.finetune import TrainConfig, fine_tune

sys.path.insert(0, str(Path(__file__).parent))
from test_train import TINY, make_items  # noqa: E402

TWELVE = RPNConfig(anchors=AnchorConfig(sizes=(16.0, 24.0, 32.0, 48.0)), min_side=96, max_side=128)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see tests/test_train.py
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(one_thread) -> RPNModel:
    torch.manual_seed(0)
    return RPNModel(TINY, device="cpu")


def test_round_trip_with_training_story(model, tmp_path):
    trained = RPNModel(TINY, device="cpu")
    trained.load_state_dict(model.state_dict())
    cfg = TrainConfig(epochs=1, augment_copies=1, val_fraction=0.25)
    records = list(fine_tune(trained, make_items(4), cfg))
    result = records[-1].result
    path = tmp_path / "ck.safetensors"
    digest = save_checkpoint(trained, path, result=result, extra={"source": "tests"})
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["sha256"] == digest
    meta = side["metadata"]
    assert meta["kind"] == "rpn-studio-checkpoint" and meta["label_preset"] == "faster-rcnn"
    assert meta["anchors"] == {"sizes": [24.0, 48.0], "aspect_ratios": [0.5, 1.0, 2.0],
                               "stride": 16}  # fmt: skip
    assert meta["training"]["epochs"] == 1 and meta["data"]["train_images"] == 3
    assert meta["metrics"]["after"] == result.metrics_after and meta["source"] == "tests"
    loaded, info = load_checkpoint(path, expected_anchors=TINY.anchors, device="cpu")
    assert info.config == TINY and info.metrics["before"] == result.metrics_before
    for k, v in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert not loaded.training
    # The app's generic loader reads checkpoints as they are.
    assert torch.equal(load_model(path, "cpu").rpn.head.conv[0][0].weight,
                       trained.rpn.head.conv[0][0].weight)  # fmt: skip


def test_anchor_mismatch_is_explained():
    why = describe_anchor_mismatch(AnchorConfig(), AnchorConfig(sizes=(32, 64, 128, 256)))
    assert why == (
        "the checkpoint has 9 anchors per location (3 sizes x 3 ratios), the current "
        "configuration 12 (4 sizes x 3 ratios); anchor sizes 64, 128, 256 in the checkpoint, "
        "32, 64, 128, 256 now"
    )
    same_count = describe_anchor_mismatch(AnchorConfig(), AnchorConfig(aspect_ratios=(1, 2, 3)))
    assert same_count == "aspect ratios (h/w) 0.5, 1, 2 in the checkpoint, 1, 2, 3 now"
    assert describe_anchor_mismatch(AnchorConfig(), AnchorConfig()) is None


def test_load_refuses_other_anchors_with_the_reason(model, tmp_path):
    path = tmp_path / "a.safetensors"
    save_checkpoint(model, path)
    with pytest.raises(CheckpointError, match=r"current configuration 12 \(4 sizes x 3 ratios\)"):
        load_checkpoint(path, expected_anchors=TWELVE.anchors)


def test_weights_that_do_not_fit_their_configuration(tmp_path):
    twelve = RPNModel(TWELVE, device="cpu")
    path = tmp_path / "b.safetensors"
    save_checkpoint(twelve, path)
    side_path = path.with_suffix(".json")
    side = json.loads(side_path.read_text())
    side["config"]["anchors"] = TINY.anchors.to_dict()  # claims 6 anchors; tensors have 12
    side_path.write_text(json.dumps(side))
    with pytest.raises(CheckpointError, match=r"predict 12 anchors per location but the stored "
                       r"anchor configuration has 6 \(2 sizes x 3 ratios\)"):  # fmt: skip
        read_checkpoint(path)


def test_missing_tensor_and_nan_values_are_refused(model, tmp_path):
    state = dict(model.state_dict())
    state.pop("rpn.head.bbox_pred.bias")
    write_weights(tmp_path / "m.safetensors", state, TINY.to_dict(), {})
    with pytest.raises(CheckpointError, match="missing 1 tensor.*bbox_pred.bias"):
        read_checkpoint(tmp_path / "m.safetensors")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["rpn.head.cls_logits.bias"][0] = float("nan")
    write_weights(tmp_path / "n.safetensors", state, TINY.to_dict(), {})
    with pytest.raises(CheckpointError, match="cls_logits.bias.*NaN"):
        load_checkpoint(tmp_path / "n.safetensors")


def test_pickle_is_never_loaded(model, tmp_path):
    path = tmp_path / "p.safetensors"
    torch.save(model.state_dict(), path)
    with pytest.raises(WeightsError, match="pickle"):
        load_checkpoint(path)


def test_failed_save_keeps_the_previous_checkpoint(model, tmp_path, monkeypatch):
    path = tmp_path / "keep.safetensors"
    save_checkpoint(model, path)
    before = path.read_bytes(), path.with_suffix(".json").read_bytes()

    def broken_save(*_args, **_kwargs):
        raise ValueError("disk full (simulated)")

    monkeypatch.setattr("safetensors.torch.save", broken_save)
    with pytest.raises(CheckpointError, match="simulated"):
        save_checkpoint(model, path)
    assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json", "keep.safetensors"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError):
        save_checkpoint(model, blocker / "sub" / "c.safetensors")
