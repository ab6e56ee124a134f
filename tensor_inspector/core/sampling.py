"""Reading a big tensor as a regular sample first: which index to ask for, and what it means.

The first picture of a tensor must be on screen within about two seconds whatever
its size, so a tensor above ``PREVIEW_BYTES`` is first read through a strided index
(every k-th value along each long axis): the backends index memory maps and
safetensors slices, so the reader touches only the sampled rows, and at most
``PREVIEW_BYTES`` cross to the window. ``Sampling`` maps positions in the sample
back to the tensor's own indices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tensor_inspector.core.dtypes import numpy_dtype
from tensor_inspector.core.nodes import Index, Node, NodeKind

PREVIEW_BYTES = 64 << 20  # the most a first read of any tensor may bring over
PREVIEW_ELEMENTS = 1 << 22  # ~2048x2048: more than a screen shows, little to read
FULL_LOAD_BYTES = 1 << 30  # up to this the whole value follows the sample in the background


@dataclass(frozen=True)
class Sampling:
    """A strided sample of a tensor: its full shape and the step along each axis."""

    shape: tuple[int, ...]
    steps: tuple[int, ...]

    @property
    def is_whole(self) -> bool:
        return all(step == 1 for step in self.steps)

    def full_index(self, sample_index: Sequence[int]) -> tuple[int, ...]:
        """The tensor's index of the value at ``sample_index`` in the sample."""
        return tuple(int(i) * s for i, s in zip(sample_index, self.steps))

    def sample_index(self, full_index: Sequence[int]) -> tuple[int, ...]:
        """The sample's index of the sampled value at or before ``full_index``."""
        return tuple(int(i) // s for i, s in zip(full_index, self.steps))

    def index(self) -> Index:
        """The strided index that reads this sample."""
        return tuple(slice(None, None, s) if s > 1 else slice(None) for s in self.steps)

    def describe(self) -> str:
        """ "every 46th row and column" style text for titles and notes."""
        stepped = [(axis, s) for axis, s in enumerate(self.steps) if s > 1]
        if not stepped:
            return "all values"
        if len({s for _, s in stepped}) == 1:
            axes = ", ".join(str(a) for a, _ in stepped)
            return f"every {_ordinal(stepped[0][1])} value along axis {axes}"
        return "; ".join(f"every {_ordinal(s)} along axis {a}" for a, s in stepped)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def sample_steps(
    shape: Sequence[int], itemsize: int, max_bytes: int = PREVIEW_BYTES, max_elements: int = PREVIEW_ELEMENTS
) -> tuple[int, ...]:
    """Steps per axis so the strided sample holds at most ``max_elements`` and ``max_bytes``.

    The longest remaining axis is thinned first, so a 2-D plane stays about square
    in cells and short axes (channels, heads) stay whole.
    """
    limit = max(1, min(max_elements, max_bytes // max(itemsize, 1)))
    steps = [1] * len(shape)
    counts = [max(int(n), 0) for n in shape]
    while math.prod(counts) > limit:
        axis = max(range(len(counts)), key=lambda a: counts[a])
        # small increments keep the steps of equal axes equal; x1.1 bounds the loop for 1e12 values
        steps[axis] = max(steps[axis] + 1, int(steps[axis] * 1.1))
        counts[axis] = -(-int(shape[axis]) // steps[axis])
    return tuple(steps)


def preview_sampling(
    shape: Sequence[int | None] | None, dtype: str | np.dtype | None, max_bytes: int = PREVIEW_BYTES
) -> Sampling | None:
    """The sample to read first for a tensor of ``shape`` and ``dtype``, or None to read it whole."""
    if shape is None or dtype is None or any(n is None for n in shape) or not shape:
        return None
    try:
        itemsize = numpy_dtype(dtype).itemsize
    except (TypeError, ValueError):
        return None
    dims = tuple(int(n) for n in shape if n is not None)
    if math.prod(dims) * itemsize <= max_bytes:
        return None
    steps = sample_steps(dims, itemsize, max_bytes)
    return Sampling(dims, steps)


def sampling_of(shape: Sequence[int | None] | None, index: Index | None) -> Sampling | None:
    """What a value read with ``index`` is a sample of (None: it is not a strided sample)."""
    if shape is None or not index or len(index) != len(shape) or any(n is None for n in shape):
        return None
    steps = []
    for part in index:
        if not isinstance(part, slice) or part.start not in (None, 0) or part.stop is not None:
            return None
        steps.append(int(part.step or 1))
    sampling = Sampling(tuple(int(n) for n in shape if n is not None), tuple(steps))
    return None if sampling.is_whole else sampling


def nbytes_of(shape: Sequence[int], dtype: str | np.dtype) -> int:
    return math.prod(int(n) for n in shape) * numpy_dtype(dtype).itemsize


def preview_index(node: Node) -> Index | None:
    """The index of the first read of ``node``: a strided sample of a big stored tensor, else None.

    Only stored tensors: a computed node is evaluated whole by its framework anyway.
    """
    if node.kind is not NodeKind.TENSOR:
        return None
    sampling = preview_sampling(node.shape, node.dtype)
    return sampling.index() if sampling is not None else None
