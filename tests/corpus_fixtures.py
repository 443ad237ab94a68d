"""Fixtures for the hostile-input corpus (issue 7), generated at test time: no binaries committed.

Import them into a test module by name (``from corpus_fixtures import corpus``) and add
``# ruff: noqa: F811`` (a fixture argument shadows the imported name).

* ``corpus``: the images and annotations of ``scripts/make_corpus.py`` (session-wide, read
  only: copy a sub-folder with :func:`fresh_copy` before saving into it).
* ``corpus_weights``: its ``weights/`` folder (imports torch, ~2 s, only where used).
* ``special``: FIFOs, ``/dev/zero`` links and a folder named like files (issue 16), per test.
* ``readonly_folder``: a folder with an image and a VOC file that really refuses writes --
  ``chmod 555`` for a normal user; for root (who ignores modes) a read-only tmpfs mount, or a
  skip when mounting is not allowed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from script_modules import load_script

ROOT = Path(__file__).resolve().parents[1]


make_corpus = load_script("make_corpus")


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """``{relative path: (sha256, mtime_ns)}`` of the files under ``folder`` (not via links)."""
    out = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink() or not stat.S_ISREG(p.lstat().st_mode):  # a FIFO would block
                continue
            out[str(p.relative_to(folder))] = (
                hashlib.sha256(p.read_bytes()).hexdigest(),
                p.stat().st_mtime_ns,
            )
    return out


def fresh_copy(src: Path, dst: Path) -> Path:
    """A writable copy of a corpus folder (the session corpus itself stays untouched)."""
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    make_corpus.make_corpus(root, weights=False)
    return root


@pytest.fixture(scope="session")
def corpus_weights(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus_weights") / "weights"
    make_corpus.make_weights(folder)
    return folder


@pytest.fixture
def special(tmp_path) -> Iterator[dict[str, Path]]:
    """``make_corpus.make_special``: FIFOs, /dev/zero links and a folder where files are
    expected (``{case: path}``). At teardown every FIFO is opened for writing once, which
    releases a reader a broken test left blocked on it."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    made = make_corpus.make_special(tmp_path / "special")
    yield made
    for path in made.values():
        if stat.S_ISFIFO(path.lstat().st_mode):
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def _mount(*args: str) -> bool:
    try:
        done = subprocess.run(["mount", *args], capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@contextlib.contextmanager
def _readonly(folder: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        for p in folder.iterdir():
            os.chmod(p, 0o444)
        try:
            yield folder
        finally:
            os.chmod(folder, 0o755)
        return
    staged = folder.with_name(folder.name + "-staged")
    folder.rename(staged)
    folder.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)):
        pytest.skip("running as root and cannot mount a read-only tmpfs: no real read-only folder")
    try:
        for p in staged.iterdir():
            shutil.copy2(p, folder / p.name)
        if not _mount("-o", "remount,ro", str(folder)):
            pytest.skip("cannot remount the tmpfs read-only")
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=20)


@pytest.fixture
def readonly_folder(tmp_path) -> Iterator[Path]:
    """``tmp_path/ro`` holding ``img.png`` (100 x 80) and ``img.xml`` (one box), read-only."""
    folder = tmp_path / "ro"
    folder.mkdir()
    make_corpus._case_image(folder / "img.png")
    (folder / "img.xml").write_bytes(
        make_corpus.voc_xml("img.png", make_corpus.CASE_SIZE, [make_corpus.GOOD_VOC])
    )
    with _readonly(folder) as ro:
        probe = ro / ".probe"
        with contextlib.suppress(OSError):
            probe.write_bytes(b"x")
            probe.unlink()
            pytest.skip("the read-only folder accepted a write (unexpected privileges)")
        yield ro
