"""Shape and size text (tensor_inspector.core.text)."""

from __future__ import annotations

import pytest

from tensor_inspector.core.text import format_bytes, format_shape


@pytest.mark.parametrize(
    ("shape", "text"), [(None, ""), ((), "scalar"), ((7,), "7"), ((2, 3, 4), "2×3×4"), ((None, 10), "?×10")]
)
def test_shapes(shape, text):
    assert format_shape(shape) == text


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (None, ""),
        (0, "0 B"),
        (10, "10 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (10 * 1024**3, "10.0 GiB"),
        (3 * 1024**5, "3072.0 TiB"),  # nothing beyond TiB: a huge count stays in TiB
    ],
)
def test_sizes_in_binary_units(nbytes, text):
    assert format_bytes(nbytes) == text
