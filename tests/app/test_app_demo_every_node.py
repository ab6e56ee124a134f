"""Every value node of every bundled demo file shows in the window: read or evaluated, no error.

The one exception is a node in a branch that the inputs do not take: it must say so.
"""

import re

import pytest

from tensor_inspector.app.window.launch import demo_files
from tensor_inspector.app.window.main_window import MainWindow

WAIT_MS = 120_000
NOT_TAKEN = re.compile(
    r"does not run for these inputs|not taken for these inputs|not computed for these inputs"
)


@pytest.fixture
def window(qtbot):
    win = MainWindow(persist=False)
    win.auto_select = False
    win.trust_prompt = lambda path, exc: pytest.fail(f"demo file {path} asked for trust")
    qtbot.addWidget(win)
    win.show()
    yield win
    win.worker.shutdown()


def test_every_demo_node_shows_a_value(qtbot, window):
    files = demo_files()
    assert len(files) >= 5  # npz, safetensors, torch checkpoint, torch.export, SavedModel
    with qtbot.waitSignals([window.file_opened] * len(files), timeout=WAIT_MS):
        window.open_paths(files)
    failures, shown, not_taken = [], 0, []
    window.value_failed.connect(failures.append)
    for handle, opened in list(window.files.items()):
        for node in (n for n in opened.nodes if n.has_value):
            with qtbot.waitSignals([window.value_shown], timeout=WAIT_MS, raising=False) as blocker:
                window.tree.select(handle, node.id)
            qtbot.waitUntil(lambda: window.view.stats_ready() or bool(failures), timeout=WAIT_MS)
            if failures and NOT_TAKEN.search(failures[-1]):
                not_taken.append(node.id)
                failures.clear()
                continue
            assert blocker.signal_triggered and not failures, (opened.path.name, node.id, failures)
            shown += 1
    assert shown > 100
    assert all("branch" in node_id for node_id in not_taken), not_taken
