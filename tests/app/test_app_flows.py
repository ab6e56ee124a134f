"""Window flows that need a real framework file: trust on open, feeds for computed nodes."""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import numpy as np
import pytest

from tensor_inspector.app.window.main_window import MainWindow
from tensor_inspector.app.window.settings import settings
from tensor_inspector.backends import TrustRequired


@pytest.fixture
def window(qtbot):
    settings().clear()
    win = MainWindow()
    qtbot.addWidget(win)
    win.auto_select = False
    yield win
    win.worker.shutdown()


@pytest.fixture
def needs_trust(tmp_path: Path) -> Path:
    path = tmp_path / "counts.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"weights": np.arange(4.0), "counts": collections.Counter("aab")}, fh, protocol=4)
    return path


def test_a_refused_trust_prompt_leaves_the_file_closed_with_a_message(qtbot, window, needs_trust):
    asked: list[tuple[Path, TrustRequired]] = []
    window.trust_prompt = lambda path, err: asked.append((path, err)) or False
    with qtbot.waitSignal(window.open_error) as failed:
        window.open_paths([needs_trust])
    assert len(asked) == 1 and asked[0][0] == needs_trust
    assert "collections.Counter" in asked[0][1].globals_needed
    assert "not trusted" in failed.args[1]
    assert window.files == {}


def test_trusting_reopens_the_file_with_trust(qtbot, window, needs_trust):
    asked: list[Path] = []
    window.trust_prompt = lambda path, err: asked.append(path) or True
    with qtbot.waitSignal(window.file_opened):
        window.open_paths([needs_trust])
    assert asked == [needs_trust]
    with qtbot.waitSignal(window.value_shown):
        assert window.select_node("weights")
    np.testing.assert_array_equal(window.view.array(), np.arange(4.0))


@pytest.fixture(scope="module")
def exported_program(tmp_path_factory) -> tuple[Path, object]:
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x):
            return torch.relu(self.lin(x)) * 2

    torch.manual_seed(0)
    net = Net().eval()
    path = tmp_path_factory.mktemp("pt2") / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(1, 3),)), str(path))
    return path, net


def test_computed_node_shows_feeds_and_reevaluates_with_them(qtbot, window, exported_program):
    import torch

    path, net = exported_program
    with qtbot.waitSignal(window.file_opened):
        window.open_paths([path])
    with qtbot.waitSignal(window.value_shown, timeout=60_000):
        assert window.select_node("graph/mul")
    panel = window.feeds_panel
    assert not panel.isHidden()
    assert [s.name for s in panel.specs()] == ["x"]
    with torch.no_grad():
        expected_zero = net(torch.zeros(1, 3)).numpy()
        expected_ones = net(torch.ones(1, 3)).numpy()
    np.testing.assert_allclose(window.view.array(), expected_zero, rtol=1e-6)
    panel.row_widgets("x").fill.setCurrentText("ones")
    with qtbot.waitSignal(window.value_shown, timeout=60_000):
        panel.evaluate_button.click()
    np.testing.assert_allclose(window.view.array(), expected_ones, rtol=1e-6)
    # the chosen feeds stay with the file: another node of the graph uses them too
    with qtbot.waitSignal(window.value_shown, timeout=60_000):
        window.select_node("graph/linear")
    with torch.no_grad():
        np.testing.assert_allclose(window.view.array(), net.lin(torch.ones(1, 3)).numpy(), rtol=1e-6)
    # a stored tensor needs no inputs: the panel hides
    with qtbot.waitSignal(window.value_shown, timeout=60_000):
        window.select_node("lin.weight")
    assert panel.isHidden()
