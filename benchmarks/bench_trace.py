"""Trace (every node's statistics in one run) versus one plain forward run of the same model.

Builds in a temp dir, with the frameworks themselves:
  - a torch.export program: a residual MLP of ``--blocks`` blocks (LayerNorm, Linear, GELU,
    Linear, add; 512 features), run on a batch of 32; about 11 graph nodes a block
    (5 ops, 6 parameter placeholders), ~1,000 nodes at the default 90 blocks;
  - a TF2 SavedModel: ``--layers`` dense layers (MatMul, BiasAdd, Relu, 512 features), batch 32;
    7 listed ops a layer (each variable is a frozen Const and its ReadVariableOp), ~1,000 ops
    at the default 140 layers.

Then times, best of ``--repeat`` taken in turns (all in this run, on the same machine):
  - the framework's own forward run: ``program.module()(x)`` under ``torch.no_grad``, the loaded
    signature function for TF (``tf.saved_model.load(path).signatures["serving_default"]``);
  - ``LocalSession.trace`` in this process, default keep (1 GiB) and keep 0;
  - ``IsolatedSession.trace`` (the reader process the window uses), default keep and keep 0.
Ratios are trace time / forward time. Goal: <= 3x. The first trace of a file is shown
apart: it builds what later traces reuse (the instrumented copy of a torch program,
TensorFlow's executors for each chunk of fetches).

    python benchmarks/bench_trace.py [--blocks 90] [--layers 140] [--repeat 7] [--only torch|tf]
                                     [--threads N]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BATCH, FEATURES = 32, 512


def best_of(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best time of each function, run in turns (not one after the other) so that a busy
    moment of a shared machine slows all of them alike."""
    times = {name: math.inf for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name] = min(times[name], time.perf_counter() - start)
    return times


def build_torch(directory: Path, blocks: int) -> Path:
    import torch

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = torch.nn.LayerNorm(FEATURES)
            self.up = torch.nn.Linear(FEATURES, FEATURES)
            self.down = torch.nn.Linear(FEATURES, FEATURES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.down(torch.nn.functional.gelu(self.up(self.norm(x))))

    torch.manual_seed(0)
    model = torch.nn.Sequential(*[Block() for _ in range(blocks)]).eval()
    program = torch.export.export(model, (torch.randn(BATCH, FEATURES),))
    path = directory / "mlp.pt2"
    torch.export.save(program, str(path))
    return path


def build_tf(directory: Path, layers: int) -> Path:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    scale = np.float32(1.0 / np.sqrt(FEATURES))

    class Net(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights_ = [
                tf.Variable(rng.standard_normal((FEATURES, FEATURES), np.float32) * scale)
                for _ in range(layers)
            ]
            self.biases = [tf.Variable(np.zeros(FEATURES, np.float32)) for _ in range(layers)]

        @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="x")])
        def serve(self, x):
            for w, b in zip(self.weights_, self.biases, strict=True):
                x = tf.nn.relu(tf.nn.bias_add(tf.matmul(x, w), b))
            return {"y": x}

    net = Net()
    path = directory / "mlp_tf"
    tf.saved_model.save(net, str(path), signatures={"serving_default": net.serve})
    return path


def torch_forward(path: Path, x: np.ndarray) -> Callable[[], object]:
    import torch

    module = torch.export.load(str(path)).module()
    tensor = torch.from_numpy(x)

    def run() -> object:
        with torch.no_grad():
            return module(tensor)

    return run


def tf_forward(path: Path, x: np.ndarray) -> Callable[[], object]:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    tensor = tf.constant(x)

    def run() -> object:
        return signature(x=tensor)["y"].numpy()

    run.keep_alive = loaded  # type: ignore[attr-defined]  # the signature needs its object
    return run


def measure(label: str, path: Path, forward: Callable[[], object], x: np.ndarray, repeat: int) -> None:
    from tensor_inspector.session.isolated import IsolatedSession
    from tensor_inspector.session.local import LocalSession

    feeds = {"x": x}
    forward()  # first-call costs (kernel choice, function tracing) are not the steady state
    local = LocalSession()
    isolated = IsolatedSession()
    try:
        handle = local.open(path).handle
        start = time.perf_counter()
        report = local.trace(handle, feeds=feeds)
        first = time.perf_counter() - start  # builds what later traces reuse
        kept_mb = report.kept_bytes / (1 << 20)
        remote = isolated.open(path).handle
        isolated.trace(remote, feeds=feeds)  # the reader's own first trace
        times = best_of(
            {
                "framework forward": forward,
                "LocalSession.trace, default keep": lambda: local.trace(handle, feeds=feeds),
                "LocalSession.trace, keep 0": lambda: local.trace(handle, feeds=feeds, keep_bytes=0),
                "IsolatedSession.trace, default keep": lambda: isolated.trace(remote, feeds=feeds),
                "IsolatedSession.trace, keep 0": lambda: isolated.trace(remote, feeds=feeds, keep_bytes=0),
            },
            repeat,
        )
    finally:
        isolated.shutdown()
        local.close_all()
    raw = times["framework forward"]
    print(
        f"\n{label}: {len(report.nodes)} traced nodes, batch {BATCH} x {FEATURES} float32, best of {repeat}"
    )
    print(
        f"(default keep: {kept_mb:.0f} MB kept in process; the reader keeps at most a quarter of its limit)"
    )
    print(f"{'':44} {'time':>9} {'ratio':>7}")
    for name, seconds in times.items():
        print(f"{name:44} {seconds * 1000:7.1f}ms {seconds / raw:6.2f}x")
    print(f"{'first trace of the file (one-time set-up)':44} {first * 1000:7.1f}ms {first / raw:6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=90, help="residual blocks of the torch model")
    parser.add_argument("--layers", type=int, default=140, help="dense layers of the TF model")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", choices=("torch", "tf"))
    parser.add_argument(
        "--threads",
        type=int,
        help="threads per framework, here and in the reader (on a shared machine, 1 keeps "
        "the numbers steady: torch's threads wait on each other when another process runs)",
    )
    args = parser.parse_args()
    if args.threads:  # before the frameworks load; the readers inherit the environment
        for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ[name] = str(args.threads)
    x = np.random.default_rng(1).standard_normal((BATCH, FEATURES)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        threads = args.threads or "the frameworks' default"
        print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); threads: {threads}")
        if args.only in (None, "torch"):
            path = build_torch(directory, args.blocks)
            measure("torch.export", path, torch_forward(path, x), x, args.repeat)
        if args.only in (None, "tf"):
            path = build_tf(directory, args.layers)
            measure("TF2 SavedModel", path, tf_forward(path, x), x, args.repeat)
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
