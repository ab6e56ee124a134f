"""Inflation bombs in .npz members, and memory-mapped files truncated by another program."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tensor_inspector.backends import CorruptFile, InspectorError, open_path
from tensor_inspector.backends import numpy as numpy_backend

MiB = 1 << 20


def test_inflation_bomb_is_refused_before_anything_is_allocated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, bomb=np.zeros(32 * MiB, np.uint8), small=np.arange(10))
    assert path.stat().st_size < 200_000  # zeros deflate about 1000:1
    monkeypatch.setattr(numpy_backend, "inflate_limit", lambda: 4 * MiB)
    with open_path(path) as source:  # the tree is listed from the headers alone
        assert source.node("bomb").nbytes == 32 * MiB
        with pytest.raises(InspectorError) as info:
            source.read("bomb")
        message = str(info.value)
        assert message == (
            f"bomb.npz: member bomb.npy would inflate from {source.node('bomb').metadata['compressed_size']:,} "
            f"to {32 * MiB:,} bytes, more than half the memory available now ({4 * MiB:,} bytes), "
            "so it is not read."
        )
        np.testing.assert_array_equal(source.read("small"), np.arange(10))


def test_member_under_the_limit_inflates_in_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ok.npz"
    array = np.asfortranarray(np.arange(3 * MiB // 8, dtype=np.float64).reshape(-1, 3))
    np.savez_compressed(path, a=array)
    monkeypatch.setattr(numpy_backend, "INFLATE_STEP", 64 * 1024)  # many steps
    monkeypatch.setattr(numpy_backend, "inflate_limit", lambda: 4 * MiB)
    with open_path(path) as source:
        got = source.read("a")
        assert got.dtype == array.dtype and got.shape == array.shape
        np.testing.assert_array_equal(got, array)


def test_default_limit_is_half_of_available_memory() -> None:
    available = numpy_backend.available_memory()
    assert available > 0
    assert numpy_backend.inflate_limit() == int(available * numpy_backend.INFLATE_SHARE)


def _npy_bytes(header_shape: tuple[int, ...], data: bytes) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": header_shape})
    return out.getvalue() + data


def test_stream_longer_than_its_declared_size_is_damaged_not_inflated(tmp_path: Path) -> None:
    """The zip says 1 MiB, the deflate stream holds 16 MiB: reading stops at 1 MiB."""
    path = tmp_path / "liar.npz"
    member = _npy_bytes((MiB,), b"\0" * (16 * MiB))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.npy", member)
    data = bytearray(path.read_bytes())
    declared = len(member) - 15 * MiB
    struct.pack_into("<I", data, 22, declared)  # local header: uncompressed size
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)  # central directory: the same
    path.write_bytes(bytes(data))
    with open_path(path) as source:
        assert source.node("a").nbytes == MiB
        with pytest.raises(CorruptFile, match=r"liar.npz: member a.npy is damaged \(Bad CRC-32"):
            source.read("a")


def test_damaged_deflate_stream_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    np.savez_compressed(path, a=np.random.default_rng(0).standard_normal(50_000))
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with open_path(path) as source, pytest.raises(CorruptFile, match="broken.npz: member a.npy is damaged"):
        source.read("a")


# -- files truncated while open: run in a child, since touching a lost page is SIGBUS -----

CHILD = """
import os, sys
import numpy as np
from tensor_inspector.backends import CorruptFile, open_path

path, node, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
source = open_path(path)
print("first", float(np.asarray(source.read(node)).sum()), flush=True)  # pages touched
os.truncate(path, keep)
try:
    value = source.read(node)
    print("second", float(np.asarray(value).sum()), flush=True)
except CorruptFile as exc:
    print("refused:", exc, flush=True)
source.close()
"""


def run_child(path: Path, node: str, keep: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(path), node, str(keep)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_refused(result: subprocess.CompletedProcess[str], name: str) -> None:
    assert result.returncode == 0, f"child died ({result.returncode}): {result.stderr[-2000:]}"
    lines = result.stdout.splitlines()
    assert lines[0].startswith("first")
    assert lines[1] == f"refused: {name} was truncated by another program since it was opened."


def test_npy_truncated_after_open_is_refused_not_sigbus(tmp_path: Path) -> None:
    path = tmp_path / "shrinks.npy"
    np.save(path, np.ones(4 * MiB // 8))
    _assert_refused(run_child(path, "array", 4096), "shrinks.npy")


def test_stored_npz_member_truncated_after_open_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "shrinks.npz"
    np.savez(path, a=np.ones(MiB // 8), b=np.ones(MiB // 8))
    _assert_refused(run_child(path, "b", 4096), "shrinks.npz")


def test_safetensors_truncated_after_open_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "shrinks.safetensors"
    save_file({"w": np.ones(MiB // 4, np.float32)}, str(path))
    _assert_refused(run_child(path, "w", 4096), "shrinks.safetensors")


def test_file_replaced_after_open_still_reads_what_was_opened(tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    np.save(path, np.arange(100.0))
    with open_path(path) as source:
        np.save(tmp_path / "other.npy", np.zeros(100))
        os.replace(tmp_path / "other.npy", path)  # another program saves over it
        np.testing.assert_array_equal(source.read("array"), np.arange(100.0))


def test_safetensors_replaced_after_open_is_refused_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"w": np.arange(4, dtype=np.float32)}, str(path))
    with open_path(path) as source:
        save_file({"other": np.zeros(2, np.float64), "w": np.ones(4, np.float32)}, str(tmp_path / "n"))
        os.replace(tmp_path / "n", path)  # same name, other layout: old offsets would misread
        with pytest.raises(
            CorruptFile, match="^w.safetensors was replaced by another program since it was opened.$"
        ):
            source.read("w")
        path.unlink()
        with pytest.raises(CorruptFile, match="^w.safetensors can no longer be read"):
            source.read("w")
