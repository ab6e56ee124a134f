"""Statistics never crash and match numpy on every kind of input."""

import threading

import numpy as np
import pytest

from tensor_inspector.backends.base import Cancelled
from tensor_inspector.core import stats as stats_mod
from tensor_inspector.core.dtypes import numpy_dtype
from tensor_inspector.core.stats import compute_stats, display_levels, strided_sample


def test_float_stats_match_numpy_across_chunks(monkeypatch):
    monkeypatch.setattr(stats_mod, "CHUNK_ELEMENTS", 1000)  # force many chunks
    rng = np.random.default_rng(1)
    a = rng.standard_normal(12_345).astype(np.float32)
    a[[5, 50]] = np.nan
    a[7], a[8], a[9] = np.inf, -np.inf, 0
    s = compute_stats(a)
    finite = a[np.isfinite(a)].astype(np.float64)
    assert (s.nan, s.posinf, s.neginf, s.zeros) == (2, 1, 1, 1)
    assert s.min == finite.min() and s.max == finite.max()
    assert s.mean == pytest.approx(finite.mean()) and s.std == pytest.approx(finite.std())
    assert s.hist_counts.sum() == finite.size and len(s.hist_edges) == 65


@pytest.mark.parametrize(
    "array",
    [
        np.array([], np.float32),
        np.full(10, np.nan),
        np.array([True, False, True]),
        np.arange(-5, 5, dtype=np.int8),
        np.array([2**63 + 5, 1], np.uint64),
        np.array([1 + 2j, np.nan + 0j, 3j], np.complex64),
        np.zeros((3, 0, 2)),
        np.array(4.5),
        np.array(["a", "b"]),
        np.array([1.5, -2, np.nan], numpy_dtype("bfloat16")),
        np.array([0.5, 448, -1], numpy_dtype("float8_e4m3fn")),
    ],
    ids=lambda a: f"{a.dtype}{list(a.shape)}",
)
def test_never_crashes(array):
    s = compute_stats(array)
    assert s.count == array.size and s.dtype == array.dtype.name
    assert s.as_dict()["shape"] == list(array.shape)


def test_integers_stay_exact():
    s = compute_stats(np.array([2**62 + 1, -3], np.int64))
    assert s.max == 2**62 + 1 and s.min == -3


def test_complex_uses_magnitude_for_range():
    s = compute_stats(np.array([3 + 4j, 1j]))
    assert (s.min, s.max) == (1.0, 5.0) and s.mean == pytest.approx(1.5 + 2.5j)


def test_cancel_stops_work():
    event = threading.Event()
    event.set()
    with pytest.raises(Cancelled):
        compute_stats(np.ones(10), cancel=event)


def test_levels_from_sample():
    a = np.linspace(-2, 10, 5_000_000, dtype=np.float32)
    assert len(strided_sample(a, 1000)) <= 1000
    lo, hi = display_levels(a)
    assert lo == pytest.approx(-2, abs=1e-3) and hi == pytest.approx(10, abs=1e-2)
    assert display_levels(a, "symmetric") == (-hi, hi)
    assert display_levels(np.full(4, np.nan)) == (0.0, 1.0)
    lo, hi = display_levels(np.full(4, 3.0))
    assert lo < 3 < hi
