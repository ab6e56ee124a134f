"""Damaged and hostile TensorFlow files: clear sentences, no crash, nothing executed without trust."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import tf_fixtures

from tensor_inspector.backends.base import CorruptFile, InspectorError, TrustRequired
from tensor_inspector.backends.tensorflow.backend import TensorFlowBackend
from tensor_inspector.backends.tensorflow.index import read_table

BACKEND = TensorFlowBackend()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    canary = root / "canary.txt"
    return {
        "ckpt": Path(tf_fixtures.tf1_checkpoint(root)),
        "canary_model": tf_fixtures.tf2_saved_model(root, write_canary=canary),
        "canary": canary,
        "root": root,
    }


def _copy_checkpoint(prefix: Path, dest: Path) -> Path:
    dest.mkdir()
    for path in prefix.parent.glob(prefix.name + ".*"):
        shutil.copy(path, dest / path.name)
    return dest / prefix.name


def test_garbage_saved_model_pb(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\x00 this is not a protobuf \x13\x37" * 10)
    assert BACKEND.detect(tmp_path) > 0.9
    with pytest.raises(CorruptFile, match="not a valid SavedModel"):
        BACKEND.open(tmp_path)


def test_truncated_index(files, tmp_path):
    prefix = _copy_checkpoint(files["ckpt"], tmp_path / "t")
    index = Path(str(prefix) + ".index")
    index.write_bytes(index.read_bytes()[:-30])
    assert BACKEND.detect(prefix) == 0.0  # footer magic gone
    with pytest.raises(CorruptFile, match="truncated"):
        BACKEND.open(prefix)


def test_missing_data_shard(files, tmp_path):
    prefix = _copy_checkpoint(files["ckpt"], tmp_path / "m")
    Path(str(prefix) + ".data-00000-of-00001").unlink()
    with pytest.raises(CorruptFile, match="data shard .* is missing"):
        BACKEND.open(prefix)


def test_truncated_data_shard(files, tmp_path):
    prefix = _copy_checkpoint(files["ckpt"], tmp_path / "d")
    data = Path(str(prefix) + ".data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:8])
    with pytest.raises(CorruptFile, match="truncated"):
        BACKEND.open(prefix)


def test_crafted_entry_with_negative_dim_is_refused_before_tensorflow(files, tmp_path):
    """TF's reader would abort the process on this entry; the vetting refuses it first."""
    prefix = _copy_checkpoint(files["ckpt"], tmp_path / "n")
    index = Path(str(prefix) + ".index")
    raw = bytearray(index.read_bytes())
    # The entry starts with its dtype (field 1, varint): set it to 99, no DataType at all.
    key, value = next((k, v) for k, v in read_table(index) if k == b"dense/bias")
    at = bytes(raw).find(value)
    assert value[0] == 0x08 and at > 0
    raw[at + 1] = 99
    index.write_bytes(bytes(raw))
    with pytest.raises(CorruptFile, match="unknown dtype"):
        BACKEND.open(prefix)


def test_renamed_index_and_unknown_prefix(files, tmp_path):
    with pytest.raises(InspectorError, match="not a TensorFlow checkpoint"):
        BACKEND.open(tmp_path / "nothing")
    odd = tmp_path / "weights.bin"
    shutil.copy(str(files["ckpt"]) + ".index", odd)
    assert 0 < BACKEND.detect(odd) < 0.9
    with pytest.raises(InspectorError, match="<prefix>.index"):
        BACKEND.open(odd)


def test_saved_model_that_writes_a_file_needs_trust(files):
    canary = files["canary"]
    assert not canary.exists()
    with BACKEND.open(files["canary_model"]) as source:
        assert len(source.nodes) > 10
        source.read("variables/d1/w")
        assert any("WriteFile" in op for op in source.risky)
        # constants are read from the graph without running anything
        source.evaluate("serving_default/unknown_3:0", {})
        with pytest.raises(TrustRequired, match="trusted"):
            source.evaluate("scaled/Identity_1:0", {"x": np.ones((1, 3), np.float32)})
        with pytest.raises(TrustRequired):
            source.evaluate("serving_default/Identity:0", {})
    assert not canary.exists()
    with BACKEND.open(files["canary_model"], trust=True) as trusted:
        trusted.evaluate("scaled/Identity_1:0", {"x": np.ones((1, 3), np.float32), "s": np.float32(2)})
    assert canary.read_text() == "2.000000"


def test_feed_errors_are_sentences(files):
    with BACKEND.open(files["canary_model"], trust=True) as source:
        with pytest.raises(InspectorError, match="shape"):
            source.evaluate("serving_default/Identity:0", {"x": np.ones((2, 5), np.float32)})
        with pytest.raises(InspectorError, match="must be float32"):
            source.evaluate("serving_default/Identity:0", {"x": np.ones((2, 3), np.complex64)})


def test_struct_sanity_of_magic():
    from tensor_inspector.backends.tensorflow.index import TABLE_MAGIC

    assert struct.pack("<Q", TABLE_MAGIC).hex() == "57fb808b247547db"


def test_entry_whose_shape_disagrees_with_its_bytes_is_refused(files, tmp_path):
    """A shape larger than the stored bytes would make the reader allocate for the shape."""
    prefix = _copy_checkpoint(files["ckpt"], tmp_path / "s")
    index = Path(str(prefix) + ".index")
    raw = bytearray(index.read_bytes())
    key, value = next((k, v) for k, v in read_table(index) if k == b"dense/bias")
    dim = value.find(bytes([0x12, 0x02, 0x08]))  # shape { dim { size: <one-byte varint> } }
    assert dim > 0
    raw[bytes(raw).find(value) + dim + 3] = 0x7F  # size 127, same length, data unchanged
    index.write_bytes(bytes(raw))
    with pytest.raises(CorruptFile, match=r"declares shape \[127\] but \d+ bytes"):
        BACKEND.open(prefix)
