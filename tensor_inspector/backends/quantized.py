"""Quantized tensors: the stored integers and the values they stand for, as two nodes.

The convention every backend follows (documented in ``base.py``):

- A quantized tensor is shown as a pair of nodes of the same kind, one per view: ``"raw"``
  (what the file stores: int8 codes, uint8 GGUF blocks, float8 before its scale) and
  ``"dequantized"`` (float32 values in the tensor's logical shape).
- Both nodes carry ``metadata["views"] = {"raw": <id>, "dequantized": <id>}`` and
  ``metadata["view"]`` naming which of the two they are, so a viewer toggles by selecting
  the other id; statistics and export follow because it is just another node.
- The stored node carries ``metadata["quantization"]``: ``scheme`` plus whichever of
  ``scale``, ``zero_point``, ``axis``, ``block_size``, ``scale_tensor`` apply.
- The extra node is a child of the stored one: ``<id>/dequantized`` (int8/fp8 formats) or
  ``<id>/raw`` (GGUF, whose main node shows values since that is what its users look at).

Dequantization here is numpy only and reads only the indexed part of the codes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tensor_inspector.backends.base import Index, InspectorError, Node

QUANTIZATION = "quantization"
VIEWS = "views"
VIEW = "view"
RAW = "raw"
DEQUANTIZED = "dequantized"
MAX_LISTED = 64  # per-channel scales shown in metadata; the backend keeps all of them


def views(raw_id: str, dequantized_id: str, this: str) -> dict[str, Any]:
    """The metadata entries that pair a node with its other view."""
    return {VIEWS: {RAW: raw_id, DEQUANTIZED: dequantized_id}, VIEW: this}


def listed(values: np.ndarray) -> float | int | list[Any]:
    """Scales or zero points as plain data for metadata: a number, or the first few of a list."""
    flat = np.asarray(values).reshape(-1)
    items = [v.item() for v in flat[:MAX_LISTED]]
    return items[0] if flat.size == 1 else items


def dequantized_node(stored: Node, node_id: str | None = None) -> Node:
    """The ``<id>/dequantized`` child of a stored quantized node: float32, same shape and kind."""
    node_id = node_id or f"{stored.id}/{DEQUANTIZED}"
    shape = stored.shape
    nbytes = 4 * math.prod(d or 0 for d in shape) if shape is not None else None
    return Node(
        id=node_id,
        name=DEQUANTIZED,
        kind=stored.kind,
        parent=stored.id,
        dtype="float32",
        framework_dtype="float32",
        shape=shape,
        nbytes=nbytes,
        metadata={QUANTIZATION: stored.metadata.get(QUANTIZATION), **views(stored.id, node_id, DEQUANTIZED)},
    )


def refuse_view_write(node: Node) -> None:
    """Dequantized views are computed: edits go to the stored codes (bit-exact on reopen)."""
    raw = node.metadata.get(VIEWS, {}).get(RAW, "the stored tensor")
    raise InspectorError(
        f"{node.id!r} shows values computed from {raw!r}; edit {raw!r} (the stored codes) instead."
    )


def grid(
    scale: np.ndarray | float, shape: Sequence[int], axis: int | None = None
) -> tuple[np.ndarray, tuple[int, ...]]:
    """A per-tensor or per-axis scale as a grid over ``shape`` and the block each entry covers."""
    values = np.asarray(scale, dtype=np.float32).reshape(-1)
    ndim = len(shape)
    if axis is None or values.size == 1 or ndim == 0:
        return values[:1].reshape((1,) * ndim), tuple(max(int(d), 1) for d in shape)
    axis = axis % ndim
    if values.size != shape[axis]:
        raise InspectorError(
            f"{values.size} scales do not match dimension {axis} of size {shape[axis]} of the tensor."
        )
    grid_shape = tuple(values.size if d == axis else 1 for d in range(ndim))
    block = tuple(1 if d == axis else max(int(n), 1) for d, n in enumerate(shape))
    return values.reshape(grid_shape), block


def block_of(shape: Sequence[int], grid_shape: Sequence[int]) -> tuple[int, ...] | None:
    """The block size that tiles ``shape`` into ``grid_shape`` (ceil division), or None."""
    if len(shape) != len(grid_shape):
        return None
    block = []
    for n, g in zip(shape, grid_shape):
        if g <= 0:
            return None
        b = max(math.ceil(n / g), 1)
        if math.ceil(n / b) != g and not (n == 0 and g == 1):
            return None
        block.append(b)
    return tuple(block)


def dequantize(
    read: Callable[[Index | None], np.ndarray],
    shape: Sequence[int],
    index: Index | None,
    scale: np.ndarray,
    block: Sequence[int],
    zero_point: np.ndarray | None = None,
) -> np.ndarray:
    """``(q - zero_point) * scale`` over ``read(index)``, with ``scale``/``zero_point`` given on
    a grid whose every entry covers ``block`` elements (per tensor, per axis or block-wise).

    Only the indexed codes are read; the matching part of the grid is gathered for them.
    """
    q = read(index)
    full = tuple(index or ()) + (slice(None),) * (len(shape) - len(index or ()))
    picks = []
    kept = []
    for d, part in enumerate(full):
        positions = np.arange(shape[d])[part]
        kept.append(not np.isscalar(positions) and np.ndim(positions) == 1)
        picks.append(np.atleast_1d(positions) // block[d])
    out_shape = tuple(len(p) for p, keep in zip(picks, kept) if keep)
    s = np.asarray(scale, np.float32)[np.ix_(*picks)].reshape(out_shape) if picks else np.float32(scale)
    values = np.asarray(q).astype(np.float32)
    if zero_point is not None:
        z = np.asarray(zero_point)[np.ix_(*picks)].reshape(out_shape) if picks else zero_point
        values = values - np.asarray(z).astype(np.float32)
    return np.asarray(values * s, dtype=np.float32)


# -- float8 weights paired with their scale tensors (safetensors checkpoints) ---------------
FLOAT8 = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
# Names checkpoints give a float8 weight's scale: "<w>_scale" (FBGEMM, compressed-tensors
# "<layer>.weight_scale"), "<w>_scale_inv" (DeepSeek-V3: multiplied in despite the name).
SCALE_SUFFIXES = ("_scale", "_scale_inv")
BLOCK_METADATA_KEYS = ("weight_block_size", "block_size")
COMMON_BLOCK = 128  # DeepSeek-V3, Qwen3-FP8: 128x128 blocks


def metadata_block(metadata: dict[str, Any]) -> list[int] | None:
    """A block size the file's metadata declares (JSON text such as "[128, 128]")."""
    import json

    for key in BLOCK_METADATA_KEYS:
        text = metadata.get(key)
        if text is None:
            continue
        try:
            value = json.loads(text) if isinstance(text, str) else text
        except ValueError:
            continue
        if isinstance(value, int):
            return [value]
        if isinstance(value, list) and all(isinstance(v, int) and v > 0 for v in value):
            return value
    return None


