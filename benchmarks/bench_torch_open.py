"""Open-to-tree and one-tensor read times for a large torch checkpoint, next to bare torch.

Writes a ~1 GB state dict (256 MB tensors plus many small ones) into a temp dir, then
measures, each in a fresh process so peak memory is per measurement:
  - the torch backend: open + list every node, then read one 256 MB tensor;
  - bare ``torch.load(mmap=True, weights_only=True)``: load, then copy the same tensor.

    python benchmarks/bench_torch_open.py [--size-mb 1024] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIG = 64 * 1024 * 1024  # float32 elements: 256 MB


def build(path: Path, size_mb: int) -> None:
    import torch

    state = {}
    n_big = max(1, size_mb // 256)
    for i in range(n_big):
        state[f"layers.{i}.big.weight"] = torch.full((BIG // 4096, 4096), float(i))
    for i in range(500):  # many small entries, like a real model's biases and norms
        state[f"layers.{i % n_big}.small.{i}"] = torch.randn(256)
    torch.save(state, path)


def measure_backend(path: Path) -> dict:
    import torch  # noqa: F401  (import time is not part of the measurement)

    from tensor_inspector.backends import open_path
    from tensor_inspector.backends.registry import available_backends

    available_backends()  # loading the backend modules is app start-up, not opening
    start = time.perf_counter()
    source = open_path(path)
    names = [node.id for node in source.nodes.values()]
    opened = time.perf_counter() - start
    start = time.perf_counter()
    value = source.read("layers.0.big.weight")
    read = time.perf_counter() - start
    assert value.nbytes == BIG * 4 and len(names) > 500
    return {"open": opened, "read": read, "peak_mb": _peak_mb()}


def measure_torch(path: Path) -> dict:
    import torch

    start = time.perf_counter()
    state = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
    names = list(state)
    opened = time.perf_counter() - start
    start = time.perf_counter()
    value = state["layers.0.big.weight"].numpy().copy()
    read = time.perf_counter() - start
    assert value.nbytes == BIG * 4 and len(names) > 500
    return {"open": opened, "read": read, "peak_mb": _peak_mb()}


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _baseline_mb() -> float:
    import torch  # noqa: F401

    import tensor_inspector.backends  # noqa: F401

    return _peak_mb()


def run_child(kind: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--keep", type=Path, help="write the checkpoint here and keep it")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path = args.child
        measure = {
            "backend": measure_backend,
            "torch": measure_torch,
            "baseline": lambda _p: {"peak_mb": _baseline_mb()},
        }[kind]
        print(json.dumps(measure(Path(path))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "large.pt"
        start = time.perf_counter()
        build(path, args.size_mb)
        print(f"wrote {path.stat().st_size / 2**20:.0f} MB in {time.perf_counter() - start:.1f} s")
        baseline = run_child("baseline", path)["peak_mb"]
        run_child("torch", path)  # warm the page cache once so the order does not matter
        rows = []
        for round_ in (1, 2):
            rows.append((f"torch.load(mmap=True) #{round_}", run_child("torch", path)))
            rows.append((f"torch backend #{round_}", run_child("backend", path)))
        print(f"(a process that imported torch and the backends holds {baseline:.0f} MB)")
        print(f"{'':32} {'open+list':>10} {'read 256 MB':>12} {'peak RSS':>10}")
        for label, row in rows:
            print(
                f"{label:32} {row['open'] * 1000:8.1f}ms {row['read'] * 1000:10.1f}ms {row['peak_mb']:8.0f}MB"
            )


if __name__ == "__main__":
    main()
