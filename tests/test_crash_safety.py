"""Crash safety (issue 7): a process killed while saving never leaves a damaged file; disk-full
and permission errors are typed, name the file and keep the old one; fine-tuning that fails
or is cancelled keeps the previous weights.

The kill harness forks the test process (so each iteration costs milliseconds, not a Python
start-up): the child saves in a loop -- alternating two documents -- and the parent sends
SIGKILL after a random delay drawn from a seeded generator, then checks that a fresh reader
sees exactly one of the two documents. A pipe counts the saves the child completed, so the
test also proves the kills landed before, between and after saves.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rpn_core import atomic
from rpn_core.annotation.data import AnnotationWriteError, Box, ImageAnnotation
from rpn_core.annotation.formats import open_store

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the kill harness forks")

W, H = 640, 480


def _doc(image: Path, n: int, label: str, seed: int) -> ImageAnnotation:
    """``n`` random integer boxes inside a 640 x 480 image (integers survive every format)."""
    rng = np.random.default_rng(seed)
    x1 = rng.integers(0, W - 20, n)
    y1 = rng.integers(0, H - 20, n)
    w = rng.integers(1, 20, n)
    h = rng.integers(1, 20, n)
    boxes = [Box(float(a), float(b), float(a + c), float(b + d), label)
             for a, b, c, d in zip(x1, y1, w, h, strict=True)]
    return ImageAnnotation(image, W, H, boxes=boxes)


def kill_during(work: Callable[[Callable[[], None]], None], delay_s: float) -> int:
    """Fork; the child runs ``work(tick)`` (``tick`` after each completed save) until it is
    SIGKILLed ``delay_s`` seconds later. Returns the number of ticks the child made."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(read_end)
            work(lambda: os.write(write_end, b"."))
        except BaseException:  # noqa: BLE001 - report through the exit code only
            code = 3
        os._exit(code)
    os.close(write_end)
    time.sleep(delay_s)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
        f"the child ended by itself (status {status}) before the kill"
    )
    return len(b"".join(chunks))


def _as_read(folder: Path, fmt: str, doc: ImageAnnotation) -> list[Box]:
    """The boxes a reader gets back for ``doc`` in ``fmt`` (YOLO's six decimals round)."""
    image = folder / doc.image_path.name
    open_store(folder, fmt).save(ImageAnnotation(image, W, H, boxes=doc.boxes))
    return open_store(folder, fmt).load(image, width=W, height=H).boxes


def _run_annotation_kills(tmp_path: Path, iterations: int, seed: int) -> dict[str, list[int]]:
    rng = np.random.default_rng(seed)
    ticks: dict[str, list[int]] = {}
    for k in range(iterations):
        fmt = ("voc", "yolo", "labelme", "coco")[k % 4]
        folder = tmp_path / f"{fmt}{k}"
        image = folder / "img.jpg"
        docs = [_doc(image, 400, "a", 2 * k), _doc(image, 500, "b", 2 * k + 1)]
        expected = [_as_read(tmp_path / f"ref{k}-{j}", fmt, d) for j, d in enumerate(docs)]
        store = open_store(folder, fmt)
        t0 = time.perf_counter()
        store.save(docs[0])  # the previous file
        one_save = time.perf_counter() - t0

        def work(tick, store=store, docs=docs):
            i = 1
            while True:
                store.save(docs[i % 2])
                tick()
                i += 1

        n = kill_during(work, float(rng.uniform(0.0, 3.0 * one_save)))
        ticks.setdefault(fmt, []).append(n)
        reread = open_store(folder, fmt).load(image, width=W, height=H)
        assert not reread.warnings, reread.warnings
        # After n completed saves the file holds docs[n % 2], or docs[(n + 1) % 2] when the
        # kill fell after the replace of save n+1 but before its tick: never anything else.
        assert reread.boxes in expected, f"{fmt} iteration {k}"
        leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
        assert all(p.startswith(".") for p in leftovers)  # hidden, never read as annotations
    return ticks


def _spread(ticks: dict[str, list[int]]) -> None:
    """The kills must fall both before the first save completed and after some saves."""
    counts = [n for values in ticks.values() for n in values]
    assert min(counts) == 0 and max(counts) >= 1, counts


def test_sigkill_during_annotation_saves_keeps_a_parseable_file_20_times(tmp_path):
    _spread(_run_annotation_kills(tmp_path, 20, seed=1))


@pytest.mark.slow
def test_sigkill_during_annotation_saves_keeps_a_parseable_file_200_times(tmp_path):
    _spread(_run_annotation_kills(tmp_path, 200, seed=2))


# -- checkpoints ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_models():
    torch = pytest.importorskip("torch")
    from rpn_core.rpn.model import RPNModel

    torch.manual_seed(0)
    a = RPNModel(device="cpu")
    b = RPNModel(device="cpu")
    with torch.no_grad():
        for p in b.rpn.head.parameters():
            p.add_(1.0)
    return a, b


def _fingerprint(state: dict) -> float:
    return float(sum(v.double().sum() for k, v in state.items() if k.startswith("rpn.head")))


