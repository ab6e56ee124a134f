"""Starting like a desktop application: no display, --version, entry points, quiet frameworks.

Each case runs the real command in a fresh process, because what is checked (the
environment, stderr of native libraries, the exit code) belongs to a whole process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import tensor_inspector
from tensor_inspector.cli import NO_DISPLAY, display_missing

DEMO = Path(__file__).parents[2] / "tensor_inspector" / "resources" / "demo"
SAVED_MODEL = DEMO / "mlp_savedmodel"
PROBABILITIES = "serving_default/StatefulPartitionedCall/probabilities:0"
FEATURES = "features=[[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]]"
# glog-style lines of TensorFlow's C++ logging: "E0000 00:00:17961... cuda_platform.cc:52] ..."
NATIVE_LOG_LINE = re.compile(r"^[IWEF]\d{4} ", re.MULTILINE)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tensor_inspector", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else dict(os.environ),
        stdin=subprocess.DEVNULL,
    )


def without_display() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize("args", [(), ("demo",), ("gui",), (str(DEMO / "demo_arrays.npz"),)])
def test_window_commands_without_a_display_exit_with_one_sentence(args):
    proc = run_cli(*args, env=without_display(), timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"tensor-inspector: error: {NO_DISPLAY}"
    assert proc.stdout == ""


def test_the_display_check_is_skipped_when_offscreen_rendering_is_asked_for(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert display_missing(None)
    assert not display_missing("out.png")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert not display_missing(None)
    monkeypatch.delenv("WAYLAND_DISPLAY")
    monkeypatch.setenv("DISPLAY", ":0")
    assert not display_missing(None)
    monkeypatch.delenv("DISPLAY")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert not display_missing(None)
    monkeypatch.delenv("QT_QPA_PLATFORM")
    for platform in ("win32", "darwin"):  # their desktop sessions need no DISPLAY variable
        monkeypatch.setattr(sys, "platform", platform)
        assert not display_missing(None)


def test_version_prints_the_installed_package_version():
    proc = run_cli("--version", env=without_display(), timeout=30)
    assert proc.returncode == 0
    assert proc.stdout.strip() == tensor_inspector.__version__ == metadata.version("tensor-inspector")


def test_the_window_has_a_gui_script_beside_the_console_script():
    """pip makes gui-scripts launchers that open no console window on Windows."""
    gui = {ep.name: ep.value for ep in metadata.entry_points(group="gui_scripts")}
    console = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    assert gui.get("tensor-inspector-gui") == "tensor_inspector.cli:main_gui"
    assert console.get("tensor-inspector") == "tensor_inspector.cli:main"


def noisy_environment() -> dict[str, str]:
    """An environment asking TensorFlow for all its logs, as some users' shells do."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("TENSOR_INSPECTOR_DEBUG", None)
    return env


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "reader-process"])
def test_framework_logs_are_silenced_and_debug_lets_them_through(isolate):
    extra = ("--isolate",) if isolate else ()
    args = ("show", str(SAVED_MODEL), PROBABILITIES, "--feed", FEATURES, *extra)

    quiet = run_cli(*args, env=noisy_environment())
    assert quiet.returncode == 0, quiet.stderr
    assert "probabilities" in quiet.stdout
    for noise in ("cuInit", "oneDNN", "absl", "cuda", "Warning"):
        assert noise not in quiet.stderr
    assert not NATIVE_LOG_LINE.search(quiet.stderr), quiet.stderr

    loud = run_cli(*args, "--debug", env=noisy_environment())
    assert loud.returncode == 0, loud.stderr
    assert NATIVE_LOG_LINE.search(loud.stderr), loud.stderr  # TensorFlow's own info lines
