"""TensorFlow backend overhead versus raw TensorFlow, on a ~500 MB checkpoint and a SavedModel.

Run: python benchmarks/bench_tf.py [--mb 500]. Prints one table; all numbers from the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=500, help="checkpoint size in MB")
    args = parser.parse_args()
    import tensorflow as tf
    import tf_fixtures

    from tensor_inspector.backends.tensorflow.backend import TensorFlowBackend

    backend = TensorFlowBackend()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n_vars = 50
        per_var = args.mb * (1 << 20) // 4 // n_vars
        side = int(per_var**0.5)
        rng = np.random.default_rng(0)
        variables = {
            f"layer_{i}": tf.Variable(rng.standard_normal((side, side), np.float32)) for i in range(n_vars)
        }
        prefix = tf.train.Checkpoint(**variables).write(str(root / "big"))
        size_mb = sum(p.stat().st_size for p in root.glob("big.*")) / (1 << 20)
        del variables

        def backend_open():
            source = backend.open(Path(prefix))
            _ = [n.shape for n in source.nodes.values()]
            source.close()

        def raw_open():
            reader = tf.train.load_checkpoint(prefix)
            reader.get_variable_to_shape_map()
            reader.get_variable_to_dtype_map()

        rows.append((f"open + list ({size_mb:.0f} MB checkpoint)", best(backend_open), best(raw_open)))
        source = backend.open(Path(prefix))
        reader = tf.train.load_checkpoint(prefix)
        key = source.node("layer_7").metadata["checkpoint_key"]
        rows.append(
            (
                f"read one variable ({side}x{side} f32)",
                best(lambda: source.read("layer_7")),
                best(lambda: reader.get_tensor(key)),
            )
        )
        source.close()

        saved = tf_fixtures.tf2_saved_model(root)
        x = rng.standard_normal((256, 3)).astype(np.float32)
        model = backend.open(saved)
        output = model.node("serving_default").metadata["outputs"]["y"]["node"]
        first = time.perf_counter()
        model.evaluate(output, {"x": x})
        prepare = time.perf_counter() - first
        loaded = tf.saved_model.load(str(saved))
        signature = loaded.signatures["serving_default"]
        tx = tf.constant(x)
        rows.append(("SavedModel: first evaluation (load + freeze)", prepare, float("nan")))
        rows.append(
            (
                "SavedModel: evaluate output vs call signature",
                best(lambda: model.evaluate(output, {"x": x}), 20),
                best(lambda: signature(x=tx)["y"].numpy(), 20),
            )
        )
        inner = "serving_default/StatefulPartitionedCall/StatefulPartitionedCall/d1/Relu:0"
        rows.append(
            (
                "SavedModel: evaluate inner node (raw: n/a)",
                best(lambda: model.evaluate(inner, {"x": x}), 20),
                float("nan"),
            )
        )
        model.close()

    print(f"{'operation':50s} {'backend (ms)':>14s} {'raw TF (ms)':>14s}")
    for name, ours, raw in rows:
        raw_text = "-" if np.isnan(raw) else f"{raw * 1000:.1f}"
        print(f"{name:50s} {ours * 1000:14.1f} {raw_text:>14s}")


if __name__ == "__main__":
    main()
