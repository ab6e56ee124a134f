"""--isolate: the command line through sandboxed reader processes gives the same answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from misbehaving_backends import enable, make

from tensor_inspector.cli import main

DEMO = Path(__file__).resolve().parents[2] / "tensor_inspector" / "resources" / "demo"


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_show_export_import_through_the_reader(tmp_path, capsys):
    np.save(tmp_path / "w.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    code, out, _ = run(capsys, "ls", tmp_path / "w.npy", "--json", "--isolate")
    assert code == 0 and json.loads(out) == [
        {"id": "array", "kind": "tensor", "dtype": "float32", "shape": [2, 3]}
    ]
    code, out, _ = run(capsys, "show", tmp_path / "w.npy", "--json", "--slice", "1,:", "--isolate")
    assert code == 0 and json.loads(out)["max"] == 5.0 and json.loads(out)["shape"] == [3]
    code, _, _ = run(capsys, "export", tmp_path / "w.npy", "-o", tmp_path / "out.npy", "--isolate")
    assert code == 0 and np.load(tmp_path / "out.npy").tolist() == [[0, 1, 2], [3, 4, 5]]
    np.save(tmp_path / "new.npy", np.ones((2, 3), dtype=np.float32))
    code, _, err = run(
        capsys,
        "import",
        tmp_path / "w.npy",
        "array",
        tmp_path / "new.npy",
        "-o",
        tmp_path / "w2.npy",
        "--isolate",
    )
    assert code == 0, err
    assert np.load(tmp_path / "w2.npy").sum() == 6


def test_a_graph_node_is_evaluated_in_the_reader(capsys):
    code, out, err = run(capsys, "ls", DEMO / "mlp_savedmodel", "--json", "--isolate")
    assert code == 0, err
    node = next(n["id"] for n in json.loads(out) if n["kind"] == "computed" and n["dtype"] == "float32")
    code, out, err = run(capsys, "show", DEMO / "mlp_savedmodel", node, "--json", "--isolate")
    assert code == 0, err
    assert json.loads(out)["id"] == node


def test_a_crashing_reader_is_one_sentence_and_exit_code_1(tmp_path, capsys, monkeypatch):
    enable(monkeypatch)
    code, _, err = run(capsys, "show", make(tmp_path, "segfault"), "x", "--isolate")
    assert code == 1
    assert err.strip() == (
        "tensor-inspector: error: Reading segfault.bad crashed the reader (SIGSEGV): the file is probably damaged."
    )


def test_debug_shows_what_the_reader_saw(tmp_path, capsys):
    code, _, err = run(capsys, "show", tmp_path / "missing.npy", "--isolate", "--debug")
    assert code == 1
    assert "In the reader process:" in err and "Traceback" in err and "registry.py" in err
    assert err.strip().endswith(f"tensor-inspector: error: {tmp_path / 'missing.npy'} does not exist.")
