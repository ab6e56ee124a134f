"""Every value node of every bundled demo file shows in the window: read or evaluated, no error."""

import pytest

from tensor_inspector.app.window.launch import demo_files
from tensor_inspector.app.window.main_window import MainWindow

WAIT_MS = 120_000


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
    failures, shown = [], 0
    window.value_failed.connect(failures.append)
    for handle, opened in list(window.files.items()):
        for node in (n for n in opened.nodes if n.has_value):
            with qtbot.waitSignals([window.value_shown], timeout=WAIT_MS, raising=False) as blocker:
                window.tree.select(handle, node.id)
            qtbot.waitUntil(lambda: window.view.stats_ready() or bool(failures), timeout=WAIT_MS)
            assert blocker.signal_triggered and not failures, (opened.path.name, node.id, failures)
            shown += 1
    assert shown > 100
