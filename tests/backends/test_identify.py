"""Files Tensor Inspector does not read say what they are, judged by content alone."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest

from tensor_inspector.backends.base import UnsupportedFormat
from tensor_inspector.backends.identify import identify
from tensor_inspector.backends.registry import detect, open_path


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def coreml_spec() -> bytes:
    """A Core ML ``Model``: specificationVersion 4, a description with one input, a neuralNetwork (500)."""
    feature = _field(1, b"image")  # FeatureDescription.name
    description = _field(1, feature)  # ModelDescription.input
    layer = _field(1, b"conv")  # NeuralNetworkLayer.name
    return b"\x08\x04" + _field(2, description) + _field(500, _field(1, layer))


def test_coreml_model_is_named(tmp_path):
    path = tmp_path / "classifier.mlmodel"
    path.write_bytes(coreml_spec())
    assert not detect(path)  # not mistaken for an ONNX protobuf
    with pytest.raises(UnsupportedFormat) as err:
        open_path(path)
    assert str(err.value) == "classifier.mlmodel is a Core ML model, which Tensor Inspector does not read."


def test_coreml_package_is_named(tmp_path):
    package = tmp_path / "nmp.mlpackage"
    data = package / "Data" / "com.apple.CoreML"
    data.mkdir(parents=True)
    (data / "model.mlmodel").write_bytes(coreml_spec())
    (data / "weights").mkdir()
    (data / "weights" / "weight.bin").write_bytes(b"\0" * 64)
    manifest = {
        "fileFormatVersion": "1.0.0",
        "itemInfoEntries": {
            "A1": {
                "author": "com.apple.CoreML",
                "name": "model.mlmodel",
                "path": "com.apple.CoreML/model.mlmodel",
            }
        },
        "rootModelIdentifier": "A1",
    }
    (package / "Manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UnsupportedFormat) as err:
        open_path(package)
    assert str(err.value) == "nmp.mlpackage is a Core ML package, which Tensor Inspector does not read."
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "Manifest.json").write_text("{}")
    assert identify(plain) is None  # a folder with some other manifest is not a Core ML package


def joblib_by_hand(array: np.ndarray) -> bytes:
    """What joblib.dump writes for one array: a NumpyArrayWrapper pickle, then the raw bytes."""
    head = (
        b"\x80\x04\x8c\x13joblib.numpy_pickle\x94\x8c\x11NumpyArrayWrapper\x94\x93\x94)\x81\x94}\x94("
        + b"\x8c\x05shape\x94"
        + pickle.dumps(array.shape, protocol=4)[2:-1]
        + b"\x94u"
        + b"b."
    )
    return head + b"\0" * 15 + array.tobytes()


def test_joblib_file_is_named(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(joblib_by_hand(np.arange(6.0)))
    with pytest.raises(UnsupportedFormat, match=r"^model.joblib is a joblib file \(a pickle that joblib's"):
        open_path(path)
    renamed = tmp_path / "model.pkl"  # by content, whatever its name
    renamed.write_bytes(path.read_bytes())
    with pytest.raises(UnsupportedFormat, match="model.pkl is a joblib file"):
        open_path(renamed)


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3)])
def test_files_written_by_joblib_are_named(tmp_path, compress):
    import joblib

    path = tmp_path / "pipeline.bin"
    joblib.dump({"coef": np.arange(10.0), "names": ["a", "b"]}, path, compress=compress)
    with pytest.raises(UnsupportedFormat, match="pipeline.bin is a joblib file"):
        open_path(path)


def test_plain_pickles_are_still_read(tmp_path):
    path = tmp_path / "arrays.pkl"
    path.write_bytes(pickle.dumps({"a": np.arange(3)}, protocol=4))
    assert identify(path) is None
    with open_path(path) as source:
        np.testing.assert_array_equal(source.read("a"), np.arange(3))


def test_unknown_zip_lists_what_is_inside(tmp_path):
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.txt", "hello")
        zf.writestr("b.bin", b"\0\1")
        zf.writestr("sub/c.json", "{}")
    with pytest.raises(UnsupportedFormat) as err:
        open_path(path)
    assert (
        str(err.value)
        == "x.zip is a zip archive (3 files: a.txt, b.bin, sub/c.json) that Tensor Inspector does not read."
    )
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for k in range(8):
            zf.writestr(f"f{k}.txt", "x")
    with pytest.raises(
        UnsupportedFormat,
        match=r"many.zip is a zip archive \(8 files: f0.txt, f1.txt, f2.txt, f3.txt, f4.txt, ...\)",
    ):
        open_path(many)


def test_hdf5_that_is_not_a_keras_model_says_so(tmp_path):
    import h5py

    with h5py.File(tmp_path / "measurements.h5", "w") as fh:
        fh["x"] = np.arange(3)
    with pytest.raises(UnsupportedFormat, match="measurements.h5 is an HDF5 file but not a Keras model"):
        open_path(tmp_path / "measurements.h5")


def test_unknown_bytes_still_list_the_supported_formats(tmp_path):
    path = tmp_path / "notes.bin"
    path.write_bytes(b"hello world, not a tensor")
    assert identify(path) is None
    with pytest.raises(UnsupportedFormat, match="not a file any backend recognises. Supported:.*ONNX"):
        open_path(path)
