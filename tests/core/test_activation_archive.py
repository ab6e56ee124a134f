"""The activation archive: one .npz that np.load reads, names sanitised and unique, atomic."""

from __future__ import annotations

import json
import threading
import zipfile

import ml_dtypes
import numpy as np
import pytest

from tensor_inspector.core.activation_archive import INDEX_MEMBER, member_names, read_index, write_archive
from tensor_inspector.core.errors import Cancelled, InspectorError


def test_names_are_sanitised_unique_and_keep_the_given_order():
    ids = ["graph/log", "a/b:0", "a_b:0", "A/B:0", "graph_log", "", "../x", "node_ids", "ok-1.2"]
    names = member_names(ids)
    assert list(names) == ids
    assert names["graph/log"] == "graph_log"
    assert names["a/b:0"] == "a_b_0"
    assert names["a_b:0"] == "a_b_0_2"
    assert names["A/B:0"] == "A_B_0_3"  # unique also ignoring case
    assert names["graph_log"] == "graph_log_2"
    assert names[""] == "node"
    assert names["../x"] == "x"
    assert names["node_ids"] == "node_ids_2"  # never confused with the index member
    assert names["ok-1.2"] == "ok-1.2"
    for name in names.values():
        assert all(c.isalnum() or c in "_.-" for c in name)
    assert len({n.lower() for n in names.values()}) == len(ids)


def test_the_archive_round_trips_through_np_load(tmp_path):
    arrays = {
        "serving_default/StatefulPartitionedCall/lg:0": np.array([[np.nan, 0.5]], np.float32),
        "serving_default/StatefulPartitionedCall/mm:0": np.arange(6, dtype=np.float64).reshape(2, 3),
        "graph/bf16": np.array([1.5, -2.0], ml_dtypes.bfloat16),
        "graph/scalar": np.array(7, np.int64),
    }
    path = tmp_path / "acts.npz"
    with write_archive(path, arrays) as archive:
        for node_id, array in arrays.items():
            archive.add(node_id, array)
    index = read_index(path)
    assert sorted(index.values()) == sorted(arrays)
    with np.load(path) as loaded:
        assert set(loaded.files) == set(index) | {INDEX_MEMBER}
        assert json.loads(loaded[INDEX_MEMBER]) == index
        for name, node_id in index.items():
            got = loaded[name]
            assert got.dtype == arrays[node_id].dtype and got.shape == arrays[node_id].shape
            np.testing.assert_array_equal(got, arrays[node_id])
    with zipfile.ZipFile(path) as zf:  # stored, so a reader can memory-map members
        assert {info.compress_type for info in zf.infolist()} == {zipfile.ZIP_STORED}


def test_a_cancelled_export_leaves_no_file_and_keeps_an_old_one(tmp_path):
    path = tmp_path / "acts.npz"
    path.write_bytes(b"old")
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        with write_archive(path, ["a", "b"], cancel) as archive:
            archive.add("a", np.ones(3))
            cancel.set()
            archive.add("b", np.ones(3))
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["acts.npz"]


def test_a_failure_midway_leaves_nothing(tmp_path):
    path = tmp_path / "acts.npz"
    with pytest.raises(InspectorError, match="not one of the nodes"):
        with write_archive(path, ["a"]) as archive:
            archive.add("a", np.ones(3))
            archive.add("elsewhere", np.ones(3))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InspectorError, match="objects"):
        with write_archive(path, ["o"]) as archive:
            archive.add("o", np.array([object()]))
    assert list(tmp_path.iterdir()) == []
