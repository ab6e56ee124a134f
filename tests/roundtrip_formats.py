"""Builders of small files per format, made by each format's own library, for round-trip tests.

Each builder writes ``tensors`` (name -> numpy array) to a file in ``directory`` and
returns the path to open; ``dtypes`` lists what the format can hold.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from tensor_inspector.core.dtypes import all_test_dtypes
from tensor_inspector.core.npy_format import write_npy

ALL = [d.name for d in all_test_dtypes()]
ML = {"bfloat16", "float8_e4m3fn", "float8_e5m2"}


def build_npy(directory: Path, tensors: dict[str, np.ndarray]) -> Path:
    ((name, array),) = tensors.items()
    path = directory / f"{name}.npy"
    if array.dtype.name in ML:  # np.save would write raw 'V2' bytes
        with open(path, "wb") as fh:
            write_npy(fh, array)
    else:
        np.save(path, array)
    return path


def build_npz(directory: Path, tensors: dict[str, np.ndarray]) -> Path:
    path = directory / "t.npz"
    if any(a.dtype.name in ML for a in tensors.values()):
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key, value in tensors.items():
                with zf.open(key + ".npy", "w") as fh:
                    write_npy(fh, value)
    else:
        np.savez(path, **tensors)
    return path


def build_safetensors(directory: Path, tensors: dict[str, np.ndarray]) -> Path:
    from safetensors.torch import save_file

    path = directory / "t.safetensors"
    save_file({k: _to_torch(v) for k, v in tensors.items()}, path, metadata={"origin": "test"})
    return path


def _to_torch(array: np.ndarray):
    """numpy -> torch with identical bits (bf16/fp8 through their bit patterns)."""
    import torch

    name = array.dtype.name
    if name in ML:
        bits = array.view(np.int16 if name == "bfloat16" else np.uint8)
        target = {
            "bfloat16": torch.bfloat16,
            "float8_e4m3fn": torch.float8_e4m3fn,
            "float8_e5m2": torch.float8_e5m2,
        }[name]
        return torch.from_numpy(bits.copy()).view(target)
    return torch.from_numpy(np.array(array, copy=True))


FORMATS: dict[str, tuple] = {
    # name: (builder, dtypes it holds, can hold several tensors)
    "npy": (build_npy, ALL, False),
    "npz": (build_npz, ALL, True),
    "safetensors": (build_safetensors, [d for d in ALL if d != "complex128"], True),
}


def build_torch(directory: Path, tensors: dict[str, np.ndarray]) -> Path:
    import torch

    path = directory / "t.pt"
    torch.save({"model": {k: _to_torch(v) for k, v in tensors.items()}, "epoch": 3}, path)
    return path


def build_torch_legacy(directory: Path, tensors: dict[str, np.ndarray]) -> Path:
    import torch

    path = directory / "t.pth"
    torch.save({k: _to_torch(v) for k, v in tensors.items()}, path, _use_new_zipfile_serialization=False)
    return path


def build_pickle(directory: Path, tensors: dict[str, np.ndarray]) -> Path:
    import pickle

    path = directory / "t.pkl"
    path.write_bytes(pickle.dumps({"arrays": dict(tensors), "note": "x"}, protocol=4))
    return path


def build_tf_checkpoint(directory: Path, tensors: dict[str, np.ndarray]) -> Path:
    import tensorflow as tf

    variables = {k: tf.Variable(tf.constant(v)) for k, v in tensors.items()}
    return Path(tf.train.Checkpoint(**variables).write(str(directory / "ckpt")))


# torch's legacy loader fails on uint16/32/64 and float8 storages
_LEGACY = [d for d in ALL if d not in {"uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2"}]
_TF = ALL  # float8 included: TF 2.21 checkpoints store both float8 types
FORMATS["torch"] = (build_torch, ALL, True)
FORMATS["torch-legacy"] = (build_torch_legacy, _LEGACY, True)
FORMATS["pickle"] = (build_pickle, ALL, True)
FORMATS["tf-checkpoint"] = (build_tf_checkpoint, _TF, True)


def build_tf_saved_model(directory: Path, tensors: dict[str, np.ndarray]) -> Path:
    import tensorflow as tf

    module = tf.Module()
    for key, value in tensors.items():
        setattr(module, key, tf.Variable(tf.constant(value)))
    path = directory / "saved_model"
    tf.saved_model.save(module, str(path))
    return path


# SavedModels are slow to write (~0.3 s each): their own, smaller property test.
SLOW_FORMATS = {"tf-savedmodel": (build_tf_saved_model, _TF, True)}


def build_safetensors_sharded(directory: Path, tensors: dict[str, np.ndarray]) -> Path:
    """Two shards and their index, as Hugging Face writes big checkpoints."""
    import json

    from safetensors.torch import save_file

    keys = list(tensors)
    shards = {"t-00001-of-00002.safetensors": keys[:1], "t-00002-of-00002.safetensors": keys[1:]}
    weight_map = {}
    for name, members in shards.items():
        save_file({k: _to_torch(tensors[k]) for k in members}, directory / name, metadata={"format": "pt"})
        weight_map.update({k: name for k in members})
    path = directory / "t.safetensors.index.json"
    path.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return path


FORMATS["safetensors-sharded"] = (build_safetensors_sharded, FORMATS["safetensors"][1], True)
