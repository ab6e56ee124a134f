"""The on-disk signature notices content changes that keep size and mtime, and stays cheap."""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from typing import Any

import pytest

from tensor_inspector.core import fingerprint
from tensor_inspector.core.fingerprint import SAMPLE, file_signature, source_files


def rewrite_keeping_size_and_mtime(path: Path, offset: int, byte: bytes) -> None:
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(offset)
        assert fh.read(1) != byte
        fh.seek(offset)
        fh.write(byte)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


@pytest.mark.parametrize("offset", [10, 3 * SAMPLE - 5])  # in the header; in the tail
def test_one_byte_changed_with_size_and_mtime_restored(tmp_path: Path, offset: int) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(bytes(3 * SAMPLE))
    before = file_signature(path)
    rewrite_keeping_size_and_mtime(path, offset, b"\x01")
    assert file_signature(path) != before


def test_directory_member_changed_in_place(tmp_path: Path) -> None:
    model = tmp_path / "saved_model"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"graph" * 100)
    (model / "variables" / "variables.index").write_bytes(b"index" * 100)
    before = file_signature(model)
    rewrite_keeping_size_and_mtime(model / "variables" / "variables.index", 3, b"X")
    assert file_signature(model) != before


def test_signature_reads_two_samples_per_file_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.bin"
    with open(path, "wb") as fh:
        fh.truncate(8 << 30)  # a sparse 8 GiB file: reading it whole would take long
    read = []
    real_open = builtins.open

    class Counting:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fh, name)

        def read(self, size: int = -1) -> bytes:
            data: bytes = self.fh.read(size)
            read.append(len(data))
            return data

    monkeypatch.setattr(fingerprint, "open", lambda *a, **k: Counting(real_open(*a, **k)), raising=False)
    file_signature(path)
    assert sum(read) == 2 * SAMPLE


def test_missing_file_differs_and_does_not_raise(tmp_path: Path) -> None:
    path = tmp_path / "gone.npy"
    path.write_bytes(b"x")
    before = file_signature(path)
    path.unlink()
    assert file_signature(path) != before


def test_session_saving_still_offers_the_same_functions() -> None:
    from tensor_inspector.session import saving

    assert saving.file_signature is file_signature and saving.source_files is source_files
