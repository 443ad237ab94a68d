"""Fine-tuning core: split, augmentation (golden boxes), the RPN's own loss, determinism,
modes, cancel, time budget and the NaN guard. Tiny images, a randomly initialised backbone."""

from __future__ import annotations

import copy
import math
import threading

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from rpn_core.anchors.grid import AnchorConfig
from rpn_core.rpn.config import RPNConfig
from rpn_core.rpn.model import RPNModel
from rpn_core.training.data import Augment, TrainSample, apply_augment, as_samples, split_samples
from rpn_core.training.engine import prepare_sample, recall_dict
from rpn_core.training.finetune import TrainConfig, TrainingError, fine_tune

TINY = RPNConfig(
    anchors=AnchorConfig(sizes=(24.0, 48.0), aspect_ratios=(0.5, 1.0, 2.0)),
    min_side=96,
    max_side=128,
    pre_nms_top_n=200,
    post_nms_top_n=100,
)
FAST = dict(epochs=2, batch_size=2, augment_copies=2, warmup_steps=1, val_fraction=0.25)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a loaded 2-core machine, 2 threads run tiny convolutions
    many times slower (measured 30 ms vs 1.2 s per backbone pass)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base_model(one_thread) -> RPNModel:
    torch.manual_seed(0)
    return RPNModel(TINY, device="cpu")


@pytest.fixture
def model(base_model: RPNModel) -> RPNModel:
    return copy.deepcopy(base_model)


