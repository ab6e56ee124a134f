"""Inputs of a graph node: shown before evaluating, kept with the reason when evaluating fails,
and a typed input evaluated after a pause without pressing Evaluate."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from window_helpers import window  # noqa: F401  (window: fixture)

from tensor_inspector.backends.base import seeded_normal
from tensor_inspector.core.nodes import NodeKind

torch = pytest.importorskip("torch")

WAIT_MS = 60_000  # the reader imports torch on the first TorchScript file


class _SampleRate(torch.nn.Module):
    """Like a voice-activity model: only one chunk size is accepted, and zero is not it."""

    def forward(self, x: torch.Tensor, n: int) -> torch.Tensor:
        if n != 512:
            raise Exception("Provided number of samples is " + str(n) + " (Supported values: 512 for 16000)")
        return x * 2.0 + n


@pytest.fixture
def sample_rate_model(tmp_path):
    module = torch.jit.script(_SampleRate())
    path = tmp_path / "vad.pt"
    module.save(str(path))
    return path, module


def _open(qtbot, window, path) -> int:
    with qtbot.waitSignal(window.file_opened, timeout=WAIT_MS) as opened:
        window.open_paths([path], trust=True)  # TorchScript runs the file's code
    return opened.args[0]


def test_inputs_show_before_evaluating_stay_on_failure_and_typing_evaluates(qtbot, window, sample_rate_model):
    path, module = sample_rate_model
    handle = _open(qtbot, window, path)
    [output] = [n for n in window.documents[handle].nodes if n.kind is NodeKind.COMPUTED][-1:]
    panel = window.feeds_panel
    events: list[tuple] = []
    window.worker.feed_specs_ready.connect(  # after the window's own slot: the panel is filled
        lambda rid, specs: events.append(
            ("inputs", panel.isHidden(), [(s.name, s.shape) for s in panel.specs()])
        )
    )
    window.value_failed.connect(lambda message: events.append(("failed", message)))
    window.value_shown.connect(lambda node_id: events.append(("shown", node_id)))

    with qtbot.waitSignal(window.value_failed, timeout=WAIT_MS):
        assert window.select_node(output.id, handle)
    # the inputs were on screen before the evaluation with the defaults (n = 0) failed
    assert events[0] == ("inputs", False, [("x", None), ("n", ())])
    assert events[1][0] == "failed" and len(events) == 2
    reason = "Provided number of samples is 0 (Supported values: 512 for 16000)"
    assert reason in events[1][1]
    # the panel stays, with the reason in full beside the inputs; the view says it too
    assert not panel.isHidden() and reason in panel.error()
    assert reason in window.view.message_label.text()
    assert "int64" in panel.row_widgets("n").spec.dtype

    # typing the value is enough: no Evaluate
    clicks: list[bool] = []
    panel.evaluate_button.clicked.connect(clicks.append)
    field = panel.row_widgets("n").value
    field.setFocus()
    with qtbot.waitSignal(
        window.value_shown, timeout=WAIT_MS, check_params_cb=lambda node: node == output.id
    ):
        qtbot.keyClicks(field, "512")
    assert clicks == []
    x = seeded_normal("x", (), np.dtype(np.float32))  # the default of a float input: seeded normal
    with torch.no_grad():
        expected = module(torch.from_numpy(x), 512).numpy()
    np.testing.assert_allclose(window.view.array(), expected, rtol=1e-6)
    assert float(expected) != 512.0  # x is not zero
    assert not panel.isHidden() and panel.error() == ""
    assert field.text() == "512" and window.documents[handle].feeds["n"].dtype == np.int64


def test_a_wrong_typed_input_is_said_in_the_panel_and_not_evaluated(qtbot, window, sample_rate_model):
    path, _module = sample_rate_model
    handle = _open(qtbot, window, path)
    [output] = [n for n in window.documents[handle].nodes if n.kind is NodeKind.COMPUTED][-1:]
    panel = window.feeds_panel
    with qtbot.waitSignal(window.value_failed, timeout=WAIT_MS):
        assert window.select_node(output.id, handle)
    requests = window.evaluate_controller.pending_request()
    field = panel.row_widgets("n").value
    qtbot.keyClicks(field, "1.5")
    qtbot.waitUntil(lambda: "takes int64 values" in panel.error(), timeout=WAIT_MS)
    assert window.evaluate_controller.pending_request() == requests  # nothing was sent
    # clearing the field returns to the file's default
    field.clear()
    qtbot.keyClicks(field, "7")
    qtbot.keyClick(field, Qt.Key.Key_Backspace)
    assert panel.row_widgets("n").fill.currentText() == "default" and panel.feeds() == {}


def test_an_input_typed_just_before_selecting_another_node_is_kept(qtbot, window, sample_rate_model):
    path, module = sample_rate_model
    handle = _open(qtbot, window, path)
    first, output = [n for n in window.documents[handle].nodes if n.kind is NodeKind.COMPUTED][-2:]
    panel = window.feeds_panel
    with qtbot.waitSignal(window.value_failed, timeout=WAIT_MS):
        assert window.select_node(output.id, handle)
    failures: list[str] = []
    window.value_failed.connect(failures.append)
    qtbot.keyClicks(panel.row_widgets("n").value, "512")
    # selected before the pause is over: the other node is evaluated with n = 512 (it fails otherwise)
    with qtbot.waitSignal(window.value_shown, timeout=WAIT_MS, check_params_cb=lambda node: node == first.id):
        assert window.select_node(first.id, handle)
    x = torch.from_numpy(seeded_normal("x", (), np.dtype(np.float32)))
    np.testing.assert_allclose(window.view.array(), (x * 2.0).numpy(), rtol=1e-6)
    assert failures == []  # not evaluated first with the default n = 0
    assert panel.row_widgets("n").value.text() == "512" and panel.error() == ""
