"""Time ArrayView on an 8192x8192 float32 tensor next to a bare pyqtgraph ImageView.

Run: QT_QPA_PLATFORM=offscreen python benchmarks/bench_views.py [--size 8192] [--repeat 3]

Rows (median of --repeat runs, same process, same array):
- ArrayView first paint: set_array -> table + heatmap painted (stats may still run)
- ArrayView complete: set_array -> stats_ready() -> painted (what a user waits for)
- pyqtgraph ImageView setImage + paint, with and without autoDownsample
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from tensor_inspector.app.views.array_view import ArrayView  # noqa: E402
from tensor_inspector.app.window.launch import make_app  # noqa: E402


def paint(app: QApplication, widget) -> None:
    app.processEvents()
    widget.grab()  # forces a full paint of the widget tree


def time_array_view(app: QApplication, view: ArrayView, array: np.ndarray) -> tuple[float, float]:
    view.set_array(np.zeros((2, 2), np.float32))  # reset, so every run starts from scratch
    while not view.stats_ready():
        app.processEvents()
    start = time.perf_counter()
    view.set_array(array, title="bench")
    while not view.heatmap.is_ready():
        app.processEvents()
        time.sleep(0.0005)
    paint(app, view)
    first = time.perf_counter() - start
    while not view.stats_ready():
        app.processEvents()
        time.sleep(0.0005)
    paint(app, view)
    return first, time.perf_counter() - start


def time_image_view(app: QApplication, array: np.ndarray, downsample: bool) -> float:
    image_view = pg.ImageView()
    image_view.resize(700, 600)
    image_view.getImageItem().setAutoDownsample(downsample)
    image_view.show()
    paint(app, image_view)
    start = time.perf_counter()
    image_view.setImage(array, autoLevels=True, autoRange=True, autoHistogramRange=False)
    paint(app, image_view)
    elapsed = time.perf_counter() - start
    image_view.close()
    image_view.deleteLater()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    app = make_app(headless=True)  # named app, offscreen warnings filtered
    pg.setConfigOptions(imageAxisOrder="row-major")
    rng = np.random.default_rng(0)
    array = rng.standard_normal((args.size, args.size), dtype=np.float32)

    view = ArrayView()
    view.resize(1400, 900)
    view.show()
    paint(app, view)
    firsts, completes, with_ds, without_ds = [], [], [], []
    for _ in range(args.repeat):
        first, complete = time_array_view(app, view, array)
        firsts.append(first)
        completes.append(complete)
        with_ds.append(time_image_view(app, array, True))
        without_ds.append(time_image_view(app, array, False))

    rows = [
        ("ArrayView: set_array -> table + heatmap painted", firsts),
        ("ArrayView: set_array -> + stats shown, painted", completes),
        ("pyqtgraph ImageView setImage + paint (autoDownsample)", with_ds),
        ("pyqtgraph ImageView setImage + paint (no downsample)", without_ds),
    ]
    print(
        f"{args.size}x{args.size} float32 ({array.nbytes / 2**20:.0f} MiB), "
        f"median of {args.repeat} runs, {os.cpu_count()} CPUs"
    )
    width = max(len(name) for name, _ in rows)
    print(f"{'what':<{width}}  {'median s':>9}  {'min s':>7}")
    for name, values in rows:
        print(f"{name:<{width}}  {statistics.median(values):>9.3f}  {min(values):>7.3f}")


if __name__ == "__main__":
    main()
