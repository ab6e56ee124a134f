"""Saving is atomic, keeps a backup, refuses stale files and verifies what it wrote."""

import os

import numpy as np
import pytest

from tensor_inspector.core import atomic
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.session import saving
from tensor_inspector.session.opening import open_source as open_path
from tensor_inspector.session.saving import file_signature, save


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, a=np.arange(6.0).reshape(2, 3), b=np.ones(3, np.int32))
    return path


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_save_as_writes_new_file_and_verifies(tmp_path, npz):
    source = open_path(npz)
    report = save(source, {"b": np.array([1, 2, 3], np.int32)}, tmp_path / "out.npz")
    assert report.verified == ["b"] and report.backup is None
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["b"], [1, 2, 3])


def test_in_place_save_keeps_backup_even_while_memory_mapped(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, np.arange(10_000, dtype=np.float64))
    original = path.read_bytes()
    source = open_path(path)
    mapped = source.read("array")  # a live memory map of the file being replaced
    new = np.arange(10_000, dtype=np.float64) * 2
    save(source, {"array": new}, path, opened_signature=source.opened_signature)
    assert (tmp_path / "big.npy.bak").read_bytes() == original
    np.testing.assert_array_equal(np.load(path), new)
    np.testing.assert_array_equal(mapped[:5], np.arange(5.0))  # the old map still reads old data
    assert leftovers(tmp_path) == []


def test_failure_midway_leaves_original_and_no_temp(tmp_path, npz, monkeypatch):
    original = npz.read_bytes()
    source = open_path(npz)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(InspectorError) as info:
        save(source, {"b": np.zeros(3, np.int32)}, npz, opened_signature=source.opened_signature)
    assert str(info.value) == "No space left on device: nothing was changed; the original is intact."
    assert npz.read_bytes() == original
    assert leftovers(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]


def test_writer_raising_leaves_nothing(tmp_path, npz, monkeypatch):
    source = open_path(npz)

    def explode(path, replacements):
        path.write_bytes(b"half a file")
        raise RuntimeError("writer crashed")

    monkeypatch.setattr(source, "_write", explode)
    with pytest.raises(RuntimeError):
        save(source, {"b": np.zeros(3, np.int32)}, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists() and leftovers(tmp_path) == []


def test_file_changed_on_disk_is_not_overwritten(tmp_path, npz):
    source = open_path(npz)
    np.savez(npz, a=np.zeros(1))  # someone else rewrites the file
    os.utime(npz, ns=(1, 1))
    changed = npz.read_bytes()
    with pytest.raises(InspectorError, match="changed on disk"):
        save(source, {"b": np.zeros(3, np.int32)}, npz, opened_signature=source.opened_signature)
    assert npz.read_bytes() == changed


def test_verification_mismatch_is_reported(tmp_path, npz, monkeypatch):
    source = open_path(npz)
    real_write = source._write

    def sloppy(path, replacements):
        real_write(path, {k: v + 1 for k, v in replacements.items()})

    monkeypatch.setattr(source, "_write", sloppy)
    with pytest.raises(InspectorError, match="Verification failed"):
        save(source, {"b": np.zeros(3, np.int32)}, tmp_path / "out.npz")


def test_signature_covers_checkpoint_prefix_files(tmp_path):
    (tmp_path / "ckpt-1.index").write_bytes(b"i")
    (tmp_path / "ckpt-1.data-00000-of-00001").write_bytes(b"d")
    (tmp_path / "ckpt-10.index").write_bytes(b"other")
    files = saving.source_files(tmp_path / "ckpt-1")
    assert [f.name for f in files] == ["ckpt-1.data-00000-of-00001", "ckpt-1.index"]
    before = file_signature(tmp_path / "ckpt-1")
    (tmp_path / "ckpt-1.data-00000-of-00001").write_bytes(b"dd")
    assert file_signature(tmp_path / "ckpt-1") != before
