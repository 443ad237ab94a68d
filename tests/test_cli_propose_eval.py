"""``rpn-studio propose`` and ``rpn-studio eval`` end to end, on a real photo."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import resources
from app.__main__ import main  # the entry point: it passes the embedded weights in

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
PHOTO = OPENCV_DATA / "messi5.jpg"  # 548 x 342, not an image reserved for evaluation
pytestmark = pytest.mark.skipif(not PHOTO.exists(), reason="opencv-doc not installed")


def test_commands_do_not_import_torch_at_import_time():
    code = (
        "import sys, rpn_core.cli.main as c; c.build_parser();"
        "import rpn_core.cli.propose, rpn_core.cli.evaluate;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_propose_json_on_a_real_photo(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(PHOTO, folder / "messi.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "props.json"
    code = main(["propose", str(folder), str(tmp_path / "missing.png"), "--top-n", "50",
                 "--out", str(out)])  # fmt: skip
    assert code == 1  # some inputs failed, the batch went on
    doc = json.loads(out.read_text())
    (entry,) = doc["images"]
    assert entry["file"].endswith("messi.jpg")
    assert (entry["width"], entry["height"]) == (548, 342)
    boxes, scores = np.array(entry["boxes"]), np.array(entry["scores"])
    assert boxes.shape == (50, 4) and scores.shape == (50,)
    assert (np.diff(scores) <= 0).all() and 0 < scores.min() <= scores.max() < 1
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 548).all() and (boxes[:, 3] <= 342).all()
    reasons = {Path(e["file"]).name: e["reason"] for e in doc["errors"]}
    assert set(reasons) == {"broken.jpg", "missing.png"}
    assert reasons["missing.png"] == "no such file or folder"
    err = capsys.readouterr().err
    assert "[1/2]" in err and "skipped" in err


def test_propose_selective_search_to_stdout(tmp_path, capsys):
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(PHOTO)), (137, 86)))
    assert main(["propose", str(small), "--method", "selective-search", "--top-n", "20"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["score_kind"] == "rank"
    (entry,) = doc["images"]
    assert 0 < len(entry["boxes"]) <= 20
    assert entry["scores"][:3] == [1.0, 0.5, pytest.approx(1 / 3, abs=1e-5)]


def test_bad_weights_stop_before_any_image(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04\x95 pickle bytes")
    assert main(["propose", str(PHOTO), "--weights", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "pickle" in err


def _labelme(image_name: str, w: int, h: int, boxes: list) -> dict:
    shapes = [
        {"label": "object", "points": [b[:2], b[2:]], "shape_type": "rectangle", "flags": {},
         "group_id": None}
        for b in boxes
    ]  # fmt: skip
    return {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": image_name,
            "imageData": None, "imageHeight": h, "imageWidth": w}  # fmt: skip


def test_eval_reports_both_methods(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    img = cv2.resize(cv2.imread(str(PHOTO)), (274, 171))
    cv2.imwrite(str(data / "messi.jpg"), img)
    # the player and the ball, by eye on the half-size image
    gt = [[100.0, 10.0, 190.0, 165.0], [145.0, 140.0, 165.0, 160.0]]
    (data / "messi.json").write_text(json.dumps(_labelme("messi.jpg", 274, 171, gt)))
    out = tmp_path / "metrics.json"
    assert main(["eval", str(data), "--top-n", "10", "300", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "selective-search" in table and "rpn" in table
    doc = json.loads(out.read_text())
    assert doc["images"] == 1
    for method in ("rpn", "selective-search"):
        rows = doc["metrics"][method]
        assert rows["300"]["num_gt"] == 2
        for n in ("10", "300"):
            assert 0.0 <= rows[n]["AR"] <= rows[n]["recall@0.5"] <= 1.0
        assert rows["10"]["recall@0.5"] <= rows["300"]["recall@0.5"]


def test_eval_without_annotations_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["eval", str(tmp_path / "empty")]) == 2
    assert "no annotated images" in capsys.readouterr().err


def _messi_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    img = cv2.resize(cv2.imread(str(PHOTO)), (274, 171))
    cv2.imwrite(str(data / "messi.png"), img)  # lossless: the test reads the same pixels
    gt = [[100.0, 10.0, 190.0, 165.0], [145.0, 140.0, 165.0, 160.0]]
    (data / "messi.json").write_text(json.dumps(_labelme("messi.png", 274, 171, gt)))
    return data, cv2.cvtColor(img, cv2.COLOR_BGR2RGB), np.array(gt, dtype=np.float32)


def test_eval_breakdown_rows_match_their_definitions(tmp_path, capsys):
    """--breakdown's rows, recomputed here from the model's raw output: every anchor's box
    (N = all), the top N by score without NMS, and the usual proposals (top N after NMS)."""
    from rpn_core.rpn.loading import load_embedded_model
    from rpn_core.rpn.model import propose
    from rpn_core.rpn.proposals import average_recall, best_iou_per_gt, recall_at_iou

    data, rgb, gt = _messi_folder(tmp_path)
    out = tmp_path / "metrics.json"
    args = ["eval", str(data), "--methods", "rpn", "--breakdown", "--top-n", "10", "300"]
    assert main([*args, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "rpn-every-anchor    all" in table
    metrics = json.loads(out.read_text())["metrics"]
    assert set(metrics) == {"rpn", "rpn-no-nms", "rpn-every-anchor"}
    assert set(metrics["rpn-every-anchor"]) == {"all"}

    model = load_embedded_model(resources.embedded_weights())
    raw = model.raw_proposals(model.compute_features(rgb))
    by_score = raw.boxes[np.argsort(-raw.scores, kind="stable")]
    expected = {
        ("rpn-every-anchor", "all"): best_iou_per_gt(raw.boxes, gt),
        ("rpn-no-nms", "10"): best_iou_per_gt(by_score[:10], gt),
        ("rpn-no-nms", "300"): best_iou_per_gt(by_score[:300], gt),
        ("rpn", "10"): best_iou_per_gt(propose(model, rgb, top_n=10).boxes, gt),
        ("rpn", "300"): best_iou_per_gt(propose(model, rgb, top_n=300).boxes, gt),
    }
    for (row, n), best in expected.items():
        got = metrics[row][n]
        assert got["num_gt"] == 2
        assert got["AR"] == pytest.approx(average_recall(best))
        assert got["recall@0.7"] == pytest.approx(recall_at_iou(best, 0.7))
    # Every anchor's box is a superset of both other rows' boxes: never less recall.
    every = metrics["rpn-every-anchor"]["all"]
    for row in ("rpn", "rpn-no-nms"):
        for n in ("10", "300"):
            assert every["AR"] >= metrics[row][n]["AR"]


def test_eval_with_no_readable_image_is_an_error(tmp_path, capsys):
    data, _rgb, _gt = _messi_folder(tmp_path)
    png = (data / "messi.png").read_bytes()
    (data / "messi.png").write_bytes(png[: len(png) // 2])  # header fine, pixels cut off
    assert main(["eval", str(data), "--methods", "rpn"]) == 2
    err = capsys.readouterr().err
    assert "messi.png" in err and "none of the annotated images" in err
