"""Display reduction keeps texture and non-finite values; strided samples of big tensors."""

from __future__ import annotations

import numpy as np

from tensor_inspector.app.views.array_stats import slabs
from tensor_inspector.core.reduce import MAX_MARKERS, NAN, NEGINF, POSINF, reduce_plane
from tensor_inspector.core.sampling import Sampling, preview_sampling, sampling_of


def test_reduction_keeps_the_spread_of_noise():
    noise = np.random.default_rng(0).standard_normal((4000, 4000), dtype=np.float32)
    reduced = reduce_plane(noise, 1000)
    assert reduced.factor == 4 and reduced.image.shape == (1000, 1000)
    assert 0.9 < float(reduced.image.std()) < 1.1  # a block mean would have std ~0.25


def test_any_non_finite_value_marks_its_block_nan_first():
    plane = np.zeros((100, 100), np.float32)
    plane[13, 57] = np.nan
    plane[13, 58] = np.inf  # same 10x10 block as the NaN: NaN wins
    plane[99, 0] = -np.inf
    reduced = reduce_plane(plane, 10)
    assert reduced.factor == 10
    assert np.isnan(reduced.image[1, 5]) and reduced.image[9, 0] == -np.inf
    assert np.isfinite(reduced.image).sum() == 98
    marks = {tuple(m) for m in reduced.marks.tolist()}
    assert marks == {(13, 57, NAN), (13, 58, POSINF), (99, 0, NEGINF)}


def test_many_non_finite_values_are_not_listed():
    plane = np.full((100, 100), np.nan, np.float32)
    reduced = reduce_plane(plane, 50)
    assert reduced.nonfinite == 10_000 > MAX_MARKERS and reduced.marks is None
    assert np.isnan(reduced.image).all()


def test_small_tensors_are_read_whole_big_ones_through_a_bounded_stride():
    assert preview_sampling((1000, 1000), "float32") is None
    big = preview_sampling((92682, 92682), "float32")
    assert big is not None and big.steps == (46, 46)
    sample_shape = [-(-n // s) for n, s in zip(big.shape, big.steps)]
    assert np.prod(sample_shape) * 4 <= 64 << 20
    assert preview_sampling((64, 4096, 4096), "bfloat16").steps[0] == 1  # short axes stay whole
    assert preview_sampling((None, 10), "float32") is None


def test_sampling_maps_indices_both_ways_and_is_read_back_from_an_index():
    sampling = Sampling((1000, 800), (10, 4))
    assert sampling.full_index((3, 5)) == (30, 20)
    assert sampling.sample_index((37, 23)) == (3, 5)
    assert sampling_of((1000, 800), sampling.index()) == sampling
    assert sampling_of((1000, 800), (slice(0, 10), slice(None))) is None
    assert sampling_of((1000, 800), None) is None


def test_slabs_cover_the_tensor_in_bounded_reads():
    full = np.arange(6 * 50 * 7).reshape(6, 50, 7)
    parts = slabs(full.shape, full.itemsize, max_bytes=7 * 8 * 12)
    assert all(full[index].nbytes <= 7 * 8 * 12 for index in parts)
    np.testing.assert_array_equal(
        np.concatenate([full[index].reshape(-1) for index in parts]), full.reshape(-1)
    )
