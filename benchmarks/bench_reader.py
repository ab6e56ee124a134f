"""The window with every backend call in a reader process, against the bare library calls, in one run.

Prints:
  1. select -> painted value (table, heatmap, statistics) of an 8192x8192 float32 tensor
     stored as .npy, safetensors, a torch checkpoint and a TF checkpoint, read through the
     reader process, next to the raw framework read in this process plus a bare pyqtgraph
     paint of the same array (target: ratio <= 1.5);
  2. the GUI process's resident memory with a SavedModel, a torch.export program and a
     torch checkpoint open and a node of each evaluated, and whether any framework was
     imported into it (target <= 400 MB, none);
  3. the time from a reader crash (SIGSEGV) to the next value shown.

Run: QT_QPA_PLATFORM=offscreen python benchmarks/bench_reader.py [--size 8192] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tensor_inspector" / "resources" / "demo"
sys.path.insert(0, str(ROOT / "tests"))  # the misbehaving backend used to cause a crash
sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_files(directory: Path, size: int) -> dict[str, tuple[Path, str]]:
    """format -> (path, node id) of the same random array."""
    import tensorflow as tf
    import torch
    from safetensors.numpy import save_file

    array = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    files = {
        "npy": (directory / "big.npy", "array"),
        "safetensors": (directory / "big.safetensors", "big"),
        "torch": (directory / "big.pt", "big"),
        "tf checkpoint": (directory / "ckpt", "big"),
    }
    np.save(files["npy"][0], array)
    save_file({"big": array}, str(files["safetensors"][0]))
    torch.save({"big": torch.from_numpy(array)}, files["torch"][0])
    checkpoint = tf.train.Checkpoint(big=tf.Variable(array))
    prefix = checkpoint.write(str(files["tf checkpoint"][0]))
    files["tf checkpoint"] = (Path(prefix), files["tf checkpoint"][1])
    return files


def raw_read(kind: str, path: Path, node_id: str) -> tuple[float, np.ndarray]:
    """Seconds for the framework's own read into a numpy array, and the array."""
    start = time.perf_counter()
    if kind == "npy":
        array = np.load(path)
    elif kind == "safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as fh:
            array = fh.get_tensor(node_id)
    elif kind == "torch":
        import torch

        array = torch.load(path, weights_only=True)[node_id].numpy()
    else:
        import tensorflow as tf

        array = tf.train.load_checkpoint(str(path)).get_tensor(f"{node_id}/.ATTRIBUTES/VARIABLE_VALUE")
    float(array[-1, -1])
    return time.perf_counter() - start, array


GUI_ONLY = r"""
import json, os, sys, time
sys.path[:0] = [{tests!r}]
from misbehaving_backends import MAGIC
from tensor_inspector.app.window.launch import make_app
app = make_app()
from tensor_inspector.app.window.main_window import MainWindow
w = MainWindow(persist=False)
w.auto_select = False
w.show()

def wait(cond, limit=120):
    end = time.monotonic() + limit
    while not cond():
        app.processEvents(); time.sleep(0.002)
        if time.monotonic() > end:
            raise SystemExit("timed out")

def open_one(path):
    before = set(w.files)
    w.open_paths([path])
    wait(lambda: set(w.files) != before)
    return (set(w.files) - before).pop()

def show(handle, node_id):
    shown = []
    w.value_shown.connect(shown.append)
    failed = []
    w.value_failed.connect(failed.append)
    w.select_node(node_id, handle)
    wait(lambda: shown or failed)
    w.value_shown.disconnect(shown.append); w.value_failed.disconnect(failed.append)
    return bool(shown)

def first_computed(handle):
    return next(n.id for n in w.files[handle].nodes if n.kind.value == "computed" and n.dtype)

sm = open_one({saved_model!r}); assert show(sm, first_computed(sm))
prog = open_one({program!r}); assert show(prog, first_computed(prog))
ck = open_one({checkpoint!r}); assert show(ck, next(n.id for n in w.files[ck].nodes if n.kind.value == "tensor"))
rss = int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) * 1024
frameworks = sorted(m for m in ("torch", "tensorflow", "keras", "h5py") if m in sys.modules)

good = open_one({good!r}); bad = open_one({bad!r})
assert not show(bad, "x")  # crashes the reader
start = time.perf_counter()
assert show(good, "array")
recovered = time.perf_counter() - start
w.worker.shutdown()
print(json.dumps({{"rss": rss, "frameworks": frameworks, "recovered": recovered}}))
"""


def gui_process_numbers(directory: Path) -> dict[str, object]:
    good = directory / "good.npy"
    np.save(good, np.arange(1000.0))
    bad = directory / "crash.bad"
    bad.write_bytes(b"MISBEHAVE segfault\n")
    code = GUI_ONLY.format(
        tests=str(ROOT / "tests"),
        saved_model=str(DEMO / "mlp_savedmodel"),
        program=str(DEMO / "demo_program.pt2"),
        checkpoint=str(DEMO / "demo_checkpoint.pt"),
        good=str(good),
        bad=str(bad),
    )
    env = {
        **os.environ,
        "TENSOR_INSPECTOR_BACKENDS": "misbehaving=misbehaving_backends:MisbehavingBackend",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p),
        "XDG_CONFIG_HOME": tempfile.mkdtemp(prefix="ti-bench-config-"),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=600
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from bench_app import app_select_to_paint, bare_paint, bench_window

    app, window = bench_window()
    with tempfile.TemporaryDirectory(prefix="ti-bench-") as tmp:
        files = make_files(Path(tmp), args.size)
        mb = args.size * args.size * 4 / 2**20
        print(
            f"1. select -> paint through the reader process: {args.size}x{args.size} float32 ({mb:.0f} MiB)"
        )
        print(f"   best of {args.repeat}; baseline = raw read in this process + bare pyqtgraph paint")
        print(
            f"   {'format':<14} {'app':>8} {'raw read':>9} {'bare paint':>11} {'baseline':>9} {'ratio':>6}"
            "  target <= 1.5"
        )
        for kind, (path, node_id) in files.items():
            app_times, raw_times, paint_times = [], [], []
            for _ in range(args.repeat):
                raw_t, array = raw_read(kind, path, node_id)
                raw_times.append(raw_t)
                paint_times.append(bare_paint(app, array))
                del array
                app_times.append(app_select_to_paint(app, window, path, node_id))
            app_t, raw_t, paint_t = min(app_times), min(raw_times), min(paint_times)
            baseline = raw_t + paint_t
            print(
                f"   {kind:<14} {app_t:>7.3f}s {raw_t:>8.3f}s {paint_t:>10.3f}s {baseline:>8.3f}s "
                f"{app_t / baseline:>6.2f}"
            )
        window.worker.shutdown()
        numbers = gui_process_numbers(Path(tmp))
    rss = int(numbers["rss"]) / 2**20  # type: ignore[call-overload]
    print(
        "2. GUI process with a SavedModel, a torch.export program and a torch checkpoint open and "
        f"evaluated: {rss:.0f} MB resident (target <= 400 MB); frameworks imported: "
        f"{', '.join(numbers['frameworks']) or 'none'}"  # type: ignore[arg-type]
    )
    print(f"3. reader crash (SIGSEGV) -> next value shown: {float(numbers['recovered']):.3f}s")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
