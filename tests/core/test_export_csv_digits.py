"""CSV export writes each float with the shortest digits of its own dtype, and reads back exactly."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from tensor_inspector.core.export import export_array


def test_float32_values_get_float32_digits_and_round_trip(tmp_path):
    a = np.array([[0.1, 1 / 3, -2.5e-30], [3e38, np.nan, -np.inf]], np.float32)
    export_array(a, tmp_path / "a.csv", fmt="csv")
    text = (tmp_path / "a.csv").read_text()
    assert text.splitlines()[0] == "0.1,0.33333334,-2.5e-30"
    back = np.loadtxt(tmp_path / "a.csv", delimiter=",", dtype=np.float32)
    np.testing.assert_array_equal(back, a)


def test_float64_bf16_and_complex64_round_trip(tmp_path):
    cases = [
        np.array([0.1, 1 / 3], np.float64),
        np.array([0.1, 1 / 3, 300.0], ml_dtypes.bfloat16),
    ]
    for i, a in enumerate(cases):
        export_array(a, tmp_path / f"{i}.csv", fmt="csv")
        back = np.loadtxt(tmp_path / f"{i}.csv", delimiter=",", dtype=np.float64).astype(a.dtype)
        np.testing.assert_array_equal(back, a)
    assert (tmp_path / "0.csv").read_text() == "0.1,0.3333333333333333\n"
    assert (tmp_path / "1.csv").read_text() == "0.10009765625,0.333984375,300.0\n"  # exact, and short
    z = np.array([1 + 0.1j, -2 - 0.5j], np.complex64)
    export_array(z, tmp_path / "z.csv", fmt="csv")
    assert (tmp_path / "z.csv").read_text() == "1.0+0.1j,-2.0-0.5j\n"
