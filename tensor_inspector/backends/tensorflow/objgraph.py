"""Readable tree paths for checkpoint keys, from TF2's object graph or TF1 scope names.

Keras 3 writes layer variables under the optimizer's keys
(``optimizer/_trainable_variables/0/...``); the readable path
(``model/_functional/_operations/1/_kernel``) exists only in the
``_CHECKPOINTABLE_OBJECT_GRAPH`` proto, so paths come from a breadth-first walk
of that graph that visits optimizer edges last. Optimizer slots (TF's
``slot_variables`` and Keras 3's per-variable lists such as ``_momentums``) are
placed under the variable they belong to.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
ATTR_MARK = "/.ATTRIBUTES/"


@dataclass
class KeyPath:
    """One checkpoint key and where it sits in the tree."""

    path: str
    key: str
    extra: dict[str, Any] = field(default_factory=dict)


def _optimizer_edge(local_name: str) -> bool:
    return "optimizer" in local_name.lower()


def _slot_name(list_name: str) -> str:
    name = list_name.lstrip("_")
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") else name


def _keras3_slots(graph: Any) -> dict[int, tuple[int, str]]:
    """Slots of Keras 3 optimizers: lists parallel to ``_trainable_variables``."""
    slots: dict[int, tuple[int, str]] = {}
    for node in graph.nodes:
        children = {c.local_name: c.node_id for c in node.children}
        if "_trainable_variables" not in children:
            continue
        trainable = [c.node_id for c in graph.nodes[children["_trainable_variables"]].children]
        for local_name, list_id in children.items():
            if local_name in ("_trainable_variables", "_variables", "_trainable_variables_indices"):
                continue
            members = [c.node_id for c in graph.nodes[list_id].children]
            if len(members) != len(trainable) or not members:
                continue
            if not all(graph.nodes[m].attributes for m in members):
                continue
            for var_id, slot_id in zip(trainable, members):
                slots.setdefault(slot_id, (var_id, _slot_name(local_name)))
    return slots


def _bfs_paths(graph: Any, skip: set[int]) -> dict[int, str]:
    """Shortest readable path of every object, optimizer edges taken only when nothing else reaches."""
    paths: dict[int, str] = {0: ""}
    primary: deque[int] = deque([0])
    deferred: deque[tuple[int, str]] = deque()
    while primary or deferred:
        if not primary:
            node_id, path = deferred.popleft()
            if node_id in paths:
                continue
            paths[node_id] = path
            primary.append(node_id)
            continue
        current = primary.popleft()
        for child in graph.nodes[current].children:
            if child.node_id in paths or child.node_id in skip or child.node_id >= len(graph.nodes):
                continue
            path = f"{paths[current]}/{child.local_name}" if paths[current] else child.local_name
            if _optimizer_edge(child.local_name):
                deferred.append((child.node_id, path))
            else:
                paths[child.node_id] = path
                primary.append(child.node_id)
    return paths


def object_graph_paths(graph_bytes: bytes, keys: set[str]) -> list[KeyPath]:
    """Paths for ``keys`` from a serialized TrackableObjectGraph, in walk order."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(graph_bytes)
    if not graph.nodes:
        return name_paths(keys)
    slots: dict[int, tuple[int, str]] = {}
    for node in graph.nodes:
        for ref in node.slot_variables:
            slots[ref.slot_variable_node_id] = (ref.original_variable_node_id, ref.slot_name)
    for slot_id, owner in _keras3_slots(graph).items():
        slots.setdefault(slot_id, owner)
    paths = _bfs_paths(graph, skip=set(slots))
    slots_of: dict[int, list[int]] = {}
    for slot_id, (var_id, _name) in slots.items():
        if var_id in paths:
            slots_of.setdefault(var_id, []).append(slot_id)
    for var_id, slot_ids in slots_of.items():
        for slot_id in slot_ids:
            paths[slot_id] = f"{paths[var_id]}/{slots[slot_id][1]}"

    result: list[KeyPath] = []
    seen_keys: set[str] = set()

    def emit(node_id: int) -> None:
        for attr in graph.nodes[node_id].attributes:
            if attr.checkpoint_key not in keys or attr.checkpoint_key in seen_keys:
                continue
            base = paths[node_id] or "root"
            path = base if attr.name == "VARIABLE_VALUE" else f"{base}/{attr.name}"
            extra = {"full_name": attr.full_name} if attr.full_name else {}
            if node_id in slots:
                extra["slot_of"] = paths.get(slots[node_id][0], "")
                extra["slot_name"] = slots[node_id][1]
            seen_keys.add(attr.checkpoint_key)
            result.append(KeyPath(path, attr.checkpoint_key, extra))

    for node_id in list(paths):  # walk order: parents before children
        if node_id in slots:
            continue
        emit(node_id)
        for slot_id in slots_of.get(node_id, []):
            emit(slot_id)
    rest = {k for k in keys if k not in seen_keys}
    result.extend(name_paths(rest))
    return _unique(result)


def name_paths(keys: set[str]) -> list[KeyPath]:
    """TF1 name-based keys: the scopes are the tree; slots (``kernel/Adam``) nest under their variable."""
    out = []
    for key in sorted(keys):
        if key == OBJECT_GRAPH_KEY:
            continue
        path = key
        if ATTR_MARK in path:
            head, _, attr = path.partition(ATTR_MARK)
            path = head if attr == "VARIABLE_VALUE" else f"{head}/{attr}"
        out.append(KeyPath(path.strip("/") or key, key))
    return _unique(out)


def _unique(items: list[KeyPath]) -> list[KeyPath]:
    """Paths must be unique ids; a rare clash gets a ``#n`` suffix."""
    seen: set[str] = set()
    for item in items:
        path, n = item.path, 2
        while path in seen:
            path = f"{item.path}#{n}"
            n += 1
        item.path = path
        seen.add(path)
    return items


def captured_objects(objects: Any, function_name: str) -> list[dict[str, Any]]:
    """What a SavedModel function captures, in capture order, from the SavedObjectGraph.

    Each entry: ``object`` (node id, the same in the variables' checkpoint object graph),
    ``object_path`` (attribute path from the root) and ``label``, the name to show: the
    variable's own name (``dense/kernel``) when no other variable shares it, else the path.
    """
    if objects is None or function_name not in objects.concrete_functions:
        return []
    bound = list(objects.concrete_functions[function_name].bound_inputs)
    paths = _bfs_paths(objects, skip=set())
    names: dict[str, int] = {}
    for node in objects.nodes:
        if node.WhichOneof("kind") == "variable" and node.variable.name:
            names[node.variable.name] = names.get(node.variable.name, 0) + 1
    result: list[dict[str, Any]] = []
    for node_id in bound:
        if not 0 <= node_id < len(objects.nodes):
            result.append({})
            continue
        node = objects.nodes[node_id]
        path = paths.get(node_id, "")
        own = node.variable.name if node.WhichOneof("kind") == "variable" else ""
        label = own if own and names.get(own) == 1 else path or own
        result.append({"object": node_id, "object_path": path, "label": label})
    return result