def make_items(n: int = 6, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grey 96x128 images, each with one or two bright rectangles and their boxes."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        img = np.full((96, 128, 3), 60, np.uint8) + rng.integers(0, 20, (96, 128, 3), np.uint8)
        boxes = []
        for _ in range(int(rng.integers(1, 3))):
            w, h = (int(v) for v in rng.integers(16, 40, 2))
            x, y = int(rng.integers(0, 128 - w)), int(rng.integers(0, 96 - h))
            img[y : y + h, x : x + w] = (230, 200, 40)
            boxes.append([x, y, x + w, y + h])
        items.append((img, np.array(boxes, np.float32)))
    return items


def train_losses(records) -> list[float]:
    return [r.total for r in records if r.phase == "train"]


# -- data ----------------------------------------------------------------------------------
def test_split_is_seeded_sized_and_disjoint():
    a = split_samples(10, 0.3, seed=0)
    assert a == split_samples(10, 0.3, seed=0)
    assert len(a.validation) == 3 and len(a.train) == 7  # round(10 * 0.3) = 3
    assert set(a.train).isdisjoint(a.validation) and set(a.train) | set(a.validation) == set(
        range(10)
    )
    assert any(split_samples(10, 0.3, seed=s) != a for s in range(1, 5))
    assert len(split_samples(3, 0.1, seed=0).validation) == 1  # round(0.3) = 0, at least 1
    assert split_samples(1, 0.5, seed=0).validation == ()  # one image: it must train
    with pytest.raises(ValueError, match="no annotated images"):
        split_samples(0, 0.2, seed=0)


def test_as_samples_skips_images_without_valid_boxes():
    img = np.zeros((10, 10, 3), np.uint8)
    samples = as_samples(
        [(img, np.zeros((0, 4))), (img, [[1, 1, 1, 5], [0, 0, 4, 4]]), (img, [[2, 2, 9, 9]])]
    )
    assert len(samples) == 2
    np.testing.assert_array_equal(samples[0].boxes, [[0, 0, 4, 4]])  # zero-width box dropped
    with pytest.raises(TypeError, match="training item 0"):
        as_samples([42])


def test_flip_mirrors_boxes_and_pixels():
    img = np.zeros((50, 100, 3), np.uint8)
    img[20:40, 10:30] = 255
    out, boxes = apply_augment(img, [[10, 20, 30, 40]], Augment(flip=True))
    # x1' = W - x2 = 100 - 30 = 70, x2' = W - x1 = 100 - 10 = 90
    np.testing.assert_allclose(boxes, [[70, 20, 90, 40]])
    assert out[20:40, 70:90].min() == 255 and out[:, :70].max() == 0


def test_zoom_out_pads_and_scales_boxes():
    img = np.full((100, 200, 3), 255, np.uint8)
    out, boxes = apply_augment(img, [[20, 40, 60, 80]], Augment(scale=0.5, shift=(0.0, 0.0)))
    # resized to 50 x 100 at the top-left: every coordinate halves
    np.testing.assert_allclose(boxes, [[10, 20, 30, 40]])
    assert out.shape == img.shape and tuple(out[75, 150]) == (124, 116, 104)  # mean padding


def test_zoom_in_crops_and_drops_boxes_outside():
    img = np.zeros((100, 200, 3), np.uint8)
    gt = [[150, 60, 190, 90], [0, 0, 20, 20]]
    _, boxes = apply_augment(img, gt, Augment(scale=2.0, shift=(1.0, 1.0)))
    # resized 200 x 400, offset (200 - 400) * 1 = -200, (100 - 200) * 1 = -100:
    # (150, 60, 190, 90) * 2 = (300, 120, 380, 180) -> (100, 20, 180, 80); the second box
    # maps to (-200, -100, -160, -60), outside the canvas, and is dropped.
    np.testing.assert_allclose(boxes, [[100, 20, 180, 80]])


def test_recall_dict_divides_found_by_total():
    found = np.array([[3, 1]])  # 3 of 4 GT boxes at IoU 0.5, 1 of 4 at 0.7
    assert recall_dict(found, 4, (100,)) == {"recall@100/0.5": 0.75, "recall@100/0.7": 0.25}
    assert math.isnan(recall_dict(found * 0, 0, (100,))["recall@100/0.5"])


# -- training ------------------------------------------------------------------------------
def test_first_step_loss_is_the_rpns_own_loss(model):
    items = make_items(4)
    seed = 3
    cfg = TrainConfig(seed=seed, batch_size=1, augment_copies=1, val_fraction=0.0, epochs=1)
    expected_model = copy.deepcopy(model)
    first = next(r for r in fine_tune(model, items, cfg) if r.phase == "train")
    # Same order as fine_tune: a seeded DistributedSampler with one replica, epoch 0.
    sampler = DistributedSampler(range(4), num_replicas=1, rank=0, shuffle=True, seed=seed)
    sampler.set_epoch(0)
    index = next(iter(sampler))
    pixels, boxes = prepare_sample(TrainSample("x", items[index][1], image=items[index][0]),
                                   expected_model)  # fmt: skip
    feats = expected_model.compute_features(pixels)
    with torch.no_grad():
        losses = expected_model.losses(feats, [boxes], torch.Generator().manual_seed(seed * 7919))
    assert first.loss_cls == pytest.approx(float(losses["loss_objectness"]), rel=1e-4)
    assert first.loss_reg == pytest.approx(float(losses["loss_rpn_box_reg"]), rel=1e-4)
    assert first.total == pytest.approx(first.loss_cls + first.loss_reg)


def test_same_seed_same_losses_other_seed_other_losses(base_model):
    items = make_items(6)
    runs = {}
    for key, seed in (("a", 1), ("b", 1), ("c", 2)):
        m = copy.deepcopy(base_model)
        runs[key] = train_losses(list(fine_tune(m, items, TrainConfig(seed=seed, **FAST))))
    # 6 images, round(6 * 0.25) = 2 validate, 4 train: 2 batches of 2 per epoch, 2 epochs
    assert runs["a"] == runs["b"] and len(runs["a"]) == 2 * 2
    assert runs["a"] != runs["c"]


@pytest.mark.parametrize(
    ("mode", "changed", "unchanged"),
    [("head", [], [0, 11, 13]), ("partial", [11, 13], [0, 10]), ("full", [0, 13], [])],
)
def test_modes_train_the_right_blocks(model, mode, changed, unchanged):
    before = copy.deepcopy(model.state_dict())
    records = list(fine_tune(model, make_items(4), TrainConfig(mode=mode, lr=0.05, **FAST)))
    after = model.state_dict()

    def moved(prefix: str) -> bool:
        keys = [k for k in before if k.startswith(prefix) and before[k].is_floating_point()]
        return any(not torch.equal(before[k], after[k]) for k in keys)

    assert moved("rpn.head.")
    assert all(moved(f"backbone.{b}.") for b in changed)
    assert not any(moved(f"backbone.{b}.") for b in unchanged)
    assert not any(p.requires_grad for p in model.backbone.parameters())  # frozen again
    assert not model.training
    done = records[-1]
    assert done.phase == "done" and done.result.stopped == "completed"
    assert set(done.result.metrics_after) == {"recall@100/0.5", "recall@100/0.7"}


def test_training_lowers_the_loss(model):
    items = make_items(4)
    cfg = TrainConfig(epochs=15, lr=0.1, augment_copies=1, hflip=False, val_fraction=0.0)
    losses = train_losses(fine_tune(model, items, cfg))
    assert np.mean(losses[-4:]) < 0.75 * np.mean(losses[:4])  # measured 0.44 vs 0.70


def test_cancel_flag_stops_after_the_current_step(model):
    stop = threading.Event()
    records = []
    cfg = TrainConfig(**{**FAST, "epochs": 5})
    for r in fine_tune(model, make_items(6), cfg, cancel=stop):
        records.append(r)
        if r.phase == "train" and r.step == 2:
            stop.set()
    assert [r.step for r in records if r.phase == "train"] == [1, 2]
    result = records[-1].result
    assert result.stopped == "cancelled" and result.steps == 2 and result.metrics_after == {}


def test_closing_the_generator_restores_the_resting_state(model):
    gen = fine_tune(model, make_items(4), TrainConfig(mode="partial", **FAST))
    for r in gen:
        if r.phase == "train":
            break
    assert any(p.requires_grad for p in model.backbone.parameters())
    gen.close()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not model.training


def test_time_budget_stops_training(model):
    cfg = TrainConfig(
        epochs=1000, time_budget_s=1.0, **{k: v for k, v in FAST.items() if k != "epochs"}
    )
    records = list(fine_tune(model, make_items(4), cfg))
    result = records[-1].result
    assert result.stopped == "time_budget" and 0 < result.steps < 1000


def test_exploding_learning_rate_raises_and_keeps_last_good_weights(model):
    cfg = TrainConfig(**{**FAST, "lr": 1e30, "warmup_steps": 0})
    history = [[p.detach().clone() for p in model.rpn.head.parameters()]]  # after 0 steps
    with pytest.raises(TrainingError, match="learning rate") as info:
        for r in fine_tune(model, make_items(4), cfg):
            if r.phase == "train":
                history.append([p.detach().clone() for p in model.rpn.head.parameters()])
    # Step 1 (lr 1e30) leaves huge weights whose loss at step 2 is NaN: the weights go back
    # to those before step 1, the last ones with a finite loss.
    assert info.value.step == 0 and "loss became nan at step 2" in str(info.value)
    for p, g in zip(model.rpn.head.parameters(), history[info.value.step], strict=True):
        assert torch.equal(p.detach(), g)


def test_nan_loss_is_reported_with_the_step(model):
    with torch.no_grad():
        model.rpn.head.cls_logits.bias.fill_(float("nan"))
    with pytest.raises(TrainingError, match=r"loss became nan at step 1 \(epoch 1\)"):
        list(fine_tune(model, make_items(4), TrainConfig(**FAST)))


def test_explicit_validation_items_and_bad_settings(model):
    items = make_items(5)
    records = list(fine_tune(model, items[:3], TrainConfig(**FAST), validation_items=items[3:]))
    assert records[-1].result.split.train == (0, 1, 2)
    assert records[-1].result.split.validation == (3, 4)
    with pytest.raises(ValueError, match="mode"):
        TrainConfig(mode="everything")
    with pytest.raises(ValueError, match="learning rate"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ValueError, match="no annotated images"):
        list(fine_tune(model, [(items[0][0], np.zeros((0, 4)))], TrainConfig()))


def test_validate_every_n_epochs(model):
    cfg = TrainConfig(**{**FAST, "epochs": 4, "validate_every": 2})
    records = list(fine_tune(model, make_items(5), cfg))
    # 4 train images, 2 steps per epoch: before (step 0), after epoch 2 (step 4), the end (8)
    assert [r.step for r in records if r.phase == "validate"] == [0, 4, 8]
