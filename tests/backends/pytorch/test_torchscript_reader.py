"""A TorchScript value inside control flow, through the reader process and the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_fixtures import record_calls, save_scripted, vad_like

from tensor_inspector.backends import open_path
from tensor_inspector.cli import main


def test_a_loop_value_is_evaluated_in_the_reader_process(tmp_path: Path) -> None:
    from tensor_inspector.session.isolated import IsolatedSession

    model = vad_like()
    path = save_scripted(model, tmp_path / "vad.pt")
    calls = record_calls(model)
    x = torch.randn(1, 512, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        model(x, 16000)
    session = IsolatedSession()
    try:
        info = session.open(path, trust=True)
        cell = [n for n in info.nodes if n.metadata.get("op") == "aten::lstm_cell"][0]
        assert "last iteration" in cell.metadata["note"]
        value = session.value(info.handle, cell.id, feeds={"x": x.numpy(), "sr": np.array(16000)}, trust=True)
    finally:
        session.shutdown()
    np.testing.assert_allclose(value.array, calls["cell"][-1]["outputs"][0].numpy(), rtol=1e-5)


def test_the_command_line_says_the_models_reason_and_debug_prints_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = save_scripted(vad_like(), tmp_path / "vad.pt")
    np.save(tmp_path / "x.npy", np.zeros((1, 256), np.float32))
    with open_path(path, trust=True) as source:
        node = next(n.id for n in source.nodes.values() if n.metadata.get("op") == "aten::sigmoid")
    args = ["show", str(path), node, "--trust", "--feed", f"x=@{tmp_path / 'x.npy'}", "--feed", "sr=16000"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("tensor-inspector: error: Exception: Provided number of samples is 256")
    assert "Traceback" not in err
    assert main([*args, "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback of TorchScript" in err and "Provided number of samples is 256" in err