def scale_block(
    shape: Sequence[int], scale_shape: Sequence[int], declared: Sequence[int] | None
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(scale grid shape, block) that lets ``scale_shape`` scale ``shape``, or None.

    Per tensor (one value), per row (``[rows]`` or ``[rows, 1]``) and block-wise. Per
    dimension the block is the declared one when it fits, else 128 when it fits, else the
    ceiling quotient: the shapes alone cannot tell 125 from 128 for 1000 rows in 8 blocks.
    """
    size = math.prod(scale_shape)
    if size == 1:
        return (1,) * len(shape), tuple(max(int(d), 1) for d in shape)
    grid_shape = tuple(scale_shape)
    if len(grid_shape) == 1 and len(shape) >= 2 and grid_shape[0] == shape[0]:
        grid_shape = (shape[0],) + (1,) * (len(shape) - 1)
    if len(grid_shape) != len(shape):
        return None
    tail = list(declared or [])[-len(shape) :]
    declared_dims = [None] * (len(shape) - len(tail)) + tail
    block = []
    for n, g, wanted in zip(shape, grid_shape, declared_dims):
        if g < 1:
            return None
        fits = [b for b in (wanted, COMMON_BLOCK, max(math.ceil(n / g), 1)) if b and math.ceil(n / b) == g]
        if g == n:
            fits.insert(0, 1)
        if not fits:
            return None
        block.append(fits[0])
    return grid_shape, tuple(block)


def fp8_pairs(
    nodes: Sequence[Node], metadata: dict[str, Any]
) -> dict[str, tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """float8 tensor id -> (scale tensor id, scale grid shape, block) for the pairs found."""
    by_id = {n.id: n for n in nodes}
    declared = metadata_block(metadata)
    pairs = {}
    for node in nodes:
        if node.dtype not in FLOAT8 or node.shape is None:
            continue
        for suffix in SCALE_SUFFIXES:
            scale = by_id.get(node.id + suffix)
            if scale is None or scale.shape is None or scale.dtype not in ("float32", "bfloat16", "float16"):
                continue
            found = scale_block(
                [int(d or 0) for d in node.shape], [int(d or 0) for d in scale.shape], declared
            )
            if found is not None:
                pairs[node.id] = (scale.id, *found)
                break
    return pairs
