"""torch.export programs (.pt2): parameters, buffers, constants and every FX graph node.

Evaluating a node interprets the program's graph with ``torch.fx.Interpreter`` until
that node, feeding parameters/buffers/constants from the file and user inputs from
the feeds (default: the program's example inputs, else zeros of declared shapes).
The nodes inside subgraphs of higher-order ops (cond branches, loop bodies, no_grad and
autocast regions; ``export_subgraphs``) are listed under a group per subgraph; the
interpreter cannot stop inside one, so such a node's value is taken from a traced run.
An untrusted archive is loaded only after ``torch_export_check`` finds nothing in it
that could run code.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import (
    CorruptFile,
    FeedSpec,
    Index,
    InspectorError,
    Node,
    NodeKind,
    NotEvaluable,
    OnNode,
    Source,
    TrustRequired,
)

GRAPH_GROUP = "graph"


class _Reached(Exception):
    """Stops the interpreter once the wanted node has run."""

    def __init__(self, value: Any):
        self.value = value


class ExportSource(Source):
    backend_name = "torch"
    format_name = "torch.export program"
    writable = True

    def __init__(self, path: Path, program: Any):
        super().__init__(path)
        self._program = program
        self._stored: dict[str, Any] = {}  # node id -> tensor (state dict and constants)
        self._inputs: list[FeedSpec] = []
        self._inside: set[str] = set()  # node ids inside the subgraphs of higher-order ops
        self._build()

    def _build(self) -> None:
        from tensor_inspector.backends.pytorch import convert as torch_convert

        program = self._program
        for table, kind in ((program.state_dict, "state_dict"), (program.constants, "constant")):
            for name, value in table.items():
                if not torch_convert.is_tensor(value) or name in self._stored:
                    continue
                self._stored[name] = value
                info = torch_convert.tensor_info(value)
                info["metadata"]["role"] = kind
                self._add_with_groups(Node(id=name, name=name, kind=NodeKind.TENSOR, **info))
        user_inputs = set(program.graph_signature.user_inputs)
        self._add(Node(id=GRAPH_GROUP, name="graph", kind=NodeKind.GROUP))
        for fx_node in program.graph.nodes:
            if fx_node.op == "placeholder" and fx_node.name in user_inputs:
                dtype, shape = _meta_of(fx_node)
                self._inputs.append(
                    FeedSpec(
                        name=fx_node.name, dtype=dtype or "float32", shape=shape, description="program input"
                    )
                )
        self._add_graph(program.graph_module, GRAPH_GROUP, aliased=False)

    def _add_graph(self, graph_module: Any, group: str, aliased: bool) -> None:
        """The nodes of ``graph_module`` under ``group``, and those of the subgraphs its
        higher-order ops run (``export_subgraphs``) under a group each, just before the op:
        the order a trace reports them in."""
        from tensor_inspector.backends.pytorch import export_subgraphs

        calls_of = {n: export_subgraphs.subgraph_calls(graph_module, n) for n in graph_module.graph.nodes}
        holders = {call.holder for calls in calls_of.values() for call in calls}  # listed as groups
        for fx_node, calls in calls_of.items():
            if fx_node.op == "output" or fx_node.op == "placeholder" and aliased or fx_node in holders:
                continue  # the placeholders of a branch are its op's operands, listed outside
            for call in calls:
                sub_group = f"{group}/{call.holder.name}"
                metadata = {
                    "op": "get_attr",
                    "target": str(call.holder.target),
                    "run by": f"{group}/{fx_node.name}",
                }
                self._add(
                    Node(
                        id=sub_group,
                        name=call.holder.name,
                        kind=NodeKind.GROUP,
                        parent=group,
                        metadata=metadata,
                    )
                )
                self._add_graph(call.module, sub_group, aliased=not call.repeated)
            node_id = f"{group}/{fx_node.name}"
            if group != GRAPH_GROUP:
                self._inside.add(node_id)
            dtype, shape = _meta_of(fx_node)
            self._add(
                Node(
                    id=node_id,
                    name=fx_node.name,
                    kind=NodeKind.COMPUTED,
                    parent=group,
                    dtype=dtype,
                    framework_dtype=None,
                    shape=shape,
                    metadata={"op": fx_node.op, "target": str(fx_node.target)},
                )
            )

    # -- values -------------------------------------------------------------------
    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        from tensor_inspector.backends.pytorch import convert as torch_convert

        if node.id not in self._stored:
            raise NotEvaluable(f"{node.id!r} has no stored value.")
        return torch_convert.to_numpy(self._stored[node.id], index)

    def feed_specs(self, node_id: str | None = None) -> list[FeedSpec]:
        return list(self._inputs)

    def default_feeds(self, node_id: str | None = None) -> dict[str, np.ndarray]:
        """The program's example inputs when it carries them, else zeros of declared shapes."""
        feeds = super().default_feeds(node_id)
        examples = self._example_inputs()
        if examples is not None:
            from tensor_inspector.backends.pytorch import convert as torch_convert

            for spec, tensor in zip(self._inputs, examples):
                feeds[spec.name] = torch_convert.to_numpy(tensor)
        return feeds

    def _example_inputs(self) -> list[Any] | None:
        import torch
        from torch.utils._pytree import tree_leaves

        example = getattr(self._program, "example_inputs", None)
        if not example:
            return None
        leaves = tree_leaves(example)
        if len(leaves) != len(self._inputs) or not all(isinstance(t, torch.Tensor) for t in leaves):
            return None
        return leaves

    def _as_declared(self, name: str, value: Any) -> np.ndarray:
        """A feed in the input's declared dtype when numpy can cast it within its kind."""
        from tensor_inspector.core.dtypes import numpy_dtype

        array = np.asarray(value)
        spec = next((s for s in self._inputs if s.name == name), None)
        if spec is not None and array.dtype.name != spec.dtype:
            declared = numpy_dtype(spec.dtype)
            if np.can_cast(array.dtype, declared, "same_kind"):
                array = array.astype(declared)
        return array

    def _evaluate(self, node: Node, feeds: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        from tensor_inspector.backends.pytorch import convert as torch_convert

        args = self._program_args(feeds, self.default_feeds(node.id))
        if node.id in self._inside:
            return self._evaluate_inside(node, args)
        wanted = node.name

        class Probe(torch.fx.Interpreter):
            def run_node(self, fx_node: Any) -> Any:
                result = super().run_node(fx_node)
                if fx_node.name == wanted:
                    raise _Reached(result)
                return result

        try:
            with torch.no_grad():
                Probe(self._program.graph_module).run(*args)
        except _Reached as reached:
            value = reached.value
        except Exception as exc:
            raise InspectorError(
                f"Running the program up to {wanted!r} failed: {_first_line(exc)}."
            ) from None
        else:
            raise NotEvaluable(f"{wanted!r} was not reached when running the program.")
        if not isinstance(value, torch.Tensor):
            if isinstance(value, (int, float, bool)):
                return np.asarray(value)
            raise NotEvaluable(f"{wanted!r} produces a {type(value).__name__}, not a tensor.")
        return torch_convert.to_numpy(value)

    def _evaluate_inside(self, node: Node, args: list[Any]) -> np.ndarray:
        """A node inside a branch or loop body: the value it reports in one traced run (the
        interpreter cannot stop inside a subgraph; a loop body gives the run a trace shows)."""
        from tensor_inspector.backends.pytorch.export_trace import value_in_run

        value = value_in_run(self._program.graph_module, args, GRAPH_GROUP, node.id)
        if value is None and node.dtype is None:
            raise NotEvaluable(f"{node.id!r} does not produce a tensor.")
        if value is None:
            raise NotEvaluable(f"{node.id!r} does not run with these inputs (its branch is not taken).")
        return value

    def _program_args(self, feeds: dict[str, np.ndarray], defaults: dict[str, np.ndarray]) -> list[Any]:
        """The graph's placeholders in order: user inputs from ``feeds`` (else ``defaults``),
        parameters, buffers and constants from the file."""
        from tensor_inspector.backends.pytorch import convert as torch_convert

        if self._program is None:
            raise InspectorError("This file has been closed.")
        program = self._program
        args = []
        for spec in program.graph_signature.input_specs:
            name = spec.arg.name
            if spec.kind.name == "USER_INPUT":
                value = feeds.get(name, defaults.get(name))
                if value is None:
                    raise NotEvaluable(f"Give a value for the input {name!r}.")
                args.append(torch_convert.tensor_from_array(self._as_declared(name, value)))
            elif spec.target in program.state_dict:
                args.append(program.state_dict[spec.target])
            elif spec.target in program.constants:
                args.append(program.constants[spec.target])
            else:
                raise NotEvaluable(f"The program input {name!r} has no stored value.")
        return args

    # -- tracing ------------------------------------------------------------------
    def trace_entries(self) -> list[str]:
        return [GRAPH_GROUP]

    def trace(
        self,
        entry: str,
        feeds: Mapping[str, np.ndarray],
        on_node: OnNode,
        cancel: threading.Event | None = None,
    ) -> None:
        from tensor_inspector.backends.pytorch.export_trace import trace_program

        with self.lock:
            args = self._program_args(dict(feeds), self.default_feeds(entry))
            trace_program(self._program.graph_module, args, GRAPH_GROUP, on_node, cancel)

    # -- writing ------------------------------------------------------------------
    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        import torch

        from tensor_inspector.backends.pytorch import convert as torch_convert

        program = self._program
        saved: list[tuple[dict[str, Any], str, Any]] = []
        try:
            for node_id, array in replacements.items():
                table = program.state_dict if node_id in program.state_dict else program.constants
                old = table[node_id]
                saved.append((table, node_id, old))
                table[node_id] = torch_convert.from_numpy(array, old)
            torch.export.save(program, str(path))
        finally:
            for table, key, old in reversed(saved):  # the open program stays as read
                table[key] = old

    def close(self) -> None:
        self._program = None
        self._stored = {}
        import gc

        gc.collect()


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0][:200] if lines else type(exc).__name__).rstrip(".")


