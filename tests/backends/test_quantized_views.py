"""Quantized tensors everywhere show a raw and a dequantized view (metadata "views"):
float8 safetensors with their scale tensors, torch quantized tensors, export of the
dequantized node, and reads of GGUF and TFLite files through the sandboxed reader process."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from tensor_inspector.backends.base import InspectorError, NodeKind
from tensor_inspector.backends.registry import open_path
from tensor_inspector.core.dtypes import numpy_dtype

RNG = np.random.default_rng(11)
E4M3 = numpy_dtype("float8_e4m3fn")
E4M3_STEP = 2.0**-3  # 3 mantissa bits: a rounded value is within half a step, relatively


def _blockwise(weight: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """DeepSeek-V3 style: one float32 scale per block x block tile, codes = weight / scale."""
    rows, cols = math.ceil(weight.shape[0] / block), math.ceil(weight.shape[1] / block)
    scale = np.zeros((rows, cols), np.float32)
    codes = np.zeros(weight.shape, E4M3)
    for i in range(rows):
        for j in range(cols):
            tile = weight[i * block : (i + 1) * block, j * block : (j + 1) * block]
            scale[i, j] = np.abs(tile).max() / 448.0
            codes[i * block : (i + 1) * block, j * block : (j + 1) * block] = (tile / scale[i, j]).astype(
                E4M3
            )
    return codes, scale


def _expand(scale: np.ndarray, shape: tuple[int, ...], block: int) -> np.ndarray:
    return np.repeat(np.repeat(scale, block, 0), block, 1)[: shape[0], : shape[1]]


@pytest.fixture(scope="module")
def fp8_file(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """Written by safetensors' own torch writer, as FP8 checkpoints are made."""
    import torch
    from safetensors.torch import save_file

    originals = {
        "per_tensor.weight": RNG.standard_normal((64, 48)).astype(np.float32),
        "blocks.weight": RNG.standard_normal((256, 384)).astype(np.float32),
        "ragged.weight": RNG.standard_normal((200, 300)).astype(np.float32),  # 128-blocks, last ones partial
        "rows.weight": RNG.standard_normal((32, 40)).astype(np.float32),
    }
    stored: dict[str, np.ndarray] = {}
    scale = np.float32(np.abs(originals["per_tensor.weight"]).max() / 448.0)
    stored["per_tensor.weight"] = (originals["per_tensor.weight"] / scale).astype(E4M3)
    stored["per_tensor.weight_scale"] = np.array(scale, np.float32)  # compressed-tensors: a 0-d scale
    for name in ("blocks.weight", "ragged.weight"):
        stored[name], stored[name + "_scale_inv"] = _blockwise(originals[name], 128)
    row_scale = (np.abs(originals["rows.weight"]).max(axis=1, keepdims=True) / 448.0).astype(np.float32)
    stored["rows.weight"] = (originals["rows.weight"] / row_scale).astype(E4M3)
    stored["rows.weight_scale"] = row_scale  # per output channel, [rows, 1]
    stored["norm.weight"] = np.ones(8, np.float32)

    def to_torch(array: np.ndarray):
        if array.dtype == E4M3:
            return torch.from_numpy(array.view(np.uint8)).view(torch.float8_e4m3fn)
        return torch.from_numpy(array)

    path = tmp_path_factory.mktemp("fp8") / "fp8.safetensors"
    save_file({k: to_torch(v) for k, v in stored.items()}, str(path))
    return path, {"originals": originals, **stored}  # type: ignore[dict-item]


@pytest.mark.parametrize("name", ["per_tensor.weight", "blocks.weight", "ragged.weight", "rows.weight"])
def test_fp8_with_scale_dequantizes_to_the_original(fp8_file, name):
    path, data = fp8_file
    original = data["originals"][name]
    with open_path(path) as source:
        node = source.node(name)
        assert node.dtype == "float8_e4m3fn" and node.metadata["view"] == "raw"
        view_id = node.metadata["views"]["dequantized"]
        assert view_id == f"{name}/dequantized" and source.node(view_id).parent == name
        values = source.read(view_id)
        assert values.dtype == np.float32 and values.shape == original.shape
        # within e4m3's rounding of each value (and its smallest steps near zero)
        scale = source.read(node.metadata["quantization"]["scale_tensor"]).astype(np.float32)
        full_scale = _expand(scale, original.shape, 128) if scale.ndim == 2 and scale.shape[1] > 1 else scale
        np.testing.assert_allclose(
            values, original, rtol=E4M3_STEP / 2, atol=float(np.max(full_scale)) * 2**-9
        )
        # exactly the codes times their scale, also for a slice crossing block edges
        exact = source.read(name).astype(np.float32) * full_scale
        np.testing.assert_array_equal(values, exact)
        np.testing.assert_array_equal(source.read(view_id, (slice(100, 140), 3)), exact[100:140, 3])
        if name == "ragged.weight":
            assert node.metadata["quantization"]["block_size"] == [128, 128]
    assert "views" not in source.node("norm.weight").metadata


