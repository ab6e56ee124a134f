"""SavedModels: signatures, static op listing, evaluating any node, variables, writing."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import tf_fixtures

from tensor_inspector.backends.base import NodeKind, NotEvaluable
from tensor_inspector.backends.registry import open_path
from tensor_inspector.backends.tensorflow.backend import TensorFlowBackend

BACKEND = TensorFlowBackend()
X = np.arange(6, dtype=np.float32).reshape(2, 3) / 4 - 0.5


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("saved")
    return {"tf2": tf_fixtures.tf2_saved_model(root), "tf1": tf_fixtures.tf1_saved_model(root)}


@pytest.fixture(scope="module")
def tf2(models):
    with BACKEND.open(models["tf2"]) as source:
        yield source


@pytest.fixture(scope="module")
def loaded(models):
    import tensorflow as tf

    return tf.saved_model.load(str(models["tf2"]))


def test_detect_and_list_signatures(models, tf2):
    assert BACKEND.detect(models["tf2"]) > 0.9
    assert BACKEND.detect(models["tf2"] / "saved_model.pb") > 0.9
    serve = tf2.node("serving_default")
    assert serve.kind is NodeKind.SIGNATURE and serve.metadata["mode"] == "tf2"
    assert serve.metadata["inputs"]["x"]["shape"] == [None, 3]
    assert serve.metadata["outputs"]["y"]["dtype"] == "float32"
    assert set(tf2.node("scaled").metadata["inputs"]) == {"s", "x"}
    assert tf2.node("variables/d1/w").kind is NodeKind.TENSOR


def test_signature_output_equals_calling_the_signature(tf2, loaded):
    import tensorflow as tf

    expected = loaded.signatures["serving_default"](x=tf.constant(X))["y"].numpy()
    output_node = tf2.node("serving_default").metadata["outputs"]["y"]["node"]
    np.testing.assert_array_equal(tf2.evaluate(output_node, {"x": X}), expected)
    scaled = loaded.signatures["scaled"](x=tf.constant(X), s=tf.constant(3.0))
    outputs = tf2.node("scaled").metadata["outputs"]
    np.testing.assert_array_equal(
        tf2.evaluate(outputs["z"]["node"], {"x": X, "s": np.float32(3)}), scaled["z"].numpy()
    )
    label = tf2.evaluate(outputs["label"]["node"], {"s": np.float32(3)})
    assert label.dtype.kind == "U" and label.item() == scaled["label"].numpy().decode()


def test_intermediate_nodes_equal_direct_computation(tf2, loaded):
    w1, b1 = tf2.read("variables/d1/w"), tf2.read("variables/d1/b")
    prefix = "serving_default/StatefulPartitionedCall/StatefulPartitionedCall/d1/"
    np.testing.assert_allclose(tf2.evaluate(prefix + "MatMul:0", {"x": X}), X @ w1, rtol=1e-6)
    relu = np.maximum(X @ w1 + b1, 0)
    np.testing.assert_allclose(tf2.evaluate(prefix + "Relu:0", {"x": X}), relu, rtol=1e-6)
    np.testing.assert_array_equal(tf2.read("variables/d1/w"), loaded.d1.w.numpy())


def test_variable_read_equals_checkpoint_reader(models, tf2):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(models["tf2"] / "variables" / "variables"))
    node = tf2.node("variables/d2/b")
    np.testing.assert_array_equal(tf2.read(node.id), reader.get_tensor(node.metadata["checkpoint_key"]))


def test_feeds_constants_and_defaults(tf2):
    specs = tf2.feed_specs("scaled/StatefulPartitionedCall/mul:0")
    assert {(s.name, s.dtype, s.shape) for s in specs} == {("s", "float32", ()), ("x", "float32", (None, 3))}
    assert [s.name for s in tf2.feed_specs("scaled/StatefulPartitionedCall/AsString:0")] == ["s"]
    assert tf2.feed_specs("serving_default/unknown_3:0") == []
    np.testing.assert_array_equal(tf2.evaluate("serving_default/unknown_3:0", {}), [2.0, -1.0])
    defaults = tf2.default_feeds("serving_default/Identity:0")
    assert defaults["x"].shape == (1, 3)
    assert tf2.evaluate("serving_default/Identity:0", {}).shape == (1, 2)  # defaults fed


def test_evaluate_in_worker_thread(tf2):
    results = []
    node_id = "serving_default/StatefulPartitionedCall/mul:0"
    thread = threading.Thread(target=lambda: results.append(tf2.evaluate(node_id, {"x": X})))
    thread.start()
    thread.join()
    np.testing.assert_array_equal(results[0], tf2.evaluate(node_id, {"x": X}))


def test_tf1_saved_model_evaluates_any_node(models):
    import tensorflow as tf

    x = np.array([1.0, 2.0, -4.0], np.float32)
    with open_path(models["tf1"]) as source:
        assert source.node("serving_default").metadata["mode"] == "tf1"
        np.testing.assert_array_equal(source.evaluate("serving_default/y:0", {"x": x}), 3 * x + 2)
        np.testing.assert_array_equal(source.evaluate("serving_default/ax:0", {"x": x}), 3 * x)
        np.testing.assert_array_equal(source.evaluate("serving_default/b/read:0", {}), np.float32(2))
        assert source.read("variables/a") == np.float32(3)
        handle = source.node("serving_default/a:0")
        assert handle.framework_dtype == "resource" and handle.dtype is None
        with pytest.raises(NotEvaluable, match="resource"):
            source.evaluate(handle.id, {})
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as sess:
        tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(models["tf1"]))
        np.testing.assert_array_equal(sess.run("y:0", {"x:0": x}), 3 * x + 2)


def test_write_saved_model_serves_new_weights(models, tmp_path):
    import tensorflow as tf

    out = tmp_path / "edited"
    with BACKEND.open(models["tf2"]) as source:
        before = {n.id: source.read(n.id) for n in source.value_nodes() if n.kind is NodeKind.TENSOR}
        new_b = np.full((2,), 5.0, np.float32)
        source.write(out, {"variables/d2/b": new_b})
    reloaded = tf.saved_model.load(str(out))
    np.testing.assert_array_equal(reloaded.d2.b.numpy(), new_b)
    original = tf.saved_model.load(str(models["tf2"]))
    y_new = reloaded.signatures["serving_default"](x=tf.constant(X))["y"].numpy()
    y_old = original.signatures["serving_default"](x=tf.constant(X))["y"].numpy()
    assert not np.array_equal(y_new, y_old)
    with BACKEND.open(out) as edited:
        for node_id, value in before.items():
            expected = new_b if node_id == "variables/d2/b" else value
            assert edited.read(node_id).tobytes() == expected.tobytes()
    assert (out / "saved_model.pb").read_bytes() == (models["tf2"] / "saved_model.pb").read_bytes()


def test_write_tf1_saved_model(models, tmp_path):
    import tensorflow as tf

    with BACKEND.open(models["tf1"]) as source:
        source.write(tmp_path / "tf1", {"variables/a": np.float32(10.0) * np.ones((), np.float32)})
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as sess:
        tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(tmp_path / "tf1"))
        assert sess.run("y:0", {"x:0": np.array([1.0], np.float32)}).tolist() == [12.0]
