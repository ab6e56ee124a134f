"""Values inside ``If`` branches, evaluated by inlining the branch the inputs take.

onnxruntime returns only values of the top-level graph. A branch of an ``If`` runs
once, when its condition says so, so its values are well defined: the condition is
evaluated first, and if the branch holding the value is the one taken, a copy of the
model with that ``If`` replaced by the branch's own nodes (its outputs renamed to the
``If``'s by ``Identity`` nodes) is served with every value exposed. Nested ``If``s are
inlined one level at a time. A branch not taken says so. Loop and Scan bodies run many
times, so their values are not defined by one run; the listing says so instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, cast

import numpy as np

from tensor_inspector.backends.base import NotEvaluable

# A place inside nested If branches: (index of the If node in its graph, branch attribute), outermost first.
BranchPath = tuple[tuple[int, str], ...]
TAKEN = {True: "then_branch", False: "else_branch"}


def inline_branch(model: Any, index: int, attr: str) -> Any:
    """A copy of ``model`` with top-level node ``index`` (an If) replaced by its ``attr`` graph."""
    import onnx
    from onnx import helper

    new = onnx.ModelProto()
    new.CopyFrom(model)
    graph = new.graph
    node = graph.node[index]
    branch = next(a.g for a in node.attribute if a.name == attr)
    nodes = list(graph.node)
    inlined = list(branch.node) + [
        helper.make_node("Identity", [inner.name], [outer], name=f"{node.name or outer}/{attr}/{inner.name}")
        for inner, outer in zip(branch.output, node.output)
        if outer
    ]
    del graph.node[:]
    graph.node.extend(nodes[:index] + inlined + nodes[index + 1 :])
    graph.initializer.extend(branch.initializer)
    graph.sparse_initializer.extend(branch.sparse_initializer)
    return new


def node_outputs(model: Any) -> list[str]:
    return [o for node in model.graph.node for o in node.output if o]


def condition(
    model: Any, name: str, feeds: Mapping[str, np.ndarray], run: Callable[[str], np.ndarray]
) -> bool:
    """The truth of an If's condition ``name``: a feed, an initializer or a computed value."""
    from onnx import numpy_helper

    if name in feeds:
        value = np.asarray(feeds[name])
    else:
        stored = next((t for t in model.graph.initializer if t.name == name), None)
        value = numpy_helper.to_array(stored) if stored is not None else run(name)
    if value.size != 1:
        raise NotEvaluable(f"The condition {name!r} of an If holds {value.size} values, not one.")
    return bool(value.reshape(()))


def evaluate_in_branch(
    model: Any,
    path: BranchPath,
    value: str,
    feeds: Mapping[str, np.ndarray],
    runner_for: Callable[[BranchPath, Any], Any],
) -> np.ndarray:
    """``value`` inside the branches ``path``; ``runner_for(prefix, model)`` caches runners."""
    current, done = model, cast(BranchPath, ())
    runner = runner_for(done, current)
    for index, attr in path:
        node = current.graph.node[index]
        taken = TAKEN[condition(current, node.input[0], feeds, partial(_run, runner, feeds=feeds))]
        if attr != taken:
            raise NotEvaluable(
                f"the {attr} of If node {node.name or node.output[0]!r} does not run for these inputs "
                f"(its condition is {taken == 'then_branch'}), so {value!r} has no value"
            )
        done = (*done, (index, attr))
        current = inline_branch(current, index, attr)
        runner = runner_for(done, current)
    result: np.ndarray = runner.run(value, feeds)
    return result


def _run(runner: Any, name: str, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    value: np.ndarray = runner.run(name, feeds)
    return value
