"""Finding the next NaN/Inf in C order, wrapping, across chunks and dtypes."""

import threading

import numpy as np

from tensor_inspector.core import nonfinite
from tensor_inspector.core.dtypes import numpy_dtype
from tensor_inspector.core.nonfinite import find_nonfinite


def test_finds_in_order_and_wraps(monkeypatch):
    monkeypatch.setattr(nonfinite, "CHUNK_ELEMENTS", 5)  # several chunks
    a = np.zeros((2, 3, 4), np.float32)
    a[0, 0, 1] = np.inf
    a[1, 2, 3] = np.nan
    assert find_nonfinite(a) == (0, 0, 1)
    assert find_nonfinite(a, (0, 0, 1)) == (1, 2, 3)
    assert find_nonfinite(a, (1, 2, 3)) == (0, 0, 1)  # wraps to the start
    assert find_nonfinite(a, (0, 1, 0)) == (1, 2, 3)


def test_other_dtypes():
    assert find_nonfinite(np.arange(10)) is None
    assert find_nonfinite(np.ones(3, bool)) is None
    assert find_nonfinite(np.ones(4)) is None
    bf16 = np.array([1, 2, np.nan], numpy_dtype("bfloat16"))
    assert find_nonfinite(bf16) == (2,)
    assert find_nonfinite(np.array([1 + 1j, complex(np.inf, 0)])) == (1,)
    assert find_nonfinite(np.array(np.nan)) == ()
    assert find_nonfinite(np.zeros((0, 3))) is None


def test_cancelled_search_returns_none():
    event = threading.Event()
    event.set()
    a = np.full(10, np.nan)
    assert find_nonfinite(a, cancel=event) is None