def _run_checkpoint_kills(tmp_path: Path, models, iterations: int, seed: int) -> list[int]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a forked child deadlocks on a thread pool it did not inherit
    try:
        return _checkpoint_kills(tmp_path, models, iterations, seed)
    finally:
        torch.set_num_threads(threads)


def _checkpoint_kills(tmp_path: Path, models, iterations: int, seed: int) -> list[int]:
    from rpn_core.rpn.checkpoint import read_checkpoint, save_checkpoint

    rng = np.random.default_rng(seed)
    prints = [_fingerprint(m.state_dict()) for m in models]
    ticks = []
    for k in range(iterations):
        path = tmp_path / f"run{k}" / "checkpoint.safetensors"
        t0 = time.perf_counter()
        save_checkpoint(models[0], path)
        one_save = time.perf_counter() - t0

        def work(tick, path=path):
            i = 1
            while True:
                save_checkpoint(models[i % 2], path)
                tick()
                i += 1

        ticks.append(kill_during(work, float(rng.uniform(0.0, 3.0 * one_save))))
        info, state = read_checkpoint(path)  # raises CheckpointError if damaged
        assert _fingerprint(state) in prints, f"iteration {k}"
    return ticks


def test_kill_between_the_tensor_file_and_its_sidecar_keeps_a_loadable_checkpoint(
    tmp_path, two_models
):
    """Deterministic version of the random kills below: SIGKILL right after the first file.

    Found by the random kills (26 of 200 left a sha256 mismatch when the tensors were written
    before the sidecar); fixed in rpn_core/rpn/weights.py (sidecar first, with "previous")."""
    import torch

    from rpn_core.rpn import weights
    from rpn_core.rpn.checkpoint import read_checkpoint, save_checkpoint

    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(two_models[0], path)
    real_write = weights._atomic_write

    def work(tick):
        def write_then_die(target, data):
            real_write(target, data)
            os.kill(os.getpid(), signal.SIGKILL)

        weights._atomic_write = write_then_die
        save_checkpoint(two_models[1], path)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _run_until_it_dies(work)
    finally:
        torch.set_num_threads(threads)
    info, state = read_checkpoint(path)
    assert _fingerprint(state) in [_fingerprint(m.state_dict()) for m in two_models]


def _run_until_it_dies(work: Callable[[Callable[[], None]], None]) -> None:
    """Fork, run ``work`` in the child and wait for it to kill itself."""
    pid = os.fork()
    if pid == 0:
        try:
            work(lambda: None)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_sigkill_during_checkpoint_writes_keeps_a_loadable_checkpoint_20_times(
    tmp_path, two_models
):
    ticks = _run_checkpoint_kills(tmp_path, two_models, 20, seed=3)
    assert min(ticks) == 0 and max(ticks) >= 1, ticks


@pytest.mark.slow
def test_sigkill_during_checkpoint_writes_keeps_a_loadable_checkpoint_200_times(
    tmp_path, two_models
):
    ticks = _run_checkpoint_kills(tmp_path, two_models, 200, seed=4)
    assert min(ticks) == 0 and max(ticks) >= 1, ticks


# -- disk full and permissions ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["voc", "yolo", "labelme", "coco"])
@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_disk_full_on_save_is_typed_names_the_file_and_keeps_the_old_one(
    tmp_path, monkeypatch, fmt, failing
):
    image = tmp_path / "img.jpg"
    store = open_store(tmp_path, fmt)
    old, new = _doc(image, 3, "old", 1), _doc(image, 5, "new", 2)
    store.save(old)
    target = store.annotation_path(image)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, failing, full)
    with pytest.raises(AnnotationWriteError) as info:
        store.save(new)
    monkeypatch.undo()
    # YOLO writes the class map first when a label is new: that is then the file named.
    named = {target, tmp_path / "classes.txt"} if fmt == "yolo" else {target}
    assert info.value.path in named and "No space left on device" in info.value.reason
    assert str(info.value).startswith(str(info.value.path))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file
    reread = open_store(tmp_path, fmt).load(image, width=W, height=H).boxes
    assert reread == _as_read(tmp_path / "reference", fmt, old)


def _mount(*args: str) -> bool:
    try:
        return subprocess.run(["mount", *args], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 64 KiB tmpfs (root only), so ENOSPC comes from the kernel, not a monkeypatch."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)):
        pytest.skip("needs root and permission to mount a tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=20)


def test_a_really_full_disk_keeps_the_old_file(tiny_disk):
    image = tiny_disk / "img.jpg"
    store = open_store(tiny_disk, "voc")
    old = _doc(image, 10, "old", 5)
    store.save(old)
    target = store.annotation_path(image)
    original = target.read_bytes()
    filler = tiny_disk / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk to the last block
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    with pytest.raises(AnnotationWriteError) as info:
        store.save(_doc(image, 400, "new", 6))  # ~60 KB of XML cannot fit
    assert info.value.path == target and "No space left on device" in info.value.reason
    assert target.read_bytes() == original
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler.bin", "img.xml"]
