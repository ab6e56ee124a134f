"""safetensors headers with wrongly typed fields or bad tiling: refused with one sentence
exactly where the reference library (safe_open) refuses, accepted where it accepts."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors import SafetensorError, safe_open

from tensor_inspector.backends import CorruptFile, InspectorError, open_path

OK = {"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}


def write(path: Path, header: object, data: bytes = b"\0" * 16) -> Path:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def reference_refuses(path: Path) -> bool:
    try:
        with safe_open(str(path), "numpy") as f:
            list(f.keys())
    except SafetensorError:
        return True
    return False


def t(dtype: str = "F32", shape: object = (4,), offsets: object = (0, 16)) -> dict[str, object]:
    return {
        "dtype": dtype,
        "shape": list(shape) if isinstance(shape, tuple) else shape,
        "data_offsets": offsets,
    }


BAD = {
    "header is a list": ([1, 2], "not a JSON object"),
    "entry is a list": ({"a": [1]}, "JSON array, not an object"),
    "entry is null": ({"a": None}, "JSON null, not an object"),
    "shape is a string": ({"a": t(shape="4")}, "shape that is not a list"),
    "shape has a float": ({"a": t(shape=[2.0, 2])}, "shape that is not a list"),
    "shape has negatives": ({"a": t(shape=[-2, -2])}, "shape that is not a list"),
    "shape has a bool": ({"a": t(shape=[True, 4])}, "shape that is not a list"),
    "three offsets": ({"a": t(offsets=[0, 16, 3])}, "not two non-negative integers"),
    "offset is a string": ({"a": t(offsets=["0", 16])}, "not two non-negative integers"),
    "offset is a float": ({"a": t(offsets=[0.0, 16])}, "not two non-negative integers"),
    "offset is an object": ({"a": t(offsets={"0": 16})}, "not two non-negative integers"),
    "dtype is a number": ({"a": t(dtype=1)}, "dtype that is not text"),  # type: ignore[arg-type]
    "dtype is unknown": ({"a": t(dtype="F33")}, "unknown dtype 'F33'"),
    "no data_offsets": ({"a": {"dtype": "F32", "shape": [4]}}, "has no data_offsets"),
    "metadata value is a number": ({"__metadata__": {"k": 1}, **OK}, "__metadata__ that is not a map"),
    "metadata is a list": ({"__metadata__": [], **OK}, "__metadata__ that is not a map"),
    "metadata value is nested": ({"__metadata__": {"k": {"a": "b"}}, **OK}, "__metadata__ that is not"),
    "size disagrees with shape": ({"a": t(shape=[3])}, r"declares \[3\] F32 but spans bytes 0..16"),
    "overflowing shape": ({"a": t(shape=[2**40, 2**40])}, "declares"),
    "overlapping tensors": (
        {
            "a": t(shape=[2], offsets=[0, 8]),
            "b": t(shape=[2], offsets=[4, 12]),
            "c": t(shape=[1], offsets=[12, 16]),
        },
        "'b' overlaps the bytes of another tensor",
    ),
    "gap between tensors": (
        {"a": t(shape=[2], offsets=[0, 8]), "b": t(shape=[1], offsets=[12, 16])},
        "'b' starts at byte 12 of the data, leaving 4 bytes",
    ),
    "first tensor not at 0": (
        {"a": t(shape=[2], offsets=[8, 16])},
        "leaving 8 bytes that belong to no tensor",
    ),
    "bytes after the last tensor": ({"a": t(shape=[2], offsets=[0, 8])}, "8 bytes after its last tensor"),
    "past the end": ({"a": t(shape=[8], offsets=[0, 32])}, "ends past the end of the file"),
    "offset beyond usize": ({"a": t(offsets=[0, 2**70])}, "not two non-negative integers"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_header_is_one_sentence_where_the_reference_refuses(tmp_path: Path, case: str) -> None:
    header, expected = BAD[case]
    path = write(tmp_path / "bad.safetensors", header)
    assert reference_refuses(path)
    with pytest.raises(CorruptFile, match=expected) as info:
        open_path(path)
    message = str(info.value)
    assert "\n" not in message and message.endswith(".") and message.startswith("bad.safetensors")


GOOD = {
    "plain": (OK, b"\0" * 16),
    "metadata null": ({"__metadata__": None, **OK}, b"\0" * 16),
    "extra field in an entry": ({"a": {**t(), "extra": 1}}, b"\0" * 16),
    "empty header": ({}, b""),
    "two empty tensors at 0": (
        {"a": t(shape=[0], offsets=[0, 0]), "b": t(shape=[0, 3], offsets=[0, 0])},
        b"",
    ),
    "tensors listed out of order": (
        {"b": t(shape=[2], offsets=[8, 16]), "a": t(shape=[2], offsets=[0, 8])},
        b"\0" * 16,
    ),
    "float8 e8m0": ({"a": t(dtype="F8_E8M0", shape=[16], offsets=[0, 16])}, b"\x7f" * 16),
}


@pytest.mark.parametrize("case", list(GOOD))
def test_headers_the_reference_accepts_open(tmp_path: Path, case: str) -> None:
    header, data = GOOD[case]
    path = write(tmp_path / "good.safetensors", header, data)
    assert not reference_refuses(path)
    with open_path(path) as source:
        for node in source.value_nodes():
            assert np.asarray(source.read(node.id)).nbytes == node.nbytes


def test_header_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    raw = json.dumps(OK).encode("utf-16")
    raw += b" " * (-len(raw) % 8)
    path = tmp_path / "u16.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)
    assert reference_refuses(path)
    with pytest.raises(CorruptFile, match="not valid JSON"):
        open_path(path)


def test_packed_sub_byte_dtype_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "f4.safetensors", {"a": t(dtype="F4", shape=[32], offsets=[0, 16])})
    with pytest.raises(InspectorError, match="uses dtype F4, which Tensor Inspector cannot show yet"):
        open_path(path)


def test_index_with_wrongly_typed_weight_map(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors.index.json"
    path.write_text(json.dumps({"weight_map": ["a", "b"]}))
    with pytest.raises(CorruptFile, match="weight_map that is not a map"):
        open_path(path)
    path.write_text(json.dumps({"weight_map": {"a": 3}}))
    with pytest.raises(CorruptFile, match="weight_map that is not a map"):
        open_path(path)
