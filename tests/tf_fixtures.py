"""Builders of TensorFlow / Keras fixture files, written by the frameworks themselves.

Test modules wrap these in module-scoped fixtures: building TF graphs is slow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


# -- hostile SavedModels: built the way an attacker would, with names that look like the saver's --


def tf1_main_op_writer(directory: Path, target: Path, restore_hook: bool = False) -> Path:
    """A TF1 SavedModel whose main_op writes ``target``; the WriteFile hides in the saver's scope.

    With ``restore_hook`` the write is also made a control input of ``save/restore_all``,
    so merely restoring the variables would write the file.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    out = directory / ("sm_restore_hook" if restore_hook else "sm_main_op")
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        w = tf.compat.v1.get_variable("w", initializer=np.float32(2.0), use_resource=True)
        y = tf.multiply(w, x, name="y")
        saver = tf.compat.v1.train.Saver(sharded=True, name="save")
        with tf.name_scope("save/"):  # re-enter the saver's scope: "save/write_file"
            write = tf.io.write_file(str(target), tf.constant("written"), name="write_file")
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(out))
            builder.add_meta_graph_and_variables(
                sess,
                ["serve"],
                signature_def_map={
                    "serving_default": tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
                },
                main_op=write,
                saver=saver,
            )
            builder.save()
    if restore_hook:
        proto = saved_model_pb2.SavedModel()
        pb = out / "saved_model.pb"
        proto.ParseFromString(pb.read_bytes())
        meta = proto.meta_graphs[0]
        del meta.collection_def["saved_model_main_op"]
        restore = next(n for n in meta.graph_def.node if n.name == meta.saver_def.restore_op_name)
        restore.input.append("^save/write_file")
        pb.write_bytes(proto.SerializeToString())
    if target.exists():
        target.unlink()
    return out


def tf2_traced_save_writer(directory: Path, target: Path) -> Path:
    """A TF2 SavedModel whose signature calls a tf.function named like the saver's (``*_traced_save_*``)."""
    import tensorflow as tf

    class Net(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable([1.0, 2.0, 3.0])

        @tf.function
        def _traced_save_hook(self, value):
            tf.io.write_file(str(target), tf.strings.as_string(tf.reduce_sum(value)))
            return tf.identity(value)

        @tf.function(input_signature=[tf.TensorSpec([3], tf.float32, name="x")])
        def serve(self, x):
            return {"y": self._traced_save_hook(x * self.w) + 1.0}

    net = Net()
    out = directory / "sm_traced_save"
    tf.saved_model.save(net, str(out), signatures={"serving_default": net.serve})
    if target.exists():
        target.unlink()
    return out


def tf2_dataset_cache_writer(directory: Path, cache: Path) -> Path:
    """A TF2 SavedModel whose signature sums its input through a tf.data pipeline cached to ``cache``."""
    import tensorflow as tf

    class Net(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            data = tf.data.Dataset.from_tensor_slices(x * 2.0).cache(str(cache))
            return {"total": data.reduce(tf.constant(0.0), lambda acc, v: acc + v)}

    net = Net()
    out = directory / "sm_cache"
    tf.saved_model.save(net, str(out), signatures={"serving_default": net.serve})
    for leftover in cache.parent.glob(cache.name + "*"):
        leftover.unlink()
    return out


def checkpoint_io_model(directory: Path, target: Path, elsewhere: str) -> Path:
    """A TF2 SavedModel whose signature saves a checkpoint at ``target`` and restores one from ``elsewhere``."""
    import tensorflow as tf

    class Net(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2], tf.float32, name="x")])
        def serve(self, x):
            tf.raw_ops.SaveV2(prefix=str(target), tensor_names=["x"], shape_and_slices=[""], tensors=[x])
            (other,) = tf.raw_ops.RestoreV2(
                prefix=elsewhere, tensor_names=["x"], shape_and_slices=[""], dtypes=[tf.float32]
            )
            return {"y": x + 1.0, "other": other}

    net = Net()
    out = directory / "sm_checkpoint_io"
    tf.saved_model.save(net, str(out), signatures={"serving_default": net.serve})
    for leftover in target.parent.glob(target.name + "*"):
        leftover.unlink()
    return out


