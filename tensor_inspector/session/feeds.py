"""Graph inputs ("feeds") given as ``NAME=VALUE`` on the command line or built in the app."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tensor_inspector.core.dtypes import numpy_dtype
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.nodes import FeedSpec


def load_npy(path: Path) -> np.ndarray:
    """Read a user's .npy fully, never unpickling (bf16/fp8 names understood).

    The numpy backend does the reading (header checks, truncation, Fortran order);
    the result is a copy, not a map of a file the user may overwrite next.
    """
    from tensor_inspector.backends.numpy import NPY_NODE_ID, NpySource

    path = Path(path)
    try:
        source = NpySource(path)
    except OSError as exc:
        raise InspectorError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    with source:
        return np.array(source.read(NPY_NODE_ID))


def parse_feed(text: str, specs: Sequence[FeedSpec] = ()) -> tuple[str, np.ndarray]:
    """``"x=[1,2,3]"`` or ``"x=@x.npy"`` -> (name, array), cast to the input's declared dtype."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise InspectorError(f"Feed {text!r} must look like NAME=[1,2,3] or NAME=@file.npy.")
    spec = next((s for s in specs if s.name == name or s.name.split(":")[0] == name), None)
    if spec is None:  # a typo would otherwise be ignored and zeros used silently
        inputs = ", ".join(s.name for s in specs)
        raise InspectorError(
            f"Unknown feed {name!r}: "
            + (f"this node's inputs are {inputs}." if inputs else "this node takes no inputs.")
        )
    if value.startswith("@"):
        array = load_npy(Path(value[1:]))
        return (spec.name if spec else name), array
    try:
        literal = json.loads(value)
    except json.JSONDecodeError:
        raise InspectorError(
            f"Feed {name!r}: {value!r} is not a JSON literal (use e.g. [[1,2],[3,4]] or @file.npy)."
        ) from None
    dtype = numpy_dtype(spec.dtype) if spec and spec.dtype else None
    try:
        array = np.asarray(literal, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InspectorError(f"Feed {name!r} does not fit dtype {dtype}: {exc}.") from None
    return (spec.name if spec else name), array


def parse_feeds(texts: Iterable[str], specs: Sequence[FeedSpec] = ()) -> dict[str, np.ndarray]:
    return dict(parse_feed(t, specs) for t in texts)
