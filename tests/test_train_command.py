"""``rpn-studio train`` in one process: checkpoint and metrics, progress lines, exit codes."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from app.__main__ import main  # the entry point: it passes the embedded weights in
from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.annotation.formats.folder import open_store
from rpn_core.cli.train import progress_line
from rpn_core.rpn.loading import save_weights
from rpn_core.rpn.model import RPNModel
from rpn_core.training.types import Progress

sys.path.insert(0, str(Path(__file__).parent))
from test_train import TINY, make_items  # noqa: E402


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(RPNModel(TINY, device="cpu"), path, {})
    return path


def write_folder(folder: Path, n: int, annotate: bool = True) -> None:
    folder.mkdir()
    store = open_store(folder, "yolo")
    for i, (img, boxes) in enumerate(make_items(n)):
        path = folder / f"img{i}.png"
        Image.fromarray(img).save(path)
        if annotate:
            store.save(ImageAnnotation(path, 128, 96, [Box(*b, label="o") for b in boxes.tolist()]))


def test_train_writes_checkpoint_and_prints_metrics(tmp_path, tiny_weights, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        write_folder(tmp_path / "data", 5)
        out = tmp_path / "out" / "ck.safetensors"
        argv = ["train", str(tmp_path / "data"), "--weights", str(tiny_weights),
                "--epochs", "2", "--device", "cpu", "--out", str(out),
                "--json", str(tmp_path / "m.json")]  # fmt: skip
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    captured = capsys.readouterr()
    assert "recall@100/0.7" in captured.out and f"checkpoint: {out}" in captured.out
    # 5 images: 1 validates, 4 train in 2 batches per epoch, 2 epochs
    assert "4 training / 1 validation images, 4 steps (2.0 epochs, completed)" in captured.out
    assert "val loss" in captured.err  # progress on stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["steps"] == 4 and set(metrics["before"]) == set(metrics["after"])
    assert out.is_file() and out.with_suffix(".json").is_file()


def test_no_annotated_images_is_a_usage_error(tmp_path, tiny_weights, capsys):
    write_folder(tmp_path / "empty", 2, annotate=False)
    assert main(["train", str(tmp_path / "empty"), "--weights", str(tiny_weights)]) == 2
    assert "no annotated images" in capsys.readouterr().err


def test_bad_weights_fail_with_the_reason(tmp_path, capsys):
    write_folder(tmp_path / "data", 2)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04not really")
    assert main(["train", str(tmp_path / "data"), "--weights", str(bad), "--device", "cpu"]) == 1
    assert "pickle" in capsys.readouterr().err


def test_progress_line():
    r = Progress("train", 12, 48, 3, 0.25, 0.05, 0.3, 0.005, 4.04, 75.0)
    assert progress_line(r, width=8) == (
        "[##......] step 12/48 ep 3 loss 0.3000 (cls 0.2500 reg 0.0500) lr 0.005 4.0 img/s ETA 1:15"
    )  # 12/48 = 0.25 of 8 cells = 2; 75 s = 1:15
    v = Progress("validate", 0, 48, val_total=0.5, recall={"recall@100/0.7": 0.75})
    assert progress_line(v, width=4) == "[....] step 0: val loss 0.5000, R@100/0.7 0.750"
    assert "ETA --:--" in progress_line(Progress("train", 1, 2, eta_s=math.nan))


def test_train_with_designed_anchors_writes_them_into_the_checkpoint(
    tmp_path, tiny_weights, capsys
):
    from rpn_core.rpn.loading import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        write_folder(tmp_path / "data", 3)
        out = tmp_path / "ck.safetensors"
        argv = ["train", str(tmp_path / "data"), "--weights", str(tiny_weights), "--epochs", "1",
                "--device", "cpu", "--out", str(out), "--quiet",
                "--anchor-sizes", "20", "44", "--anchor-ratios", "0.5", "1"]  # fmt: skip
        assert main(argv) == 0
        model = load_model(out, "cpu")
        assert model.config.anchors.sizes == (20.0, 44.0)
        assert model.config.anchors.aspect_ratios == (0.5, 1.0)
        assert model.rpn.head.cls_logits.out_channels == 4
        bad = ["train", str(tmp_path / "data"), "--weights", str(tiny_weights), "--quiet",
               "--device", "cpu", "--out", str(out), "--anchor-sizes", "-3"]  # fmt: skip
        assert main(bad) == 2
    finally:
        torch.set_num_threads(threads)
    assert "error:" in capsys.readouterr().err


def test_train_labels_by_the_chosen_rule_and_records_it(tmp_path, tiny_weights):
    from rpn_core.anchors.labelling import LabelConfig
    from rpn_core.rpn.checkpoint import read_checkpoint

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        write_folder(tmp_path / "data", 5)
        out = tmp_path / "ck.safetensors"
        assert main(["train", str(tmp_path / "data"), "--weights", str(tiny_weights),
                     "--epochs", "1", "--device", "cpu", "--labels", "guide",
                     "--out", str(out), "--quiet"]) == 0  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    info, _ = read_checkpoint(out)
    assert TINY.labels == LabelConfig.faster_rcnn()  # the starting model's rule ...
    assert info.config.labels == LabelConfig.guide()  # ... is not what it trained with
    assert info.metadata["label_preset"] == "guide"
