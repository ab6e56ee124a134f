"""Tracing TFLite models: one invoke, each operator's outputs in execution order with
statistics equal to the interpreter's own tensors, the op that first made NaN named;
int8 models trace their codes and dequantized values; signatures pick the subgraph."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tensor_inspector.backends.base import Cancelled, NodeKind
from tensor_inspector.backends.registry import open_path
from tensor_inspector.cli import main
from tensor_inspector.session.local import LocalSession
from tensor_inspector.session.trace import trace_source

W = np.array([[0.5, 1.0, 2.0], [1.0, 0.5, 0.25], [2.0, 0.25, 1.0]], np.float32)
INPUT = "serving_default_x:0"
# x @ W with W > 0: negative rows make log see negatives; positive ones keep it finite.
FEEDS = {
    True: np.array([[-1.0, -2.0, -0.5], [1.0, 2.0, 3.0]], np.float32),
    False: np.array([[1.0, 2.0, 0.5], [1.0, 2.0, 3.0]], np.float32),
}
CHAIN_IDS = ["project2", "shift", "lg", "scale", "Tanh", "PartitionedCall:0"]
PRODUCER = "lg"


def _convert(converter, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def chain_path(tmp_path_factory) -> Path:
    """out = tanh(2 * log(x @ W - 0.25)) + 1 from a tf.function, one TFLite op per step."""

    class Net(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32, name="x")])
        def serve(self, x):
            h = tf.matmul(x, tf.constant(W), name="project")
            logged = tf.math.log(tf.subtract(h, 0.25, name="shift"), name="lg")
            return {"out": tf.add(tf.tanh(tf.multiply(logged, 2.0, name="scale")), 1.0, name="bias")}

    net = Net()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([net.serve.get_concrete_function()], net)
    return _convert(converter, tmp_path_factory.mktemp("tflite_trace") / "chain.tflite")


@pytest.fixture(scope="module")
def int8_path(tmp_path_factory) -> Path:
    """A conv + dense Keras model with full integer quantization (int8 in and out)."""
    rng = np.random.default_rng(5)
    inputs = tf.keras.Input((8, 8, 2))
    x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = tf.keras.layers.Flatten()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(x))

    def representative():
        for _ in range(8):
            yield [rng.random((1, 8, 8, 2), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return _convert(converter, tmp_path_factory.mktemp("tflite_trace") / "int8.tflite")


def _interpreter(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(
            model_path=str(path),
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            experimental_preserve_all_tensors=True,
        )
    interpreter.allocate_tensors()
    return interpreter


def _interpreter_values(path: Path, source, feed: np.ndarray) -> dict[str, np.ndarray]:
    """node id -> the value a fresh interpreter holds for it after one invoke with ``feed``."""
    interpreter = _interpreter(path)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], feed)
    interpreter.invoke()
    values = {}
    for node in source.nodes.values():
        if node.metadata.get("subgraph") == 0 and "tensor_index" in node.metadata and node.dtype:
            values[node.id] = interpreter.get_tensor(node.metadata["tensor_index"])
    return values


def _assert_stats_equal(node, value: np.ndarray) -> None:
    value = value.astype(np.float64)
    finite = value[np.isfinite(value)]
    assert node.nan == int(np.isnan(value).sum()), node.id
    assert node.shape == value.shape and finite.size
    assert node.min == pytest.approx(finite.min(), rel=1e-6), node.id
    assert node.max == pytest.approx(finite.max(), rel=1e-6), node.id
    if finite.size == value.size:
        assert node.mean == pytest.approx(value.mean(), rel=1e-5, abs=1e-6), node.id


@pytest.mark.parametrize("nan", [True, False])
def test_chain_names_log_and_stats_equal_the_interpreter(chain_path, nan):
    session = LocalSession()
    try:
        info = session.open(chain_path)
        report = session.trace(info.handle, feeds={INPUT: FEEDS[nan]})
    finally:
        session.close_all()
    assert info.trace_entries == ["serving_default"] and report.entry == "serving_default"
    assert [n.id for n in report.nodes] == CHAIN_IDS  # operator order, ids as the tree lists them
    assert [n.op for n in report.nodes] == ["FULLY_CONNECTED", "SUB", "LOG", "MUL", "TANH", "ADD"]
    assert report.node("project2").inputs == ()  # the graph input and W are not traced values
    assert report.node("lg").inputs == ("shift",)
    assert report.first_nonfinite == (PRODUCER if nan else None)
    if nan:
        assert all(report.node(i).nan == 3 for i in CHAIN_IDS[2:])  # passed on, not produced again
    with open_path(chain_path) as source:
        expected = _interpreter_values(chain_path, source, FEEDS[nan])
    for node in report.nodes:
        _assert_stats_equal(node, expected[node.id])
        np.testing.assert_array_equal(report.arrays[node.id], expected[node.id])
    # and what the function computes, without TFLite
    with np.errstate(invalid="ignore"):
        logged = np.log(FEEDS[nan] @ W - 0.25)
    np.testing.assert_allclose(report.arrays["lg"], logged, rtol=1e-5)
    np.testing.assert_allclose(report.arrays["PartitionedCall:0"], np.tanh(2 * logged) + 1, rtol=1e-5)


def test_int8_model_traces_codes_then_dequantized_values(int8_path):
    rng = np.random.default_rng(6)
    with open_path(int8_path) as source:
        [spec] = source.feed_specs(source.trace_entries()[0])
        feed = rng.integers(-128, 127, size=(1, 8, 8, 2)).astype(np.int8)
        report = trace_source(source, feeds={spec.name: feed})
        expected = _interpreter_values(int8_path, source, feed)
        details = {d["index"]: d for d in _interpreter(int8_path).get_tensor_details()}
        raw = [n for n in report.nodes if not n.id.endswith("/dequantized")]
        quantized = [n for n in raw if "quantization" in source.node(n.id).metadata]
        assert [n.op for n in quantized] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
        assert all(n.dtype == "int8" for n in quantized) and report.first_nonfinite is None
        assert {n.op for n in raw} - {n.op for n in quantized}  # Flatten's int32 shape arithmetic
        for node in raw:
            _assert_stats_equal(node, expected[node.id])
        for node in quantized:
            view = report.nodes[report.nodes.index(node) + 1]  # right after its codes
            assert view.id == f"{node.id}/dequantized" and view.inputs == (node.id,)
            assert view.dtype == "float32" and view.op == node.op and view.id in source.nodes
            quant = details[source.node(node.id).metadata["tensor_index"]]["quantization_parameters"]
            scale, zero = quant["scales"][0], quant["zero_points"][0]
            _assert_stats_equal(view, (expected[node.id].astype(np.float64) - zero) * scale)
        assert len(report.nodes) == len(raw) + len(quantized)


def test_signatures_pick_the_subgraph_and_files_without_one_trace_main(tmp_path):
    class Two(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2], tf.float32, name="x")])
        def first(self, x):
            return {"y": tf.sqrt(x, name="root") + 1.0}

        @tf.function(input_signature=[tf.TensorSpec([2], tf.float32, name="a")])
        def second(self, a):
            return {"z": tf.math.log(a, name="lg") * 2.0}

    two = Two()
    functions = [two.first.get_concrete_function(), two.second.get_concrete_function()]
    path = _convert(tf.lite.TFLiteConverter.from_concrete_functions(functions, two), tmp_path / "two.tflite")
    with open_path(path) as source:
        assert source.trace_entries() == ["first", "second"]
        [spec] = source.feed_specs("second")
        report = trace_source(source, "second", {spec.name: np.array([-1.0, 4.0], np.float32)})
        assert report.first_nonfinite == "subgraph 1 (second)/lg"
        assert [n.op for n in report.nodes] == ["LOG", "MUL"]
        np.testing.assert_allclose(report.arrays[report.nodes[-1].id], [np.nan, 2 * np.log(4.0)])
        assert trace_source(source, feeds={"subgraph 0 (first)/first_x:0": np.ones(2, np.float32)}).nodes

    graph = tf.Graph()  # TF1's converter writes no signature: the main subgraph is the entry
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        y = tf.sqrt(x - 1.0, name="root") * 3.0
        with tf.compat.v1.Session(graph=graph) as sess:
            converter = tf.compat.v1.lite.TFLiteConverter.from_session(sess, [x], [y])
            path = _convert(converter, tmp_path / "unsigned.tflite")
    with open_path(path) as source:
        assert source.trace_entries() == ["main"] and source.node("main").kind is NodeKind.SIGNATURE
        report = trace_source(source, feeds={"x": np.full((2, 3), 0.5, np.float32)})
        assert [n.id for n in report.nodes] == ["sub", "root", "mul"]
        assert report.first_nonfinite == "root" and report.node("root").inputs == ("sub",)


def test_cancel_stops_between_operators(chain_path):
    cancel = threading.Event()
    seen: list[str] = []

    def on_node(node_id, op, inputs, array):
        seen.append(node_id)
        if len(seen) == 2:
            cancel.set()

    with open_path(chain_path) as source, pytest.raises(Cancelled):
        source.trace("serving_default", {INPUT: FEEDS[True]}, on_node, cancel)
    assert seen == CHAIN_IDS[:2]


def test_keeping_nothing_still_gives_statistics(chain_path):
    with open_path(chain_path) as source:
        kept = trace_source(source, feeds={INPUT: FEEDS[True]})
        none = trace_source(source, feeds={INPUT: FEEDS[True]}, keep_bytes=0)
    assert none.arrays == {} and not any(n.kept for n in none.nodes) and none.kept_bytes == 0
    assert [(n.id, n.min, n.max, n.mean, n.nan) for n in none.nodes] == [
        (n.id, n.min, n.max, n.mean, n.nan) for n in kept.nodes
    ]
    assert none.first_nonfinite == PRODUCER


def test_cli_json_names_the_producer(chain_path, capsys):
    feed = f"{INPUT}=" + json.dumps(FEEDS[True].tolist())
    code = main(["trace", str(chain_path), "--feed", feed, "--json"])
    out, err = capsys.readouterr()
    assert code == 3, err
    document = json.loads(out)
    assert document["first_nonfinite"] == {"id": PRODUCER, "inputs": ["shift"]}
    assert [n["id"] for n in document["nodes"]] == CHAIN_IDS
    assert main(["ls", str(chain_path), "--json"]) == 0
    listed = [row["id"] for row in json.loads(capsys.readouterr()[0])]
    assert CHAIN_IDS == [i for i in listed if i in CHAIN_IDS]


def test_trace_entries_need_no_tensorflow(chain_path):
    """Every open asks for the entries: the flatbuffer only, TensorFlow not imported."""
    code = (
        "import sys; from tensor_inspector.backends.registry import open_path\n"
        f"print(open_path({str(chain_path)!r}).trace_entries(), 'tensorflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["['serving_default']", "False"], done.stderr


def test_control_flow_subgraphs_are_not_traced_their_operators_are(tmp_path):
    """tf.cond and tf.while_loop become IF and WHILE calling subgraphs of their own."""

    class Flow(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([3], tf.float32, name="x")])
        def serve(self, x):
            y = tf.cond(tf.reduce_sum(x) > 0, lambda: tf.sqrt(x) * 2.0, lambda: -x)
            _, z = tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 1.5), [tf.constant(0), y])
            return {"out": tf.math.log(z + 1.0)}

    flow = Flow()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([flow.serve.get_concrete_function()], flow)
    path = _convert(converter, tmp_path / "flow.tflite")
    with open_path(path) as source:
        [spec] = source.feed_specs(source.trace_entries()[0])
        for x, producer in [([4.0, -1.0, 9.0], "IF"), ([4.0, 1.0, 9.0], None), ([-4.0, -1.0, -9.0], None)]:
            report = trace_source(source, feeds={spec.name: np.array(x, np.float32)})
            assert all(n.id.startswith("subgraph 0 ") for n in report.nodes)
            assert {"IF", "WHILE", "LOG"} <= {n.op for n in report.nodes}
            found = report.first_nonfinite
            assert (found and report.node(found).op) == producer
            expected = np.log(np.where(np.sum(x) > 0, 2 * np.sqrt(np.abs(x)), -np.array(x)) * 1.5**3 + 1)
            if producer is None:
                np.testing.assert_allclose(report.arrays[report.nodes[-1].id], expected, rtol=1e-5)
