"""A tree of nodes over an unpickled object: dicts, lists, tuples, arrays, tensors, scalars.

Shared by the plain-pickle and torch-checkpoint backends. Framework-free: torch
tensors are recognised only when torch is already imported (a tensor cannot exist
otherwise), and converted through ``torch_convert`` imported at that moment.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import (
    CorruptFile,
    Index,
    InspectorError,
    Node,
    NodeKind,
    NotEvaluable,
    Source,
)

MAX_REPR = 200
# Real checkpoints nest containers a dozen levels deep; a pickle is decoded without
# recursion, so a crafted one can nest 100,000 levels and only our walk would recurse.
MAX_DEPTH = 200
# A pickle can share one container many times (a list holding the same list twice,
# 60 levels down, is 2**60 paths in a few hundred bytes): the tree stops growing here.
MAX_NODES = 1_000_000


def is_torch_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def is_torch_module(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a trusted object with a broken __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _is_container(value: Any) -> bool:
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float, bool)) for v in value):
        return False  # a list of numbers is one value, shown as an array
    return isinstance(value, (dict, list, tuple)) or is_torch_module(value)


def _items(value: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(value, dict):
        yield from value.items()
    elif isinstance(value, (list, tuple)):
        yield from enumerate(value)
    elif is_torch_module(value):
        # a pickled nn.Module (trusted load): show its state dict
        yield from value.state_dict(keep_vars=True).items()


def value_array(value: Any) -> np.ndarray:
    """What a non-tensor leaf reads as: numbers as arrays, anything else as a 0-d str array."""
    if isinstance(value, (str, bytes)):
        return np.asarray(value if isinstance(value, str) else short_repr(value))
    try:
        array = np.asarray(value)
    except Exception:
        return np.asarray(short_repr(value))
    if array.dtype == object:
        return np.asarray(short_repr(value))
    return array


class ContainerSource(Source):
    """A Source whose nodes mirror the containers of one loaded object (``self._obj``)."""

    def __init__(self, path: Path, device_of: Callable[[Any], str | None] | None = None):
        super().__init__(path)
        self._obj: Any = None
        self._paths: dict[str, tuple[Any, ...]] = {}  # node id -> keys from the root
        self._leaves: dict[str, Any] = {}
        self._in_module: set[str] = set()  # ids below a pickled nn.Module (read-only)
        self._shown: dict[int, str | None] = {}  # id() of expanded containers -> their node id
        self._device_of = device_of

    # -- building the tree --------------------------------------------------------
    def _populate(self, obj: Any) -> None:
        self._obj = obj
        if _is_container(obj):
            self._shown[id(obj)] = None
            self._walk(obj, (), None, in_module=False, ancestors={id(obj)})
        else:
            self._leaf("value", (), obj, in_module=False)

    def _walk(
        self, obj: Any, keys: tuple[Any, ...], prefix: str | None, in_module: bool, ancestors: set[int]
    ) -> None:
        """Add the nodes below ``obj``. ``ancestors`` holds id() of the containers on the path
        from the root: meeting one again is a cycle, shown as a reference, not walked."""
        if len(keys) >= MAX_DEPTH:
            raise CorruptFile(
                f"{self.path.name} is nested too deeply to read (more than {MAX_DEPTH} levels)."
            )
        in_module = in_module or is_torch_module(obj)
        for key, value in _items(obj):
            if len(self._nodes) >= MAX_NODES:
                raise CorruptFile(
                    f"{self.path.name} holds more than {MAX_NODES:,} values and containers, "
                    "too many to show as a tree."
                )
            name = str(key)
            node_id = name if prefix is None else f"{prefix}/{name}"
            if node_id in self._nodes:  # keys like "a/b" next to {"a": {"b": ...}}
                node_id = self._unique(node_id)
            path = keys + (key,)
            if _is_container(value) and self._is_repeat(value, ancestors):
                self._reference(node_id, name, value, cycle=id(value) in ancestors)
            elif _is_container(value) and not _is_empty(value):
                self._shown[id(value)] = node_id
                ancestors.add(id(value))
                try:
                    self._walk(value, path, node_id, in_module, ancestors)
                finally:
                    ancestors.discard(id(value))
                if node_id not in self._nodes:  # nothing below was added
                    self._add_with_groups(Node(id=node_id, name=name, kind=NodeKind.GROUP))
                self._paths.setdefault(node_id, path)
            elif _is_container(value):
                self._add_with_groups(
                    Node(
                        id=node_id,
                        name=name,
                        kind=NodeKind.GROUP,
                        metadata={"type": type(value).__name__, "value": short_repr(value)},
                    )
                )
            else:
                self._leaf(node_id, path, value, in_module)

    def _is_repeat(self, value: Any, ancestors: set[int]) -> bool:
        """A container already shown: a cycle, or one shared by several parents.

        Shared containers holding containers are shown once (a list holding the same
        list twice, 60 levels down, would be 2**60 nodes); a shared tuple of leaves,
        like a repeated ("a", "b") that pickle memoized, is shown again in each place.
        """
        if id(value) in ancestors:
            return True
        if id(value) not in self._shown:
            return False
        return not isinstance(value, tuple) or any(_is_container(v) for v in value)

    def _reference(self, node_id: str, name: str, value: Any, cycle: bool) -> None:
        first = self._shown.get(id(value))
        where = repr(first) if first is not None else "the top level"
        kind = type(value).__name__
        note = "it contains itself" if cycle else "shown there"
        self._add_with_groups(
            Node(
                id=node_id,
                name=name,
                kind=NodeKind.GROUP,
                metadata={"type": kind, "value": f"the same {kind} as {where} ({note})"},
            )
        )

    def _unique(self, node_id: str) -> str:
        n = 2
        while f"{node_id}#{n}" in self._nodes:
            n += 1
        return f"{node_id}#{n}"

    def _leaf(self, node_id: str, path: tuple[Any, ...], value: Any, in_module: bool) -> None:
        self._paths[node_id] = path
        self._leaves[node_id] = value
        if in_module:
            self._in_module.add(node_id)
        if is_torch_tensor(value):
            from tensor_inspector.backends.pytorch import convert as torch_convert

            device = self._device_of(value) if self._device_of else None
            info = torch_convert.tensor_info(value, device)
            self._add_with_groups(Node(id=node_id, name=node_id, kind=NodeKind.TENSOR, **info))
        elif isinstance(value, np.ndarray) and value.dtype != object:
            self._add_with_groups(
                Node(
                    id=node_id,
                    name=node_id,
                    kind=NodeKind.TENSOR,
                    dtype=value.dtype.name,
                    framework_dtype=value.dtype.name,
                    shape=tuple(value.shape),
                    nbytes=int(value.nbytes),
                    metadata={"type": "numpy.ndarray"},
                )
            )
        else:
            array = value_array(value)
            self._add_with_groups(
                Node(
                    id=node_id,
                    name=node_id,
                    kind=NodeKind.VALUE,
                    dtype=array.dtype.name,
                    framework_dtype=type(value).__name__,
                    shape=tuple(array.shape),
                    metadata={"value": short_repr(value), "type": type(value).__name__},
                )
            )

    # -- values -------------------------------------------------------------------
    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        if node.id not in self._leaves:
            raise NotEvaluable(f"{node.id!r} has no value of its own.")
        if self._obj is None:
            raise InspectorError("This file has been closed.")
        value = self._leaves[node.id]
        if is_torch_tensor(value):
            from tensor_inspector.backends.pytorch import convert as torch_convert

            return torch_convert.to_numpy(value, index)
        array = value if isinstance(value, np.ndarray) else value_array(value)
        if index is not None:
            array = array[index]
        view = array.view()  # no copy; read-only, so the loaded object cannot be changed through it
        view.flags.writeable = False
        return view

    # -- writing ------------------------------------------------------------------
    def _replaced_object(self, replacements: dict[str, np.ndarray]) -> Any:
        """A copy of the loaded object with leaves replaced; untouched values are shared.

        Only the containers on the path to a replaced leaf are copied: another reference to
        one of them (a container holding itself, or shared by two parents) keeps the
        original, so there the value stays as loaded.
        """
        obj = self._obj
        for node_id, array in replacements.items():
            if node_id in self._in_module:
                raise InspectorError(
                    f"{node_id!r} belongs to a pickled module object; writing into modules "
                    "is not supported (save its state_dict instead)."
                )
            old = self._leaves[node_id]
            new: Any
            if is_torch_tensor(old):
                from tensor_inspector.backends.pytorch import convert as torch_convert

                new = torch_convert.from_numpy(array, old)
            else:
                new = np.array(array, dtype=old.dtype, copy=True)
            obj = _replace(obj, self._paths[node_id], new)
        return obj

    def close(self) -> None:
        # the last references to the storages go: their memory maps are unmapped now
        self._obj = None
        self._leaves = {}


def _is_empty(value: Any) -> bool:
    return isinstance(value, (dict, list, tuple)) and len(value) == 0


def _replace(obj: Any, keys: tuple[Any, ...], new: Any) -> Any:
    """``obj`` with the leaf at ``keys`` replaced, copying only the containers on the path."""
    if not keys:
        return new
    key, rest = keys[0], keys[1:]
    if isinstance(obj, dict):
        copy = obj.copy()  # keeps OrderedDict type, key order and attributes like _metadata
        if hasattr(obj, "__dict__"):
            copy.__dict__.update(obj.__dict__)
        copy[key] = _replace(obj[key], rest, new)
        return copy
    if isinstance(obj, list):
        copy_list = list(obj)
        copy_list[key] = _replace(obj[key], rest, new)
        return type(obj)(copy_list) if type(obj) is not list else copy_list
    if isinstance(obj, tuple):
        items = list(obj)
        items[key] = _replace(obj[key], rest, new)
        return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
    raise InspectorError(f"Cannot replace a value inside a {type(obj).__name__}.")
