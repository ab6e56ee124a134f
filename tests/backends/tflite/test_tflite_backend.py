"""TFLite models from TFLiteConverter with full integer quantization: listing, constants,
intermediate tensors against the interpreter, dequantized views, writing constants back."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tensor_inspector.backends.base import InspectorError, NodeKind
from tensor_inspector.backends.registry import detect, open_path

RNG = np.random.default_rng(3)


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


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """A small conv + dense Keras model, converted with a representative dataset to int8."""
    inputs = tf.keras.Input((8, 8, 2))
    x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = tf.keras.layers.Flatten()(x)
    outputs = tf.keras.layers.Dense(3)(x)
    model = tf.keras.Model(inputs, outputs)

    def representative():
        for _ in range(8):
            yield [RNG.random((1, 8, 8, 2), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("tflite") / "small.tflite"
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def source(model_path):
    with open_path(model_path) as opened:
        yield opened


def _by_index(source) -> dict[int, str]:
    return {
        n.metadata["tensor_index"]: n.id
        for n in source.nodes.values()
        if "tensor_index" in n.metadata and n.metadata.get("subgraph") == 0
    }


def test_detected_by_identifier_and_lists_every_tensor(model_path, source, tmp_path):
    assert detect(model_path)[0][1].name == "tflite"
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(model_path.read_bytes())
    assert detect(renamed)[0][1].name == "tflite"
    # the interpreter adds scratch tensors of its own after the model's
    count = len(source.model.subgraphs[0].tensors)
    details = [d for d in _interpreter(model_path).get_tensor_details() if d["index"] < count]
    ids = _by_index(source)
    assert sorted(ids) == sorted(d["index"] for d in details)
    for d in details:
        node = source.node(ids[d["index"]])
        assert node.dtype == np.dtype(d["dtype"]).name
        assert list(node.shape) == list(d["shape"])
        params = d["quantization_parameters"]
        if params["scales"].size:
            q = node.metadata["quantization"]
            scales = np.atleast_1d(q["scale"])
            np.testing.assert_array_equal(scales, params["scales"][: scales.size].astype(np.float64))
            assert q.get("axis", 0) == params["quantized_dimension"]


def test_signature_entry_with_feed_specs(source):
    signature = source.node("serving_default")
    assert signature.kind is NodeKind.SIGNATURE
    (spec,) = source.feed_specs("serving_default")
    assert spec.dtype == "int8" and spec.shape == (None, 8, 8, 2)
    assert signature.metadata["inputs"] == {next(iter(signature.metadata["inputs"])): spec.name}
    output = next(iter(signature.metadata["outputs"].values()))
    assert source.node(output).kind is NodeKind.COMPUTED


def test_constant_buffers_equal_the_interpreter(model_path, source):
    interpreter = _interpreter(model_path)
    constants = [
        n for n in source.nodes.values() if n.kind is NodeKind.TENSOR and "tensor_index" in n.metadata
    ]
    assert len(constants) >= 3
    assert any(n.dtype == "int8" and len(n.shape) == 4 for n in constants)  # the conv kernel
    for node in constants:
        expected = interpreter.get_tensor(node.metadata["tensor_index"])
        got = source.read(node.id)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_intermediate_tensors_equal_the_interpreter(model_path, source):
    (spec,) = source.feed_specs()
    x = RNG.integers(-128, 128, (1, 8, 8, 2)).astype(np.int8)
    interpreter = _interpreter(model_path)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    computed = [
        n for n in source.nodes.values() if n.kind is NodeKind.COMPUTED and "tensor_index" in n.metadata
    ]
    assert len(computed) >= 4
    for node in computed:
        got = source.evaluate(node.id, {spec.name: x})
        np.testing.assert_array_equal(
            got, interpreter.get_tensor(node.metadata["tensor_index"]), err_msg=node.id
        )
    # the same run by signature input name; the default interpreter (with XNNPACK) agrees on the output
    output = next(iter(source.node("serving_default").metadata["outputs"].values()))
    plain = tf.lite.Interpreter(model_path=str(model_path))
    runner = plain.get_signature_runner("serving_default")
    key = next(iter(source.node("serving_default").metadata["inputs"]))
    expected = next(iter(runner(**{key: x}).values()))
    np.testing.assert_array_equal(source.evaluate(output, {key: x}), expected)


def test_dequantized_views_per_tensor_and_per_axis(source):
    seen = set()
    for node in list(source.nodes.values()):
        q = node.metadata.get("quantization")
        if q is None or node.metadata.get("view") != "raw" or node.kind is not NodeKind.TENSOR:
            continue
        raw = source.read(node.id).astype(np.float64)
        view_id = node.metadata["views"]["dequantized"]
        view = source.node(view_id)
        assert view.parent == node.id and view.dtype == "float32" and view.metadata["view"] == "dequantized"
        scale = np.asarray(q["scale"], np.float64)
        zero = np.asarray(q["zero_point"], np.float64)
        if "axis" in q:
            seen.add("axis")
            shape = [1] * raw.ndim
            shape[q["axis"]] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        else:
            seen.add("tensor")
        expected = (raw - zero) * scale
        got = source.read(view_id)
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        if raw.ndim >= 2:  # a slice reads only that part and matches the whole
            np.testing.assert_array_equal(source.read(view_id, (slice(1, 3), 0)), got[1:3, 0])
    assert "axis" in seen
    # activations: per-tensor scale and zero point applied to the evaluated codes
    output = next(iter(source.node("serving_default").metadata["outputs"].values()))
    q = source.node(output).metadata["quantization"]
    x = np.zeros((1, 8, 8, 2), np.int8)
    raw = source.evaluate(output, {}).astype(np.float64)
    got = source.evaluate(source.node(output).metadata["views"]["dequantized"], {})
    np.testing.assert_allclose(got, (raw - q["zero_point"]) * q["scale"], rtol=1e-6)
    assert x.dtype == np.int8


def test_write_an_edited_constant_and_reopen(model_path, source, tmp_path):
    kernel = next(
        n
        for n in source.nodes.values()
        if n.kind is NodeKind.TENSOR and n.dtype == "int8" and len(n.shape) == 4
    )
    edited = np.array(source.read(kernel.id))
    edited.flat[0] = 77 if edited.flat[0] != 77 else -77
    target = tmp_path / "edited.tflite"
    source.write(target, {kernel.id: edited})
    with pytest.raises(InspectorError, match="computed from"):
        source.write(
            tmp_path / "other.tflite",
            {kernel.metadata["views"]["dequantized"]: np.zeros(kernel.shape, np.float32)},
        )
    with open_path(target) as reopened:
        np.testing.assert_array_equal(reopened.read(kernel.id), edited)
        for node in source.nodes.values():
            if (
                node.kind is NodeKind.TENSOR
                and node.id != kernel.id
                and node.metadata.get("view") != "dequantized"
            ):
                np.testing.assert_array_equal(reopened.read(node.id), source.read(node.id))
    interpreter = _interpreter(target)  # the interpreter sees the edit too
    np.testing.assert_array_equal(interpreter.get_tensor(kernel.metadata["tensor_index"]), edited)


def test_damaged_file_is_one_sentence(model_path, tmp_path):
    data = bytearray(model_path.read_bytes())
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(InspectorError):
        open_path(broken)
