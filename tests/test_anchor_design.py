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
    # Gains: 0.2, 0.1, 0.005 -> flattens after k = 3 (the step 3 -> 4 gains < 0.01).
    assert suggest_k([0.4, 0.6, 0.7, 0.705]) == 3
    assert suggest_k([0.4, 0.6]) == 2
    assert suggest_k([0.5]) == 1


# -- rpn-studio anchors ------------------------------------------------------------------------
@pytest.fixture
def voc_folder(tmp_path):
    from PIL import Image

    from rpn_core.annotation.data import Box, ImageAnnotation
    from rpn_core.annotation.formats import open_store

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
    assert set(out) == {"k", "mean_iou", "anchors"} and out["k"] == [1, 2, 3]
    assert out["mean_iou"] == sorted(out["mean_iou"])
    assert [len(a) for a in out["anchors"]] == [1, 2, 3]
    # Three tight clusters (each shape + 0..5 px): k = 3 finds their mean shapes, sorted by
    # area: 22.5 x 22.5 (plus VOC's integer corners), 122.5 x 52.5, 42.5 x 172.5.
    np.testing.assert_allclose(out["anchors"][2], [[22.5, 22.5], [122.5, 52.5], [42.5, 172.5]],
                               atol=1.0)
    assert out["mean_iou"][2] > 0.9


def test_anchors_cli_table_and_errors(voc_folder, tmp_path, capsys):
    from rpn_core.cli.main import main

    assert main(["anchors", str(voc_folder), "--k-max", "2", "--restarts", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["k", "mean", "IoU", "gain"]
    assert "sizes" in out and "flattens at k =" in out
    # Merged to one size and one ratio, every k's config line lists a single value each.
    assert main(["anchors", str(voc_folder), "--k-max", "3", "--restarts", "1",
                 "--n-sizes", "1", "--n-ratios", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:4]
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