def test_fp8_view_is_read_only_and_the_codes_write(fp8_file, tmp_path):
    path, data = fp8_file
    with open_path(path) as source:
        with pytest.raises(InspectorError, match="edit 'blocks.weight'"):
            source.write(
                tmp_path / "x.safetensors", {"blocks.weight/dequantized": np.zeros((256, 384), np.float32)}
            )
        codes = np.array(source.read("blocks.weight"))
        codes[0, 0] = np.float32(1.0)
        source.write(tmp_path / "y.safetensors", {"blocks.weight": codes})
    with open_path(tmp_path / "y.safetensors") as reopened:
        scale = float(data["blocks.weight_scale_inv"][0, 0])
        assert reopened.read("blocks.weight/dequantized")[0, 0] == pytest.approx(scale)
        assert reopened.node("blocks.weight").metadata["views"]["dequantized"] == "blocks.weight/dequantized"


def test_torch_quantized_tensors_get_a_dequantized_view(tmp_path):
    import torch

    weight = torch.randn(6, 5)
    per_tensor = torch.quantize_per_tensor(weight, 0.05, 3, torch.quint8)
    per_channel = torch.quantize_per_channel(
        weight, torch.rand(6) / 10 + 0.01, torch.zeros(6, dtype=torch.long), 0, torch.qint8
    )
    path = tmp_path / "q.pt"
    torch.save({"fc.weight": per_tensor, "conv.weight": per_channel, "bias": torch.ones(6)}, path)
    with open_path(path) as source:
        for name, tensor in (("fc.weight", per_tensor), ("conv.weight", per_channel)):
            node = source.node(name)
            assert node.metadata["views"] == {"raw": name, "dequantized": f"{name}/dequantized"}
            np.testing.assert_array_equal(source.read(name), tensor.int_repr().numpy())
            view = source.node(f"{name}/dequantized")
            assert view.kind is NodeKind.TENSOR and view.dtype == "float32" and view.shape == (6, 5)
            expected = tensor.dequantize().numpy()
            np.testing.assert_array_equal(source.read(view.id), expected)
            np.testing.assert_array_equal(source.read(view.id, (slice(2, 4),)), expected[2:4])
        scales = np.asarray(source.node("conv.weight").metadata["quantization"]["scale"], np.float64)
        q = per_channel.int_repr().numpy().astype(np.float64)
        np.testing.assert_allclose(source.read("conv.weight/dequantized"), q * scales[:, None], rtol=1e-6)
        with pytest.raises(InspectorError, match="computed from"):
            source.write(tmp_path / "w.pt", {"fc.weight/dequantized": np.zeros((6, 5), np.float32)})
        assert "views" not in source.node("bias").metadata


def test_export_of_the_dequantized_node_gives_floats(fp8_file, tmp_path, capsys):
    from tensor_inspector.cli import main

    path, data = fp8_file
    out = tmp_path / "deq.npy"
    assert main(["export", str(path), "blocks.weight/dequantized", "-o", str(out)]) == 0
    exported = np.load(out)
    assert exported.dtype == np.float32
    expected = data["blocks.weight"].astype(np.float32) * _expand(
        data["blocks.weight_scale_inv"], (256, 384), 128
    )
    np.testing.assert_array_equal(exported, expected)


def _tflite_model(directory: Path) -> Path:
    import tensorflow as tf

    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(
        inputs, tf.keras.layers.Dense(3)(tf.keras.layers.Dense(5, activation="relu")(inputs))
    )

    def representative():
        for _ in range(4):
            yield [RNG.random((1, 4), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path = directory / "dense.tflite"
    path.write_bytes(converter.convert())
    return path


def test_gguf_and_tflite_values_through_the_reader_process(tmp_path):
    import gguf  # noqa: F401

    from tensor_inspector.demo.gguf_demo import make_demo_gguf
    from tensor_inspector.session.isolated import IsolatedSession

    gguf_path = make_demo_gguf(tmp_path)[0]
    tflite_path = _tflite_model(tmp_path)
    session = IsolatedSession()
    try:
        info = session.open(gguf_path)
        with open_path(gguf_path) as local:
            for node_id in ("blk.0.ffn_up.weight", "blk.0.ffn_up.weight/raw", "blk.0.attn_q.weight"):
                got = session.value(info.handle, node_id).array
                np.testing.assert_array_equal(got, local.read(node_id))
        assert info.metadata["general.name"] == "tensor-inspector demo"

        info = session.open(tflite_path)
        with open_path(tflite_path) as local:
            output = next(iter(local.node("serving_default").metadata["outputs"].values()))
            x = RNG.random((1, 4)).astype(np.float32)
            (spec,) = local.feed_specs()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = local.evaluate(output, {spec.name: x})
            value = session.value(info.handle, output, feeds={spec.name: x})
            np.testing.assert_array_equal(value.array, expected)
            kernel = next(n for n in local.nodes.values() if n.kind is NodeKind.TENSOR and n.dtype == "int8")
            dequantized = session.value(info.handle, kernel.metadata["views"]["dequantized"]).array
            np.testing.assert_array_equal(dequantized, local.read(kernel.metadata["views"]["dequantized"]))
    finally:
        session.shutdown()