def keras_exported_model(directory: Path) -> Path:
    """A Keras 3 functional model (dense, batch norm, dropout, softmax) exported with ``model.export``."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="inp")
    hidden = keras.layers.Dense(4, activation="relu", name="d1")(inputs)
    hidden = keras.layers.BatchNormalization(name="bn")(hidden)
    hidden = keras.layers.Dropout(0.2)(hidden)
    outputs = keras.layers.Dense(2, activation="softmax", name="d2")(hidden)
    out = directory / "keras_export"
    keras.Model(inputs, outputs).export(str(out), verbose=False)
    return out


def control_flow_saved_models(directory: Path) -> tuple[Path, Path]:
    """tf.cond, tf.while_loop and a TensorArray in a TF2 tf.function, and cond/while in a TF1 graph."""
    import tensorflow as tf

    class Flow(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.v = tf.Variable(1.5)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            y = tf.cond(tf.reduce_sum(x) > 0, lambda: x * self.v, lambda: x - self.v)
            _, acc = tf.while_loop(
                lambda i, a: i < 5,
                lambda i, a: (i + 1, a + tf.reduce_mean(y)),
                [tf.constant(0), tf.constant(0.0)],
            )
            steps = tf.TensorArray(tf.float32, size=3)
            for k in tf.range(3):
                steps = steps.write(k, tf.cast(k, tf.float32) * acc)
            return {"y": y, "acc": acc, "steps": steps.stack()}

    flow = Flow()
    tf2_out = directory / "sm_flow_tf2"
    tf.saved_model.save(flow, str(tf2_out), signatures={"serving_default": flow.serve})

    tf1_out = directory / "sm_flow_tf1"
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        v = tf.compat.v1.get_variable("v", initializer=np.float32(1.5))
        y = tf.cond(tf.reduce_sum(x) > 0, lambda: x * v, lambda: x - v)
        _, acc = tf.while_loop(
            lambda i, a: i < 3, lambda i, a: (i + 1, a + tf.reduce_sum(y)), [tf.constant(0), tf.constant(0.0)]
        )
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(tf1_out))
            signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y, "acc": acc})
            builder.add_meta_graph_and_variables(
                sess,
                ["serve"],
                signature_def_map={"serving_default": signature},
                main_op=tf.compat.v1.tables_initializer(),
            )
            builder.save()
    return tf2_out, tf1_out


def tf2_print_writer(directory: Path, target: Path) -> Path:
    """A TF2 SavedModel whose signature prints to stderr (harmless) and to a file (``file://target``)."""
    import tensorflow as tf

    class Net(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2], tf.float32, name="x")])
        def serve(self, x):
            tf.print("input", x)
            tf.print("input", x, output_stream=f"file://{target}")
            return {"y": x * 3.0}

    net = Net()
    out = directory / "sm_print"
    tf.saved_model.save(net, str(out), signatures={"serving_default": net.serve})
    if target.exists():
        target.unlink()
    return out


