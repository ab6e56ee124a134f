"""Startup and headless rendering, each in a fresh interpreter (what users actually run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from tensor_inspector.app.window.launch import SCREENSHOT_SIZE, demo_files


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("QT_QPA_PLATFORM", None)  # launch must pick offscreen by itself when there is no display
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )


def test_window_is_shown_before_any_framework_is_imported(tmp_path):
    code = (
        "import sys\n"
        "from tensor_inspector.app.window.launch import make_app\n"
        "app = make_app()\n"
        "from tensor_inspector.app.window.main_window import MainWindow\n"
        "w = MainWindow(persist=False); w.show(); app.processEvents()\n"
        "import tensor_inspector.backends\n"
        "print(w.isVisible(), app.platformName(),"
        " sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules))\n"
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "offscreen", "[]"]


@pytest.fixture
def arrays(tmp_path: Path) -> Path:
    data = np.random.default_rng(1).standard_normal((2, 3, 16, 24)).astype(np.float32)
    data[0, 0, 0, :4] = [np.nan, np.inf, -np.inf, 0]
    np.savez(tmp_path / "acts.npz", block=data, small=np.arange(6.0).reshape(2, 3))
    return tmp_path / "acts.npz"


def test_run_gui_screenshot_selects_waits_and_writes_a_png(tmp_path, arrays):
    out = tmp_path / "shots" / "gui.png"
    code = (
        "import sys\nfrom tensor_inspector.app.window.launch import run_gui\n"
        f"sys.exit(run_gui([{str(arrays)!r}], select='block', screenshot={str(out)!r}))\n"
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == SCREENSHOT_SIZE
    # not a blank window: the heatmap and table put many distinct colours on screen
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 50
    assert not (tmp_path / "config" / "TensorInspector").exists()  # headless runs leave no settings


def test_run_gui_exits_non_zero_for_a_missing_node(tmp_path, arrays):
    out = tmp_path / "missing.png"
    code = (
        "import sys\nfrom tensor_inspector.app.window.launch import run_gui\n"
        f"sys.exit(run_gui([{str(arrays)!r}], select='nope', screenshot={str(out)!r}))\n"
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 1
    assert "No node named 'nope' in acts.npz." in result.stderr
    assert "Traceback" not in result.stderr


def test_run_gui_exits_non_zero_when_opening_fails(tmp_path):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY\x01\x00broken")
    code = (
        "import sys\nfrom tensor_inspector.app.window.launch import run_gui\n"
        f"sys.exit(run_gui([{str(bad)!r}], select='array', screenshot={str(tmp_path / 'e.png')!r}))\n"
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 1
    assert "bad.npy" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "e.png").exists()  # the error, as the window shows it


def test_run_demo_screenshot(tmp_path):
    assert demo_files(), "the demo directory ships data files"
    out = tmp_path / "demo.png"
    code = (
        "import sys\nfrom tensor_inspector.app.window.launch import run_demo\n"
        f"sys.exit(run_demo(screenshot={str(out)!r}))\n"
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert QImage(str(out)).width() == SCREENSHOT_SIZE[0]
