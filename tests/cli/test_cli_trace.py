"""``tensor-inspector trace``: the JSON document, ids as ``ls`` lists them, and exit codes."""

from __future__ import annotations

import json

import pytest
from trace_fixtures import (
    TF1_FEEDS,
    TF1_PRODUCER,
    TF2_FEEDS,
    TF2_PRODUCER,
    TORCH_PRODUCER,
    tf1_saved_model,
    tf2_saved_model,
    torch_program,
)

from tensor_inspector.cli import main

KEYS = ["id", "op", "dtype", "shape", "min", "max", "mean", "std", "nan", "inf", "zeros"]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _feed(array) -> str:
    return "x=" + json.dumps(array.tolist())


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """kind -> (path, feeds making NaN, feeds keeping finite, producer)."""
    directory = tmp_path_factory.mktemp("cli_trace")
    return {
        "torch": (torch_program(directory, True), [], [], TORCH_PRODUCER, torch_program(directory, False)),
        "tf2": (
            tf2_saved_model(directory),
            ["--feed", _feed(TF2_FEEDS[True])],
            ["--feed", _feed(TF2_FEEDS[False])],
            TF2_PRODUCER,
            None,
        ),
        "tf1": (
            tf1_saved_model(directory),
            ["--feed", _feed(TF1_FEEDS[True])],
            ["--feed", _feed(TF1_FEEDS[False])],
            TF1_PRODUCER,
            None,
        ),
    }


@pytest.mark.parametrize("kind", ["torch", "tf2", "tf1"])
def test_json_names_the_producer_with_ids_as_ls_lists_them(capsys, cases, kind):
    path, nan_feeds, _finite, producer, _other = cases[kind]
    code, out, err = run(capsys, "trace", path, *nan_feeds, "--json")
    assert code == 3, err
    doc = json.loads(out)
    assert list(doc) == ["entry", "nodes", "first_nonfinite"]
    assert doc["first_nonfinite"]["id"] == producer
    nodes = doc["nodes"]
    assert all(list(n) == KEYS for n in nodes)
    ids = [n["id"] for n in nodes]
    at = ids.index(producer)
    assert all(n["nan"] == 0 and n["inf"] == 0 for n in nodes[:at]) and nodes[at]["nan"] > 0
    assert any(n["nan"] > 0 for n in nodes[at + 1 :])  # passed on, not produced again
    assert all(i in ids[:at] for i in doc["first_nonfinite"]["inputs"]) and doc["first_nonfinite"]["inputs"]
    code, out, err = run(capsys, "ls", path, "--json")
    assert code == 0, err
    listed = [row["id"] for row in json.loads(out)]
    assert set(ids) <= set(listed)
    if kind != "tf2":  # a frozen TF2 graph runs its constants first; its listing follows the function
        assert ids == sorted(ids, key=listed.index)


@pytest.mark.parametrize("kind", ["torch", "tf1"])
def test_all_finite_exits_0_with_null_producer(capsys, cases, kind):
    path, _nan, finite_feeds, _producer, finite_file = cases[kind]
    code, out, err = run(capsys, "trace", finite_file or path, *finite_feeds, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["first_nonfinite"] is None and doc["nodes"]
    code, out, _err = run(capsys, "trace", finite_file or path, *finite_feeds)
    assert code == 0 and "All values are finite." in out


def test_keep_nothing_reports_the_same_statistics(capsys, cases):
    path, nan_feeds, *_rest = cases["tf2"]
    code, kept, _err = run(capsys, "trace", path, *nan_feeds, "--json")
    code_none, none, err = run(capsys, "trace", path, *nan_feeds, "--json", "--keep-mb", "0")
    assert code == code_none == 3, err
    assert json.loads(none) == json.loads(kept)
    assert "0 values kept" in run(capsys, "trace", path, *nan_feeds, "--keep-mb", "0")[2]


@pytest.mark.parametrize("kind", ["torch", "tf1"])
def test_isolate_prints_the_same_json(capsys, cases, kind):
    path, nan_feeds, *_rest = cases[kind]
    _code, local, _err = run(capsys, "trace", path, *nan_feeds, "--json")
    code, isolated, err = run(capsys, "trace", path, *nan_feeds, "--json", "--isolate")
    assert code == 3, err
    assert json.loads(isolated) == json.loads(local)


def test_text_names_the_producer_and_entry_picks_a_signature(capsys, cases):
    path, nan_feeds, *_rest = cases["tf2"]
    code, out, _err = run(capsys, "trace", path, *nan_feeds)
    assert code == 3
    assert (
        f"First NaN/Inf produced by {TF2_PRODUCER} (inputs: serving_default/StatefulPartitionedCall/mm:0)"
        in out
    )
    code, out, err = run(capsys, "trace", path, "double", *nan_feeds, "--json")
    assert code == 0, err
    assert json.loads(out)["entry"] == "double"
    code, _out, err = run(capsys, "trace", path, "nothing", *nan_feeds)
    assert code == 1 and "'nothing' cannot be traced" in err and "Traceback" not in err


def test_a_file_without_a_graph_cannot_be_traced(capsys, tmp_path):
    import numpy as np

    np.save(tmp_path / "a.npy", np.zeros(3))
    code, _out, err = run(capsys, "trace", tmp_path / "a.npy")
    assert code == 1 and "not supported" in err


def test_the_bundled_demo_program_names_log_as_the_producer(capsys):
    """entropy_nan.pt2: softmax rounds to 0, log makes -inf, 0 * -inf makes NaN downstream."""
    from tensor_inspector.demo.make_demo import DEMO_DIR

    code, out, _err = run(capsys, "trace", DEMO_DIR / "entropy_nan.pt2", "--json")
    document = json.loads(out)
    assert code == 3
    assert document["first_nonfinite"] == {"id": "graph/log", "inputs": ["graph/softmax"]}
    by_id = {node["id"]: node for node in document["nodes"]}
    assert by_id["graph/softmax"]["zeros"] > 0 and by_id["graph/softmax"]["nan"] == 0
    assert by_id["graph/mul"]["nan"] > 0 and by_id["graph/mean"]["nan"] == 1


def test_progress_on_a_terminal_is_one_line_that_is_cleared(capsys):
    from tensor_inspector.cli import _TraceProgress

    progress = _TraceProgress()
    progress(1, 850)
    progress(2, 850)  # within 0.2 s of the last: not shown
    progress(850, 850)  # the last always is
    progress.clear()
    err = capsys.readouterr().err
    assert err.split("\r")[1:3] == ["tracing: 1 / 850 nodes", "tracing: 850 / 850 nodes"]
    assert err.endswith("\r") and "\n" not in err