def _meta_of(fx_node: Any) -> tuple[str | None, tuple[int | None, ...] | None]:
    """numpy dtype name and shape from the node's fake value (symbolic dims become None)."""
    import torch

    from tensor_inspector.backends.pytorch import convert as torch_convert

    value = fx_node.meta.get("val")
    if not isinstance(value, torch.Tensor):
        return None, None
    shape = tuple(int(d) if isinstance(d, int) else None for d in value.shape)
    return torch_convert.numpy_name_of(value.dtype), shape


def open_export(path: Path, trust: bool) -> ExportSource:
    import torch

    from tensor_inspector.backends.pytorch.export_check import archive_problems

    if not trust:
        try:
            problems = archive_problems(path)
        except Exception as exc:
            raise CorruptFile(f"{path.name} is not a readable torch.export archive ({exc}).") from None
        if problems:
            raise TrustRequired(
                f"{path.name} is a torch.export archive whose loading could run code "
                f"({'; '.join(problems[:5])}): open it only if you trust where it came from.",
                problems,
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(str(path))
    except Exception as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        text = (lines[0][:200] if lines else type(exc).__name__).rstrip(".")
        raise CorruptFile(f"{path.name} could not be loaded as a torch.export program: {text}.") from None
    source = ExportSource(path, program)
    source.trusted = trust  # a re-open (verification after saving) uses the same trust
    return source
