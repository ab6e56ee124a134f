"""Streaming comparison metrics: exact figures, chunk merging, widening, NaN/Inf, text."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from tensor_inspector.core import compare_metrics
from tensor_inspector.core.compare_metrics import Metrics, chunk_metrics


def reference(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    d = np.abs(a64 - b64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(d == 0, 0.0, d / np.abs(b64))
    return {
        "max_abs": d.max(),
        "max_rel": rel.max(),
        "mean_abs": d.mean(),
        "rmse": math.sqrt((d**2).mean()),
        "cosine": np.dot(a64, b64) / math.sqrt(np.dot(a64, a64) * np.dot(b64, b64)),
    }


def test_one_perturbed_element_is_found_with_exact_figures():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(70, 50)).astype(np.float32)
    b = a.copy()
    b[41, 7] += 0.25
    m = chunk_metrics(a, b)
    ref = reference(a, b)
    assert m.max_abs == pytest.approx(ref["max_abs"], rel=1e-15)
    assert m.max_rel == pytest.approx(ref["max_rel"], rel=1e-15)
    assert m.mean_abs == pytest.approx(ref["mean_abs"], rel=1e-12)
    assert m.rmse == pytest.approx(ref["rmse"], rel=1e-12)
    assert m.cosine == pytest.approx(ref["cosine"], abs=1e-12)
    assert m.cosine < 1.0
    assert (m.beyond, m.count, m.equal, m.worst) == (1, 3500, False, (41, 7))
    assert chunk_metrics(a, b, atol=0.3).beyond == 0
    assert chunk_metrics(a, b, rtol=1e3).beyond == 0


def test_tolerance_is_atol_plus_rtol_times_b():
    a = np.array([1.0, 2.0, 10.0])
    b = np.array([1.25, 2.0, 10.5])
    assert chunk_metrics(a, b, atol=0.25).beyond == 1  # a difference equal to atol is within
    assert chunk_metrics(a, b, rtol=0.05).beyond == 1  # 0.25 > 0.0625, 0.5 <= 0.525
    assert chunk_metrics(a, b, atol=0.25, rtol=0.03).beyond == 0


@pytest.mark.parametrize("cut", [1, 17, 4096, 9999])
def test_chunks_merge_to_the_whole(cut, monkeypatch):
    monkeypatch.setattr(compare_metrics, "BLOCK", 1000)  # several blocks inside each chunk too
    rng = np.random.default_rng(cut)
    a = rng.normal(size=10000)
    b = a + rng.normal(scale=1e-3, size=10000)
    whole = chunk_metrics(a, b, atol=1e-3)
    parts = chunk_metrics(a[:cut], b[:cut], atol=1e-3).merge(
        chunk_metrics(a[cut:], b[cut:], atol=1e-3, origin=(cut,))
    )
    for key in ("count", "beyond", "max_abs", "max_rel", "worst", "equal"):
        assert getattr(parts, key) == getattr(whole, key), key
    for key in ("sum_abs", "sum_sq", "norm_a2", "norm_b2"):
        assert getattr(parts, key) == pytest.approx(getattr(whole, key), rel=1e-12), key


@pytest.mark.parametrize("dtype", ["bfloat16", "float8_e4m3fn", "float8_e5m2", "float16"])
def test_narrow_floats_widen_exactly(dtype):
    narrow = np.linspace(-3, 3, 301).astype(getattr(ml_dtypes, dtype, None) or np.dtype(dtype))
    wide = narrow.astype(np.float32)  # the same values, exactly
    m = chunk_metrics(narrow, wide)
    assert (m.max_abs, m.beyond, m.equal, m.worst) == (0.0, 0, False, None)  # equal values, other bytes
    assert m.cosine == 1.0
    assert chunk_metrics(narrow, narrow.copy()).equal
    # one step of the narrow type apart is seen, not rounded away
    moved = wide.copy()
    moved[150] = float(np.nextafter(np.float32(moved[150]), np.float32(9)))
    assert chunk_metrics(narrow, moved).beyond == 1


def test_bitwise_equal_is_about_bytes():
    zeros = np.zeros(4, np.float32)
    m = chunk_metrics(zeros, -zeros)
    assert not m.equal and m.max_abs == 0.0 and m.within
    assert chunk_metrics(zeros, zeros.copy()).equal
    assert chunk_metrics(zeros, zeros.astype(np.float64)).equal is False


def test_nan_and_inf_disagreements_are_counted_and_beyond():
    a = np.array([1.0, np.nan, np.inf, -np.inf, 5.0, np.nan, 7.0])
    b = np.array([1.0, np.nan, np.inf, np.inf, np.nan, 2.0, 7.5])
    m = chunk_metrics(a, b)
    assert m.nan_mismatch == 2  # positions 4 and 5
    assert m.inf_mismatch == 1  # -inf against inf
    assert m.compared == 2  # only positions 0 and 6 are finite on both sides
    assert m.max_abs == 0.5 and m.worst == (6,)
    assert m.beyond == 4
    assert not m.equal
    same = chunk_metrics(a, a.copy())
    assert same.equal and same.within and same.nan_mismatch == 0


def test_integers_complex_scalars_and_text():
    m = chunk_metrics(np.array([1, 2, 3], np.int64), np.array([1, 2, 5], np.int32))
    assert (m.max_abs, m.beyond, m.worst) == (2.0, 1, (2,))
    c = chunk_metrics(np.array([1 + 1j, 2]), np.array([1 + 2j, 2]))
    assert c.max_abs == 1.0 and c.beyond == 1
    s = chunk_metrics(np.array(3.0), np.array(3.5))
    assert s.max_abs == 0.5 and s.worst == ()
    t = chunk_metrics(np.array(["a", "b"]), np.array(["a", "c"]))
    assert (t.beyond, t.equal, t.worst) == (1, False, (1,))


def test_cosine_of_zero_tensors():
    zero = np.zeros(3)
    assert chunk_metrics(zero, zero.copy()).cosine == 1.0
    assert chunk_metrics(zero, np.ones(3)).cosine == 0.0
    assert Metrics().cosine == 1.0
