"""Desktop app timings next to their bare-library baselines, measured in the same run.

For an 8192x8192 float32 tensor stored as .npy and as .safetensors it prints:
  - selection -> painted table + heatmap + statistics in the app window,
  - the raw library read (np.load / safetensors safe_open().get_tensor),
  - a bare pyqtgraph ImageView paint of the same array with autoDownsample,
and the launch time: process start -> window painted (in a fresh interpreter).
Targets: window < 0.5 s; selection-to-paint <= 1.5 x (raw read + bare paint).

Run: QT_QPA_PLATFORM=offscreen python benchmarks/bench_app.py [--size 8192] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

LAUNCH_CODE = r"""
import sys, time
from tensor_inspector.app.window.launch import make_app
app = make_app()
from tensor_inspector.app.window.main_window import MainWindow
w = MainWindow(persist=False)
w.show()
w.repaint()  # synchronous: the window is on screen when this returns
painted = time.time()
app.processEvents()
print(painted)
"""


def make_files(directory: Path, size: int) -> dict[str, Path]:
    from safetensors.numpy import save_file

    array = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    paths = {"npy": directory / "big.npy", "safetensors": directory / "big.safetensors"}
    np.save(paths["npy"], array)
    save_file({"big": array}, str(paths["safetensors"]))
    return paths


def raw_read(kind: str, path: Path) -> float:
    start = time.perf_counter()
    if kind == "npy":
        array = np.load(path)
    else:
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as fh:
            array = fh.get_tensor("big")
    float(array[-1, -1])  # the data really is in memory
    return time.perf_counter() - start


def bare_paint(app, array: np.ndarray) -> float:
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major")
    view = pg.ImageView()
    view.getImageItem().setAutoDownsample(True)
    view.resize(900, 700)
    view.show()
    app.processEvents()
    start = time.perf_counter()
    view.setImage(array, autoRange=True, autoLevels=True)
    view.repaint()
    app.processEvents()
    elapsed = time.perf_counter() - start
    view.close()
    view.deleteLater()
    app.processEvents()
    return elapsed


def app_select_to_paint(app, window, path: Path, node_id: str) -> float:
    """Open (not timed), then time selection -> value + stats + heatmap ready -> painted."""
    window.auto_select = False
    before = set(window.files)
    window.open_paths([path])
    while set(window.files) == before:
        app.processEvents()
        time.sleep(0.001)
    handle = (set(window.files) - before).pop()
    start = time.perf_counter()
    if not window.select_node(node_id, handle):
        raise SystemExit(f"no node {node_id!r} in {path.name}")
    while not (window.is_idle() and window.view.array() is not None and window.view.stats_ready()):
        app.processEvents()
        time.sleep(0.0005)
    window.repaint()
    app.processEvents()
    elapsed = time.perf_counter() - start
    window.close_file(handle)
    app.processEvents()
    return elapsed


def bench_window():
    """The Qt application and a shown main window of the size users get, without saved settings."""
    from tensor_inspector.app.window.launch import make_app

    app = make_app()
    from tensor_inspector.app.window.main_window import MainWindow

    window = MainWindow(persist=False)
    window.resize(1400, 880)
    window.show()
    app.processEvents()
    return app, window


def launch_time(repeat: int) -> tuple[float, float]:
    """Seconds from process start to painted window: best and median of ``repeat`` runs."""
    times = []
    env = {**os.environ, "XDG_CONFIG_HOME": tempfile.mkdtemp(prefix="ti-bench-config-")}
    for _ in range(repeat):
        start = time.time()
        out = subprocess.run(
            [sys.executable, "-c", LAUNCH_CODE], capture_output=True, text=True, env=env, check=True
        )
        times.append(float(out.stdout.strip().splitlines()[-1]) - start)
    return min(times), float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    app, window = bench_window()
    with tempfile.TemporaryDirectory(prefix="ti-bench-") as tmp:
        paths = make_files(Path(tmp), args.size)
        mb = args.size * args.size * 4 / 2**20
        print(f"tensor: {args.size}x{args.size} float32 ({mb:.0f} MiB), best of {args.repeat}")
        print(
            f"{'format':<12} {'app select->paint':>18} {'raw read':>10} {'bare paint':>11} "
            f"{'baseline':>9} {'ratio':>6}  target <= 1.5"
        )
        for kind, path in paths.items():
            node_id = "array" if kind == "npy" else "big"
            app_times, raw_times, paint_times = [], [], []
            for _ in range(args.repeat):
                raw_times.append(raw_read(kind, path))
                array = np.load(path) if kind == "npy" else None
                if array is None:
                    from safetensors.numpy import load_file

                    array = load_file(str(path))["big"]
                paint_times.append(bare_paint(app, array))
                del array
                app_times.append(app_select_to_paint(app, window, path, node_id))
            app_t, raw_t, paint_t = min(app_times), min(raw_times), min(paint_times)
            baseline = raw_t + paint_t
            print(
                f"{kind:<12} {app_t:>17.3f}s {raw_t:>9.3f}s {paint_t:>10.3f}s {baseline:>8.3f}s "
                f"{app_t / baseline:>6.2f}"
            )
    window.worker.shutdown()
    best, median = launch_time(args.repeat)
    print(f"launch -> painted window: best {best:.3f}s, median {median:.3f}s (target < 0.5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
