"""TensorFlow checkpoints: object graph tree, TF1 scopes, shards, dtypes, threads, writing."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import tf_fixtures

from tensor_inspector.backends.base import NodeKind
from tensor_inspector.backends.registry import open_path
from tensor_inspector.backends.tensorflow.backend import TensorFlowBackend

BACKEND = TensorFlowBackend()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpts")
    return {
        "keras": Path(tf_fixtures.keras_checkpoint(root)),
        "tf1": Path(tf_fixtures.tf1_checkpoint(root)),
        "sharded": Path(tf_fixtures.sharded_checkpoint(root)),
        "dtypes": Path(tf_fixtures.dtype_checkpoint(root)),
        "root": root,
    }


def _reader(prefix: Path):
    import tensorflow as tf

    return tf.train.load_checkpoint(str(prefix))


def test_detect_prefix_index_shard_and_state_directory(files):
    prefix = files["keras"]
    assert BACKEND.detect(prefix) > 0.9
    assert BACKEND.detect(Path(str(prefix) + ".index")) > 0.9
    assert BACKEND.detect(Path(str(prefix) + ".data-00000-of-00001")) > 0.8
    assert BACKEND.detect(files["root"]) > 0.8  # holds the `checkpoint` state file
    assert BACKEND.detect(files["root"] / "checkpoint") > 0.8
    assert BACKEND.detect(Path(str(prefix) + ".nothing")) == 0.0


def test_object_graph_tree_with_slots_under_their_variable(files):
    with BACKEND.open(files["keras"]) as source:
        kernels = [
            n
            for n in source.nodes.values()
            if n.kind is NodeKind.TENSOR and n.id.startswith("model/") and n.name == "_kernel"
        ]
        assert len(kernels) == 2
        kernel = kernels[0]
        assert kernel.metadata["checkpoint_key"].startswith("optimizer/_trainable_variables/")
        assert kernel.metadata["full_name"] == "sequential/d1/kernel"
        slots = {n.name: n for n in source.children(kernel.id)}
        assert set(slots) == {"momentum", "velocity"}
        assert slots["momentum"].metadata["slot_of"] == kernel.id
        reader = _reader(files["keras"])
        for node in [kernel, *slots.values()]:
            expected = reader.get_tensor(node.metadata["checkpoint_key"])
            np.testing.assert_array_equal(source.read(node.id), expected)
        assert source.read(kernel.id, (slice(0, 2), 1)).shape == (2,)


def test_tf1_name_based_scopes_and_opened_through_registry(files):
    for path in (files["tf1"], Path(str(files["tf1"]) + ".index"), files["root"] / "checkpoint"):
        with open_path(path) as source:
            assert source.node("dense/kernel").kind is NodeKind.TENSOR
    with open_path(files["tf1"]) as source:
        assert [n.name for n in source.children("dense/kernel")] == ["Adam", "Adam_1"]
        assert source.node("dense").kind is NodeKind.GROUP
        reader = _reader(files["tf1"])
        np.testing.assert_array_equal(source.read("dense/kernel"), reader.get_tensor("dense/kernel"))
        assert source.node("dense/kernel").metadata["checkpoint_key"] == "dense/kernel"


def test_multi_shard_checkpoint_reads_every_variable(files):
    assert len(list(files["root"].glob("sharded.data-*"))) >= 2
    with BACKEND.open(files["sharded"]) as source:
        for i in range(4):
            np.testing.assert_array_equal(source.read(f"v{i}"), np.full((3,), i, np.float32))


def test_every_dtype_keeps_its_bits(files):
    with BACKEND.open(files["dtypes"]) as source:
        for name, expected in tf_fixtures.dtype_values().items():
            node = source.node(name)
            value = source.read(name)
            assert node.dtype == expected.dtype.name == value.dtype.name
            assert value.tobytes() == expected.tobytes(), name
        text = source.read("text")
        assert text.dtype.kind == "U" and list(text) == ["héllo", "world"]
        assert source.node("text").framework_dtype == "string"


def test_read_from_worker_thread(files):
    with BACKEND.open(files["keras"]) as source:
        node_id = next(n.id for n in source.nodes.values() if n.kind is NodeKind.TENSOR)
        results = []
        thread = threading.Thread(target=lambda: results.append(source.read(node_id)))
        thread.start()
        thread.join()
        np.testing.assert_array_equal(results[0], source.read(node_id))


def test_write_round_trip_restores_into_fresh_checkpoint(files, tmp_path):
    import keras
    import tensorflow as tf

    with BACKEND.open(files["keras"]) as source:
        kernel = next(n for n in source.nodes.values() if n.name == "_kernel")
        new_value = np.arange(12, dtype=np.float32).reshape(kernel.shape)
        before = {n.id: source.read(n.id) for n in source.value_nodes()}
        out = tmp_path / "edited" / "ckpt"
        source.write(out, {kernel.id: new_value})
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, name="d1"), keras.layers.Dense(2, name="d2")]
    )
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(str(out)).expect_partial()
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), new_value)
    with BACKEND.open(out) as edited:
        assert set(edited.nodes) == set(before) | {
            n for n in edited.nodes if edited.nodes[n].kind is NodeKind.GROUP
        }
        for node_id, value in before.items():
            expected = new_value if node_id == kernel.id else value
            assert edited.read(node_id).tobytes() == expected.tobytes()
            assert edited.node(node_id).dtype == value.dtype.name


def test_write_keeps_dtypes_and_shards(files, tmp_path):
    with BACKEND.open(files["dtypes"]) as source:
        new_bf16 = np.array([2.0, -1.5, 0.25], source.read("bf16").dtype)
        source.write(tmp_path / "d", {"bf16": new_bf16, "u64": np.array([7], np.uint64)})
    reader = _reader(tmp_path / "d")
    assert reader.get_tensor("bf16/.ATTRIBUTES/VARIABLE_VALUE").tobytes() == new_bf16.tobytes()
    assert reader.get_tensor("u64/.ATTRIBUTES/VARIABLE_VALUE").tolist() == [7]
    assert list(reader.get_tensor("text/.ATTRIBUTES/VARIABLE_VALUE")) == ["héllo".encode(), b"world"]
    with BACKEND.open(files["sharded"]) as source:
        source.write(tmp_path / "s", {"v1": np.array([9, 9, 9], np.float32)})
    assert _reader(tmp_path / "s").get_tensor("v1/.ATTRIBUTES/VARIABLE_VALUE").tolist() == [9, 9, 9]


def test_write_rejects_wrong_dtype_or_shape(files, tmp_path):
    from tensor_inspector.backends.base import InspectorError

    with BACKEND.open(files["tf1"]) as source:
        with pytest.raises(InspectorError, match="Dtype mismatch"):
            source.write(tmp_path / "x", {"dense/bias": np.zeros(2, np.float64)})
        with pytest.raises(InspectorError, match="Shape mismatch"):
            source.write(tmp_path / "x", {"dense/bias": np.zeros(3, np.float32)})
    assert not list(tmp_path.iterdir())
