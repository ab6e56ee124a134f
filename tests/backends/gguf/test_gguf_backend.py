"""GGUF files written by gguf.GGUFWriter: metadata, plain and quantized tensors (values equal
gguf.quants.dequantize, raw blocks as stored), writing back, split models opened as one."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize, quantize

from tensor_inspector.backends.base import InspectorError, NodeKind
from tensor_inspector.backends.registry import detect, open_path

T = gguf.GGMLQuantizationType
RNG = np.random.default_rng(5)
WEIGHT = RNG.standard_normal((6, 64)).astype(np.float32)
VOCAB = [f"tok{i}" for i in range(1000)]


def _k_blocks(rows: int, cols: int, qtype) -> np.ndarray:
    """Raw K-quant blocks (the gguf package cannot quantize K types): random codes with
    finite f16 super-block scales, laid out as llama.cpp stores them."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = RNG.integers(0, 256, (rows, cols // block, size), dtype=np.uint8)
    scale = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)
    if qtype == T.Q4_K:  # d and dmin come first
        raw[..., 0:2] = scale
        raw[..., 2:4] = scale
    else:  # Q6_K: d comes last
        raw[..., -2:] = scale
    return raw.reshape(rows, -1)


def _write(path: Path, tensors: dict[str, tuple[np.ndarray, object]], **writer_args) -> Path:
    writer = gguf.GGUFWriter(path, "llama", **writer_args)
    writer.add_block_count(2)
    writer.add_string("general.name", "tiny test model")
    writer.add_float32("llama.rope.freq_base", 10000.0)
    writer.add_array("tokenizer.ggml.tokens", VOCAB)
    for name, (array, qtype) in tensors.items():
        if qtype is None:
            writer.add_tensor(name, array)
        else:
            writer.add_tensor(name, array, raw_shape=array.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def stored() -> dict[str, tuple[np.ndarray, object]]:
    return {
        "token_embd.weight": (WEIGHT, None),
        "blk.0.attn_norm.weight": (WEIGHT[0].astype(np.float16), None),
        "blk.0.attn_q.weight": (quantize(WEIGHT, T.Q8_0), T.Q8_0),
        "blk.0.attn_k.weight": (quantize(WEIGHT, T.Q4_0), T.Q4_0),
        "blk.0.ffn_up.weight": (_k_blocks(4, 512, T.Q4_K), T.Q4_K),
        "blk.0.ffn_down.weight": (_k_blocks(3, 256, T.Q6_K), T.Q6_K),
    }


@pytest.fixture(scope="module")
def path(tmp_path_factory, stored) -> Path:
    return _write(tmp_path_factory.mktemp("gguf") / "tiny.gguf", stored)


def test_detected_and_metadata_listed(path):
    assert detect(path)[0][1].name == "gguf"
    with open_path(path) as source:
        meta = source.metadata
        assert meta["general.architecture"] == "llama"
        assert meta["general.name"] == "tiny test model"
        assert meta["llama.block_count"] == 2
        assert meta["llama.rope.freq_base"] == pytest.approx(10000.0)
        tokens = meta["tokenizer.ggml.tokens"]
        assert tokens[:3] == ["tok0", "tok1", "tok2"] and "1,000 items" in tokens[-1]


def test_plain_tensors_read_as_stored(path):
    with open_path(path) as source:
        f32 = source.node("token_embd.weight")
        assert (f32.dtype, f32.framework_dtype, f32.shape) == ("float32", "F32", (6, 64))
        np.testing.assert_array_equal(source.read("token_embd.weight"), WEIGHT)
        np.testing.assert_array_equal(source.read("token_embd.weight", (slice(2, 4), 7)), WEIGHT[2:4, 7])
        f16 = source.read("blk.0.attn_norm.weight")
        assert f16.dtype == np.float16
        np.testing.assert_array_equal(f16, WEIGHT[0].astype(np.float16))
        assert "views" not in f32.metadata


@pytest.mark.parametrize(
    "name", ["blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight"]
)
def test_quantized_values_equal_gguf_dequantize(path, stored, name):
    raw, qtype = stored[name]
    expected = dequantize(raw, qtype)
    with open_path(path) as source:
        node = source.node(name)
        assert node.framework_dtype == qtype.name and node.dtype == "float32"
        assert node.shape == expected.shape
        assert node.metadata["quantization"]["block_size"] == gguf.GGML_QUANT_SIZES[qtype][0]
        assert node.metadata["views"] == {"raw": f"{name}/raw", "dequantized": name}
        got = source.read(name)
        assert got.dtype == np.float32 and np.isfinite(got).all()
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(
            source.read(name, (slice(1, 3), slice(5, 40, 3))), expected[1:3, 5:40:3]
        )
        np.testing.assert_array_equal(source.read(name, (2,)), expected[2])
        blocks = source.node(f"{name}/raw")
        assert blocks.kind is NodeKind.TENSOR and blocks.parent == name and blocks.metadata["view"] == "raw"
        np.testing.assert_array_equal(source.read(f"{name}/raw"), raw)
    if name == "blk.0.attn_q.weight":  # Q8_0 stays within half a step of the original
        np.testing.assert_allclose(expected, WEIGHT, atol=np.abs(WEIGHT).max() / 127)


def test_write_back_plain_and_quantized_and_reopen(path, stored, tmp_path):
    new_f32 = WEIGHT * 2
    new_f16 = (WEIGHT[0] - 1).astype(np.float16)
    new_q8 = WEIGHT[::-1].copy()
    new_blocks = _k_blocks(4, 512, T.Q4_K)
    target = tmp_path / "edited.gguf"
    with open_path(path) as source:
        source.write(
            target,
            {
                "token_embd.weight": new_f32,
                "blk.0.attn_norm.weight": new_f16,
                "blk.0.attn_q.weight": new_q8,
                "blk.0.ffn_up.weight/raw": new_blocks,
            },
        )
        with pytest.raises(InspectorError, match="cannot quantize Q6_K"):
            source.write(tmp_path / "refused.gguf", {"blk.0.ffn_down.weight": np.zeros((3, 256), np.float32)})
        assert not (tmp_path / "refused.gguf").exists()
    with open_path(target) as reopened:
        np.testing.assert_array_equal(reopened.read("token_embd.weight"), new_f32)
        np.testing.assert_array_equal(reopened.read("blk.0.attn_norm.weight"), new_f16)
        np.testing.assert_array_equal(
            reopened.read("blk.0.attn_q.weight"), dequantize(quantize(new_q8, T.Q8_0), T.Q8_0)
        )
        np.testing.assert_array_equal(reopened.read("blk.0.ffn_up.weight/raw"), new_blocks)
        np.testing.assert_array_equal(
            reopened.read("blk.0.attn_k.weight/raw"), stored["blk.0.attn_k.weight"][0]
        )
        assert reopened.metadata["general.name"] == "tiny test model"
    reader = gguf.GGUFReader(target)  # the format's own reader agrees
    by_name = {t.name: t for t in reader.tensors}
    np.testing.assert_array_equal(by_name["token_embd.weight"].data, new_f32)


def test_split_model_opens_as_one(stored, tmp_path):
    _write(tmp_path / "split.gguf", stored, split_max_tensors=3)
    shards = sorted(tmp_path.glob("split-*.gguf"))
    assert [p.name for p in shards] == ["split-00001-of-00002.gguf", "split-00002-of-00002.gguf"]
    with open_path(shards[1]) as source:
        assert [n for n in source.nodes if "/" not in n] == list(stored)
        assert source.metadata["split files"] == [p.name for p in shards]
        assert source.node("blk.0.ffn_down.weight").metadata["shard"] == shards[1].name
        np.testing.assert_array_equal(
            source.read("blk.0.ffn_down.weight"), dequantize(*stored["blk.0.ffn_down.weight"])
        )
        np.testing.assert_array_equal(source.read("token_embd.weight"), WEIGHT)
        with pytest.raises(InspectorError, match="split"):
            source.write(tmp_path / "merged.gguf", {"token_embd.weight": WEIGHT})
    shards[1].unlink()
    with pytest.raises(InspectorError, match="missing"):
        open_path(shards[0])


def test_damaged_file_is_one_sentence(path, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InspectorError):
        open_path(broken)


def test_demo_file_is_small_and_rebuilt_identically(tmp_path):
    from tensor_inspector.demo.gguf_demo import DEMO_NAME, make_demo_gguf
    from tensor_inspector.demo.make_demo import DEMO_DIR

    (built,) = make_demo_gguf(tmp_path)
    bundled = DEMO_DIR / DEMO_NAME
    assert bundled.stat().st_size < 100_000
    assert built.read_bytes() == bundled.read_bytes()
    with open_path(bundled) as source:
        types = {n.framework_dtype for n in source.nodes.values()}
        assert {"F32", "F16", "Q8_0"} <= types
        assert source.metadata["general.name"] == "tensor-inspector demo"
        assert all(np.isfinite(source.read(n.id)).all() for n in source.value_nodes())


def test_saving_float_values_into_a_quantized_tensor_verifies(path, tmp_path):
    """The save check expects what the file can hold: the values quantized, then dequantized."""
    from tensor_inspector.session.local import LocalSession

    session = LocalSession()
    info = session.open(path)
    new_q8 = WEIGHT[::-1] * 3
    saved = session.save(info.handle, {"blk.0.attn_q.weight": new_q8}, tmp_path / "saved.gguf")
    assert saved.verified == ["blk.0.attn_q.weight"]
    read = session.value(info.handle, "blk.0.attn_q.weight").array
    np.testing.assert_array_equal(read, dequantize(quantize(new_q8, T.Q8_0), T.Q8_0))
    assert not np.array_equal(read, new_q8)  # Q8_0 rounds: a bit-for-bit check against new_q8 would fail
    session.close_all()
