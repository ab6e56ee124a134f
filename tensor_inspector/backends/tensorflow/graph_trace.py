"""Tracing a SavedModel signature: its op outputs fetched by Session runs, in execution order.

A Session run computes everything its fetches depend on, so one run fetching all the
listed ops costs about one forward pass. What one run returns must fit in memory at
once, though: the ops are fetched in chunks of about ``CHUNK_BYTES`` of outputs (sizes
from the listed shapes, else from what earlier chunks measured), each value handed
over and released before the next run. A later run would compute the earlier chunks
again to reach its own ops; instead the values it reads from them are carried over and
fed (a Session prunes the graph at fed tensors), so a run of many chunks costs about one
forward pass too, and holds what a forward pass holds between two ops. Constants (a
frozen signature's variables) are read from the frozen GraphDef one at a time, not
fetched: they would fill the chunks, and every distinct run makes TensorFlow copy the
whole graph, constants included; a variable's ReadVariableOp, frozen into an Identity of
its Const, is handed the Const's array. Execution order is the graph's own operation
order, which TensorFlow builds topologically when it imports a GraphDef. What to fetch,
and the Session callables that fetch it, are made by the first trace and reused.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from tensor_inspector.backends.base import Cancelled, InspectorError, Node, NotEvaluable, OnNode
from tensor_inspector.backends.tensorflow.common import HANDLE_DTYPES, tf_error_sentence, to_numpy
from tensor_inspector.backends.tensorflow.graph import OpOutput, SignatureGraph
from tensor_inspector.backends.tensorflow.runtime import GraphRunner, Prepared

CHUNK_BYTES = 64 << 20  # outputs one Session run returns at once (and the reader must hold)
FIRST_GUESS_BYTES = 1 << 20  # an output of unknown shape, before anything was measured
_DEAD_BRANCH = ("does not have value",)  # a fetch inside a tf.cond branch the inputs skip
_ANCESTOR_LIMIT = 256  # how far to look through unlisted ops for a node's traced inputs
# Ops that cost nothing to run again: their outputs are recomputed, not carried between runs
_FREE_OPS = frozenset({"Const", "Identity", "Placeholder", "PlaceholderWithDefault", "NoOp"})
_CALLABLES_KEPT = 16  # Session callables kept per signature (one per distinct chunk of fetches)


class _Fetch:
    __slots__ = ("node_id", "op", "node", "tensor", "inputs", "constant", "at")

    def __init__(self, node_id: str, op: OpOutput, node: Node, tensor: Any):
        self.node_id, self.op, self.node, self.tensor = node_id, op, node, tensor
        self.inputs: list[str] = []
        const = _constant_op(tensor)
        # The Const op whose value this is, read from the graph instead of fetched.
        self.constant: str | None = const.name if const is not None else None
        self.at = -1  # its place in the graph's operation order


class _Plan:
    """What to fetch and carry: the same for every trace of one signature, so built once."""

    def __init__(self, key: tuple[str, ...], fetches: list[_Fetch], needed_until: dict[str, int]):
        self.key, self.fetches, self.needed_until = key, fetches, needed_until


def trace_signature(
    runner: GraphRunner,
    sig: SignatureGraph,
    listed: list[tuple[str, OpOutput, Node]],
    feeds: dict[str, np.ndarray],
    on_node: OnNode,
    cancel: threading.Event | None,
) -> None:
    """Fetch every fetchable op of ``sig`` with ``feeds`` (by input key), chunk by chunk."""
    prepared = runner.prepared(sig)
    graph = prepared.graph
    feed_dict = {}
    for key, value in feeds.items():
        if key not in prepared.feeds:
            raise InspectorError(f"Signature {sig.key!r} has no input named {key!r}.")
        feed_dict[graph.get_tensor_by_name(prepared.feeds[key])] = value
    plan = _plan(prepared, listed)
    needed_until = plan.needed_until
    carried: dict[Any, Any] = {}  # graph tensor -> its value, fed to the runs that read it
    # Output sizes measured by the last trace guess those of unknown shape: the chunks (and
    # the Session callables made for them) come out the same from one trace to the next.
    measured: list[int] = prepared.cache.setdefault("measured", [])
    last_sizes = list(measured)
    measured.clear()
    for chunk in _chunks(plan.fetches, measured, last_sizes):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        done = chunk[-1].at  # every op up to here has run
        for fetch, value in _values(prepared, chunk, {**feed_dict, **carried}, sig):
            if needed_until.get(fetch.tensor.name, -1) > done:
                carried[fetch.tensor] = value
            array = to_numpy(value, fetch.node.framework_dtype)
            if fetch.constant is None:
                measured.append(int(array.nbytes))
            on_node(fetch.node_id, fetch.op.op_type, fetch.inputs, array)
            del array, value  # released before the next value is summarised
        for tensor in [t for t in carried if needed_until[t.name] <= done]:
            del carried[tensor]  # no later op reads it


def _plan(prepared: Prepared, listed: list[tuple[str, OpOutput, Node]]) -> _Plan:
    key = tuple(node_id for node_id, _op, _node in listed)
    plan = prepared.cache.get("plan")
    if plan is None or plan.key != key:
        graph = prepared.graph
        position = {operation.name: i for i, operation in enumerate(graph.get_operations())}
        fetches = _fetches(graph, listed, prepared.tensor_of, position)
        plan = _Plan(key, fetches, _needed_until(graph, fetches, position))
        prepared.cache["plan"] = plan
    return plan


def _fetches(
    graph: Any, listed: list[tuple[str, OpOutput, Node]], tensor_of: Any, position: dict[str, int]
) -> list[_Fetch]:
    """The listed ops the prepared graph can fetch, in its operation order, with their inputs.

    A constant read through Identity ops (a frozen variable's ReadVariableOp) comes right
    after its Const: the same value, read once and handed over twice while it is at hand.
    """
    by_tensor: dict[str, _Fetch] = {}
    for node_id, op, node in listed:
        if node.metadata.get("not_evaluable") or op.unfetchable or node.framework_dtype in HANDLE_DTYPES:
            continue
        try:
            tensor = tensor_of(op)
        except (KeyError, ValueError, IndexError, NotEvaluable):
            continue  # dropped by freezing: nothing the signature returns depends on it
        by_tensor.setdefault(tensor.name, _Fetch(node_id, op, node, tensor))

    def order(fetch: _Fetch) -> tuple[int, int, int]:
        own = position.get(fetch.tensor.op.name, -1)
        if fetch.constant is not None and fetch.constant != fetch.tensor.op.name:
            return position.get(fetch.constant, own), 1, own
        return own, 0, fetch.tensor.value_index

    ordered = sorted(by_tensor.values(), key=order)
    loops = _LoopInputs(graph)
    for fetch in ordered:
        fetch.at = order(fetch)[0]
        fetch.inputs = _traced_inputs(fetch.tensor.op, by_tensor, loops)
    return ordered


def _needed_until(graph: Any, fetches: list[_Fetch], position: dict[str, int]) -> dict[str, int]:
    """For each fetched tensor worth carrying: the position of the last op that reads it.

    An op reads a tensor directly, or through ops whose outputs are not carried (not
    fetched, not feedable, or free to recompute), which a later run recomputes from it.
    A wrong answer costs time or memory, never correctness: a tensor carried too long is
    fed although nothing needs it, one dropped too early is computed again.
    """
    carriable = {
        f.tensor.name for f in fetches if f.tensor.op.type not in _FREE_OPS and graph.is_feedable(f.tensor)
    }
    reach: dict[str, int] = {}  # tensor -> last position that needs it
    for operation in reversed(graph.get_operations()):
        at = position[operation.name]
        for tensor in operation.outputs:
            last = at
            for consumer in tensor.consumers():
                last = max(last, position.get(consumer.name, at))
                for output in consumer.outputs:
                    if output.name not in carriable:  # recomputed from its inputs when needed
                        last = max(last, reach.get(output.name, position.get(consumer.name, at)))
            reach[tensor.name] = last
    return {name: reach.get(name, -1) for name in carriable}


def _traced_inputs(operation: Any, by_tensor: dict[str, _Fetch], loops: _LoopInputs) -> list[str]:
    """Node ids of the nearest traced tensors ``operation`` reads, looking through unlisted
    ops (Identity, lowered Switch/Merge), so a NaN passed along them is still an input."""
    found: list[str] = []
    queue: list[Any] = loops.inputs(operation)
    seen: set[str] = set()
    while queue and len(seen) < _ANCESTOR_LIMIT:
        tensor = queue.pop(0)
        if tensor.name in seen:
            continue
        seen.add(tensor.name)
        fetch = by_tensor.get(tensor.name)
        if fetch is not None:
            if fetch.node_id not in found:
                found.append(fetch.node_id)
        else:
            queue.extend(loops.inputs(tensor.op))
    return found


class _LoopInputs:
    """What an op reads, with a loop's Exit reading what the loop reads.

    A while loop (TF1's ``while_loop`` or a lowered While) runs between Enter ops, which
    take the loop's inputs into its frame, and Exit ops, which hand its outputs on. Walking
    back from an Exit through Switch, Merge and the NextIteration back edge would cross the
    whole body (its ops are not traced: they run once per iteration) and the condition's
    chain, and could use up the walk's limit inside a big body; the loop's output is made
    from the loop's inputs, so an Exit's inputs are the tensors its frame's Enter ops read.
    This is also what an Exit the trace cannot name is walked through (a lowered loop output
    TensorFlow's names do not tell apart): its consumer then reads the loop's inputs, as
    through any op outside the trace, and is named if the NaN was made inside the loop:
    nothing traced between them says otherwise.
    """

    def __init__(self, graph: Any) -> None:
        self._graph = graph
        self._enters: dict[tuple[str, str], list[Any]] | None = None

    def inputs(self, operation: Any) -> list[Any]:
        if operation.type not in ("Exit", "RefExit"):
            return list(operation.inputs)
        frame = self._frame(operation)
        enters = self._frames().get(frame, []) if frame is not None else []
        return [enter.inputs[0] for enter in enters] or list(operation.inputs)

    @staticmethod
    def _frame(exit_op: Any) -> tuple[str, str] | None:
        """(top name scope, frame name) of an Exit: Exit <- Switch <- Merge <- Enter."""
        operation = exit_op
        for _ in range(8):
            if not operation.inputs:
                return None
            operation = operation.inputs[0].op
            if operation.type in ("Enter", "RefEnter"):
                return _frame_key(operation)
        return None

    def _frames(self) -> dict[tuple[str, str], list[Any]]:
        if self._enters is None:  # built at the first Exit: most graphs have none
            self._enters = {}
            for operation in self._graph.get_operations():
                if operation.type in ("Enter", "RefEnter"):
                    self._enters.setdefault(_frame_key(operation), []).append(operation)
        return self._enters


def _frame_key(enter: Any) -> tuple[str, str]:
    """Frame names are not scoped when a GraphDef is imported: two signatures' loops may share
    one, so the signature's scope (the top name scope) is part of the key."""
    name = enter.get_attr("frame_name")
    return enter.name.split("/", 1)[0], name.decode() if isinstance(name, bytes) else str(name)


def _chunks(fetches: list[_Fetch], measured: list[int], earlier: list[int]) -> Iterator[list[_Fetch]]:
    """Consecutive fetches whose outputs add up to about CHUNK_BYTES (at least one each).

    Constants count for nothing: each is read on its own when its turn comes. An output of
    unknown shape counts as the mean of those measured so far (else by an earlier trace).
    """
    start = 0
    while start < len(fetches):
        sizes = measured or earlier
        guess = sum(sizes) // len(sizes) if sizes else FIRST_GUESS_BYTES
        total, stop = 0, start
        while stop < len(fetches) and (stop == start or total < CHUNK_BYTES):
            nbytes = fetches[stop].node.nbytes
            if fetches[stop].constant is None:
                total += nbytes if nbytes is not None else guess
            stop += 1
        yield fetches[start:stop]
        start = stop


def _values(
    prepared: Prepared, chunk: list[_Fetch], feed_dict: dict[Any, Any], sig: SignatureGraph
) -> Iterator[tuple[_Fetch, Any]]:
    """The values of ``chunk`` in its order: constants read from the graph, the others
    from one run (those in a branch these inputs skip are left out)."""
    ran = _run(prepared, [f for f in chunk if f.constant is None], feed_dict, sig)
    pending = next(ran, None)
    last: tuple[str, np.ndarray] | None = None  # the constant read last: its aliases follow it
    for fetch in chunk:
        if fetch.constant is not None:
            if last is None or last[0] != fetch.constant:
                last = None  # released before the next one is read
                last = (fetch.constant, _constant_value(prepared, fetch))
            yield fetch, last[1]
        elif pending is not None and pending[0] is fetch:
            yield pending
            pending = next(ran, None)


def _constant_op(tensor: Any) -> Any | None:
    """The Const op whose value ``tensor`` is (itself, or through Identity ops), if any.

    A frozen signature holds its variables as Const ops: their values are in the graph,
    and reading them there spares the runs hundreds of MB of outputs (and TensorFlow a
    copy of the whole graph for each distinct run).
    """
    seen = 0
    while tensor.op.type == "Identity" and tensor.op.inputs and seen < _ANCESTOR_LIMIT:
        tensor, seen = tensor.op.inputs[0], seen + 1
    dtype = tensor.dtype
    plain = (
        dtype.is_floating or dtype.is_integer or dtype.is_bool or dtype.is_complex
    ) and not dtype.is_quantized
    return tensor.op if tensor.op.type == "Const" and plain else None


def _constant_value(prepared: Prepared, fetch: _Fetch) -> np.ndarray:
    """The Const's value; a packed one viewed in place (read-only: keeping it copies it)."""
    import tensorflow as tf

    assert fetch.constant is not None  # only called for fetches marked constant
    proto = prepared.constant(fetch.constant)
    if proto is None:
        proto = prepared.graph.get_operation_by_name(fetch.constant).get_attr("value")
    content = proto.tensor_content  # a new bytes object at each access: taken once
    if content and sys.byteorder == "little":  # what tf.make_ndarray would copy once more
        dtype = np.dtype(tf.as_dtype(proto.dtype).as_numpy_dtype)
        shape = [d.size for d in proto.tensor_shape.dim]
        return np.frombuffer(content, dtype=dtype).reshape(shape)
    return np.asarray(tf.make_ndarray(proto))


def _run(
    prepared: Prepared, chunk: list[_Fetch], feed_dict: dict[Any, Any], sig: SignatureGraph
) -> Iterator[tuple[_Fetch, Any]]:
    """The values of ``chunk``; ops in a branch these inputs skip are left out."""
    if not chunk:
        return
    try:
        run = _callable(prepared, [f.tensor for f in chunk], list(feed_dict))
        # What Session.run does to a fed value: the callable takes arrays of the tensor's dtype.
        values = run(*(np.asarray(v, dtype=t.dtype.as_numpy_dtype) for t, v in feed_dict.items()))
    except Exception as exc:
        if len(chunk) > 1:  # one dead branch fails the whole run: fetch one by one
            for fetch in chunk:
                yield from _run(prepared, [fetch], feed_dict, sig)
            return
        reason = tf_error_sentence(exc)
        if any(marker in reason for marker in _DEAD_BRANCH):
            return
        raise InspectorError(
            f"Running signature {sig.key!r} failed at {chunk[0].op.name}: {reason}."
        ) from None
    for i, fetch in enumerate(chunk):
        value, values[i] = values[i], None  # the run's list lets go of each value once handed over
        yield fetch, value


def _callable(prepared: Prepared, fetches: list[Any], feeds: list[Any]) -> Any:
    """A Session callable for these fetches and feeds, made once: ``Session.run`` checks and
    sorts its fetches and feeds again at every call, a large share of a run of ~1,000 small
    fetches. (``Session.make_callable`` hands any feeds back to ``run``; the options API
    under it, which Keras 2 used, does not.) Each callable keeps an executor (a copy of the
    graph), so only the latest few are kept."""
    key = (tuple(t.name for t in fetches), tuple(t.name for t in feeds))
    made: dict[Any, Any] = prepared.cache.setdefault("callables", {})
    if key not in made:
        while len(made) >= _CALLABLES_KEPT:
            del made[next(iter(made))]  # the oldest
        session = prepared.session
        try:
            from tensorflow.core.protobuf import config_pb2

            options = config_pb2.CallableOptions(feed=key[1], fetch=key[0])
            made[key] = session._make_callable_from_options(options)
        except AttributeError:  # a TensorFlow without it: run() with the same arguments
            made[key] = lambda *values: session.run(fetches, feed_dict=dict(zip(feeds, values)))
    return made[key]
