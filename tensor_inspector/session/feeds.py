"""Graph inputs ("feeds") given as ``NAME=VALUE`` on the command line or built in the app."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tensor_inspector.core.dtypes import numpy_dtype
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.nodes import FeedSpec


def same_feed(used: np.ndarray | None, given: np.ndarray) -> bool:
    """Whether ``given`` is the input ``used`` was: same dtype, shape and values (NaN equals NaN).

    None (an input that was not used) is never the same.
    """
    if used is None or used.dtype != given.dtype or used.shape != given.shape:
        return False
    return bool(np.array_equal(used, given, equal_nan=given.dtype.kind in "fc"))


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
        return spec.name, load_npy(Path(value[1:]))
    return spec.name, literal_feed(spec, value)


def literal_feed(spec: FeedSpec, text: str) -> np.ndarray:
    """A JSON literal typed for input ``spec`` (``7``, ``[[1, 2], [3, 4]]``, ``true``) as its array.

    The value takes the input's declared dtype, so ``[7, 4]`` for an int64 input stays
    int64; a number that the dtype cannot hold (``1.5`` for an integer input, ``300`` for
    uint8) is refused rather than silently truncated. An input of unknown dtype (a
    TorchScript ``Tensor`` says none) takes the literal's own kind: integers int64,
    booleans bool, and other numbers float32, the default float of the frameworks.
    """
    try:
        literal = json.loads(text)
    except json.JSONDecodeError:
        raise InspectorError(
            f"Input {spec.name!r}: {text!r} is not a JSON literal (write e.g. 7, [1, 2] or [[1, 2], [3, 4]])."
        ) from None
    try:
        natural = np.asarray(literal)
    except ValueError:
        raise InspectorError(f"Input {spec.name!r}: {text!r} is not a rectangular array.") from None
    if natural.dtype.kind == "U" and spec.dtype and numpy_dtype(spec.dtype).kind in "USO":
        return np.asarray(literal, dtype=numpy_dtype(spec.dtype))  # a string input (TensorFlow)
    if natural.dtype.kind not in "biuf":
        raise InspectorError(f"Input {spec.name!r}: {text!r} is not made of numbers or booleans.")
    if not spec.dtype:
        return natural.astype(np.float32) if natural.dtype.kind == "f" else natural
    dtype = numpy_dtype(spec.dtype)
    if dtype.kind in "iub" and natural.dtype.kind == "f" and not np.all(np.equal(np.mod(natural, 1), 0)):
        raise InspectorError(f"Input {spec.name!r} takes {dtype.name} values, not {text}.")
    try:
        array = np.asarray(literal, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise InspectorError(f"Input {spec.name!r}: {text} does not fit its dtype {dtype.name}.") from None
    if dtype.kind in "iu" and not np.array_equal(array, natural):
        raise InspectorError(f"Input {spec.name!r}: {text} does not fit its dtype {dtype.name}.")
    return array


def parse_feeds(texts: Iterable[str], specs: Sequence[FeedSpec] = ()) -> dict[str, np.ndarray]:
    return dict(parse_feed(t, specs) for t in texts)
