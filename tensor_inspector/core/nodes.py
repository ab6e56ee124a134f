"""The shared vocabulary of a file's tree: nodes, their kinds, graph inputs, indexes.

Plain frozen data, so it crosses thread and process boundaries unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

from tensor_inspector.core.errors import InspectorError

# An index is what numpy accepts in ``a[index]`` restricted to ints and slices.
Index: TypeAlias = tuple[int | slice, ...]


class NodeKind(str, enum.Enum):
    TENSOR = "tensor"  # a stored tensor: read() gives its value
    COMPUTED = "computed"  # a graph node output: evaluate() runs the graph to it
    VALUE = "value"  # a non-tensor leaf (int, str, list of numbers) shown with its value
    GROUP = "group"  # a container: a dict, a module, a name scope
    SIGNATURE = "signature"  # a SavedModel signature / program entry point (a group with feeds)


@dataclass(frozen=True)
class Node:
    """One entry of a file's tree.

    ``id`` is the name the format itself uses (npz member, safetensors key,
    state-dict key, checkpoint key); nested containers join with ``/``.
    ``dtype`` is numpy's name (``"bfloat16"`` for ml_dtypes types) or None when
    the value is not an array; ``framework_dtype`` is the format's own name.
    ``shape`` entries are None where a dimension is unknown until evaluated.
    """

    id: str
    name: str
    kind: NodeKind
    parent: str | None = None
    dtype: str | None = None
    framework_dtype: str | None = None
    shape: tuple[int | None, ...] | None = None
    nbytes: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_value(self) -> bool:
        return self.kind in (NodeKind.TENSOR, NodeKind.COMPUTED, NodeKind.VALUE)


@dataclass(frozen=True)
class FeedSpec:
    """An input a computed node needs: name, numpy dtype name, shape (None = unknown dim)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None
    description: str = ""


def check_shape(node: Node, value: np.ndarray) -> None:
    """Raise with both shapes when ``value`` cannot take ``node``'s place."""
    if node.shape is not None and tuple(value.shape) != tuple(node.shape):
        raise InspectorError(
            f"Shape mismatch for {node.id!r}: the file has {list(node.shape)}, "
            f"the new value has {list(value.shape)}."
        )
