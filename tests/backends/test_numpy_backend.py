"""numpy backend: every dtype, every rank, lazy reads, slices, and bad files."""

import pickle
import zipfile

import numpy as np
import pytest

from tensor_inspector.backends import CorruptFile, InspectorError, NodeKind, UnsupportedFormat, open_path
from tensor_inspector.backends.numpy import NpySource
from tensor_inspector.core.dtypes import all_test_dtypes
from tensor_inspector.core.npy_format import write_npy

DTYPES = all_test_dtypes()


def sample(dtype, shape=(3, 4)):
    rng = np.random.default_rng(0)
    values = rng.standard_normal(shape) * 10
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    if np.dtype(dtype).kind in "ub":
        values = np.abs(values)
    return values.astype(dtype)


def save_npy(path, array):
    """np.save for numpy dtypes; our writer for ml_dtypes ones (np.save would write raw 'V2')."""
    if array.dtype.kind == "V" or array.dtype.name.startswith(("bfloat", "float8")):
        with open(path, "wb") as fh:
            write_npy(fh, array)
    else:
        np.save(path, array)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_npy_every_dtype_reads_exactly(tmp_path, dtype):
    array = sample(dtype)
    save_npy(tmp_path / "a.npy", array)
    source = open_path(tmp_path / "a.npy")
    node = source.node("array")
    assert node.name == "a"  # the tree shows the file name
    assert (node.kind, node.dtype, node.shape, node.nbytes) == (
        NodeKind.TENSOR,
        dtype.name,
        (3, 4),
        array.nbytes,
    )
    assert same_bits(np.asarray(source.read("array")), array)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_npz_every_dtype_stored_and_compressed(tmp_path, dtype):
    arrays = {"w": sample(dtype), "nested/b": sample(dtype, (5,))}
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        path = tmp_path / f"a{compression}.npz"
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            for key, value in arrays.items():
                with zf.open(key + ".npy", "w") as fh:
                    write_npy(fh, value)
        source = open_path(path)
        assert source.node("nested").kind is NodeKind.GROUP
        assert source.node("nested/b").parent == "nested"
        for key, value in arrays.items():
            assert same_bits(np.asarray(source.read(key)), value)


@pytest.mark.parametrize("shape", [(), (0,), (0, 3), (7,), (2, 3), (2, 3, 4), (2, 1, 3, 2), (2, 2, 1, 2, 3)])
def test_ranks_0_to_5_and_empty(tmp_path, shape):
    array = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    np.save(tmp_path / "x.npy", array)
    np.savez_compressed(tmp_path / "x.npz", x=array)
    for name, node_id in (("x.npy", "array"), ("x.npz", "x")):
        source = open_path(tmp_path / name)
        assert source.node(node_id).shape == shape
        assert same_bits(np.asarray(source.read(node_id)), array)


def test_npy_is_memory_mapped_and_slices_lazily(tmp_path):
    array = np.arange(1000 * 300, dtype=np.float64).reshape(1000, 300)
    np.save(tmp_path / "big.npy", array)
    source = open_path(tmp_path / "big.npy")
    whole = source.read("array")
    assert isinstance(whole, np.memmap)
    np.testing.assert_array_equal(source.read("array", (slice(10, 12), 5)), array[10:12, 5])


def test_fortran_order_npy(tmp_path):
    array = np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4))
    np.save(tmp_path / "f.npy", array)
    source = open_path(tmp_path / "f.npy")
    np.testing.assert_array_equal(source.read("array"), array)
    np.testing.assert_array_equal(source.read("array", (1,)), array[1])


def test_stored_npz_members_are_mapped_not_copied(tmp_path):
    np.savez(tmp_path / "s.npz", a=np.arange(100.0), b=np.ones((4, 4), np.int16))
    source = open_path(tmp_path / "s.npz")
    assert isinstance(source.read("a"), np.memmap)
    np.testing.assert_array_equal(source.read("b", (slice(None), 1)), np.ones(4, np.int16))


def test_object_array_is_refused_with_reason(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(InspectorError, match="Python objects.*refused"):
        open_path(tmp_path / "obj.npy")


def test_truncated_npy(tmp_path):
    np.save(tmp_path / "t.npy", np.arange(1000, dtype=np.float64))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-100])
    with pytest.raises(CorruptFile, match="truncated"):
        open_path(tmp_path / "t.npy")
    (tmp_path / "h.npy").write_bytes(data[:40])  # cut inside the header
    with pytest.raises(CorruptFile, match="truncated inside"):
        open_path(tmp_path / "h.npy")


def test_header_claiming_huge_size_is_an_error_not_memoryerror(tmp_path):
    path = tmp_path / "huge.npy"
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"
    header = header.ljust(118) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 16)
    with pytest.raises(CorruptFile, match="4,000,000,000,000 bytes"):
        open_path(path)


def test_pickle_renamed_to_npy_is_not_read_as_numpy(tmp_path):
    path = tmp_path / "evil.npy"
    path.write_bytes(pickle.dumps(ZeroDivisionError("x")))
    with pytest.raises(InspectorError):
        open_path(path)


def test_empty_file_and_unknown_directory_and_missing_path(tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(UnsupportedFormat, match="empty"):
        open_path(tmp_path / "empty.npy")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedFormat, match="Supported:.*NumPy"):
        open_path(tmp_path / "dir")
    with pytest.raises(InspectorError, match="does not exist"):
        open_path(tmp_path / "nope.npy")


def test_write_npy_and_npz_replace_one_tensor(tmp_path):
    np.savez(tmp_path / "m.npz", a=np.arange(3.0), b=np.ones(2, np.int8))
    source = open_path(tmp_path / "m.npz")
    source.write(tmp_path / "out.npz", {"b": np.array([5, 6], np.int8)})
    out = np.load(tmp_path / "out.npz")
    assert list(out.keys()) == ["a", "b"]
    np.testing.assert_array_equal(out["b"], [5, 6])
    np.testing.assert_array_equal(out["a"], np.arange(3.0))
    with pytest.raises(InspectorError, match="Shape mismatch"):
        source.write(tmp_path / "bad.npz", {"b": np.ones(3, np.int8)})
    with pytest.raises(InspectorError, match="Dtype mismatch"):
        source.write(tmp_path / "bad.npz", {"b": np.ones(2, np.int16)})
    single = NpySource(_saved(tmp_path / "s.npy", np.arange(4, dtype=np.uint16)))
    single.write(tmp_path / "s2.npy", {"array": np.full(4, 9, np.uint16)})
    np.testing.assert_array_equal(np.load(tmp_path / "s2.npy"), np.full(4, 9, np.uint16))


def _saved(path, array):
    np.save(path, array)
    return path
