"""Saving and exporting when the disk is full or closed to us, file modes, stale temporaries,
and files changed on disk behind an unchanged size and mtime."""

from __future__ import annotations

import errno
import json
import os
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tensor_inspector.core import atomic
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.export import export_array
from tensor_inspector.session import saving
from tensor_inspector.session.opening import open_source
from tensor_inspector.session.saving import ChangedOnDisk, save

FULL = "No space left on device: nothing was changed; the original is intact."


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def no_space(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def npy(tmp_path: Path) -> Path:
    path = tmp_path / "w.npy"
    np.save(path, np.arange(1000.0))
    return path


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- a full disk --------------------------------------------------------------------


def test_disk_full_at_fsync_changes_nothing(
    tmp_path: Path, npy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = npy.read_bytes()
    source = open_source(npy)
    monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(InspectorError) as info:
        save(source, {"array": np.zeros(1000)}, npy, opened_signature=source.opened_signature)
    assert str(info.value) == FULL
    assert npy.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npy"]  # no temp, no backup


def test_disk_full_while_the_writer_writes(
    tmp_path: Path, npy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = open_source(npy)

    def half_then_full(path: Path, replacements: object) -> None:
        with open(path, "wb") as fh:
            fh.write(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(source, "_write", half_then_full)
    original = npy.read_bytes()
    with pytest.raises(InspectorError, match=f"^{FULL}$"):
        save(source, {"array": np.zeros(1000)}, npy, opened_signature=source.opened_signature)
    assert npy.read_bytes() == original and leftovers(tmp_path) == []
    target = tmp_path / "new.npy"
    with pytest.raises(InspectorError) as info:
        save(source, {"array": np.zeros(1000)}, target)
    assert str(info.value) == f"No space left on device: {target} was not written."
    assert not target.exists() and leftovers(tmp_path) == []


def test_disk_full_saving_a_sharded_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_file({"a": np.ones(2, np.float32)}, str(tmp_path / "m-00001-of-00001.safetensors"))
    index = tmp_path / "m.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "m-00001-of-00001.safetensors"}}))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    source = open_source(index)
    monkeypatch.setattr(saving, "fsync_path", no_space)
    with pytest.raises(InspectorError, match=f"^{FULL}$"):
        save(source, {"a": np.zeros(2, np.float32)}, index, opened_signature=source.opened_signature)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_disk_full_while_exporting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic.os, "fsync", no_space)
    target = tmp_path / "out.npy"
    with pytest.raises(InspectorError) as info:
        export_array(np.ones(10), target)
    assert str(info.value) == f"No space left on device: {target} was not written."
    assert list(tmp_path.iterdir()) == []


# -- other refusals by the system ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "permission denied"),
        (errno.EROFS, "the file system is read-only"),
        (errno.EIO, "input/output error"),
    ],
)
def test_other_os_errors_name_the_path(
    tmp_path: Path, npy: Path, monkeypatch: pytest.MonkeyPatch, code: int, reason: str
) -> None:
    source = open_source(npy)
    original = npy.read_bytes()

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code), str(tmp_path / ".w.npy.1-abcdefgh.tinspect-tmp"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(InspectorError) as info:
        save(source, {"array": np.zeros(1000)}, npy, opened_signature=source.opened_signature)
    assert str(info.value) == f"Cannot write {npy}: {reason}; nothing was changed."
    assert npy.read_bytes() == original
    with pytest.raises(InspectorError) as info:
        export_array(np.ones(3), tmp_path / "new.csv")
    assert str(info.value) == f"Cannot write {tmp_path / 'new.csv'}: {reason}; nothing was written."


READ_ONLY_SAVE = """
import sys
from pathlib import Path
import numpy as np
from tensor_inspector.session.opening import open_source
from tensor_inspector.session.saving import save
npy = Path(sys.argv[1])
source = open_source(npy)
if sys.argv[2] == "sandbox":  # root ignores folder modes; Landlock does not spare root
    from tensor_inspector.session.sandbox import apply_sandbox
    assert "Landlock" in apply_sandbox().description
else:
    npy.parent.chmod(0o555)
try:
    save(source, {"array": np.zeros(1000)}, npy, opened_signature=source.opened_signature)
except Exception as exc:
    print(type(exc).__name__, exc)
finally:
    if sys.argv[2] != "sandbox":
        npy.parent.chmod(0o755)
"""


def test_a_folder_we_may_not_write_is_a_sentence(tmp_path: Path, npy: Path) -> None:
    how = "sandbox" if os.geteuid() == 0 else "chmod"
    original = npy.read_bytes()
    result = subprocess.run(
        [sys.executable, "-c", READ_ONLY_SAVE, str(npy), how], capture_output=True, text=True, timeout=120
    )
    assert (
        result.stdout.strip() == f"InspectorError Cannot write {npy}: permission denied; nothing was changed."
    )
    assert npy.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npy"]


# -- modes ------------------------------------------------------------------------------


def test_in_place_save_keeps_mode_and_owner(tmp_path: Path, npy: Path, umask_022: None) -> None:
    npy.chmod(0o604)  # a mode the umask would never give
    if os.geteuid() == 0:  # only root can give a file away: check that it stays given
        os.chown(npy, 12345, 23456)
    owner = (npy.stat().st_uid, npy.stat().st_gid)
    source = open_source(npy)
    save(source, {"array": np.zeros(1000)}, npy, opened_signature=source.opened_signature)
    assert mode(npy) == 0o604
    assert (npy.stat().st_uid, npy.stat().st_gid) == owner
    assert mode(tmp_path / "w.npy.bak") == 0o604  # the backup is the original's own inode


def test_read_only_file_saved_in_place_stays_read_only(tmp_path: Path, npy: Path, umask_022: None) -> None:
    npy.chmod(0o444)
    source = open_source(npy)
    save(source, {"array": np.ones(1000)}, npy, opened_signature=source.opened_signature)
    assert mode(npy) == 0o444
    np.testing.assert_array_equal(np.load(npy), np.ones(1000))


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_new_files_get_the_umask_mode(tmp_path: Path, npy: Path, umask: int, expected: int) -> None:
    old = os.umask(umask)
    try:
        np.save(tmp_path / "by_numpy.npy", np.ones(2))
        assert mode(tmp_path / "by_numpy.npy") == expected  # what numpy itself gives
        source = open_source(npy)
        save(source, {"array": np.zeros(1000)}, tmp_path / "save_as.npy")
        assert mode(tmp_path / "save_as.npy") == expected
        for name in ("export.npy", "export.npz", "export.csv"):
            export_array(np.ones((2, 2)), tmp_path / name)
            assert mode(tmp_path / name) == expected, name
    finally:
        os.umask(old)


def test_sharded_save_as_gets_umask_and_in_place_keeps_modes(tmp_path: Path, umask_022: None) -> None:
    save_file({"a": np.ones(2, np.float32)}, str(tmp_path / "m-00001-of-00001.safetensors"))
    index = tmp_path / "m.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "m-00001-of-00001.safetensors"}}))
    (tmp_path / "m-00001-of-00001.safetensors").chmod(0o600)
    index.chmod(0o640)
    source = open_source(index)
    save(source, {"a": np.zeros(2, np.float32)}, tmp_path / "c.safetensors.index.json")
    assert mode(tmp_path / "c.safetensors.index.json") == 0o644
    assert mode(tmp_path / "c-00001-of-00001.safetensors") == 0o644
    source = open_source(index)
    save(source, {"a": np.zeros(2, np.float32)}, index, opened_signature=source.opened_signature)
    assert mode(index) == 0o640 and mode(tmp_path / "m-00001-of-00001.safetensors") == 0o600


# -- stale temporaries -------------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_ours_are_cleaned_and_nothing_else(tmp_path: Path, npy: Path) -> None:
    gone, alive = dead_pid(), os.getpid()
    old = 1_000_000_000  # 2001: long stale
    stale_file = tmp_path / f".w.npy.{gone}-abcdefgh.tinspect-tmp"
    stale_dir = tmp_path / f".model.{gone}-a_c4ef9h.tinspect-tmp"
    keep = [
        tmp_path / f".w.npy.{gone}-fresh123.tinspect-tmp",  # ours, but young: maybe being written
        tmp_path / f".w.npy.{alive}-running.tinspect-tmp",  # ours, its process still runs
        tmp_path / ".w.npy.abcdefgh.tmp",  # someone else's pattern
        tmp_path / f".w.npy.{gone}-abcdefgh.tmp",
        tmp_path / f".w.npy.{gone}-ABCDEFGH.tinspect-tmp",
        tmp_path / "x.tinspect-tmp",
        tmp_path / "notes.txt",
        tmp_path / ".w.npy.old",
    ]
    stale_file.write_bytes(b"partial")
    (stale_dir / "variables").mkdir(parents=True)
    (stale_dir / "variables" / "v.data").write_bytes(b"partial")
    for path in keep:
        path.write_bytes(b"keep")
    for path in [stale_file, stale_dir, *keep[1:]]:
        os.utime(path, (old, old))
    source = open_source(npy)
    save(source, {"array": np.zeros(1000)}, tmp_path / "copy.npy")
    assert not stale_file.exists() and not stale_dir.exists()
    assert all(path.exists() for path in keep)


def test_temporary_names_match_the_cleaning_pattern(tmp_path: Path) -> None:
    with atomic.atomic_write(tmp_path / "w.npy") as tmp:
        assert atomic._TEMP_NAME.fullmatch(tmp.name)
        tmp.write_bytes(b"x")
    folder = atomic.temp_dir(tmp_path / "ckpt-1")
    assert atomic._TEMP_NAME.fullmatch(folder.name)


# -- changed on disk behind the same size and mtime ----------------------------------------


def restore_stat_after(path: Path, offset: int, byte: bytes) -> bytes:
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(offset)
        assert fh.read(1) != byte
        fh.seek(offset)
        fh.write(byte)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return path.read_bytes()


def test_npy_header_changed_with_size_and_mtime_restored(tmp_path: Path, npy: Path) -> None:
    source = open_source(npy)
    header_end = npy.read_bytes().index(b"\n")
    changed = restore_stat_after(npy, header_end - 1, b"\t")  # a padding space of the header
    with pytest.raises(ChangedOnDisk, match="changed on disk since it was opened"):
        save(source, {"array": np.zeros(1000)}, npy, opened_signature=source.opened_signature)
    assert npy.read_bytes() == changed and leftovers(tmp_path) == []


def test_safetensors_header_changed_with_size_and_mtime_restored(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"w": np.ones(1000, np.float32)}, str(path), metadata={"author": "alice"})
    source = open_source(path)
    header_len = struct.unpack("<Q", path.read_bytes()[:8])[0]
    where = path.read_bytes()[: 8 + header_len].index(b"alice")
    changed = restore_stat_after(path, where, b"A")
    with pytest.raises(ChangedOnDisk):
        save(source, {"w": np.zeros(1000, np.float32)}, path, opened_signature=source.opened_signature)
    assert path.read_bytes() == changed
