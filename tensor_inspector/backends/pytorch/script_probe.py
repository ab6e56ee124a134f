"""Running a TorchScript graph up to one value, wherever it sits in the control flow.

A value inside a ``prim::If`` branch or a ``prim::Loop`` body cannot become a graph output
directly: it is not visible outside its block. So a copy of the graph is instrumented instead:

* a ``Tensor[]`` list is made at the top; right after the value is computed the list is
  cleared and a clone of the value appended (a clone, because a later in-place op such as
  ``mul_`` would otherwise change what is shown; cleared, so a long loop keeps one tensor);
* an ``int[]`` trail gets ``k`` appended at the start of the k-th block around the value, so
  an empty result says which branch was not taken or which loop ran zero times;
* both lists become the graph's only outputs and dead code is removed, so only what the value
  needs runs (and whatever can raise: the model's own input checks still speak).

The TorchScript interpreter reports failures as a traceback of serialized and original code
ending in the model's own ``raise`` text or the failing op's message; that last line is what a
user needs, the rest stays on the exception for ``--debug``.
"""

from __future__ import annotations

import re
from typing import Any

from tensor_inspector.backends.base import InspectorError, NotEvaluable
from tensor_inspector.backends.pytorch.script_graph import GraphValue, locate

# "builtins.ValueError: Provided number of samples is 256", "RuntimeError: Expected 3D input"
_EXCEPTION_LINE = re.compile(r"^(?:\w+\.)*(\w*(?:Error|Exception|Exit|Interrupt)): ?(.*)$")
_MAX_REASON = 400


class ScriptRunFailed(InspectorError):
    """The TorchScript interpreter failed; ``str()`` is the model's reason, ``details`` all of it.

    Raised ``from`` the interpreter's own exception, so a printed traceback (``--debug``)
    shows the full TorchScript traceback as its cause.
    """

    def __init__(self, message: str, details: str):
        super().__init__(message)
        self.details = details

    def __reduce__(self) -> tuple[Any, ...]:  # both arguments survive pickling
        return (type(self), (str(self), self.details))


def run_to(module: Any, graph: Any, value: GraphValue, args: list[Any], inputs: list[str], label: str) -> Any:
    """The tensor ``value`` holds when ``module``'s ``graph`` runs on ``args``.

    ``graph`` is the inlined graph ``value`` was found in; it is copied, never changed.
    ``inputs`` names the arguments and ``label`` the value, for the sentences of failures.
    Raises NotEvaluable when the value's block did not run for these inputs.
    """
    import torch

    probe_graph = graph.copy()
    tensors, trail = _instrument(probe_graph, value)
    while len(list(probe_graph.outputs())):
        probe_graph.eraseOutput(0)
    # a method returns one value: both lists go out as a tuple
    both = probe_graph.create("prim::TupleConstruct", [tensors, trail])
    both.output().setType(torch._C.TupleType([tensors.type(), trail.type()]))
    probe_graph.appendNode(both)
    probe_graph.registerOutput(both.output())
    torch._C._jit_pass_dce(probe_graph)
    probe = torch._C._create_function_from_graph("tensor_inspector_probe", probe_graph)
    try:
        with torch.no_grad():
            got, reached = probe(module._c, *args)
    except Exception as exc:  # the interpreter's failure: the model's reason leads
        raise failure(exc, label, inputs) from exc
    if got:
        return got[-1]
    for depth, around in enumerate(value.enclosing):
        if depth not in reached:
            if around.kind == "prim::If":
                reason = "not taken for these inputs"
            elif around.kind == "prim::Loop":
                reason = "which ran zero times for these inputs"
            else:
                reason = "which did not run for these inputs"
            raise NotEvaluable(f"{label!r} is in {around.describe()}, {reason}.")
    raise NotEvaluable(f"{label!r} was not computed for these inputs.")


def _instrument(graph: Any, value: GraphValue) -> tuple[Any, Any]:
    """Add the result list and the block trail to ``graph``; return both list values."""
    import torch

    # find the value and its blocks first: nodes added at the top would shift the path
    node = locate(graph, value.path)
    target = list(node.outputs())[value.output]
    blocks = []
    block = graph.block()
    owner: Any = None
    for depth, step in enumerate(value.path[:-1]):  # a path is node, (block, node)...
        if depth % 2 == 0:
            owner = list(block.nodes())[step]
        else:
            block = list(owner.blocks())[step]
            blocks.append(block)

    tensor_list = torch._C.ListType(torch._C.TensorType.get())
    int_list = torch._C.ListType(torch._C.IntType.get())
    tensors = _make(graph, "prim::ListConstruct", [], tensor_list)
    trail = _make(graph, "prim::ListConstruct", [], int_list)
    none = _make(graph, "prim::Constant", [], torch._C.NoneType.get())
    markers = []
    for depth in range(len(blocks)):
        marker = _make(graph, "prim::Constant", [], torch._C.IntType.get())
        marker.i_("value", depth)
        markers.append(marker)
    for made in reversed([tensors, trail, none, *markers]):
        graph.prependNode(made)

    clone = _make(graph, "aten::clone", [target, none.output()], torch._C.TensorType.get())
    clear = graph.create("aten::clear", [tensors.output()], 0)
    append = _make(graph, "aten::append", [tensors.output(), clone.output()], tensor_list)
    clone.insertAfter(node)
    clear.insertAfter(clone)
    append.insertAfter(clear)
    for block, marker in zip(blocks, markers, strict=True):
        mark = _make(graph, "aten::append", [trail.output(), marker.output()], int_list)
        first = next(iter(block.nodes()), None)
        mark.insertBefore(first if first is not None else block.returnNode())
    return tensors.output(), trail.output()


def _make(graph: Any, kind: str, inputs: list[Any], output_type: Any) -> Any:
    node = graph.create(kind, inputs)
    node.output().setType(output_type)
    return node


def failure(exc: BaseException, computing: str, inputs: list[str]) -> ScriptRunFailed:
    """The interpreter's failure as one sentence led by the model's own reason."""
    text = str(exc).strip() or type(exc).__name__
    given = f" from the inputs {', '.join(inputs)}" if inputs else ""
    return ScriptRunFailed(f"{reason(text)} (while computing {computing!r}{given}).", text)


def reason(text: str) -> str:
    """The most specific line of an interpreter failure: the last ``SomeError: message`` line.

    TorchScript prints the failing statement's serialized and original code first and the
    exception (the model's ``raise`` or the op's check) last; lines after it continue it.
    """
    lines = [line.strip() for line in text.splitlines()]
    for index in range(len(lines) - 1, -1, -1):
        match = _EXCEPTION_LINE.match(lines[index])
        if match:
            message = " ".join([match.group(2), *(line for line in lines[index + 1 :] if line)]).strip()
            found = f"{match.group(1)}: {message}" if message else match.group(1)
            return _clip(found)
    meaningful = [line for line in lines if line]
    return _clip(meaningful[-1]) if meaningful else "TorchScript failed"


def _clip(text: str) -> str:
    text = text.rstrip(".")
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."
