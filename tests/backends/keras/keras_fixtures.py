"""Keras models built and saved the way users do, with the outputs Keras computes for them.

Each builder saves a model and returns a ``Built``: the file, the inputs used, and every
layer's outputs computed by the in-memory model that was saved (``keras.Model(model.inputs,
[layer.output ...])``), so the files are checked against Keras, not against our reader.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LAMBDA_CANARY = "lambda-ran.txt"


@dataclass
class Built:
    path: Path
    feeds: dict[str, np.ndarray]
    outputs: dict[str, list[np.ndarray]] = field(default_factory=dict)  # layer name -> its outputs


def _layer_outputs(keras, model, feeds: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    layers = [la for la in model.layers if la.__class__.__name__ != "InputLayer"]
    probe = keras.Model(model.inputs, [la.output for la in layers])
    values = probe([feeds[t.name] for t in model.inputs], training=False)
    result = {}
    for layer, value in zip(layers, values):
        flat = value if isinstance(value, (list, tuple)) else [value]
        result[layer.name] = [np.asarray(keras.ops.convert_to_numpy(v)) for v in flat]
    return result


def _random(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def functional(directory: Path, suffix: str) -> Built:
    """Two inputs, convolutions, batch norm (with non-trivial statistics), an LSTM with states."""
    import keras

    keras.utils.set_random_seed(1)
    image = keras.Input((6, 6, 2), name="image")
    series = keras.Input((4, 3), name="series")
    x = keras.layers.Conv2D(3, 3, name="conv")(image)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten(name="flat")(x)
    seq, state_h, state_c = keras.layers.LSTM(5, return_sequences=True, return_state=True, name="lstm")(
        series
    )
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(seq)
    merged = keras.layers.Concatenate(name="merge")([x, pooled, state_h, state_c])
    hidden = keras.layers.Dense(4, activation="relu", name="dense")(merged)
    out = keras.layers.Dense(2, use_bias=False, name="head")(hidden)
    model = keras.Model([image, series], [out, hidden], name="two_inputs")
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.linspace(-1, 1, 3).astype(np.float32))
    bn.moving_variance.assign(np.linspace(0.5, 2, 3).astype(np.float32))
    path = directory / f"functional{suffix}"
    model.save(path)
    feeds = {"image": _random((2, 6, 6, 2), 1), "series": _random((2, 4, 3), 2)}
    return Built(path, feeds, _layer_outputs(keras, model, feeds))


def sequential(directory: Path, suffix: str) -> Built:
    import keras

    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((5,), name="features"),
            keras.layers.Dense(8, activation="tanh", name="dense"),
            keras.layers.LayerNormalization(name="norm"),
            keras.layers.Dropout(0.5, name="drop"),
            keras.layers.Dense(3, activation="softmax", name="probs"),
        ],
        name="seq",
    )
    path = directory / f"sequential{suffix}"
    model.save(path)
    feeds = {"features": _random((3, 5), 3)}
    return Built(path, feeds, _layer_outputs(keras, model, feeds))


def with_lambda(directory: Path, suffix: str) -> Built:
    """A Lambda layer whose function writes a canary file beside the model when it runs."""
    import keras

    keras.utils.set_random_seed(3)
    canary = str(directory / LAMBDA_CANARY)
    # a lambda expression: Keras stores its bytecode (a named function is stored by name only)
    doubled = lambda t: (open(canary, "w").write("executed"), t * 2.0)[1]  # noqa: E731
    inputs = keras.Input((3,), name="inp")
    hidden = keras.layers.Dense(4, name="dense")(inputs)
    hidden = keras.layers.Lambda(doubled, output_shape=(4,), name="lam")(hidden)
    outputs = keras.layers.Dense(2, name="head")(hidden)
    model = keras.Model(inputs, outputs, name="with_lambda")
    path = directory / f"lambda{suffix}"
    model.save(path)
    feeds = {"inp": _random((2, 3), 4)}
    built = Built(path, feeds, _layer_outputs(keras, model, feeds))
    (directory / LAMBDA_CANARY).unlink(missing_ok=True)  # building ran the lambda; opening must not
    return built


def _scale_class():
    import keras

    @keras.saving.register_keras_serializable(package="InspectorTests")
    class Scale(keras.layers.Layer):
        """A custom layer: multiplies by a learned vector."""

        def build(self, input_shape):
            self.factor = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="factor")

        def call(self, inputs):
            return inputs * self.factor

    return Scale


SCALE = None


def with_custom_class(directory: Path, suffix: str) -> Built:
    import keras

    global SCALE
    if SCALE is None:
        SCALE = _scale_class()
    keras.utils.set_random_seed(4)
    inputs = keras.Input((3,), name="inp")
    hidden = keras.layers.Dense(4, name="dense")(inputs)
    scale = SCALE(name="scale")
    hidden = scale(hidden)
    scale.factor.assign(np.array([1.0, -2.0, 0.5, 3.0], np.float32))
    outputs = keras.layers.Dense(2, name="head")(hidden)
    model = keras.Model(inputs, outputs, name="with_custom")
    path = directory / f"custom{suffix}"
    model.save(path)
    feeds = {"inp": _random((2, 3), 5)}
    return Built(path, feeds, _layer_outputs(keras, model, feeds))


def with_missing_module(directory: Path) -> Path:
    """A .keras whose custom layer comes from a package that is not installed here."""
    built = with_custom_class(directory, ".keras")
    target = directory / "missing_module.keras"
    with zipfile.ZipFile(built.path) as source, zipfile.ZipFile(target, "w") as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "config.json":
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    if layer["class_name"] == "Scale":
                        layer["module"] = "inspector_absent_package.layers"
                        layer["registered_name"] = "AbsentPackage>Scale"
                data = json.dumps(config).encode()
            out.writestr(info, data)
    return target


def keras2_h5(directory: Path) -> Built:
    """A Functional model saved as .h5 by Keras 2 (the ``tf_keras`` package)."""
    import tf_keras

    tf_keras.utils.set_random_seed(5)
    inputs = tf_keras.Input((4,), name="x")
    hidden = tf_keras.layers.Dense(6, activation="relu", name="dense")(inputs)
    hidden = tf_keras.layers.BatchNormalization(name="bn")(hidden)
    outputs = tf_keras.layers.Dense(2, name="head")(hidden)
    model = tf_keras.Model(inputs, outputs, name="k2")
    model.compile("adam", "mse")
    model.fit(
        np.ones((8, 4), np.float32), np.ones((8, 2), np.float32), epochs=1, verbose=0
    )  # optimizer state
    path = directory / "keras2.h5"
    model.save(path)
    feeds = {"x": _random((3, 4), 6)}
    layers = [la for la in model.layers if la.__class__.__name__ != "InputLayer"]
    probe = tf_keras.Model(model.inputs, [la.output for la in layers])
    values = probe(feeds["x"], training=False)
    return Built(path, feeds, {la.name: [np.asarray(v)] for la, v in zip(layers, values)})


def keras2_depthwise_h5(directory: Path) -> Built:
    """A Keras 2 MobileNet-style block (DepthwiseConv2D, whose config Keras 2 wrote with ``groups``)."""
    import tf_keras

    tf_keras.utils.set_random_seed(7)
    image = tf_keras.Input((8, 8, 3), name="image")
    x = tf_keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(image)
    x = tf_keras.layers.BatchNormalization(name="dw_bn")(x)
    x = tf_keras.layers.ReLU(6.0, name="dw_relu")(x)
    x = tf_keras.layers.Conv2D(4, 1, name="pw")(x)
    model = tf_keras.Model(image, x, name="mbblock")
    path = directory / "keras2_depthwise.h5"
    model.save(path)
    feeds = {"image": _random((2, 8, 8, 3), 8)}
    layers = [la for la in model.layers if la.__class__.__name__ != "InputLayer"]
    probe = tf_keras.Model(model.inputs, [la.output for la in layers])
    values = probe(feeds["image"], training=False)
    return Built(path, feeds, {la.name: [np.asarray(v)] for la, v in zip(layers, values)})
