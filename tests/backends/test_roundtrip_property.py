"""Property: replace one tensor, save, reopen: it is bit-identical; the others are untouched."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from roundtrip_formats import FORMATS, SLOW_FORMATS

from tensor_inspector.backends import open_path
from tensor_inspector.core.dtypes import numpy_dtype
from tensor_inspector.session.saving import save

SHAPES = st.sampled_from([(), (0,), (3, 0), (5,), (2, 3), (2, 1, 3), (1, 2, 2, 2)])


def random_array(rng: np.random.Generator, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """Arbitrary bit patterns (NaNs, infinities, subnormals included), viewed as ``dtype``."""
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8)
    return raw.view(dtype).reshape(shape)


ALL_FORMATS = {**FORMATS, **SLOW_FORMATS}


@st.composite
def cases(draw, formats=tuple(sorted(FORMATS))):
    fmt = draw(st.sampled_from(formats))
    builder, dtypes, multi = ALL_FORMATS[fmt]
    dtype = numpy_dtype(draw(st.sampled_from(dtypes)))
    shape = draw(SHAPES)
    seed = draw(st.integers(0, 2**32 - 1))
    return fmt, dtype, shape, seed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_replace_one_tensor_round_trip(case):
    event(case[0])
    check_round_trip(*case)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(formats=tuple(SLOW_FORMATS)))
def test_replace_one_variable_in_a_saved_model(case):
    event(case[0])
    check_round_trip(*case)


def check_round_trip(fmt: str, dtype: np.dtype, shape: tuple, seed: int) -> None:
    builder, _, multi = ALL_FORMATS[fmt]
    rng = np.random.default_rng(seed)
    names = ["target", "other_a", "other_b"] if multi else ["target"]
    tensors = {n: random_array(rng, dtype, shape if n == "target" else (2, 2)) for n in names}
    new = random_array(rng, dtype, shape)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = builder(tmp, tensors)
        source = open_path(path)
        original = {n.id: np.array(source.read(n.id)) for n in source.value_nodes()}
        target_id = next(n.id for n in source.value_nodes() if n.name == "target")
        out = tmp / ("out" + "".join(path.suffixes) if path.exists() else "out-ckpt")
        save(source, {target_id: new}, out)
        reopened = open_path(out)
        assert [n.id for n in reopened.value_nodes()] == list(original)
        got = np.asarray(reopened.read(target_id))
        assert got.dtype == dtype and got.shape == shape and got.tobytes() == new.tobytes()
        for node_id, before in original.items():
            if node_id != target_id:
                after = np.asarray(reopened.read(node_id))
                assert after.dtype == before.dtype and after.tobytes() == before.tobytes()
        reopened.close()