def tf2_table_model(directory: Path) -> Path:
    """A tf.Module with a lookup table, string ops, random numbers, an assert and tf.print to stderr."""
    import tensorflow as tf

    class Tables(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            init = tf.lookup.KeyValueTensorInitializer(["a", "b"], tf.constant([1, 2], tf.int64))
            self.table = tf.lookup.StaticHashTable(init, -1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
        def serve(self, words):
            tf.debugging.assert_all_finite(tf.constant(1.0), "finite")
            tf.print("words", words)
            ids = self.table.lookup(tf.strings.lower(words))
            return {"ids": ids, "noise": tf.random.stateless_uniform([2], seed=[1, 2])}

    tables = Tables()
    out = directory / "sm_tables"
    tf.saved_model.save(tables, str(out), signatures={"serving_default": tables.serve})
    return out


# -- SavedModels as users save them: Keras 2 with optimizer state, control flow of both eras --

KERAS2_LAYERS = ("d1", "bn", "drop", "d2")


def keras2_saved_model(directory: Path, legacy_optimizer: bool = True) -> tuple[Path, Any]:
    """A tf_keras (Keras 2) functional model compiled with Adam, trained one step, saved as a SavedModel.

    ``legacy_optimizer``: Keras 2's OptimizerV2 Adam (what TF 2.0-2.10 users had), whose
    slot variables the object graph records; saved with ``model.save(save_format="tf")``.
    Otherwise the newer Keras 2 Adam, saved with ``tf.saved_model.save``. Returns
    (SavedModel, the trained model, for sub-models of its layers).
    """
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((6,), name="inp")
    hidden = tf_keras.layers.Dense(8, activation="relu", name="d1")(inputs)
    hidden = tf_keras.layers.BatchNormalization(name="bn")(hidden)
    hidden = tf_keras.layers.Dropout(0.2, name="drop")(hidden)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="d2")(hidden)
    model = tf_keras.Model(inputs, outputs)
    adam = tf_keras.optimizers.legacy.Adam() if legacy_optimizer else tf_keras.optimizers.Adam()
    model.compile(adam, "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 6)).astype(np.float32), np.eye(3, dtype=np.float32)[np.arange(8) % 3]
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    if legacy_optimizer:
        out = directory / "keras2_legacy_adam"
        model.save(str(out), save_format="tf")
    else:
        out = directory / "keras2_adam"
        tf.saved_model.save(model, str(out))
    return out, model


def tf1_control_flow_v1(directory: Path) -> Path:
    """A TF1 graph with tf.cond and tf.while_loop built as TF 1.x did (Switch/Merge/Enter/Exit)."""
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    out = directory / "sm_flow_v1"
    was_v2 = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = False  # the TF 1.x graph builders
    try:
        graph = tf.Graph()
        with graph.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
            w = tf.compat.v1.get_variable("w", initializer=np.float32(1.5), use_resource=False)
            total = tf.reduce_sum(x, name="total")
            y = tf.cond(
                total > 0, lambda: tf.multiply(x, w, name="scaled"), lambda: tf.subtract(x, w, name="shifted")
            )
            steps, acc = tf.while_loop(
                lambda i, a: i < 4,
                lambda i, a: (i + 1, a + tf.reduce_mean(y, name="step_mean")),
                [tf.constant(0), tf.constant(0.0)],
                name="loop",
            )
            result = tf.add(acc, tf.cast(steps, tf.float32), name="result")
            with tf.compat.v1.Session(graph=graph) as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                builder = tf.compat.v1.saved_model.Builder(str(out))
                signature = tf.compat.v1.saved_model.predict_signature_def(
                    {"x": x}, {"y": y, "result": result}
                )
                builder.add_meta_graph_and_variables(
                    sess, ["serve"], signature_def_map={"serving_default": signature}
                )
                builder.save()
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = was_v2
    return out


def tf2_autograph_model(directory: Path) -> tuple[Path, object]:
    """A tf.Module whose signature uses tf.cond and a Python ``for`` over a tensor (autograph: While).

    Returns (SavedModel, the module): its ``features``/``gate`` tf.functions give the
    intermediate values the signature computes.
    """
    import tensorflow as tf

    class Net(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            rng = np.random.default_rng(3)
            self.w = tf.Variable(rng.normal(size=(3, 4)).astype(np.float32), name="w")
            self.b = tf.Variable(rng.normal(size=(4,)).astype(np.float32), name="b")

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def features(self, x):
            return tf.nn.relu(tf.matmul(x, self.w) + self.b)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def gate(self, h):
            if tf.reduce_sum(h) > 1.0:  # autograph: If
                h = h * 2.0
            else:
                h = h - 1.0
            return h

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            h = self.gate(self.features(x))
            total = tf.zeros([4])
            for row in h:  # autograph: While over the rows of a tensor
                total = total + tf.square(row)
            return {"h": h, "total": total}

    net = Net()
    out = directory / "sm_autograph"
    tf.saved_model.save(net, str(out), signatures={"serving_default": net.serve})
    return out, net


def keras2_lstm_saved_model(directory: Path) -> tuple[Path, Any]:
    """A tf_keras LSTM model trained one step with Adam; Keras 2 saves a CuDNN alternative body."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((5, 4), name="seq")
    model = tf_keras.Model(
        inputs, tf_keras.layers.Dense(2, name="head")(tf_keras.layers.LSTM(3, name="lstm")(inputs))
    )
    model.compile(tf_keras.optimizers.legacy.Adam(), "mse")
    model.fit(np.ones((2, 5, 4), np.float32), np.ones((2, 2), np.float32), verbose=0)
    out = directory / "keras2_lstm"
    model.save(str(out), save_format="tf")
    return out, model
