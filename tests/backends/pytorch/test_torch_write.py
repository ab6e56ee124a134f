"""Writing torch checkpoints: replaced tensors bit-identical, everything else unchanged."""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch_fixtures import all_dtype_state_dict

from tensor_inspector.backends import InspectorError, open_path
from tensor_inspector.core.dtypes import numpy_dtype
from tensor_inspector.session.saving import file_signature, save


def assert_same(a: object, b: object) -> None:
    """Structure, keys, order, types and bits equal."""
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad
        if a.is_quantized:
            assert torch.equal(a.int_repr(), b.int_repr()) and a.q_scale() == b.q_scale()
        else:
            assert torch.equal(
                a.view(torch.uint8) if a.dtype.itemsize == 1 and a.dtype != torch.bool else a,
                b.view(torch.uint8) if a.dtype.itemsize == 1 and b.dtype != torch.bool else b,
            )
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def checkpoint() -> dict:
    state = OrderedDict(
        linear=torch.nn.Parameter(torch.randn(3, 2)),
        ema=torch.randn(4, 4).to(torch.bfloat16),
        grad=torch.zeros(2, requires_grad=True),
    )
    return {
        "model": state,
        "epoch": 5,
        "tags": ["a", "b"],
        "lr": 0.1,
        "q": torch.quantize_per_tensor(torch.tensor([0.1, 0.2]), 0.1, 0, torch.qint8),
    }


@pytest.mark.parametrize("zip_format", [True, False])
def test_bf16_round_trip_is_bit_identical(tmp_path: Path, zip_format: bool) -> None:
    original = checkpoint()
    path = tmp_path / "in.pt"
    torch.save(original, path, _use_new_zipfile_serialization=zip_format)
    out = tmp_path / "out.pt"
    with open_path(path) as source:
        value = source.read("model/ema")
        assert value.dtype == np.dtype(ml_dtypes.bfloat16)
        edited = value.copy()
        edited[1, 2] = ml_dtypes.bfloat16(-3.5)
        new_param = np.full((3, 2), 7.0, np.float32)
        source.write(out, {"model/ema": edited, "model/linear": new_param, "q": np.array([5, 6], np.int8)})
    reloaded = torch.load(out, weights_only=True)
    with open_path(out) as again:
        assert again.read("model/ema").tobytes() == edited.tobytes()
        assert again.format_name.endswith("(legacy format)") is not zip_format
    assert reloaded["model"]["ema"].view(torch.int16).numpy().tobytes() == edited.view(np.int16).tobytes()
    assert isinstance(reloaded["model"]["linear"], torch.nn.Parameter)
    assert reloaded["model"]["linear"].requires_grad
    assert np.array_equal(reloaded["model"]["linear"].detach().numpy(), new_param)
    assert reloaded["q"].int_repr().tolist() == [5, 6] and reloaded["q"].q_scale() == 0.1
    assert type(reloaded["model"]) is OrderedDict
    untouched = {k: v for k, v in original.items() if k not in ("model", "q")}
    assert_same(untouched, {k: reloaded[k] for k in untouched})
    assert_same(original["model"]["grad"], reloaded["model"]["grad"])


def test_writing_onto_the_open_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(1000)}, path)
    before = path.read_bytes()
    with open_path(path) as source:
        with pytest.raises(InspectorError):
            source.write(path, {"w": np.zeros(1000, np.float32)})
    assert path.read_bytes() == before


def test_save_over_the_original_releases_the_map_first(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(1000), "b": torch.arange(3)}, path)
    signature = file_signature(path)
    source = open_path(path)
    report = save(source, {"w": np.full(1000, 2.0, np.float32)}, path, opened_signature=signature)
    assert report.verified == ["w"]
    loaded = torch.load(path, weights_only=True)
    assert loaded["w"].tolist() == [2.0] * 1000 and loaded["b"].tolist() == [0, 1, 2]
    assert torch.load(tmp_path / "w.pt.bak", weights_only=True)["w"].tolist() == [1.0] * 1000


DTYPES = [name for name in all_dtype_state_dict()]
# torch's own legacy loader fails on these ("UntypedStorage has no attribute dtype")
LEGACY_UNSUPPORTED = {"uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2"}


def _random_bits(dtype: np.dtype, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8)
    array = raw.view(dtype).reshape(shape)
    if dtype.kind in "fc" or "float" in dtype.name:
        # NaN payloads are not all preserved by every writer; keep finite values
        array = np.where(
            np.isfinite(array.astype(np.complex128 if dtype.kind == "c" else np.float64)),
            array,
            np.zeros((), dtype),
        )
    return array


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype_name=st.sampled_from(DTYPES),
    shape=st.sampled_from([(), (0,), (3,), (2, 3), (1, 2, 3), (2, 1, 2, 2)]),
    zip_format=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_replace_one_tensor(
    tmp_path: Path, dtype_name: str, shape: tuple[int, ...], zip_format: bool, seed: int
) -> None:
    assume(zip_format or dtype_name not in LEGACY_UNSUPPORTED)
    dtype = numpy_dtype(dtype_name)
    other = torch.arange(5, dtype=torch.float32)
    like = torch.zeros(shape, dtype=getattr(torch, dtype_name))
    directory = Path(tempfile.mkdtemp(dir=tmp_path))
    path = directory / "in.pt"
    torch.save({"target": like, "other": other}, path, _use_new_zipfile_serialization=zip_format)
    new = _random_bits(dtype, shape, seed)
    with open_path(path) as source:
        assert source.node("target").dtype == dtype.name
        source.write(directory / "out.pt", {"target": new})
    with open_path(directory / "out.pt") as result:
        got = result.read("target")
        assert got.dtype == new.dtype and got.shape == new.shape
        assert got.tobytes() == new.tobytes()
        assert result.read("other").tobytes() == other.numpy().tobytes()
