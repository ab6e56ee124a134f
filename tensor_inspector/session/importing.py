"""Replacing a node's value with a user's .npy: shape and dtype checked, lossy casts only on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tensor_inspector.core.dtypes import numpy_dtype
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.nodes import Node, check_shape
from tensor_inspector.session.feeds import load_npy


def is_lossless_cast(src: np.dtype, dst: np.dtype) -> bool:
    """True when every value of ``src`` is exactly representable in ``dst``."""
    src, dst = np.dtype(src), np.dtype(dst)
    if src == dst:
        return True
    try:
        return bool(np.can_cast(src, dst, casting="safe"))
    except TypeError:  # ml_dtypes types: only identity is known to be exact
        return False


def check_replacement(value: np.ndarray, node: Node, allow_cast: bool = False) -> np.ndarray:
    """``value`` as it will be stored in ``node``; raises with what differs."""
    check_shape(node, value)
    if node.dtype is None:
        return value
    target = numpy_dtype(node.dtype)
    if value.dtype == target:
        return value
    if is_lossless_cast(value.dtype, target):
        return value.astype(target)
    if not allow_cast:
        raise InspectorError(
            f"Dtype mismatch for {node.id!r}: the file stores {target.name}, the new value is "
            f"{value.dtype.name}; casting may lose precision (confirm with --cast)."
        )
    with np.errstate(all="ignore"):
        return value.astype(target)


def load_replacement(path: Path, node: Node, allow_cast: bool = False) -> np.ndarray:
    return check_replacement(load_npy(path), node, allow_cast)
