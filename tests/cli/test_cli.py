"""The CLI contract scripts rely on: names, JSON keys, exit codes, exact exports."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file as save_torch

from tensor_inspector.cli import main
from tensor_inspector.core.dtypes import all_test_dtypes, numpy_dtype
from tensor_inspector.core.npy_format import write_npy


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, w=np.arange(24, dtype=np.float32).reshape(2, 3, 4), n=np.array([1.0, np.nan, np.inf, 0.0]))
    return path


def test_ls_json_keys(capsys, npz):
    code, out, _ = run(capsys, "ls", npz, "--json")
    assert code == 0
    rows = json.loads(out)
    assert rows == [
        {"id": "w", "kind": "tensor", "dtype": "float32", "shape": [2, 3, 4]},
        {"id": "n", "kind": "tensor", "dtype": "float64", "shape": [4]},
    ]


def test_ls_table(capsys, npz):
    code, out, _ = run(capsys, "ls", npz)
    assert code == 0 and "w" in out and "2x3x4" in out and "f32" in out


def test_show_json_with_slice(capsys, npz):
    code, out, _ = run(capsys, "show", npz, "w", "--slice", "1,:,1:3", "--json")
    assert code == 0
    d = json.loads(out)
    assert set(d) == {"id", "dtype", "shape", "min", "max", "mean", "std", "nan", "inf", "zeros"}
    expected = np.arange(24, dtype=np.float32).reshape(2, 3, 4)[1, :, 1:3]
    assert d["shape"] == [3, 2] and d["min"] == expected.min() and d["max"] == expected.max()
    assert d["mean"] == pytest.approx(expected.mean())


def test_show_counts_nan_inf_zero(capsys, npz):
    code, out, _ = run(capsys, "show", npz, "n", "--json")
    d = json.loads(out)
    assert (d["nan"], d["inf"], d["zeros"], d["max"]) == (1, 1, 1, 1.0)


def test_show_text_preview(capsys, npz):
    code, out, _ = run(capsys, "show", npz, "w")
    assert code == 0 and "dtype float32" in out and "[[[" in out


@pytest.mark.parametrize("dtype", all_test_dtypes(), ids=lambda d: d.name)
def test_export_is_bit_identical_for_every_dtype(capsys, tmp_path, dtype):
    array = (np.arange(-6, 6).reshape(3, 4) * 1.75).astype(dtype)
    with open(tmp_path / "in.npy", "wb") as fh:
        write_npy(fh, array)
    code, _, err = run(capsys, "export", tmp_path / "in.npy", "array", "-o", tmp_path / "out.npy")
    assert code == 0, err
    back = np.load(tmp_path / "out.npy")
    assert back.dtype == array.dtype and back.tobytes() == array.tobytes()


def test_export_bf16_from_safetensors_stays_bf16(capsys, tmp_path):
    tensor = torch.randn(4, 4).to(torch.bfloat16)
    save_torch({"layer.w": tensor}, tmp_path / "m.safetensors")
    code, _, _ = run(
        capsys, "export", tmp_path / "m.safetensors", "layer.w", "-o", tmp_path / "w.npy", "--slice", "1:3"
    )
    assert code == 0
    back = np.load(tmp_path / "w.npy")
    assert back.dtype == numpy_dtype("bfloat16")
    assert back.tobytes() == tensor[1:3].view(torch.int16).numpy().tobytes()


BAD_INPUTS = {
    "object.npy": lambda p: np.save(p, np.array([None, {}], dtype=object), allow_pickle=True),
    "pickle.npy": lambda p: p.write_bytes(pickle.dumps(ZeroDivisionError("not an array"))),
    "truncated.npy": lambda p: p.write_bytes(_npy_bytes(np.arange(100.0))[:-50]),
    "shortdata.npy": lambda p: p.write_bytes(_npy_bytes(np.arange(100.0))[:200]),
    "header.safetensors": lambda p: p.write_bytes((10**6).to_bytes(8, "little") + b'{"a":1}'),
    "empty.npz": lambda p: p.write_bytes(b""),
    "folder": lambda p: (p.mkdir(), (p / "readme.txt").write_text("nothing here")),
    "missing.npy": lambda p: None,
}


def _npy_bytes(array):
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_inputs_give_one_sentence_and_exit_1(capsys, tmp_path, name):
    path = tmp_path / name
    BAD_INPUTS[name](path)
    code, out, err = run(capsys, "show", path)
    assert code == 1
    assert err.startswith("tensor-inspector: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_unrecognised_file_lists_supported_formats(capsys, tmp_path):
    (tmp_path / "notes.bin").write_bytes(b"hello world, not a tensor")
    code, _, err = run(capsys, "ls", tmp_path / "notes.bin")
    assert code == 1 and "Supported:" in err and "safetensors" in err


def test_unknown_node_and_debug_traceback(capsys, npz):
    code, _, err = run(capsys, "show", npz, "nope")
    assert code == 1 and "No node named 'nope'" in err
    code, _, err = run(capsys, "show", npz, "nope", "--debug")
    assert code == 1 and "Traceback" in err


def test_usage_error_exits_2(capsys, npz):
    with pytest.raises(SystemExit) as exc:
        main(["export", str(npz), "w"])  # -o missing
    assert exc.value.code == 2


def test_import_replaces_one_tensor_and_checks_shape(capsys, tmp_path, npz):
    new = np.full((2, 3, 4), 7, np.float32)
    np.save(tmp_path / "new.npy", new)
    code, _, err = run(capsys, "import", npz, "w", tmp_path / "new.npy", "-o", tmp_path / "out.npz")
    assert code == 0, err
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(out["w"], new)
    np.testing.assert_array_equal(out["n"], np.load(npz)["n"])
    np.save(tmp_path / "wrong.npy", np.zeros((4, 3), np.float32))
    code, _, err = run(capsys, "import", npz, "w", tmp_path / "wrong.npy", "-o", tmp_path / "o2.npz")
    assert code == 1 and "Shape mismatch" in err and not (tmp_path / "o2.npz").exists()
    np.save(tmp_path / "f64.npy", np.zeros((2, 3, 4)))
    code, _, err = run(capsys, "import", npz, "w", tmp_path / "f64.npy", "-o", tmp_path / "o3.npz")
    assert code == 1 and "--cast" in err
    code, _, err = run(capsys, "import", npz, "w", tmp_path / "new.npy", "-o", npz)
    assert code == 1 and "--in-place" in err


def test_import_in_place_keeps_backup(capsys, tmp_path, npz):
    original = npz.read_bytes()
    np.save(tmp_path / "new.npy", np.ones((2, 3, 4), np.float32))
    code, _, err = run(capsys, "import", npz, "w", tmp_path / "new.npy", "--in-place")
    assert code == 0, err
    assert (tmp_path / "m.npz.bak").read_bytes() == original
    np.testing.assert_array_equal(np.load(npz)["w"], np.ones((2, 3, 4)))


def test_console_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "tensor_inspector", "ls", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "--json" in result.stdout
