"""The subgraphs a torch.export program runs through higher-order ops, and how they are named.

torch.export keeps control flow and scoped settings as calls of higher-order ops whose
arguments include submodules of the program: ``cond`` (a true and a false branch),
``while_loop`` (a condition and a body), ``map_impl`` and ``scan`` (a body run per slice or
step), ``wrap_with_set_grad_enabled`` and ``wrap_with_autocast`` (a region of the forward).
Their nodes are listed under ``<graph>/<submodule node name>/<node name>``, and the listing
and the trace both take the names from here so that they agree.

A subgraph called once per call of its op (``cond``'s branches, the ``wrap_*`` regions) has
placeholders that only alias the op's operands: they are not listed, and the nodes reading
them name the operands outside as inputs. A subgraph called repeatedly (loops, maps, scans)
sees a new value per iteration, so its placeholders are nodes of their own.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

ONCE = frozenset({"cond", "wrap_with_set_grad_enabled", "wrap_with_autocast"})
REPEATED = frozenset({"while_loop", "map_impl", "scan"})


@dataclass(frozen=True)
class SubgraphCall:
    """One subgraph argument of a higher-order op call."""

    holder: Any  # the get_attr node that fetches the submodule
    module: Any  # the submodule (a GraphModule)
    operands: list[Any]  # what its placeholders receive, in order (nodes or constants)
    repeated: bool  # run once per iteration rather than once per call
    gives_result: bool  # its outputs are the op's outputs (a branch or body, not a condition)
    carried: int = 0  # leading operands that later runs take from the result subgraph's outputs


def hop_name(fx_node: Any) -> str | None:
    """``cond``, ``while_loop``, ... for a call of a higher-order op, else None."""
    import torch

    if fx_node.op != "call_function" or not isinstance(fx_node.target, torch._ops.HigherOrderOperator):
        return None
    return str(getattr(fx_node.target, "_name", "")) or None


def subgraph_calls(graph_module: Any, fx_node: Any) -> list[SubgraphCall]:
    """The subgraphs ``fx_node`` runs, when it is a higher-order op whose arguments we know;
    empty for anything else (the op then runs as one opaque node). Subgraphs giving the op's
    result come first: a loop's condition reads what its body returns."""
    name = hop_name(fx_node)
    if name not in ONCE and name not in REPEATED:
        return []
    args = list(fx_node.args)
    try:
        carried = 0
        if name == "cond":  # (pred, true_fn, false_fn, operands)
            roles = [(args[1], list(args[3]), True), (args[2], list(args[3]), True)]
        elif name == "while_loop":  # (cond_fn, body_fn, carried, additional)
            operands, carried = list(args[2]) + list(args[3]), len(args[2])
            roles = [(args[1], operands, True), (args[0], operands, False)]
        elif name == "map_impl":  # (body, xs, additional)
            roles = [(args[0], list(args[1]) + list(args[2]), True)]
        elif name == "scan":  # (combine_fn, init, xs, additional)
            carried = len(args[1])
            roles = [(args[0], list(args[1]) + list(args[2]) + list(args[3]), True)]
        elif name == "wrap_with_set_grad_enabled":  # (enabled, body, *args)
            roles = [(args[1], args[2:], True)]
        else:  # wrap_with_autocast: (device, dtype, enabled, cache_enabled, body, *args)
            roles = [(args[4], args[5:], True)]
    except (IndexError, TypeError):
        return []
    calls = []
    for holder, operands, gives_result in roles:
        module = _submodule(graph_module, holder)
        if module is None:
            return []
        calls.append(SubgraphCall(holder, module, operands, name in REPEATED, gives_result, carried))
    return calls


def _submodule(graph_module: Any, holder: Any) -> Any:
    """The GraphModule a get_attr node fetches, or None when it is anything else."""
    import torch

    if not isinstance(holder, torch.fx.Node) or holder.op != "get_attr" or not isinstance(holder.target, str):
        return None
    if "." in holder.target or holder.target.startswith("_"):
        return None  # export puts its subgraphs directly on the program as submod_1, true_graph_0, ...
    module = graph_module._modules.get(holder.target)
    return module if isinstance(module, torch.fx.GraphModule) else None


def result_index(fx_node: Any) -> tuple[Any, int] | None:
    """``(op node, i)`` when ``fx_node`` is ``getitem(<higher-order op result>, i)``."""
    if fx_node.op != "call_function" or fx_node.target is not operator.getitem or len(fx_node.args) != 2:
        return None
    source, index = fx_node.args
    if (
        not isinstance(index, int)
        or getattr(source, "op", None) != "call_function"
        or hop_name(source) is None
    ):
        return None
    return source, index


def output_nodes(graph_module: Any) -> list[Any]:
    """What a subgraph returns, in order (nodes, or constants where it returns one)."""
    for fx_node in graph_module.graph.nodes:
        if fx_node.op == "output":
            value = fx_node.args[0]
            return list(value) if isinstance(value, (tuple, list)) else [value]
    return []
