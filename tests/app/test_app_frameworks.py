"""The worker drives real TensorFlow and torch graphs through the reader process, repeatedly.

Regression: when frameworks ran in the window's process, the second TensorFlow call
on a Qt pool thread crashed it (pybind11 kept a stale Python thread state). Frameworks
now run only in the reader, and the worker's Qt pool threads just wait on its socket.
"""

from pathlib import Path

import numpy as np
import pytest

from tensor_inspector.app.worker import Worker
from tensor_inspector.backends import open_path

DEMO = Path(__file__).parents[2] / "tensor_inspector" / "resources" / "demo"
WAIT_MS = 120_000


@pytest.fixture
def worker(qtbot):
    w = Worker()
    yield w
    w.shutdown()


def open_file(qtbot, worker, path):
    with qtbot.waitSignal(worker.opened, timeout=WAIT_MS) as blocker:
        worker.open(path)
    return blocker.args[1]


def evaluate(qtbot, worker, handle, node_id, feeds=None):
    with qtbot.waitSignal(worker.result, timeout=WAIT_MS) as blocker:
        worker.evaluate(handle, node_id, feeds=feeds)
    return blocker.args[1].array


@pytest.mark.parametrize(
    "path, nodes",
    [
        (
            DEMO / "mlp_savedmodel",
            [
                "serving_default/StatefulPartitionedCall/hidden/Relu:0",
                "serving_default/StatefulPartitionedCall/probabilities:0",
                "variables/hidden/kernel",
            ],
        ),
        (DEMO / "demo_program.pt2", ["graph/relu", "graph/linear", "graph/conv2d"]),
    ],
    ids=["tensorflow", "torch.export"],
)
def test_graph_nodes_evaluate_repeatedly_from_worker_threads(qtbot, worker, path, nodes):
    opened = open_file(qtbot, worker, path)
    direct = open_path(path)
    for round_ in range(2):  # the second round reuses the worker's threads
        for node_id in nodes:
            got = evaluate(qtbot, worker, opened.handle, node_id)
            expected = direct.get(node_id, feeds=direct.default_feeds(node_id) or None)
            np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=f"{node_id} round {round_}")


def test_feeds_reach_the_tensorflow_graph(qtbot, worker):
    opened = open_file(qtbot, worker, DEMO / "mlp_savedmodel")
    features = np.linspace(-1, 1, 32, dtype=np.float32).reshape(2, 16)
    probs = evaluate(
        qtbot,
        worker,
        opened.handle,
        "serving_default/StatefulPartitionedCall/probabilities:0",
        feeds={"features": features},
    )
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("answer", [False, True], ids=["refused", "trusted"])
def test_evaluating_a_saved_model_that_writes_files_asks_for_trust(qtbot, tmp_path, answer):
    import tf_fixtures

    from tensor_inspector.app.window.main_window import MainWindow

    canary = tmp_path / "canary.txt"
    model = tf_fixtures.tf2_saved_model(tmp_path, write_canary=canary)
    window = MainWindow(persist=False)
    window.auto_select = False
    asked = []
    window.trust_prompt = lambda path, exc: asked.append((path, str(exc))) or answer
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.file_opened, timeout=WAIT_MS):
        window.open_paths([model])
    signal = window.value_shown if answer else window.value_failed
    with qtbot.waitSignal(signal, timeout=WAIT_MS):
        window.select_node("scaled/Identity_1:0")
    assert len(asked) == 1 and asked[0][0] == model and "trust" in asked[0][1]
    if answer:  # the graph ran, with the file's default feeds (s: a seeded normal value)
        from tensor_inspector.backends.base import seeded_normal

        assert canary.read_text() == f"{float(seeded_normal('s', (), np.dtype(np.float32))):.6f}"
        assert window.view.array().shape == (1, 4) and np.isfinite(window.view.array()).all()
    else:
        assert not canary.exists()
        assert "not trusted" in window.statusBar().currentMessage()
    window.worker.shutdown()
