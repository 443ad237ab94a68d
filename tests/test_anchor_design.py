"""Golden and property tests for IoU k-means anchor design (rpn_core.anchors.design)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rpn_core.anchors.design import (
    box_shapes,
    design_config,
    grid_mean_iou,
    kmeans_curve,
    kmeans_iou,
    shape_iou,
    suggest_k,
)
from rpn_core.anchors.grid import AnchorConfig


def test_shape_iou_golden():
    # (2, 4) vs (4, 2) at a common centre: inter 2*2 = 4, union 8 + 8 - 4 = 12 -> 1/3.
    # (2, 4) vs (2, 4): 1. (1, 1) vs (2, 4): inter 1, union 1 + 8 - 1 = 8 -> 1/8.
    iou = shape_iou(np.array([[2.0, 4.0], [1.0, 1.0]]), np.array([[4.0, 2.0], [2.0, 4.0]]))
    np.testing.assert_allclose(iou, [[1 / 3, 1.0], [1 / 8, 1 / 8]])


def test_box_shapes_skips_and_counts_bad_boxes():
    boxes = np.array([[0, 0, 10, 20], [5, 5, 5, 9], [3, 3, 1, 8], [0, 0, np.nan, 4], [1, 2, 4, 10]])
    shapes = box_shapes(boxes)
    np.testing.assert_array_equal(shapes.wh, [[10, 20], [3, 8]])
    assert shapes.skipped == 3  # zero width, negative width, NaN


def _three_clusters(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    means = np.array([[20.0, 20.0], [120.0, 50.0], [40.0, 170.0]])
    truth = np.repeat(np.arange(3), 40)
    wh = means[truth] * rng.uniform(0.95, 1.05, size=(len(truth), 2))
    return wh, truth


def test_separable_clusters_are_recovered():
    wh, truth = _three_clusters(np.random.default_rng(1))
    result = kmeans_iou(wh, 3, rng=np.random.default_rng(7), restarts=5)
    # Centres come sorted by area: 20*20 = 400 < 120*50 = 6000 < 40*170 = 6800.
    expected = np.array([[20.0, 20.0], [120.0, 50.0], [40.0, 170.0]])
    np.testing.assert_allclose(result.centres, expected, rtol=0.03)
    # Each true cluster maps to exactly one found cluster (a permutation of labels).
    for j in range(3):
        assert len(set(result.assignment[truth == j].tolist())) == 1
    assert len(set(result.assignment.tolist())) == 3
    # Within +-5% jitter every shape keeps IoU >= (0.95/1.05)**2 ~ 0.82 with its centre.
    assert result.mean_iou > 0.9


def test_mean_iou_never_decreases_with_k():
    rng = np.random.default_rng(3)
    wh = np.exp(rng.normal(np.log(60), 0.7, size=(300, 2)))
    curve = kmeans_curve(wh, 10, rng=np.random.default_rng(0), restarts=3)
    ious = [r.mean_iou for r in curve]
    assert [r.k for r in curve] == list(range(1, 11))
    assert all(b >= a for a, b in zip(ious[:-1], ious[1:], strict=True)), ious
    assert 0 < ious[0] < ious[-1] <= 1


def test_deterministic_per_seed():
    wh, _ = _three_clusters(np.random.default_rng(5))
    wh = np.concatenate([wh, np.random.default_rng(6).uniform(10, 200, size=(50, 2))])
    a = kmeans_curve(wh, 5, rng=np.random.default_rng(42), restarts=2)
    b = kmeans_curve(wh, 5, rng=np.random.default_rng(42), restarts=2)
    for ra, rb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ra.centres, rb.centres)
        np.testing.assert_array_equal(ra.assignment, rb.assignment)
        assert ra.mean_iou == rb.mean_iou


def test_fewer_shapes_than_k_is_a_clear_error():
    wh = np.array([[10.0, 10.0], [10.0, 10.0], [20.0, 5.0]])
    with pytest.raises(ValueError, match="cannot make 3 clusters from 2 distinct box shape"):
        kmeans_iou(wh, 3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="k must be at least 1"):
        kmeans_iou(wh, 0, rng=np.random.default_rng(0))


def test_single_shape_k1_is_exact():
    wh = np.array([[30.0, 60.0]] * 4)
    result = kmeans_iou(wh, 1, rng=np.random.default_rng(0))
    np.testing.assert_allclose(result.centres, [[30.0, 60.0]])
    assert result.mean_iou == pytest.approx(1.0)


def test_design_config_sizes_and_ratios():
    # (10, 20): size sqrt(200) = 14.14 -> 14, ratio 20/10 = 2; (30, 30): size 30, ratio 1.
    config = design_config(np.array([[10.0, 20.0], [30.0, 30.0]]), stride=8)
    assert config == AnchorConfig(sizes=(14.0, 30.0), aspect_ratios=(1.0, 2.0), stride=8)


def test_design_config_merges_sizes_at_largest_log_gap():
    # sizes 10, 11, 100 (all ratio 1): the largest log gap is 11 -> 100, so two groups:
    # geometric mean of 10 and 11 = sqrt(110) = 10.49 -> 10, and 100.
    centres = np.array([[10.0, 10.0], [11.0, 11.0], [100.0, 100.0]])
    config = design_config(centres, n_sizes=2)
    assert config.sizes == (10.0, 100.0)
    assert config.aspect_ratios == (1.0,)


def test_grid_mean_iou_golden():
    # One 32x32 anchor (half-extents 16). (32, 32) -> 1; (16, 32): inter 16*32 = 512,
    # union 512 + 1024 - 512 = 1024 -> 0.5. Mean 0.75.
    config = AnchorConfig(sizes=(32.0,), aspect_ratios=(1.0,), stride=16)
    assert grid_mean_iou(np.array([[32.0, 32.0], [16.0, 32.0]]), config) == pytest.approx(0.75)
    assert math.isnan(grid_mean_iou(np.zeros((0, 2)), config))


def test_grid_covers_clusters():
    wh, _ = _three_clusters(np.random.default_rng(2))
    result = kmeans_iou(wh, 3, rng=np.random.default_rng(0), restarts=3)
    config = design_config(result.centres)
    # The sizes x ratios grid contains every cluster's shape up to rounding, so it scores
    # at least about as well as the clusters themselves.
    assert grid_mean_iou(wh, config) >= result.mean_iou - 0.02


def test_suggest_k_golden():
    # The smallest k whose gain over k - 1 is below 0.01 mean IoU.
    # Gains: k=2: 0.6-0.4 = 0.2, k=3: 0.7-0.6 = 0.1, k=4: 0.705-0.7 = 0.005 < 0.01 -> 4.
    assert suggest_k([0.4, 0.6, 0.7, 0.705]) == 4
    # Gains 0.2, 0.009 (< 0.01) then 0.0 -> the first flat step, k = 3 (not the last k).
    assert suggest_k([0.4, 0.6, 0.609, 0.609, 0.609]) == 3
    # Threshold stated by the caller: gains 0.2, 0.1, 0.005; below 0.15 first at k = 3.
    assert suggest_k([0.4, 0.6, 0.7, 0.705], min_gain=0.15) == 3
    # Every step gains >= 0.01 (0.2, 0.05, 0.03): it did not flatten -- never "k = k_max".
    assert suggest_k([0.4, 0.6, 0.65, 0.68]) is None
    assert suggest_k([0.4, 0.6]) is None
    assert suggest_k([0.5]) is None  # a single k has no gain to judge


def test_flatten_text_says_where_or_that_it_did_not():
    from rpn_core.anchors.design import flatten_text

    assert flatten_text([0.4, 0.6, 0.7, 0.705]) == (
        "the curve flattens at k = 4: its gain over k = 3 is +0.0050 mean IoU, below 0.01"
    )
    assert flatten_text([0.4, 0.6, 0.65, 0.68]).startswith(
        "the curve did not flatten within k-max = 4 (every k gains >= 0.01 mean IoU"
    )


def test_input_frame_items_scale_each_image_by_its_own_factor():
    from rpn_core.anchors.design import frame_shapes, input_frame_items
    from rpn_core.rpn.config import RPNConfig

    # 400 x 300 (W x H): shorter side 300 -> 600, scale 2; 1000 <= max_side, so 800 x 600.
    # 1600 x 1200, the same picture 4x: scale 600/1200 = 0.5 -> also 800 x 600.
    box = np.array([[10.0, 20.0, 50.0, 100.0]])
    items = input_frame_items(
        [("small", (300, 400), box), ("big", (1200, 1600), box * 4)], RPNConfig()
    )
    assert [it[1] for it in items] == [(600, 800), (600, 800)]
    np.testing.assert_allclose(items[0][2], [[20, 40, 100, 200]])  # 2 x the original
    np.testing.assert_allclose(items[1][2], [[20, 40, 100, 200]])  # 0.5 x (4 x the original)
    np.testing.assert_allclose(frame_shapes(items).wh, [[80, 160], [80, 160]])


# -- rpn-studio anchors ------------------------------------------------------------------------
@pytest.fixture
def voc_folder(tmp_path):
    from PIL import Image

    from rpn_core.annotation.data import Box, ImageAnnotation
    from rpn_core.annotation.formats.folder import open_store

    store = open_store(tmp_path, "voc")
    shapes = [(20, 20), (120, 50), (40, 170)]
    for i in range(6):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (400, 300)).save(path)
        boxes = []
        for j, (w, h) in enumerate(shapes):
            x, y = 10 + 5 * i + j, 10 + 3 * i
            boxes.append(Box(x, y, x + w + i, y + h + i, "obj"))
        store.save(ImageAnnotation(path, 400, 300, boxes))
    return tmp_path


def test_anchors_cli_json(voc_folder, capsys):
    import json

    from rpn_core.cli.main import main

    assert main(["anchors", str(voc_folder), "--k-max", "3", "--json", "--restarts", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"frame", "k", "mean_iou", "anchors", "suggested_k", "measured"}
    assert out["frame"] == {"min_side": 600, "max_side": 1000} and out["k"] == [1, 2, 3]
    assert out["mean_iou"] == sorted(out["mean_iou"])
    assert [len(a) for a in out["anchors"]] == [1, 2, 3]
    # Three tight clusters (each shape + 0..5 px): k = 3 finds their mean shapes, sorted by
    # area: 22.5 x 22.5 (plus VOC's integer corners), 122.5 x 52.5, 42.5 x 172.5 original
    # pixels -- x 2 in the model's input frame (400 x 300 -> 800 x 600), where they are given.
    np.testing.assert_allclose(
        out["anchors"][2], [[45.0, 45.0], [245.0, 105.0], [85.0, 345.0]], atol=2.0
    )
    assert out["mean_iou"][2] > 0.9


def test_anchors_cli_table_and_errors(voc_folder, tmp_path, capsys):
    from rpn_core.cli.main import main

    assert main(["anchors", str(voc_folder), "--k-max", "2", "--restarts", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(
        "anchor shapes in the model's input frame (each image resized to shorter side 600"
    )
    assert out.splitlines()[1].split()[:4] == ["k", "mean", "IoU", "gain"]
    assert "sizes" in out and "the curve" in out and "measured on the grid" in out
    # Merged to one size and one ratio, every k's config line lists a single value each.
    assert (
        main(
            [
                "anchors",
                str(voc_folder),
                "--k-max",
                "3",
                "--restarts",
                "1",
                "--n-sizes",
                "1",
                "--n-ratios",
                "1",
            ]
        )
        == 0
    )
    rows = capsys.readouterr().out.splitlines()[2:5]
    for row in rows:
        config = row.split("[")[1]
        assert "," not in config, row
    assert main(["anchors", str(voc_folder), "--k-max", "40"]) == 1
    assert "--k-max 40 needs at least 40" in capsys.readouterr().err
    assert main(["anchors", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("seed", range(5))
def test_mean_iou_never_decreases_even_with_one_restart(seed):
    # The weakest setting: one k-means++ run per k; the warm start from k - 1 keeps the curve
    # monotone anyway (kmeans_curve's docstring).
    rng = np.random.default_rng(100 + seed)
    wh = rng.uniform(5, 400, size=(int(rng.integers(8, 60)), 2))
    ious = [r.mean_iou for r in kmeans_curve(wh, 6, rng=np.random.default_rng(seed), restarts=1)]
    assert all(b >= a for a, b in zip(ious[:-1], ious[1:], strict=True)), ious


def _folder_at(root, scale: int):
    """The voc_folder's six images and boxes at ``scale`` x their size (a re-saved copy)."""
    from PIL import Image

    from rpn_core.annotation.data import Box, ImageAnnotation
    from rpn_core.annotation.formats.folder import open_store

    root.mkdir(parents=True)
    store = open_store(root, "voc")
    shapes = [(20, 20), (120, 50), (40, 170)]
    for i in range(6):
        path = root / f"img{i}.png"
        Image.new("RGB", (400 * scale, 300 * scale)).save(path)
        boxes = []
        for j, (w, h) in enumerate(shapes):
            x, y = 10 + 5 * i + j, 10 + 3 * i
            boxes.append(Box(scale * x, scale * y, scale * (x + w + i), scale * (y + h + i), "o"))
        store.save(ImageAnnotation(path, 400 * scale, 300 * scale, boxes))
    return root


