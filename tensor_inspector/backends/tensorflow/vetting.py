"""Which ops loading and evaluating a SavedModel would run, judged by op type before anything runs.

A file chooses its own node and function names, so nothing here looks at names: what
runs is found by following the graph, and each op is judged by its type against
``allowed_ops``. Roots are what the loaders and the evaluator run:

- the saver's restore op, with its filename tensor fed the SavedModel's own variables
  path (the only place a restore op may read from);
- the init ops (``saved_model_main_op``, ``legacy_init_op``, ``__saved_model_init_op``);
- every signature's outputs (a node of any signature may be evaluated);
- every function the TF2 object graph names (``tf.saved_model.load`` builds and may call
  them: resource initialisers, restore functions of saveables);
- every other function of the library, except the ones reached only from the saver's save
  op: loading never runs it, and it is where SaveV2 and MergeV2Checkpoints legitimately live.

Top-level nodes are followed through data and control inputs (a Session runs exactly
those); a function is judged whole, and entered through direct calls and every
function-valued attribute (If, While, Case, PartitionedCall, tf.data maps, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tensor_inspector.backends.tensorflow.allowed_ops import (
    ALLOWED,
    EFFECTS,
    NOT_KNOWN,
    PRINT_STREAMS,
    RESTORE_OPS,
)

CALLS = {"PartitionedCall", "StatefulPartitionedCall"}
INIT_COLLECTIONS = ("saved_model_main_op", "legacy_init_op")
# What tf.saved_model.load runs for a TF1 graph without an init op (Scaffold's default
# local init): table initialisers, and initialisers of local variables (VariableDef protos).
TABLE_INITIALIZERS, LOCAL_VARIABLES = "table_initializer", "local_variables"
INIT_SIGNATURE = "__saved_model_init_op"
OWN_PREFIX = "reads a checkpoint outside the SavedModel"
MAX_IDENTITY_HOPS = 32


@dataclass(frozen=True)
class Finding:
    op_type: str
    where: str  # node name, or "function/node" inside a function
    effect: str  # what the op does, for the trust prompt


@dataclass
class Vetting:
    findings: list[Finding] = field(default_factory=list)

    @property
    def op_types(self) -> list[str]:
        return sorted({f.op_type for f in self.findings})

    def sentence(self, file_name: str) -> str:
        """One sentence naming what the file would do, op types grouped by effect."""
        by_effect: dict[str, list[str]] = {}
        for finding in self.findings:
            ops = by_effect.setdefault(finding.effect, [])
            if finding.op_type not in ops:
                ops.append(finding.op_type)
        # Known effects first, the unknown ones last.
        order = sorted(by_effect, key=lambda effect: (effect == NOT_KNOWN, effect))
        parts = [f"{', '.join(sorted(by_effect[e])[:6])} ({e})" for e in order]
        listed = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
        return f"{file_name} would run {listed}; open it as trusted to evaluate."


def _node_name(ref: str) -> str:
    """``"^a"``, ``"a:1"``, ``"a:output:0"`` -> ``"a"``."""
    return ref.lstrip("^").split(":", 1)[0]


def _called_functions(node: Any, library: dict[str, Any]) -> Iterator[str]:
    if node.op in library:
        yield node.op
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        elif value.HasField("list"):
            yield from (f.name for f in value.list.func)


class _Vetter:
    def __init__(self, meta_graph: Any):
        self.meta = meta_graph
        self.library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
        self.nodes = {n.name: n for n in meta_graph.graph_def.node}
        self.findings: list[Finding] = []
        self.walked: set[tuple[str, frozenset[str]]] = set()
        saver = meta_graph.saver_def if meta_graph.HasField("saver_def") else None
        self.filename_node = _node_name(saver.filename_tensor_name) if saver else ""

    # -- judging one node ---------------------------------------------------------
    def judge(self, node: Any, where: str, is_own_prefix: Any) -> None:
        """Record ``node`` if its type is not allowed where it stands."""
        op = node.op
        if op in ALLOWED:
            return
        if op in RESTORE_OPS:
            if node.input and is_own_prefix(node.input[0]):
                return
            self.findings.append(Finding(op, where, OWN_PREFIX))
            return
        if op == "PrintV2":
            # Savers strip attributes left at their default, which is "stderr".
            raw = node.attr["output_stream"].s if "output_stream" in node.attr else b"stderr"
            stream = raw.decode("utf-8", "replace")
            if stream in PRINT_STREAMS:
                return
            self.findings.append(Finding(op, where, "writes files"))
            return
        if op in self.library and op not in EFFECTS:
            return  # a direct call of a library function, whose body is walked
        self.findings.append(Finding(op, where, EFFECTS.get(op, NOT_KNOWN)))

    # -- functions ----------------------------------------------------------------
    def walk_function(self, name: str, own_args: frozenset[str]) -> None:
        """Judge every node of function ``name``; ``own_args`` hold the own variables path."""
        if (name, own_args) in self.walked or name not in self.library:
            return
        self.walked.add((name, own_args))
        fdef = self.library[name]
        body = {n.name: n for n in fdef.node_def}

        def is_own(ref: str) -> bool:
            for _ in range(MAX_IDENTITY_HOPS):
                base = _node_name(ref)
                if base in own_args:
                    return True
                node = body.get(base)
                if node is None or node.op != "Identity" or not node.input:
                    return False
                ref = node.input[0]
            return False

        for node in fdef.node_def:
            self.judge(node, f"{name}/{node.name}", is_own)
            self.enter_calls(node, is_own)

    def enter_calls(self, node: Any, is_own: Any) -> None:
        """Walk the functions ``node`` calls, passing on which arguments carry the own prefix."""
        for fname in _called_functions(node, self.library):
            own: frozenset[str] = frozenset()
            inputs = self.library[fname].signature.input_arg if fname in self.library else []
            # Inputs map one to one onto arguments only for call ops without list arguments.
            plain = all(not (a.number_attr or a.type_list_attr) for a in inputs)
            if (node.op in CALLS or node.op == fname) and fname in self.library and plain:
                args = [a.name for a in inputs]
                data_inputs = [i for i in node.input if not i.startswith("^")]
                own = frozenset(a for a, ref in zip(args, data_inputs) if is_own(ref))
            self.walk_function(fname, own)

    # -- the top-level graph --------------------------------------------------------
    def is_own_top(self, ref: str) -> bool:
        for _ in range(MAX_IDENTITY_HOPS):
            base = _node_name(ref)
            if self.filename_node and base == self.filename_node:
                return True
            node = self.nodes.get(base)
            if node is None or node.op != "Identity" or not node.input:
                return False
            ref = node.input[0]
        return False

    def closure(self, roots: Iterable[str]) -> list[Any]:
        """The top-level nodes a Session runs to produce ``roots`` (data and control inputs)."""
        seen: dict[str, Any] = {}
        stack = [_node_name(r) for r in roots if r]
        while stack:
            name = stack.pop()
            if name in seen or name not in self.nodes:
                continue
            seen[name] = self.nodes[name]
            stack.extend(_node_name(i) for i in self.nodes[name].input)
        return list(seen.values())

    def run_roots(self) -> list[str]:
        meta = self.meta
        roots: list[str] = []
        if meta.HasField("saver_def"):
            roots.append(meta.saver_def.restore_op_name)
        for key in (*INIT_COLLECTIONS, TABLE_INITIALIZERS):
            if key in meta.collection_def:
                roots.extend(meta.collection_def[key].node_list.value)
        if LOCAL_VARIABLES in meta.collection_def:
            from tensorflow.core.framework.variable_pb2 import VariableDef

            for raw in meta.collection_def[LOCAL_VARIABLES].bytes_list.value:
                variable = VariableDef()
                try:
                    variable.ParseFromString(raw)
                except Exception:  # a damaged entry: TensorFlow fails on it before running anything
                    continue
                roots.extend([variable.initializer_name, variable.initial_value_name])
        for sig in meta.signature_def.values():
            roots.extend(info.name for info in sig.outputs.values())
        return roots

    def object_graph_functions(self) -> set[str]:
        graph = self.meta.object_graph_def
        names = set(graph.concrete_functions.keys())
        for obj in graph.nodes:
            kind = obj.WhichOneof("kind")
            if kind == "function":
                names.update(obj.function.concrete_functions)
            elif kind == "bare_concrete_function":
                names.add(obj.bare_concrete_function.concrete_function_name)
        return names

    def save_only_functions(self) -> set[str]:
        """Functions reached from the saver's save op (judged later only if reached otherwise)."""
        if not self.meta.HasField("saver_def") or not self.meta.saver_def.save_tensor_name:
            return set()
        found: set[str] = set()
        stack = [
            f
            for n in self.closure([self.meta.saver_def.save_tensor_name])
            for f in _called_functions(n, self.library)
        ]
        while stack:
            name = stack.pop()
            if name in found or name not in self.library:
                continue
            found.add(name)
            for node in self.library[name].node_def:
                stack.extend(_called_functions(node, self.library))
        return found

    def run(self) -> Vetting:
        for node in self.closure(self.run_roots()):
            self.judge(node, node.name, self.is_own_top)
            self.enter_calls(node, self.is_own_top)
        for name in sorted(self.object_graph_functions()):
            self.walk_function(name, frozenset())
        skipped = self.save_only_functions() - {name for name, _ in self.walked}
        for name in sorted(self.library):
            if name not in skipped and not any(name == walked for walked, _ in self.walked):
                self.walk_function(name, frozenset())
        return Vetting(self.findings)


def vet_meta_graph(meta_graph: Any) -> Vetting:
    """The ops of ``meta_graph`` that loading or evaluating it would run and that need trust."""
    return _Vetter(meta_graph).run()
