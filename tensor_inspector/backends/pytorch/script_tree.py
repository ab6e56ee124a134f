"""Where each TorchScript graph value goes in the tree: one group per module it comes from.

A model's forward graph of a hundred values reads like the model itself when grouped by module
(``forward/encoder/conv1/...``). A module that contributes a single value (a ``Linear`` is one
``aten::linear``) gets no group of its own: the value sits in the nearest group with company and
its name says the module (``fc1: input.1``), so the tree does not fill up with one-child folders.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from tensor_inspector.backends.pytorch.script_graph import GraphValue, Module


@dataclass(frozen=True)
class Placed:
    """A tree entry: a module group (``value`` None) or a graph value."""

    id: str
    name: str
    parent: str
    value: GraphValue | None
    metadata: dict[str, Any]


def layout(root: str, values: list[GraphValue]) -> list[Placed]:
    """Groups and values under ``root``, parents before children, values in program order."""
    counts: Counter[Module] = Counter()
    for value in values:
        for depth in range(1, len(value.module) + 1):
            counts[value.module[:depth]] += 1

    def shown_depth(module: Module) -> int:
        depth = 0
        while depth < len(module) and counts[module[: depth + 1]] >= 2:
            depth += 1
        return depth

    def group_id(module: Module) -> str:
        return "/".join([root, *(name for name, _ in module)])

    groups = {group_id(v.module[:d]) for v in values for d in range(1, shown_depth(v.module) + 1)}
    placed: list[Placed] = []
    made: set[str] = set()
    for value in values:
        depth = shown_depth(value.module)
        for d in range(1, depth + 1):  # the groups above this value, outermost first
            gid = group_id(value.module[:d])
            if gid not in made:
                made.add(gid)
                name, kind = value.module[d - 1]
                placed.append(
                    Placed(
                        id=gid,
                        name=name,
                        parent=group_id(value.module[: d - 1]),
                        value=None,
                        metadata={"module": _dotted(value.module[:d]), "module_type": kind},
                    )
                )
        parent = group_id(value.module[:depth])
        rest = value.module[depth:]
        name = value.debug_name if not rest else f"{_dotted(rest)}: {value.debug_name}"
        node_id = f"{parent}/{value.debug_name}"
        if node_id in groups:  # a value named like a submodule: TorchScript's own % marks it
            node_id = f"{parent}/%{value.debug_name}"
        placed.append(Placed(node_id, name, parent, value, value_metadata(value)))
    return placed


def value_metadata(value: GraphValue) -> dict[str, Any]:
    """What the tree shows about a value: its op, code, module and the control flow around it."""
    meta: dict[str, Any] = {"op": value.op, "source": value.source}
    if value.module:
        meta["module"] = _dotted(value.module)
        meta["module_type"] = value.module[-1][1]
    if value.enclosing:
        meta["control_flow"] = [e.describe() for e in value.enclosing]
    loops = [e for e in value.enclosing if e.kind == "prim::Loop"]
    if loops:
        meta["note"] = (
            f"Computed in {loops[-1].describe()}: the value shown is the one from the last "
            "iteration that ran."
        )
    return meta


def _dotted(module: Module) -> str:
    return ".".join(name for name, _ in module)