def test_anchors_cli_same_sizes_and_measured_coverage_at_two_resolutions(tmp_path, capsys):
    import json

    from rpn_core.anchors.design import input_frame_items
    from rpn_core.anchors.explain import folder_statistics
    from rpn_core.anchors.grid import AnchorConfig
    from rpn_core.anchors.labelling import LabelConfig
    from rpn_core.annotation.dataset import load_dataset
    from rpn_core.cli.main import main
    from rpn_core.rpn.config import RPNConfig

    outs = []
    for scale in (1, 4):
        folder = _folder_at(tmp_path / f"x{scale}", scale)
        assert main(["anchors", str(folder), "--k-max", "3", "--json", "--restarts", "2"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    one, four = outs
    # The model sees both folders at 800 x 600 (scale 2 and 0.5): the same shapes, the same
    # anchors (up to VOC's whole-pixel corners scaled by 2 vs 0.5: < 1.5 px).
    np.testing.assert_allclose(one["anchors"][2], four["anchors"][2], atol=1.5)
    m = one["measured"]
    assert m["sizes"] == four["measured"]["sizes"]
    # The figures reported for the set are what the anchor statistics measure for it.
    folder = tmp_path / "x4"
    data = load_dataset(folder)
    items = input_frame_items(
        [(it.image_path, (it.height, it.width), it.boxes) for it in data], RPNConfig()
    )
    cfg = AnchorConfig(sizes=tuple(m["sizes"]), aspect_ratios=tuple(m["aspect_ratios"]))
    stats = folder_statistics(items, cfg, LabelConfig())
    assert four["measured"]["mean_iou"] == round(stats.mean_iou, 6)
    assert four["measured"]["recall"] == round(stats.recall(LabelConfig()), 6)
    assert 0.5 < stats.mean_iou <= 1.0 and len(stats.best_iou) == 18


def test_anchors_cli_puts_sizes_on_the_embedded_models_levels(voc_folder, capsys):
    import json

    import resources
    from rpn_core.cli.main import main

    args = ["anchors", str(voc_folder), "--k-max", "3", "--json", "--restarts", "2"]
    assert main(args, embedded_weights=resources.embedded_weights()) == 0
    measured = json.loads(capsys.readouterr().out)["measured"]
    # The embedded SSD keeps all six levels: each designed size (in its 300 x 300 frame)
    # joins the level whose sizes are nearest; a level no size joins keeps the model's sizes.
    from rpn_core.anchors.design import nearest_levels
    from rpn_core.rpn.config import SSD_STRIDES, embedded_config

    model = embedded_config(resources.embedded_sidecar()).anchors
    strides = dict(zip(measured["sizes"], measured["strides"], strict=True))
    assert set(strides.values()) == set(SSD_STRIDES)
    designed = [s for s in strides if s not in model.sizes]
    assert len(designed) >= 2
    assert [strides[s] for s in designed] == list(nearest_levels(tuple(designed), model))
    assert main([*args, "--stride", "16"], embedded_weights=resources.embedded_weights()) == 0
    assert set(json.loads(capsys.readouterr().out)["measured"]["strides"]) == {16}


def test_level_strides_follow_the_pyramid_rule():
    from rpn_core.anchors.design import level_strides

    # The coarsest stride s with size >= 4 s, else the finest: 64 = 4 x 16 is the boundary.
    sizes = (16.0, 32.0, 48.0, 63.9, 64.0, 100.0, 512.0)
    assert level_strides(sizes, (16, 8)) == (8, 8, 8, 8, 16, 16, 16)
    assert level_strides((10.0, 300.0), (16,)) == (16, 16)
    config = design_config(np.array([[20.0, 20.0], [100.0, 100.0]]), stride=(8, 16))
    assert config == AnchorConfig(
        sizes=(20.0, 100.0), aspect_ratios=(1.0,), size_strides=(8, 16), stride=16
    )
