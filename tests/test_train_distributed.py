"""The multi-process path of training (``torchrun``), on the CPU with the gloo backend.

Two processes train a tiny RPN on tiny images. DistributedDataParallel averages their
gradients, so both must end with the same weights although each saw a different shard of
the images; and ``rpn-studio train`` under torchrun must write one checkpoint and report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from rpn_core.annotation.data import Box, ImageAnnotation
from rpn_core.annotation.formats.folder import open_store
from rpn_core.rpn.loading import save_weights
from rpn_core.rpn.model import RPNModel

sys.path.insert(0, str(Path(__file__).parent))
from test_train import TINY, make_items  # noqa: E402

WORKER = """
import sys, numpy as np, torch
from safetensors.torch import save_file
from rpn_core.rpn.loading import load_model
from rpn_core.training.finetune import TrainConfig, fine_tune
from rpn_core.training.engine import init_distributed
from rpn_core.training.data import TrainSample

ctx, device = init_distributed("cpu")
model = load_model(sys.argv[1], "cpu")
data = np.load(sys.argv[2])
items = [(data[f"img{i}"], data[f"box{i}"]) for i in range(int(data["n"]))]
cfg = TrainConfig(epochs=2, batch_size=1, augment_copies=1, val_fraction=0.25, lr=0.05)
records = list(fine_tune(model, items, cfg))
train = [r for r in records if r.phase == "train"]
print(f"rank {ctx.rank} of {ctx.world_size}: {len(train)} steps", flush=True)
state = {k: v.contiguous() for k, v in model.state_dict().items() if k.startswith("rpn.head")}
save_file(state, f"{sys.argv[3]}/rank{ctx.rank}.safetensors")
"""


def torchrun(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--standalone", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp, env=env)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(RPNModel(TINY, device="cpu"), path, {})
    return path


def test_two_processes_keep_identical_weights(tmp_path, tiny_weights):
    items = make_items(6)  # 6 images: 2 validate, 4 train -> 2 per process per epoch
    arrays = {f"img{i}": img for i, (img, _) in enumerate(items)}
    arrays.update({f"box{i}": b for i, (_, b) in enumerate(items)}, n=np.array(len(items)))
    np.savez(tmp_path / "data.npz", **arrays)
    (tmp_path / "worker.py").write_text(WORKER)
    proc = torchrun(["worker.py", str(tiny_weights), "data.npz", str(tmp_path)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Each process takes half the 4 training images per epoch: 2 steps of 1 image, 2 epochs.
    assert "rank 0 of 2: 4 steps" in proc.stdout and "rank 1 of 2: 4 steps" in proc.stdout
    a, b = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    start = load_file(tiny_weights)
    for key in a:
        assert torch.equal(a[key], b[key]), key  # gradients were averaged across processes
    assert any(not torch.equal(a[k], start[k]) for k in a)  # and they did train


# ~20-30 s (two processes import torch): the test above is the fast variant of this path.
@pytest.mark.slow
def test_train_command_under_torchrun_writes_one_checkpoint(tmp_path, tiny_weights):
    data = tmp_path / "data"
    data.mkdir()
    store = open_store(data, "voc")
    for i, (img, boxes) in enumerate(make_items(6)):
        path = data / f"img{i}.png"
        Image.fromarray(img).save(path)
        store.save(ImageAnnotation(path, 128, 96, [Box(*b, label="obj") for b in boxes.tolist()]))
    out = tmp_path / "ckpt.safetensors"
    args = ["-m", "app", "train", str(data), "--weights", str(tiny_weights),
            "--epochs", "2", "--device", "cpu", "--out", str(out), "--json", "m.json"]  # fmt: skip
    proc = torchrun(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("checkpoint:") == 1  # rank 0 only
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["stopped"] == "completed" and metrics["steps"] == 2 * 2
    assert set(metrics["after"]) == {"recall@100/0.5", "recall@100/0.7", "recall@300/0.5",
                                     "recall@300/0.7"}  # fmt: skip
    meta = json.loads(out.with_suffix(".json").read_text())["metadata"]
    assert meta["data"]["train_images"] == 5 and meta["training"]["epochs"] == 2
