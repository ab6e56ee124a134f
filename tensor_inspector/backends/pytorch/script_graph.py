"""The tensor values of an inlined TorchScript graph, found inside control flow, with their module.

Scripted models keep their layers inside ``prim::If`` / ``prim::Loop`` blocks (a voice-activity
model checks its input length, then runs everything in the taken branch), so the walk descends
into every block. Each value is addressed by its *path*: the node index in the top block, then
(block index, node index) pairs down to its node; a copy of the graph keeps the order of nodes
and blocks, so the path finds the same node in the copy that ``script_probe`` instruments.

The module a node comes from is taken from the inlined call stack
(``Node.getModuleHierarchy()``: ``encoder(Encoder).conv1(Conv1d).SELF(Conv1d)``); nodes
without one (torch leaves a few guard branches unattributed) inherit the module of the
control-flow node they sit in. The call stack names only the module that was called, so a
``ModuleList`` entry shows as ``0(Layer)``; ``ModuleNames`` finds its full path (``layers.0``)
among the model's own submodules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Nodes whose outputs are not computed values: weights (listed as stored tensors already),
# constants, and the placeholder of a variable a raising branch never assigns.
_NOT_VALUES = {"prim::GetAttr", "prim::Constant", "prim::Uninitialized"}
_MODULE_PART = re.compile(r"([^.()]+)\(([^()]*)\)")
# containers iterated or indexed in TorchScript code: their own forward is never called
_CONTAINERS = {"ModuleList", "ModuleDict"}
Module = tuple[tuple[str, str], ...]  # (attribute name, class name) from the top module down


@dataclass(frozen=True)
class Enclosing:
    """One control-flow block around a value: the node owning it and which of its blocks."""

    kind: str  # "prim::If", "prim::Loop", ...
    block: int  # 0: the then-branch / loop body, 1: the else-branch
    code: str  # the statement's source line, e.g. "if x.shape[-1] == 512:"

    def describe(self) -> str:
        if self.kind == "prim::If":
            branch = "then" if self.block == 0 else "else"
            return f"the {branch} branch of prim::If {self.code!r}"
        if self.kind == "prim::Loop":
            return f"the body of prim::Loop {self.code!r}"
        return f"block {self.block} of {self.kind} {self.code!r}"


@dataclass(frozen=True)
class GraphValue:
    """A tensor-valued output of a graph node, wherever it sits in the graph."""

    path: tuple[int, ...]  # node index, then (block index, node index) pairs
    output: int
    debug_name: str
    op: str
    module: Module
    enclosing: tuple[Enclosing, ...]
    source: str
    scalar_type: str | None

    @property
    def in_loop(self) -> bool:
        return any(e.kind == "prim::Loop" for e in self.enclosing)


class ModuleNames:
    """Full submodule paths for the call stack's module names, from the model's submodules."""

    def __init__(self, module: Any):
        self._kinds: dict[str, str] = {}  # dotted path -> class name
        for name, sub in module.named_modules():
            self._kinds[name] = getattr(sub, "original_name", type(sub).__name__)
        self._cache: dict[tuple[str, str, str], tuple[str, ...] | None] = {}

    def resolve(self, called: Module) -> Module:
        path: list[tuple[str, str]] = []
        for name, kind in called:
            if name == "UNKNOWN_INSTANCE":  # torch lost track below here (e.g. a ReLU)
                break
            prefix = ".".join(p for p, _ in path)
            found = self._find(prefix, name, kind)
            if found is None:
                path.append((name, kind))
                continue
            for segment in found:
                prefix = f"{prefix}.{segment}" if prefix else segment
                path.append((segment, self._kinds.get(prefix, kind)))
        return tuple(path)

    def _find(self, prefix: str, name: str, kind: str) -> tuple[str, ...] | None:
        """The segments below ``prefix`` leading to the called ``name``: itself, or via containers."""
        key = (prefix, name, kind)
        if key not in self._cache:
            start = f"{prefix}." if prefix else ""
            direct = start + name
            if self._kinds.get(direct) == kind:
                self._cache[key] = (name,)
            else:
                candidates = []
                for path, path_kind in self._kinds.items():
                    if not path.startswith(start) or path_kind != kind:
                        continue
                    segments = tuple(path[len(start) :].split("."))
                    inner = [start + ".".join(segments[: i + 1]) for i in range(len(segments) - 1)]
                    if segments[-1] == name and all(self._kinds.get(p) in _CONTAINERS for p in inner):
                        candidates.append(segments)
                self._cache[key] = candidates[0] if len(candidates) == 1 else None
        return self._cache[key]


def tensor_values(graph: Any, names: ModuleNames | None = None) -> list[GraphValue]:
    """Every tensor-valued node output of ``graph`` (an inlined graph), in program order."""
    import torch

    found: list[GraphValue] = []
    for path, node, enclosing, called in _walk(graph.block(), (), (), ()):
        if node.kind() in _NOT_VALUES:
            continue
        module = names.resolve(called) if names is not None else called
        for out_index, value in enumerate(node.outputs()):
            kind = value.type()
            if not isinstance(kind, torch._C.TensorType):
                continue
            found.append(
                GraphValue(
                    path=path,
                    output=out_index,
                    debug_name=value.debugName(),
                    op=node.kind(),
                    module=module,
                    enclosing=enclosing,
                    source=code_line(node),
                    scalar_type=kind.scalarType(),
                )
            )
    return found


def _walk(
    block: Any,
    prefix: tuple[int, ...],
    enclosing: tuple[Enclosing, ...],
    inherited: Module,
) -> Iterator[tuple[tuple[int, ...], Any, tuple[Enclosing, ...], Module]]:
    for index, node in enumerate(block.nodes()):
        path = (*prefix, index)
        module = module_of(node) or inherited
        yield path, node, enclosing, module
        for block_index, inner in enumerate(node.blocks()):
            around = Enclosing(node.kind(), block_index, code_line(node))
            yield from _walk(inner, (*path, block_index), (*enclosing, around), module)


def locate(graph: Any, path: tuple[int, ...]) -> Any:
    """The node at ``path`` in ``graph`` (or in a copy of the graph the path was taken from)."""
    block = graph.block()
    node: Any = None
    for depth, step in enumerate(path):
        if depth % 2:
            block = list(node.blocks())[step]
        else:
            node = list(block.nodes())[step]
    return node


def module_of(node: Any) -> Module:
    """``(("encoder", "Encoder"), ("conv1", "Conv1d"))`` from the node's inlined call stack."""
    try:
        hierarchy = node.getModuleHierarchy()
    except Exception:  # older graphs or nodes without a call stack
        return ()
    parts = _MODULE_PART.findall(hierarchy or "")
    # SELF marks the module's own method (a call of self.something inside it), not a child
    return tuple((name, kind) for name, kind in parts if name != "SELF")


def code_line(node: Any) -> str:
    """The statement a node was made from: the code line above the first ``~~~`` underline.

    Scripted nodes carry a source excerpt with the statement underlined; traced nodes carry a
    Python stack (``file.py(10): forward``), whose first line is the best there is.
    """
    try:
        text = node.sourceRange() or ""
    except Exception:
        return ""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if index and line.strip() and set(line.strip().split(" <---")[0]) == {"~"}:
            return lines[index - 1].strip()[:160]
    body = [line.strip() for line in lines if line.strip() and not line.strip().startswith("File ")]
    return body[0][:160] if body else ""
