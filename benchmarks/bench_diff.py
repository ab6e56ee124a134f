"""diff of two large safetensors checkpoints against reading both with safetensors itself.

Builds two files of ``--gb`` GB each (several float32 tensors; the second a copy with
every 97th value nudged, so every chunk differs and no shortcut for equal bytes
applies) in a temporary folder, then measures in fresh child processes, same run:

- baseline: ``safe_open(framework="np")`` + ``get_tensor`` of every tensor of both files
- diff: ``tensor-inspector diff A B --json`` (in-process session), and with ``--isolate``

Each is timed inside its child (interpreter start excluded, imports included for diff)
and reports its peak RSS (VmHWM of itself, ``ru_maxrss`` of the processes it waited for:
the reader with ``--isolate``). Files are read once beforehand so all runs find them in
the page cache; each measurement is the best of ``--repeat`` runs. Prints a table; no
asserts. Goals: diff <= 1.5x the baseline, peak RSS <= 500 MB.

    python benchmarks/bench_diff.py [--gb 2] [--tensors 8] [--repeat 2] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Peak RSS of a child: VmHWM of its own memory (ru_maxrss of RUSAGE_SELF would report the
# benchmark's own peak, inherited through fork+exec, when that is larger), and ru_maxrss of
# the processes it waited for (the reader with --isolate).
PEAK = """
def peak():
    import resource
    with open("/proc/self/status") as fh:
        own = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""

BASELINE = (
    PEAK
    + """
import sys, time
from safetensors import safe_open
start = time.perf_counter()
for path in sys.argv[1:]:
    with safe_open(path, framework="np") as f:
        for key in f.keys():
            f.get_tensor(key)
elapsed = time.perf_counter() - start
print(elapsed, peak())
"""
)

DIFF = (
    PEAK
    + """
import contextlib, io, sys, time
start = time.perf_counter()
from tensor_inspector.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["diff", *sys.argv[1:], "--json", "--atol", "1e-3"])
elapsed = time.perf_counter() - start
print(elapsed, peak(), code, file=sys.stderr)
"""
)


def build(directory: Path, gb: float, tensors: int) -> tuple[Path, Path]:
    from safetensors.numpy import save_file

    rows = max(1, int(gb * (1 << 30) / tensors / 4 / 4096))
    rng = np.random.default_rng(0)
    weights = {
        f"layers.{i}.weight": rng.standard_normal((rows, 4096), dtype=np.float32) for i in range(tensors)
    }
    a, b = directory / "a.safetensors", directory / "b.safetensors"
    save_file(weights, str(a))
    for value in weights.values():
        value.reshape(-1)[::97] += np.float32(1e-4)
    save_file(weights, str(b))
    return a, b


def run(code: str, *args: str, report_on_stderr: bool = False) -> tuple[float, int]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, check=False
    )
    line = (done.stderr if report_on_stderr else done.stdout).strip().splitlines()[-1]
    fields = line.split()
    if report_on_stderr and fields[2] not in ("0", "3"):
        raise RuntimeError(done.stderr)
    return float(fields[0]), int(fields[1]) * 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=2.0, help="size of each file")
    parser.add_argument("--tensors", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dir", default=None, help="where to build the files (default: the temp folder)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-diff-", dir=args.dir))
    try:
        a, b = build(directory, args.gb, args.tensors)
        size = a.stat().st_size
        run(BASELINE, str(a), str(b))  # into the page cache
        results: dict[str, list[tuple[float, int]]] = {
            "safetensors get_tensor (both)": [],
            "diff": [],
            "diff --isolate": [],
        }
        for _ in range(args.repeat):
            results["safetensors get_tensor (both)"].append(run(BASELINE, str(a), str(b)))
            results["diff"].append(run(DIFF, str(a), str(b), report_on_stderr=True))
            results["diff --isolate"].append(run(DIFF, str(a), str(b), "--isolate", report_on_stderr=True))
        base = min(t for t, _ in results["safetensors get_tensor (both)"])
        print(
            f"two files of {size / (1 << 30):.2f} GB, {args.tensors} float32 tensors each; best of {args.repeat}"
        )
        print(f"{'measurement':<32} {'seconds':>8} {'ratio':>6} {'peak RSS':>10}")
        for name, runs in results.items():
            seconds = min(t for t, _ in runs)
            rss = max(r for _, r in runs)
            print(f"{name:<32} {seconds:8.2f} {seconds / base:5.2f}x {rss / (1 << 20):7.0f} MB")
        print("goals: diff <= 1.50x, peak RSS <= 500 MB")
        print(json.dumps({k: [list(r) for r in v] for k, v in results.items()}), file=sys.stderr)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
