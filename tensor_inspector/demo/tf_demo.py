"""A tiny TensorFlow SavedModel for the bundled demo: a 2-layer MLP with a serving signature.

Called by ``tensor_inspector.demo.make_demo``; imports TensorFlow (only when building).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def make_demo_tf(directory: Path) -> list[Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    rng = np.random.default_rng(3)

    # tensorflow ships no type information: tf.Module is Any, and so are its tensors
    class Dense(tf.Module):  # type: ignore[misc]
        def __init__(self, n_in: int, n_out: int, name: str):
            super().__init__(name=name)
            self.kernel = tf.Variable(
                (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32), name="kernel"
            )
            self.bias = tf.Variable(np.zeros(n_out, np.float32), name="bias")

        def __call__(self, x: Any, activation: bool = True) -> Any:
            with tf.name_scope(self.name):
                y = tf.matmul(x, self.kernel) + self.bias
                return tf.nn.relu(y) if activation else y

    class Mlp(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="mlp")
            self.hidden = Dense(16, 32, "hidden")
            self.logits = Dense(32, 10, "logits")

        @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="features")])  # type: ignore[untyped-decorator]
        def serve(self, features: Any) -> dict[str, Any]:
            logits = self.logits(self.hidden(features), activation=False)
            return {"probabilities": tf.nn.softmax(logits, name="probabilities")}

    model = Mlp()
    out = directory / "mlp_savedmodel"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tf.saved_model.save(model, str(out), signatures={"serving_default": model.serve})
    return [out]
