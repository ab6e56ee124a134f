"""Selection -> first picture in the window, for tensors far bigger than memory and for a big one.

Prints, measured in the same run:
  - a 32 GiB float32 .npy (65536 x 131072, a sparse file: header written with
    numpy.lib.format, then truncated to size, with a few real values written in it):
    selection -> first painted picture, and the window process's resident memory during it
    (goals: <= 2 s, <= 1 GB);
  - an 8192 x 8192 float32 .npy: selection -> first painted picture, and -> the whole value
    in the view, against the raw read (np.load) + a bare pyqtgraph ImageView paint
    (benchmarks/bench_app.py's helpers).
"First picture" is the heatmap drawn for the selected node (from a strided sample when the
tensor is above the first-read budget) with nothing veiled, and the window repainted.

Run: QT_QPA_PLATFORM=offscreen python benchmarks/bench_first_paint.py [--repeat 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench_app import bare_paint, raw_read  # noqa: E402

HUGE_SHAPE = (65536, 131072)  # float32: exactly 32 GiB


def make_sparse_npy(path: Path, shape: tuple[int, int]) -> None:
    """A .npy whose data is a hole in the file, except a few rows of real values."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
        "fortran_order": False,
        "shape": shape,
    }
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        offset = fh.tell()
    os.truncate(path, offset + shape[0] * shape[1] * 4)
    data = np.memmap(path, np.float32, "r+", offset=offset, shape=shape)
    rng = np.random.default_rng(0)
    for row in range(0, shape[0], shape[0] // 8):  # a few rows of noise, one NaN
        data[row] = rng.standard_normal(shape[1], dtype=np.float32)
    data[shape[0] // 2, shape[1] // 3] = np.nan
    data.flush()
    del data


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident memory of this process, from /proc."""
    values = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount, _unit = line.split()
                values[key] = int(amount) * 1024
    return values.get("VmRSS:", 0), values.get("VmHWM:", 0)


def first_paint(app, window, path: Path) -> tuple[float, float | None, int]:
    """Open (not timed), then time selection -> first picture painted, and -> whole value shown.

    Returns (first picture s, whole value s or None when the view keeps the sample, max RSS).
    """
    window.auto_select = False
    before = set(window.files)
    window.open_paths([path])
    while set(window.files) == before:
        app.processEvents()
        time.sleep(0.001)
    handle = (set(window.files) - before).pop()
    node_id = window.files[handle].nodes[0].id
    view = window.view
    peak = rss_bytes()[0]
    start = time.perf_counter()
    window.select_node(node_id, handle)
    while not (
        window.shown() == (handle, node_id) and view.heatmap.is_ready() and not view.heatmap.is_stale()
    ):
        app.processEvents()
        peak = max(peak, rss_bytes()[0])
        time.sleep(0.0005)
    window.repaint()
    app.processEvents()
    first = time.perf_counter() - start
    whole = None
    if view.sampling() is not None and view._sampled is not None and view._sampled.loads_whole():
        while view.array() is None:
            app.processEvents()
            peak = max(peak, rss_bytes()[0])
            time.sleep(0.001)
        whole = time.perf_counter() - start
    for _ in range(50):  # a moment more: memory taken right after the paint counts too
        app.processEvents()
        peak = max(peak, rss_bytes()[0])
        time.sleep(0.01)
    window.close_file(handle)
    app.processEvents()
    return first, whole, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--dir", default=None, help="where to write the test files (default: a temp dir)")
    args = parser.parse_args()

    from tensor_inspector.app.window.launch import make_app

    app = make_app()
    from tensor_inspector.app.window.main_window import MainWindow

    window = MainWindow(persist=False)
    window.resize(1400, 880)
    window.show()
    app.processEvents()
    gib = 1 << 30
    with tempfile.TemporaryDirectory(prefix="ti-bench-first-", dir=args.dir) as tmp:
        huge = Path(tmp) / "huge.npy"
        make_sparse_npy(huge, HUGE_SHAPE)
        size_gib = huge.stat().st_size / gib
        print(f"{'tensor':<34} {'first picture':>14} {'whole value':>12} {'GUI RSS max':>12}  goals")
        runs = [first_paint(app, window, huge) for _ in range(args.repeat)]
        best = min(r[0] for r in runs)
        rss = max(r[2] for r in runs)
        label = f"{HUGE_SHAPE[0]}x{HUGE_SHAPE[1]} f32 ({size_gib:.0f} GiB)"
        print(f"{label:<34} {best:>13.3f}s {'(sample)':>12} {rss / 2**20:>9.0f} MiB  <= 2 s, <= 1024 MiB")
        huge.unlink()

        path = Path(tmp) / "big.npy"
        array = np.random.default_rng(0).standard_normal((args.size, args.size), dtype=np.float32)
        np.save(path, array)
        raw_times, paint_times, firsts, wholes = [], [], [], []
        for _ in range(args.repeat):
            raw_times.append(raw_read("npy", path))
            loaded = np.load(path)
            paint_times.append(bare_paint(app, loaded))
            del loaded
            first, whole, _ = first_paint(app, window, path)
            firsts.append(first)
            wholes.append(whole if whole is not None else float("nan"))
        baseline = min(raw_times) + min(paint_times)
        label = f"{args.size}x{args.size} f32 ({array.nbytes / 2**20:.0f} MiB)"
        print(
            f"{label:<34} {min(firsts):>13.3f}s {min(wholes):>11.3f}s {'':>12}  "
            f"raw read {min(raw_times):.3f}s + bare paint {min(paint_times):.3f}s = {baseline:.3f}s; "
            f"first picture / baseline = {min(firsts) / baseline:.2f}, whole / baseline = "
            f"{min(wholes) / baseline:.2f}"
        )
    print(f"best of {args.repeat}; RSS is the window process's (the reader process is separate)")
    window.worker.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
