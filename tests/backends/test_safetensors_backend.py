"""safetensors backend: files written by the safetensors library itself, shards, bad headers."""

import json
import struct

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file
from safetensors.torch import save_file as save_torch

from tensor_inspector.backends import CorruptFile, open_path
from tensor_inspector.core.dtypes import numpy_dtype

NUMPY_DTYPES = [
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex64",
]
TORCH_DTYPES = {
    "bfloat16": torch.bfloat16,
    "float8_e4m3fn": torch.float8_e4m3fn,
    "float8_e5m2": torch.float8_e5m2,
}


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_numpy_written_dtypes_read_exactly(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    save_numpy({"t": array, "s": np.array(3, dtype)}, tmp_path / "a.safetensors")
    source = open_path(tmp_path / "a.safetensors")
    assert source.node("t").dtype == dtype and source.node("t").shape == (2, 3, 4)
    got = source.read("t")
    assert got.dtype == array.dtype and got.tobytes() == array.tobytes()
    assert source.read("s").shape == ()
    np.testing.assert_array_equal(source.read("t", (1, slice(None), slice(1, 3))), array[1, :, 1:3])


@pytest.mark.parametrize("name", list(TORCH_DTYPES))
def test_bf16_and_fp8_bits_are_identical(tmp_path, name):
    tensor = (torch.randn(5, 7) * 3).to(TORCH_DTYPES[name])
    save_torch({"w": tensor}, tmp_path / "b.safetensors")
    got = open_path(tmp_path / "b.safetensors").read("w")
    assert got.dtype == numpy_dtype(name)
    expected_bits = tensor.view(torch.uint8 if tensor.element_size() == 1 else torch.int16).numpy()
    assert got.tobytes() == expected_bits.tobytes()


def test_metadata_order_empty_and_five_d(tmp_path):
    tensors = {"z_last": torch.zeros(2, 1, 2, 1, 3), "a_first": torch.ones(0, 4)}
    save_torch(tensors, tmp_path / "m.safetensors", metadata={"format": "pt", "author": "me"})
    source = open_path(tmp_path / "m.safetensors")
    assert source.metadata == {"format": "pt", "author": "me"}
    assert source.node("a_first").shape == (0, 4)
    assert source.read("a_first").shape == (0, 4)
    assert source.read("z_last").shape == (2, 1, 2, 1, 3)


def test_sharded_index_opens_as_one_tree(tmp_path):
    save_torch({"a": torch.ones(2)}, tmp_path / "model-00001-of-00002.safetensors")
    save_torch({"b": torch.full((3,), 2.0)}, tmp_path / "model-00002-of-00002.safetensors")
    index = {
        "metadata": {"total_size": 20},
        "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"},
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    source = open_path(tmp_path / "model.safetensors.index.json")
    assert [n.id for n in source.value_nodes()] == ["a", "b"]
    assert source.node("b").metadata["shard"] == "model-00002-of-00002.safetensors"
    np.testing.assert_array_equal(source.read("b"), [2, 2, 2])


def test_header_length_past_end_of_file(tmp_path):
    save_torch({"a": torch.ones(4)}, tmp_path / "a.safetensors")
    data = (tmp_path / "a.safetensors").read_bytes()
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", 10_000) + data[8:])
    with pytest.raises(CorruptFile, match="declares a 10,000-byte safetensors header"):
        open_path(tmp_path / "bad.safetensors")


def test_truncated_data_and_bad_json(tmp_path):
    save_torch({"a": torch.ones(100)}, tmp_path / "a.safetensors")
    data = (tmp_path / "a.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[:-10])
    with pytest.raises(CorruptFile, match="past the end"):
        open_path(tmp_path / "t.safetensors")
    header_len = struct.unpack("<Q", data[:8])[0]
    (tmp_path / "j.safetensors").write_bytes(
        data[:8] + b"{" + b"x" * (header_len - 1) + data[8 + header_len :]
    )
    with pytest.raises(CorruptFile, match="not valid JSON"):
        open_path(tmp_path / "j.safetensors")


def test_write_keeps_metadata_order_and_untouched_bytes(tmp_path):
    tensors = {"b": torch.randn(3, 3).to(torch.bfloat16), "a": torch.arange(5)}
    save_torch(tensors, tmp_path / "w.safetensors", metadata={"k": "v"})
    source = open_path(tmp_path / "w.safetensors")
    before = [n.id for n in source.value_nodes()]
    new = np.full((3, 3), 1.5, numpy_dtype("bfloat16"))
    source.write(tmp_path / "out.safetensors", {"b": new})
    loaded = load_file(tmp_path / "out.safetensors")
    assert loaded["b"].dtype == torch.bfloat16 and torch.all(loaded["b"] == 1.5)
    assert torch.equal(loaded["a"], tensors["a"])
    out = open_path(tmp_path / "out.safetensors")
    assert out.metadata == {"k": "v"} and [n.id for n in out.value_nodes()] == before


def _sharded(tmp_path):
    save_torch(
        {"a": torch.ones(2), "c": torch.zeros(3, dtype=torch.bfloat16)},
        tmp_path / "model-00001-of-00002.safetensors",
        metadata={"format": "pt"},
    )
    save_torch(
        {"b": torch.full((3,), 2.0)}, tmp_path / "model-00002-of-00002.safetensors", metadata={"format": "pt"}
    )
    index = {
        "metadata": {"total_size": 26},
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "c": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        },
    }
    path = tmp_path / "model.safetensors.index.json"
    path.write_text(json.dumps(index))
    return path


def test_sharded_save_as_and_in_place(tmp_path):
    from tensor_inspector.session.saving import save

    path = _sharded(tmp_path)
    originals = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    source = open_path(path)
    new_b = np.array([7, 8, 9], np.float32)
    save(source, {"b": new_b}, tmp_path / "edited.safetensors.index.json")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in originals} == originals
    index = json.loads((tmp_path / "edited.safetensors.index.json").read_text())
    assert index["metadata"] == {"total_size": 26}
    assert index["weight_map"] == {
        "a": "edited-00001-of-00002.safetensors",
        "c": "edited-00001-of-00002.safetensors",
        "b": "edited-00002-of-00002.safetensors",
    }
    assert torch.equal(
        load_file(tmp_path / "edited-00002-of-00002.safetensors")["b"], torch.tensor([7.0, 8, 9])
    )
    first = load_file(tmp_path / "edited-00001-of-00002.safetensors")
    assert first["c"].dtype == torch.bfloat16 and torch.equal(first["a"], torch.ones(2))

    source = open_path(path)
    report = save(source, {"a": np.array([5, 6], np.float32)}, path, opened_signature=source.opened_signature)
    assert report.backup == tmp_path / "model.safetensors.index.json.bak"
    for name, data in originals.items():
        assert (tmp_path / (name + ".bak")).read_bytes() == data
    reopened = open_path(path)
    np.testing.assert_array_equal(reopened.read("a"), [5, 6])
    np.testing.assert_array_equal(reopened.read("b"), [2, 2, 2])


def test_sharded_save_as_never_overwrites_the_original_shards(tmp_path):
    from tensor_inspector.backends import InspectorError
    from tensor_inspector.session.saving import save

    path = _sharded(tmp_path)
    other_name = path.rename(tmp_path / "release.safetensors.index.json")  # shards keep "model-..."
    originals = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    source = open_path(other_name)
    # a copy named "model..." would write "model-0000N-of-00002" shards: the original's own
    with pytest.raises(InspectorError, match="would overwrite model-00001-of-00002"):
        save(source, {"b": np.zeros(3, np.float32)}, tmp_path / "model.safetensors.index.json")
    with pytest.raises(InspectorError, match="index named"):
        save(source, {"b": np.zeros(3, np.float32)}, tmp_path / "copy.json")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == originals
