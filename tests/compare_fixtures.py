"""A small Keras model saved by Keras and TensorFlow, and the same weights as a PyTorch port.

The port is what people compare when they move a model between frameworks: a torch
module with the same layer names, its weights loaded from the Keras ones (kernels
transposed to torch's layout, ``gamma``/``moving_mean`` renamed), saved as a state dict
(with a ``module.`` prefix, as DataParallel writes it) and as safetensors. Loading them
into a real ``nn.Module`` with ``strict=True`` proves the layouts are torch's own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Keras variable -> (torch name, permutation taking the Keras array to torch's layout)
DENSE, CONV, DEPTHWISE = (1, 0), (3, 2, 0, 1), (2, 3, 0, 1)


@dataclass(frozen=True)
class PortedModel:
    checkpoint: str  # tf.train.Checkpoint prefix
    keras_file: Path
    torch_file: Path  # state dict, keys prefixed with "module."
    safetensors_file: Path
    keras_weights: dict[str, np.ndarray]  # "conv1/kernel" -> value
    torch_weights: dict[str, np.ndarray]  # "conv1.weight" -> value (no prefix)
    transposed: dict[str, tuple[int, ...]]  # torch name -> permutation applied to the Keras array


def build_keras_model():  # type: ignore[no-untyped-def]
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 3), name="image")
    tokens = keras.Input((4,), dtype="int32", name="tokens")
    x = keras.layers.Conv2D(4, 3, name="conv1")(image)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    x = keras.layers.Flatten(name="flat")(x)
    e = keras.layers.Flatten(name="flat_tokens")(keras.layers.Embedding(10, 3, name="emb")(tokens))
    x = keras.layers.Concatenate(name="cat")([x, e])
    x = keras.layers.Dense(5, name="fc1")(x)
    x = keras.layers.Dense(5, name="fc2")(x)  # square kernel: only the names say it is transposed
    x = keras.layers.LayerNormalization(name="ln")(x)
    model = keras.Model([image, tokens], x)
    # Non-trivial BatchNorm statistics, so running_mean/var pairs are checked on real numbers.
    bn = model.get_layer("bn1")
    rng = np.random.default_rng(1)
    bn.moving_mean.assign(rng.normal(size=4).astype(np.float32))
    bn.moving_variance.assign(rng.uniform(0.5, 2, size=4).astype(np.float32))
    return model


def torch_port(
    keras_weights: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, ...]]]:
    """The Keras weights in torch names and layouts, checked by loading into a torch module."""
    import torch
    from torch import nn

    names = {
        "kernel": "weight",
        "gamma": "weight",
        "beta": "bias",
        "moving_mean": "running_mean",
        "moving_variance": "running_var",
        "embeddings": "weight",
        "bias": "bias",
    }
    perms = {"conv1": CONV, "dw": DEPTHWISE, "fc1": DENSE, "fc2": DENSE}
    weights: dict[str, np.ndarray] = {}
    transposed: dict[str, tuple[int, ...]] = {}
    for key, value in keras_weights.items():
        layer, variable = key.split("/")
        name = f"{layer}.{names[variable]}"
        if variable == "kernel":
            value = value.transpose(perms[layer])
            transposed[name] = perms[layer]
        weights[name] = np.ascontiguousarray(value)

    class Port(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3)
            self.bn1 = nn.BatchNorm2d(4)
            self.dw = nn.Conv2d(4, 4, 3, groups=4)
            self.emb = nn.Embedding(10, 3)
            self.fc1 = nn.Linear(weights["fc1.weight"].shape[1], 5)
            self.fc2 = nn.Linear(5, 5)
            self.ln = nn.LayerNorm(5)

    module = Port()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    missing = set(module.state_dict()) - set(weights)
    assert missing == {"bn1.num_batches_tracked"}, missing  # every weight has torch's shape
    return weights, transposed


def build_ported_model(directory: Path) -> PortedModel:
    import tensorflow as tf
    import torch
    from safetensors.numpy import save_file

    model = build_keras_model()
    keras_weights = {v.path: np.asarray(v.numpy()) for v in model.weights}
    keras_file = directory / "model.keras"
    model.save(keras_file)
    checkpoint = tf.train.Checkpoint(model=model).write(str(directory / "ckpt"))
    weights, transposed = torch_port(keras_weights)
    state = {f"module.{k}": torch.from_numpy(v.copy()) for k, v in weights.items()}
    state["module.bn1.num_batches_tracked"] = torch.tensor(1)
    torch_file = directory / "port.pt"
    torch.save(state, torch_file)
    safetensors_file = directory / "port.safetensors"
    save_file(weights, str(safetensors_file))
    return PortedModel(
        checkpoint, keras_file, torch_file, safetensors_file, keras_weights, weights, transposed
    )
