"""Index expressions and displayed planes (tensor_inspector.core.slicing)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tensor_inspector.backends.base import InspectorError
from tensor_inspector.core.slicing import (
    IndexSyntaxError,
    cell_index,
    check_index,
    format_index,
    index_shape,
    oriented_slice,
    parse_index,
    view_index,
)


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("0,:,3:7", (0, slice(None), slice(3, 7))),
        ("[1, ::2, -1]", (1, slice(None, None, 2), -1)),
        ("(2,)", (2,)),
        ("", ()),
        (" 5 ", (5,)),
        ("-3:", (slice(-3, None),)),
        ("1:10:3", (slice(1, 10, 3),)),
    ],
)
def test_parse_index(expr, expected):
    assert parse_index(expr) == expected


@pytest.mark.parametrize("expr", ["a", "1,,2", "1:2:3:4", "::0", "1.5"])
def test_parse_index_errors_are_one_sentence(expr):
    with pytest.raises(IndexSyntaxError) as info:
        parse_index(expr)
    assert isinstance(info.value, InspectorError)
    assert str(info.value).endswith(".") and "\n" not in str(info.value)


def test_format_index():
    assert format_index((0, slice(None), slice(3, 7))) == "0,:,3:7"
    assert format_index((slice(None, None, -1), -2)) == "::-1,-2"
    assert format_index(()) == ""


part = st.one_of(
    st.integers(-50, 50),
    st.builds(
        slice,
        st.none() | st.integers(-9, 9),
        st.none() | st.integers(-9, 9),
        st.none() | st.integers(1, 4) | st.integers(-4, -1),
    ),
)


@given(st.lists(part, max_size=5).map(tuple))
def test_format_parse_round_trip(index):
    assert parse_index(format_index(index)) == index


def test_parsed_index_selects_like_numpy():
    a = np.arange(2 * 5 * 9).reshape(2, 5, 9)
    np.testing.assert_array_equal(a[parse_index("1,:,3:7")], a[1, :, 3:7])
    assert index_shape(parse_index("1,:,3:7"), a.shape) == a[1, :, 3:7].shape
    assert index_shape(parse_index("::2"), a.shape) == a[::2].shape


def test_check_index_rejects_out_of_range_and_too_many():
    check_index((1, -5), (2, 5))
    with pytest.raises(IndexSyntaxError, match="out of range"):
        check_index((2,), (2, 5))
    with pytest.raises(IndexSyntaxError, match="3 positions"):
        check_index((0, 0, 0), (2, 5))


def test_view_index_and_oriented_slice():
    a = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    assert view_index(4, 1, 3, [1, 0, 2, 0]) == (1, slice(None), 2, slice(None))
    assert view_index(2, 0, 1, [0, 0]) == ()
    plane = oriented_slice(a, 1, 3, [1, 0, 2, 0])
    np.testing.assert_array_equal(plane, a[1, :, 2, :])
    plane_t = oriented_slice(a, 3, 1, [1, 0, 2, 0])
    np.testing.assert_array_equal(plane_t, a[1, :, 2, :].T)
    assert np.shares_memory(plane_t, a)  # a view, never a copy
    np.testing.assert_array_equal(oriented_slice(a[0, 0], 1, 0, [0, 0]), a[0, 0].T)


def test_cell_index_maps_displayed_cell_to_full_index():
    a = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    positions = [1, 0, 2, 0]
    plane = oriented_slice(a, 3, 1, positions)  # rows = axis 3, columns = axis 1
    full = cell_index(4, 3, 1, positions, row=4, col=2)
    assert full == (1, 2, 2, 4)
    assert a[full] == plane[4, 2]
    assert cell_index(1, 0, 0, [0], 7, 0) == (7,)
    assert cell_index(0, 0, 0, [], 0, 0) == ()
