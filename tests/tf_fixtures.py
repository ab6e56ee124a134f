"""Builders of TensorFlow / Keras fixture files, written by the frameworks themselves.

Test modules wrap these in module-scoped fixtures: building TF graphs is slow.
"""

from __future__ import annotations

import os
from pathlib import Path

import ml_dtypes
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def keras_checkpoint(directory: Path) -> str:
    """A tf.train.Checkpoint of a small Keras model trained one step with Adam (slot variables)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, name="d1"), keras.layers.Dense(2, name="d2")]
    )
    optimizer = keras.optimizers.Adam()
    model.compile(optimizer, "mse")
    model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), verbose=0)
    return tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(directory / "ckpt"))


def tf1_checkpoint(directory: Path) -> str:
    """A TF1 name-based checkpoint from tf.compat.v1.train.Saver, with Adam slots."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3])
        with tf.compat.v1.variable_scope("dense"):
            kernel = tf.compat.v1.get_variable(
                "kernel", initializer=np.arange(6, dtype=np.float32).reshape(3, 2)
            )
            bias = tf.compat.v1.get_variable("bias", initializer=np.array([0.5, -0.5], np.float32))
        loss = tf.reduce_sum(tf.matmul(x, kernel) + bias)
        train = tf.compat.v1.train.AdamOptimizer(0.1).minimize(loss)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(train, {x: np.ones((2, 3), np.float32)})
            return saver.save(sess, str(directory / "model.ckpt"), write_meta_graph=False)


def sharded_checkpoint(directory: Path) -> str:
    """A checkpoint written as 2 data shards (variables on two devices + experimental sharding)."""
    import tensorflow as tf

    variables = {f"v{i}": tf.Variable(np.full((3,), i, np.float32)) for i in range(4)}
    checkpoint = tf.train.Checkpoint(**variables)
    prefix = str(directory / "sharded")
    options = tf.train.CheckpointOptions(
        experimental_sharding_callback=tf.train.experimental.MaxShardSizePolicy(max_shard_size=20)
    )
    return checkpoint.write(prefix, options=options)


def dtype_values() -> dict[str, np.ndarray]:
    """One small array per dtype a checkpoint can hold (strings included)."""
    values: dict[str, np.ndarray] = {
        "f16": np.array([1.5, -2.25], np.float16),
        "f32": np.array([[1, 2], [3, 4]], np.float32),
        "f64": np.array([np.pi], np.float64),
        "bf16": np.array([1.0, 3.140625, -0.0078125], ml_dtypes.bfloat16),
        "i8": np.array([-128, 127], np.int8),
        "i16": np.array([-300], np.int16),
        "i32": np.array([1 << 30], np.int32),
        "i64": np.array([-(1 << 40)], np.int64),
        "u8": np.array([255], np.uint8),
        "u16": np.array([65535], np.uint16),
        "u32": np.array([1 << 31], np.uint32),
        "u64": np.array([1 << 63], np.uint64),
        "b": np.array([True, False]),
        "c64": np.array([1 + 2j], np.complex64),
        "c128": np.array([[3 - 4j]], np.complex128),
        "scalar": np.array(7.5, np.float32),
    }
    return values


def dtype_checkpoint(directory: Path) -> str:
    import tensorflow as tf

    variables = {k: tf.Variable(tf.constant(v)) for k, v in dtype_values().items()}
    variables["text"] = tf.Variable(["héllo", "world"])
    return tf.train.Checkpoint(**variables).write(str(directory / "dtypes"))


def tf2_saved_model(directory: Path, write_canary: Path | None = None) -> Path:
    """A tf.Module with two dense layers and two signatures (one with a string output).

    With ``write_canary`` the second signature also writes that file when called.
    """
    import tensorflow as tf

    class Dense(tf.Module):
        def __init__(self, n_in: int, n_out: int, name: str):
            super().__init__(name=name)
            rng = np.random.default_rng(n_in * 10 + n_out)
            self.w = tf.Variable(rng.normal(size=(n_in, n_out)).astype(np.float32), name="w")
            self.b = tf.Variable(rng.normal(size=(n_out,)).astype(np.float32), name="b")

        @tf.function
        def __call__(self, x):
            with tf.name_scope(self.name):
                return tf.nn.relu(tf.matmul(x, self.w) + self.b)

    class Net(tf.Module):
        def __init__(self):
            super().__init__()
            self.d1 = Dense(3, 4, "d1")
            self.d2 = Dense(4, 2, "d2")
            self.scale = tf.constant([2.0, -1.0])

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            return {"y": self.d2(self.d1(x)) * self.scale}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 3], tf.float32, name="x"),
                tf.TensorSpec([], tf.float32, name="s"),
            ]
        )
        def scaled(self, x, s):
            if write_canary is not None:
                tf.io.write_file(str(write_canary), tf.strings.as_string(s))
            return {"z": self.d1(x) * s, "label": tf.strings.as_string(s)}

    net = Net()
    out = directory / ("sm_canary" if write_canary else "sm_tf2")
    tf.saved_model.save(net, str(out), signatures={"serving_default": net.serve, "scaled": net.scaled})
    return out


def tf1_saved_model(directory: Path) -> Path:
    """The classic TF1 export: y = a*x + b with SavedModelBuilder, resource and ref variables."""
    import tensorflow as tf

    out = directory / "sm_tf1"
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        a = tf.compat.v1.get_variable("a", initializer=np.float32(3.0), use_resource=True)
        b = tf.compat.v1.get_variable("b", initializer=np.float32(2.0), use_resource=False)
        ax = tf.multiply(a, x, name="ax")
        y = tf.add(ax, b, name="y")
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(out))
            signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            builder.add_meta_graph_and_variables(
                sess, ["serve"], signature_def_map={"serving_default": signature}
            )
            builder.save()
    return out


def keras_models(directory: Path, canary: Path) -> tuple[Path, Path]:
    """A .keras and a legacy .h5 model, each with a Lambda layer that writes ``canary`` if run."""
    import keras

    keras.utils.set_random_seed(0)
    canary_path = str(canary)

    def touch_canary(t):
        with open(canary_path, "w") as fh:
            fh.write("executed")
        return t * 2.0

    inputs = keras.Input((3,), name="inp")
    hidden = keras.layers.Dense(4, name="d1")(inputs)
    hidden = keras.layers.Lambda(touch_canary, name="lam")(hidden)
    hidden = keras.layers.BatchNormalization(name="bn")(hidden)
    outputs = keras.layers.Dense(2, name="d2")(hidden)
    model = keras.Model(inputs, outputs, name="net")
    keras_path, h5_path = directory / "model.keras", directory / "model.h5"
    model.save(keras_path)
    model.save(h5_path)
    if canary.exists():
        canary.unlink()  # building the model ran the lambda; opening must not
    return keras_path, h5_path
