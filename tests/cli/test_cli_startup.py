"""Starting like a desktop application: no display, --version, entry points, quiet frameworks.

Each case runs the real command in a fresh process, because what is checked (the
environment, stderr of native libraries, the exit code) belongs to a whole process.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

import pytest

import tensor_inspector
from tensor_inspector.cli import NO_DISPLAY, display_missing

ROOT = Path(__file__).parents[2]
DEMO = ROOT / "tensor_inspector" / "resources" / "demo"
PACKAGING = ROOT / "packaging"
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


def test_the_desktop_entry_claims_our_own_file_types_only():
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    mime = ET.parse(PACKAGING / "tensor-inspector-mime.xml").getroot()
    globs = {
        t.get("type"): {g.get("pattern") for g in t.findall("m:glob", ns)}
        for t in mime.findall("m:mime-type", ns)
    }
    for suffix in ("safetensors", "npy", "npz", "pt", "pth", "gguf", "onnx", "tflite"):
        assert any(f"*.{suffix}" in patterns for patterns in globs.values()), suffix

    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive in desktop files
    entry.read(PACKAGING / "tensor-inspector.desktop")
    claimed = {t for t in entry["Desktop Entry"]["MimeType"].split(";") if t}
    assert claimed == set(globs)  # no application/zip, no application/octet-stream

    metainfo = ET.parse(PACKAGING / "tensor_inspector.metainfo.xml").getroot()
    assert {m.text for m in metainfo.iter("mediatype")} == claimed
    assert metainfo.find("launchable").text == "tensor-inspector.desktop"


def test_the_desktop_bundle_builds_and_starts(tmp_path):
    """packaging/build.sh, then packaging/smoke_test.sh on what it built (about a minute here).

    The smoke test starts the bundle for --version, ls, the no-display sentence and a
    --screenshot of the demo .npz, for which the bundle also serves as its own reader process.
    """
    env = dict(
        os.environ,
        TENSOR_INSPECTOR_BUILD_DIR=str(tmp_path / "build"),
        TENSOR_INSPECTOR_DIST_DIR=str(tmp_path),
    )
    build = subprocess.run(
        ["bash", str(PACKAGING / "build.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    app = tmp_path / "tensor-inspector" / "tensor-inspector"
    smoke = subprocess.run(
        ["bash", str(PACKAGING / "smoke_test.sh"), str(app)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "smoke test passed" in smoke.stdout
