"""--feed on the command line: JSON literals take the input's dtype; a failing graph says the model's reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tensor_inspector.cli import main

torch = pytest.importorskip("torch")


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


class _FloorDivide(torch.nn.Module):
    def forward(self, a, b):
        return a // b  # integer division for int64 tensors, floor of a true division for floats


class _Chunk(torch.nn.Module):
    def forward(self, x: torch.Tensor, n: int) -> torch.Tensor:
        if n != 512:
            raise Exception("Provided number of samples is " + str(n) + " (Supported values: 512 for 16000)")
        return x[:n] * 2


def _computed(capsys, path) -> str:
    code, out, err = run(capsys, "ls", path, "--json", "--trust")
    assert code == 0, err
    return [row["id"] for row in json.loads(out) if row["kind"] == "computed"][-1]


def _export(capsys, tmp_path, path, node, *feeds) -> np.ndarray:
    out = tmp_path / "out.npy"
    args = ["export", path, node, "-o", out, "--trust"]
    for feed in feeds:
        args += ["--feed", feed]
    code, _, err = run(capsys, *args)
    assert code == 0, err
    return np.load(out)


def test_torch_export_int64_input_stays_int64(capsys, tmp_path):
    program = torch.export.export(_FloorDivide(), (torch.tensor([9, 9]), torch.tensor([2, 2])))
    path = tmp_path / "div.pt2"
    torch.export.save(program, str(path))
    got = _export(capsys, tmp_path, path, _computed(capsys, path), "a=[7,4]", "b=[2,3]")
    expected = _FloorDivide()(torch.tensor([7, 4]), torch.tensor([2, 3])).numpy()
    assert got.dtype == np.int64 and got.tolist() == expected.tolist() == [3, 1]


def test_torchscript_int_tensor_input_stays_int64(capsys, tmp_path):
    module = torch.jit.script(_FloorDivide())
    path = tmp_path / "div.pt"
    module.save(str(path))
    got = _export(capsys, tmp_path, path, _computed(capsys, path), "a=[7,4]", "b=[2,3]")
    expected = module(torch.tensor([7, 4]), torch.tensor([2, 3])).numpy()
    assert got.dtype == expected.dtype == np.int64 and got.tolist() == expected.tolist() == [3, 1]


def test_torchscript_int_argument_is_typed_and_refuses_fractions(capsys, tmp_path):
    module = torch.jit.script(_Chunk())
    path = tmp_path / "chunk.pt"
    module.save(str(path))
    node = _computed(capsys, path)
    x = np.arange(600, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    got = _export(capsys, tmp_path, path, node, f"x=@{tmp_path / 'x.npy'}", "n=512")
    np.testing.assert_array_equal(got, module(torch.from_numpy(x), 512).numpy())
    code, _, err = run(capsys, "show", path, node, "--trust", "--feed", "n=512.5")
    assert code == 1 and "'n' takes int64 values, not 512.5" in err


def test_the_models_own_reason_is_the_error_sentence(capsys, tmp_path):
    module = torch.jit.script(_Chunk())
    path = tmp_path / "chunk.pt"
    module.save(str(path))
    node = _computed(capsys, path)
    code, out, err = run(capsys, "show", path, node, "--trust", "--feed", "n=256")
    reason = "Provided number of samples is 256 (Supported values: 512 for 16000)"
    assert code == 1 and out == ""
    [line] = err.strip().splitlines()  # one sentence, no traceback
    assert reason in line and "Traceback" not in err
    code, _, debug = run(capsys, "show", path, node, "--trust", "--feed", "n=256", "--debug")
    assert code == 1 and reason in debug and len(debug.splitlines()) > 3  # --debug adds the details
