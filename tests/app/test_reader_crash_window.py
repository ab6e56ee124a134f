"""The window survives its reader: a crash or a hang in a backend stops only the reader process.

The misbehaving backend (tests/misbehaving_backends.py) is loaded into the reader processes
through TENSOR_INSPECTOR_BACKENDS; it really kills the reader with SIGSEGV or really hangs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from misbehaving_backends import enable, make
from window_helpers import open_file, show, window  # noqa: F401  (window: fixture)

from tensor_inspector.app.window.main_window import MainWindow

DEMO = Path(__file__).resolve().parents[2] / "tensor_inspector" / "resources" / "demo"


@pytest.fixture
def misbehaving(monkeypatch):
    enable(monkeypatch)  # before the window starts its readers


def edit(win: MainWindow, row: int, col: int, text: str) -> None:
    model = win.view.table.array_model
    assert model.setData(model.index(row, col), text), win.statusBar().currentMessage()


def test_a_segfaulting_reader_leaves_other_files_and_unsaved_edits_intact(
    qtbot, misbehaving, window, tmp_path
):
    np.save(tmp_path / "good.npy", np.arange(6.0).reshape(2, 3))
    good = open_file(qtbot, window, tmp_path / "good.npy")
    show(qtbot, window, "array", good)
    edit(window, 0, 1, "42")
    bad = open_file(qtbot, window, make(tmp_path, "segfault"))

    with qtbot.waitSignal(window.value_failed, timeout=30_000) as failed:
        assert window.select_node("x", bad)
    sentence = "Reading segfault.bad crashed the reader (SIGSEGV): the file is probably damaged."
    assert failed.args[0] == sentence
    assert sentence in window.view.message_label.text()

    # the edit lives in the window, the other file is read again by a new reader
    shown = show(qtbot, window, "array", good)
    assert shown.tolist() == [[0.0, 42.0, 2.0], [3.0, 4.0, 5.0]]
    assert window.documents.get(good).is_modified()
    np.save(tmp_path / "next.npy", np.ones(2))
    following = open_file(qtbot, window, tmp_path / "next.npy")
    assert show(qtbot, window, "array", following).tolist() == [1.0, 1.0]


def test_escape_stops_a_hanging_read_within_two_seconds(qtbot, misbehaving, window, tmp_path):
    np.save(tmp_path / "good.npy", np.arange(3.0))
    good = open_file(qtbot, window, tmp_path / "good.npy")
    hang = open_file(qtbot, window, make(tmp_path, "hang"))
    assert window.select_node("x", hang)
    qtbot.waitUntil(lambda: not window.is_idle())
    qtbot.wait(300)  # the read is running in the reader now
    hanging_reader = window.worker.session.untrusted_reader.pid()
    started = time.monotonic()
    window.cancel_action.trigger()  # Esc
    assert window.is_idle()
    qtbot.waitUntil(lambda: window.worker.session.untrusted_reader.pid() != hanging_reader, timeout=2000)
    assert time.monotonic() - started < 2.0
    assert show(qtbot, window, "array", good).tolist() == [0.0, 1.0, 2.0]


GUI_ONLY = r"""
import json, sys, time
from tensor_inspector.app.window.launch import make_app
app = make_app()
from tensor_inspector.app.window.main_window import MainWindow
w = MainWindow(persist=False)
w.auto_select = False
w.show()
shown = []
w.value_shown.connect(shown.append)
w.value_failed.connect(lambda m: sys.exit("failed: " + m))

def wait(cond):
    end = time.monotonic() + 180
    while not cond() and time.monotonic() < end:
        app.processEvents(); time.sleep(0.005)
    assert cond()

for path in sys.argv[1:]:
    before = set(w.files)
    w.open_paths([path])
    wait(lambda: set(w.files) != before)
    handle = (set(w.files) - before).pop()
    node = next(n for n in w.files[handle].nodes if n.kind.value == "computed" and n.dtype)
    count = len(shown)
    w.select_node(node.id, handle)
    wait(lambda: len(shown) > count)
w.worker.shutdown()
print(json.dumps(sorted(m for m in ("torch", "tensorflow", "keras", "h5py") if m in sys.modules)))
"""


def test_the_window_process_never_imports_a_framework(tmp_path):
    """A SavedModel node and a torch.export node evaluated in the window: no framework in its process."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", GUI_ONLY, str(DEMO / "mlp_savedmodel"), str(DEMO / "demo_program.pt2")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
