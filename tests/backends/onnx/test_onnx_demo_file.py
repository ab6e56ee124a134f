"""The bundled ONNX demo file is what its builder writes, and every node of it evaluates."""

from __future__ import annotations

import numpy as np
import onnx_fixtures

from tensor_inspector.backends.base import NodeKind
from tensor_inspector.backends.registry import open_path
from tensor_inspector.demo.make_demo import DEMO_DIR
from tensor_inspector.demo.onnx_demo import DEMO_NAME, make_demo_onnx


def test_bundled_demo_is_current_and_evaluates(tmp_path):
    bundled = DEMO_DIR / DEMO_NAME
    [built] = make_demo_onnx(tmp_path)
    assert (
        bundled.read_bytes() == built.read_bytes()
    )  # rebuild with python -m tensor_inspector.demo.make_demo
    assert bundled.stat().st_size < 100_000
    with open_path(bundled) as source:
        feeds = source.default_feeds("prediction")
        top = [n.id for n in source.nodes.values() if n.kind is NodeKind.COMPUTED and n.parent is None]
        expected = onnx_fixtures.ort_values(bundled, [*top, "prediction"], feeds)
        for name in [*top, "prediction"]:
            np.testing.assert_array_equal(source.get(name, feeds=feeds), expected[name], err_msg=name)
        assert {n.name for n in source.children("sharpen_if_confident")} >= {"then_branch", "else_branch"}
