"""Atomic writes: all-or-nothing, temp files cleaned, typed errors; one-time backups."""

from __future__ import annotations

import errno
import os

import pytest

from rpn_core import atomic
from rpn_core.annotation.data import AnnotationWriteError
from rpn_core.atomic import atomic_write_bytes, atomic_write_text, backup_once, backup_path


def test_write_creates_folders_and_replaces_content(tmp_path):
    target = tmp_path / "deep" / "er" / "a.xml"
    atomic_write_text(target, "first ünï\n")
    assert target.read_text(encoding="utf-8") == "first ünï\n"
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(os.listdir(target.parent)) == ["a.xml"]  # no temp file left behind


def test_existing_permission_bits_are_kept(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("x")
    target.chmod(0o640)
    atomic_write_text(target, "y")
    assert target.stat().st_mode & 0o777 == 0o640


def test_disk_full_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    target.write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(AnnotationWriteError) as info:
        atomic_write_text(target, "new")
    assert info.value.path == target and "No space left" in info.value.reason
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.json"]


def test_replace_failure_is_typed_and_cleans_up(tmp_path):
    target = tmp_path / "is_a_folder"
    target.mkdir()
    (target / "inside").write_text("keep")
    with pytest.raises(AnnotationWriteError) as info:
        atomic_write_bytes(target, b"data")
    assert info.value.path == target
    assert (target / "inside").read_text() == "keep"
    assert os.listdir(tmp_path) == ["is_a_folder"]


def test_permission_denied_is_typed(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
    with pytest.raises(AnnotationWriteError, match="Permission denied"):
        atomic_write_text(tmp_path / "a.txt", "x")


def test_unencodable_text_is_typed(tmp_path):
    with pytest.raises(AnnotationWriteError, match="encoded"):
        atomic_write_text(tmp_path / "a.txt", "\udcff", encoding="utf-8")
    assert not (tmp_path / "a.txt").exists()


def test_backup_once_never_overwrites_an_older_backup(tmp_path):
    target = tmp_path / "a.xml"
    assert backup_once(target) is None  # nothing to back up
    target.write_bytes(b"v1")
    first = backup_once(target)
    target.write_bytes(b"v2")
    second = backup_once(target)
    assert (first.name, second.name) == ("a.xml.bak", "a.xml.bak1")
    assert (first.read_bytes(), second.read_bytes()) == (b"v1", b"v2")
    assert backup_path(target).name == "a.xml.bak2"
