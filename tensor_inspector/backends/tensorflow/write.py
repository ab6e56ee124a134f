"""Writing TensorFlow checkpoints and SavedModels with some variables replaced.

Every key of the original is written again (the object graph proto included, so
``tf.train.Checkpoint.restore`` matches by the same names), values pass through
``tf.constant`` with the stored dtype, and unchanged tensors are copied as the
reader returns them. Tensors are saved in batches of bounded size with
``SaveV2`` and merged with ``MergeV2Checkpoints`` (what TF's own sharded save
does), so a 10 GB checkpoint is never held in memory at once. Partitioned (sliced)
TF1 variables are written back whole under their full key.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import InspectorError
from tensor_inspector.backends.tensorflow.common import import_tf, numpy_to_tf_value

BATCH_BYTES = 512 << 20


def _tensor_for(tf: Any, raw: Any, dtype: Any) -> Any:
    if dtype == tf.string:
        return tf.constant(raw, dtype=tf.string)
    return tf.constant(np.asarray(raw), dtype=dtype)


def write_checkpoint(variables: Any, prefix: Path, replacements: dict[str, np.ndarray]) -> None:
    """Write all keys of ``variables`` (a CheckpointVariables) to a new ``prefix``."""
    tf = import_tf()
    unknown = set(replacements) - set(variables.keys)
    if unknown:
        raise InspectorError(f"The checkpoint has no key {sorted(unknown)[0]!r}.")
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{prefix.name}-", dir=prefix.parent))
    try:
        parts: list[str] = []
        names: list[str] = []
        tensors: list[Any] = []
        size = 0

        def flush() -> None:
            nonlocal names, tensors, size
            if not names:
                return
            part = str(workdir / f"part-{len(parts):05d}")
            tf.raw_ops.SaveV2(
                prefix=part, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors
            )
            parts.append(part)
            names, tensors, size = [], [], 0

        for key in variables.keys:
            dtype = tf.dtypes.as_dtype(variables.dtypes[key])
            if key in replacements:
                tensor = numpy_to_tf_value(replacements[key], dtype.name)
            else:
                tensor = _tensor_for(tf, variables.raw(key), dtype)
            names.append(key)
            tensors.append(tensor)
            size += int(np.prod(tensor.shape)) * max(dtype.size, 1)
            if size >= BATCH_BYTES:
                flush()
        flush()
        for stale in prefix.parent.glob(prefix.name + ".data-*"):
            stale.unlink()  # old shards with another count would confuse readers
        tf.raw_ops.MergeV2Checkpoints(
            checkpoint_prefixes=parts, destination_prefix=str(prefix), delete_old_dirs=False
        )
        for written in [Path(str(prefix) + ".index"), *prefix.parent.glob(prefix.name + ".data-*")]:
            with open(written, "rb") as fh:
                os.fsync(fh.fileno())
    except InspectorError:
        raise
    except Exception as exc:
        raise InspectorError(f"Writing the checkpoint {prefix} failed: {str(exc).splitlines()[0]}") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def write_saved_model(
    src_dir: Path, variables: Any, dst_dir: Path, replacements: dict[str, np.ndarray]
) -> None:
    """Copy a SavedModel directory and rewrite its variables with ``replacements`` applied.

    The graph, signatures, assets and object graph are copied byte for byte; only
    ``variables/variables.*`` is written anew, so ``tf.saved_model.load`` serves the new values.
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    if dst_dir.exists() and any(dst_dir.iterdir()):
        raise InspectorError(f"{dst_dir} already exists and is not empty; choose a new directory.")
    var_dir = src_dir / "variables"
    shutil.copytree(
        src_dir, dst_dir, dirs_exist_ok=True, ignore=lambda d, names: names if Path(d) == var_dir else []
    )
    (dst_dir / "variables").mkdir(exist_ok=True)
    try:
        if variables is not None:
            write_checkpoint(variables, dst_dir / "variables" / "variables", replacements)
    except Exception:
        shutil.rmtree(dst_dir, ignore_errors=True)
        raise
