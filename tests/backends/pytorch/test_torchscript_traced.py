"""Traced TorchScript: submodule calls are grouped and every value equals torch's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch_fixtures import record_calls, save_traced, traced_net

from tensor_inspector.backends import NodeKind, open_path


def test_traced_submodules_are_grouped_and_evaluated(tmp_path: Path) -> None:
    model = traced_net()
    example = torch.randn(2, 1, 64, generator=torch.Generator().manual_seed(5))
    path = save_traced(model, example, tmp_path / "traced.pt")
    calls = record_calls(model)
    x = torch.randn(3, 1, 64, generator=torch.Generator().manual_seed(6))  # another batch size
    with torch.no_grad():
        out = model(x)
    with open_path(path, trust=True) as source:
        nodes = {n.id: n for n in source.nodes.values() if n.kind is NodeKind.COMPUTED}
        convs = [i for i, n in nodes.items() if n.metadata["op"] == "aten::_convolution"]
        assert [nodes[i].metadata["module"] for i in convs] == ["encoder.conv1", "encoder.conv2"]
        assert all(i.startswith("forward/encoder/") for i in convs)
        assert [s.name for s in source.feed_specs()] == ["x"]
        values = {i: source.evaluate(i, {"x": x.numpy()}) for i in nodes}
        relus = [i for i in convs + list(nodes) if nodes[i].metadata["op"] == "aten::relu"]
        (in_place,) = [i for i in nodes if nodes[i].metadata["op"] == "aten::mul_"]
        (linear,) = [i for i in nodes if nodes[i].metadata["op"] == "aten::linear"]
    np.testing.assert_allclose(values[convs[0]], calls["encoder.conv1"][0]["outputs"][0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(values[convs[1]], calls["encoder.conv2"][0]["outputs"][0].numpy(), rtol=1e-5)
    encoder_out = calls["encoder"][0]["outputs"][0]
    # the encoder's relu as it was computed, before the in-place mul_ changed that tensor
    np.testing.assert_allclose(values[relus[-1]], encoder_out.numpy(), rtol=1e-5)
    np.testing.assert_allclose(values[in_place], (encoder_out * 2.0).numpy(), rtol=1e-5)
    np.testing.assert_allclose(values[linear], out.numpy(), rtol=1e-5)
