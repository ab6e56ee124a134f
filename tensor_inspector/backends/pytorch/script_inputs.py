"""The inputs of a TorchScript method, read from its schema: what a user can feed, and how.

The schema names every argument with its TorchScript type (``Tensor x, int sr``) and default;
a Tensor's dtype and shape are not part of it, but a graph traced and kept in memory types its
inputs completely, so those are used where present. Arguments a feed cannot express (a string,
a tuple, a custom class) are passed their default; without one the method cannot be run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tensor_inspector.backends.base import FeedSpec, InspectorError

# TorchScript argument type -> the numpy dtype of the feed that supplies it
_SCALARS = {"int": "int64", "float": "float64", "bool": "bool"}
_LISTS = {"List[int]": "int64", "List[float]": "float64", "List[bool]": "bool"}
# TensorType.scalarType() names -> numpy dtype names
_TENSOR_DTYPES = {
    "Float": "float32",
    "Double": "float64",
    "Half": "float16",
    "BFloat16": "bfloat16",
    "Long": "int64",
    "Int": "int32",
    "Short": "int16",
    "Char": "int8",
    "Byte": "uint8",
    "Bool": "bool",
}


@dataclass(frozen=True)
class Argument:
    """One argument of the method after ``self``."""

    name: str
    kind: str  # the TorchScript type, e.g. "Tensor", "int", "Optional[Tensor]"
    spec: FeedSpec | None  # None: no feed can supply it
    form: str  # how a feed becomes the value: "tensor", "scalar", "list" ("" without a spec)
    default: Any
    has_default: bool


def arguments(method: Any, graph: Any) -> list[Argument]:
    """The arguments of ``method`` (a ScriptMethod) with the feed for each that can take one."""
    import torch

    inputs = list(graph.inputs())[1:]  # skip self
    found: list[Argument] = []
    for index, arg in enumerate(method.schema.arguments[1:]):
        kind = str(arg.type)
        base = kind.removeprefix("Optional[").removesuffix("]") if kind.startswith("Optional[") else kind
        has_default = bool(arg.has_default_value())
        spec: FeedSpec | None = None
        form = ""
        description = kind + (f" = {arg.default_value!r}" if has_default else "")
        if base == "Tensor":
            graph_type = inputs[index].type() if index < len(inputs) else None
            dtype, shape = "", None  # the schema fixes no dtype: the fed array's is used
            if isinstance(graph_type, torch._C.TensorType):
                dtype = _TENSOR_DTYPES.get(graph_type.scalarType() or "", dtype)
                sizes = graph_type.varyingSizes()
                shape = tuple(sizes) if sizes is not None else None
            spec, form = FeedSpec(arg.name, dtype, shape, description), "tensor"
        elif base in _SCALARS:
            spec, form = FeedSpec(arg.name, _SCALARS[base], (), description), "scalar"
        elif base in _LISTS:
            spec, form = FeedSpec(arg.name, _LISTS[base], (None,), description), "list"
        found.append(Argument(arg.name, kind, spec, form, arg.default_value, has_default))
    return found


def unfeedable(args: list[Argument]) -> list[str]:
    """Arguments that neither a feed nor a default can supply, as ``name (type)``."""
    return [f"{a.name} ({a.kind})" for a in args if a.spec is None and not a.has_default]


def default_feed(arg: Argument) -> np.ndarray | None:
    """The method's own default for ``arg`` as a feed array (None when it has none to show)."""
    if arg.spec is None or not arg.has_default or arg.default is None:
        return None
    return np.asarray(arg.default, dtype=arg.spec.dtype or None)


def call_values(args: list[Argument], feeds: dict[str, np.ndarray]) -> list[Any]:
    """The Python values to call the method with: tensors, numbers, lists, or defaults."""
    from tensor_inspector.backends.pytorch import convert as torch_convert

    values: list[Any] = []
    for arg in args:
        if arg.spec is None or arg.name not in feeds:
            if not arg.has_default:
                raise InspectorError(f"The input {arg.name!r} ({arg.kind}) was not given.")
            values.append(arg.default)
            continue
        array = np.asarray(feeds[arg.name])
        dtype = arg.spec.dtype
        if arg.form == "tensor":  # a tensor keeps the fed dtype: the schema does not fix one
            values.append(torch_convert.tensor_from_array(array))
        elif arg.form == "scalar":
            if array.size != 1:
                raise InspectorError(
                    f"The input {arg.name!r} ({arg.kind}) takes one number, not {array.size}."
                )
            values.append(array.astype(dtype).item())
        else:
            values.append(array.astype(dtype).reshape(-1).tolist())
    return values
