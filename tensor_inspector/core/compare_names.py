"""Which tensor of file A goes with which of file B, and how their layouts line up.

People compare a Keras model with its PyTorch port, a checkpoint with its safetensors
conversion, a fine-tuned model with its base. The names differ in predictable ways:
wrapper prefixes (``module.`` from DataParallel, ``_orig_mod.`` from torch.compile,
``model.``), ``/`` against ``.``, TF's ``:0`` and ``/.ATTRIBUTES/VARIABLE_VALUE``, and
each framework's word for the same variable (``kernel``/``weight``,
``gamma``/``beta``/``weight``/``bias``, ``moving_mean``/``running_mean``). Layouts differ
by known permutations: a Dense kernel is (in, out) where a Linear weight is (out, in),
a Keras conv kernel HWIO where torch has OIHW. This module turns names into one
canonical form, pairs nodes, and finds the permutation; user rules come first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.nodes import Node, NodeKind

WRAPPERS = ("module", "model", "_orig_mod")
LEAF_ALIASES = {
    "kernel": "weight",
    "_kernel": "weight",  # Keras 3 Dense/Conv keep the kernel in ``_kernel`` (LoRA support)
    "depthwise_kernel": "weight",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
    "embeddings": "weight",
    "_embeddings": "weight",
}
TF_KERNELS = {"kernel", "_kernel", "depthwise_kernel"}
# Permutations taking a Keras/TF kernel to the torch weight layout, tried in order
# (a.transpose(p) has the torch shape). Dense (in,out)->(out,in); conv (..., I, O) -> (O, I,
# ...), which also holds for transposed convs (Keras (..., O, I), torch (I, O, ...)); and
# depthwise kernels with multiplier 1, (..., C, 1) -> (C, 1, ...).
TO_TORCH: dict[int, tuple[tuple[int, ...], ...]] = {
    2: ((1, 0),),
    3: ((2, 1, 0), (1, 2, 0)),
    4: ((3, 2, 0, 1), (2, 3, 0, 1)),
    5: ((4, 3, 0, 1, 2), (3, 4, 0, 1, 2)),
}
# State that is not a weight: unpaired, it is reported as skipped, not as a difference
# (a torch BatchNorm's step counter, optimizer slots, TF's save counter).
BOOKKEEPING_LEAVES = {"num_batches_tracked", "save_counter", "global_step", "_CHECKPOINTABLE_OBJECT_GRAPH"}
BOOKKEEPING_ROOTS = {"optimizer", "save_counter", "global_step"}


@dataclass(frozen=True)
class Rule:
    """A user rule: A ids matching ``a`` (whole name) pair with ``b`` (a replacement)."""

    a: re.Pattern[str]
    b: str
    transpose: tuple[int, ...] | None = None


@dataclass(frozen=True)
class PlannedPair:
    """Two nodes to compare; ``a.transpose(transform)`` lines up with B (None: as is).

    ``note`` says why the values cannot be compared (shapes that no rule lines up).
    """

    a: str
    b: str
    transform: tuple[int, ...] | None = None
    note: str = ""


@dataclass(frozen=True)
class Plan:
    pairs: list[PlannedPair]
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def parse_rules(data: Any) -> list[Rule]:
    """Rules from the JSON of ``--map``: ``[{"a": REGEX, "b": REPLACEMENT, "transpose": [axes]?}]``."""
    if not isinstance(data, list):
        raise InspectorError('The rules file must hold a JSON list of {"a": ..., "b": ...} objects.')
    rules = []
    for i, item in enumerate(data, 1):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("a"), str)
            or not isinstance(item.get("b"), str)
        ):
            raise InspectorError(f'Rule {i} needs "a" (a regular expression) and "b" (a replacement).')
        try:
            pattern = re.compile(item["a"])
        except re.error as exc:
            raise InspectorError(f"Rule {i}: {item['a']!r} is not a regular expression ({exc}).") from None
        transpose = item.get("transpose")
        axes: tuple[int, ...] | None = None
        if transpose is not None:
            if not isinstance(transpose, list) or sorted(transpose) != list(range(len(transpose))):
                raise InspectorError(f'Rule {i}: "transpose" must list the axes 0..n-1 in a new order.')
            axes = tuple(int(x) for x in transpose)
        rules.append(Rule(pattern, item["b"], axes))
    return rules


def canonical(name: str) -> str:
    """The form two names of the same tensor share: ``module.fc.kernel:0`` -> ``fc.weight``."""
    name = re.sub(r"/\.ATTRIBUTES/VARIABLE_VALUE$", "", name)
    name = re.sub(r":\d+$", "", name)
    parts = [p for p in re.split(r"[/.]", name) if p]
    while len(parts) > 1 and parts[0] in WRAPPERS:
        parts.pop(0)
    if parts:
        parts[-1] = LEAF_ALIASES.get(parts[-1], parts[-1])
    return ".".join(parts)


def pairing_names(nodes: Sequence[Node]) -> dict[str, str]:
    """Node id -> the name to pair by: the variable's own name where the file keeps one.

    TF object checkpoints key variables by object path (``model/_operations/1/_kernel``)
    and keep the variable name (``conv1/kernel``) as ``full_name``.
    """
    names = {}
    for node in nodes:
        full = node.metadata.get("full_name")
        names[node.id] = full if isinstance(full, str) and full else node.id
    return names


def comparable_nodes(nodes: Sequence[Node]) -> list[Node]:
    """The nodes a whole-file comparison looks at: stored values (computed ones need feeds)."""
    return [n for n in nodes if n.kind in (NodeKind.TENSOR, NodeKind.VALUE)]


def plan_pairs(nodes_a: Sequence[Node], nodes_b: Sequence[Node], rules: Sequence[Rule] = ()) -> Plan:
    """Pair the stored values of two files: rules, then same ids, then canonical names, then suffixes."""
    all_a, all_b = list(nodes_a), list(nodes_b)
    names_a, names_b = pairing_names(all_a), pairing_names(all_b)
    left_a = {n.id: n for n in comparable_nodes(all_a)}
    left_b = {n.id: n for n in comparable_nodes(all_b)}
    matched: list[tuple[str, str, tuple[int, ...] | None]] = []

    def take(a: str, b: str, transpose: tuple[int, ...] | None = None) -> None:
        matched.append((a, b, transpose))
        del left_a[a], left_b[b]

    for a_id in list(left_a):
        found = _by_rule(a_id, names_a[a_id], rules, left_b, names_b)
        if found is not None:
            take(a_id, *found)
    for a_id in [i for i in left_a if i in left_b]:
        take(a_id, a_id)
    _pair_by_key(left_a, left_b, names_a, names_b, canonical, take)
    _pair_by_suffix(left_a, left_b, names_a, names_b, take)

    by_id_a, by_id_b = {n.id: n for n in all_a}, {n.id: n for n in all_b}
    pairs = [_planned(by_id_a[a], by_id_b[b], names_a[a], names_b[b], t) for a, b, t in matched]
    skipped = [f"A:{i}" for i in left_a if _bookkeeping(left_a[i], names_a[i])]
    skipped += [f"B:{i}" for i in left_b if _bookkeeping(left_b[i], names_b[i])]
    only_a = [i for i in left_a if not _bookkeeping(left_a[i], names_a[i])]
    only_b = [i for i in left_b if not _bookkeeping(left_b[i], names_b[i])]
    return Plan(pairs, only_a, only_b, skipped)


def plan_single(node_a: Node, node_b: Node, rules: Sequence[Rule] = ()) -> PlannedPair:
    """The pair of two named nodes (``FILE::NODE`` on both sides); a matching rule may transpose."""
    transpose = next((r.transpose for r in rules if r.a.fullmatch(node_a.id)), None)
    return _planned(node_a, node_b, node_a.id, node_b.id, transpose)


def layout_transform(
    name_a: str, shape_a: tuple[int | None, ...] | None, name_b: str, shape_b: tuple[int | None, ...] | None
) -> tuple[tuple[int, ...] | None, bool]:
    """(permutation of A's axes that gives B's shape, or None for none; whether one was found)."""
    if shape_a is None or shape_b is None or None in shape_a or None in shape_b:
        return None, shape_a == shape_b
    style_a, style_b = _style(name_a), _style(name_b)
    ndim = len(shape_a)
    candidates: list[tuple[int, ...] | None] = []
    if style_a == "tf" and style_b == "torch":
        candidates += TO_TORCH.get(ndim, ())
    elif style_a == "torch" and style_b == "tf":
        candidates += [_inverse(p) for p in TO_TORCH.get(ndim, ())]
    candidates.append(None)
    if style_a is None or style_b is None or style_a != style_b:  # the shapes alone decide
        candidates += TO_TORCH.get(ndim, ())
        candidates += [_inverse(p) for p in TO_TORCH.get(ndim, ())]
    for perm in candidates:
        if perm is None and len(shape_a) == len(shape_b) and tuple(shape_a) == tuple(shape_b):
            return None, True
        if perm is not None and len(shape_b) == ndim and tuple(shape_a[i] for i in perm) == tuple(shape_b):
            return perm, True
    return None, False


def describe_transform(transform: tuple[int, ...] | None) -> str | None:
    """How A was rearranged, as the pair reports it: ``transpose(1,0)``."""
    return None if transform is None else "transpose(" + ",".join(str(i) for i in transform) + ")"


# -- internals ------------------------------------------------------------------------
def _planned(
    node_a: Node, node_b: Node, name_a: str, name_b: str, transpose: tuple[int, ...] | None
) -> PlannedPair:
    if transpose is not None:
        shape_a, shape_b = node_a.shape, node_b.shape
        if shape_a is None or shape_b is None or len(transpose) != len(shape_a):
            return PlannedPair(
                node_a.id, node_b.id, transpose, f"transpose{list(transpose)} does not fit {_shape(shape_a)}"
            )
        if tuple(shape_a[i] for i in transpose) != tuple(shape_b):
            return PlannedPair(
                node_a.id,
                node_b.id,
                transpose,
                f"{_shape(shape_a)} transposed by {list(transpose)} is not {_shape(shape_b)}",
            )
        return PlannedPair(node_a.id, node_b.id, transpose)
    perm, found = layout_transform(name_a, node_a.shape, name_b, node_b.shape)
    if not found:
        return PlannedPair(
            node_a.id, node_b.id, None, f"shapes {_shape(node_a.shape)} and {_shape(node_b.shape)} differ"
        )
    return PlannedPair(node_a.id, node_b.id, perm)


def _by_rule(
    a_id: str, a_name: str, rules: Sequence[Rule], left_b: dict[str, Node], names_b: dict[str, str]
) -> tuple[str, tuple[int, ...] | None] | None:
    for rule in rules:
        match = rule.a.fullmatch(a_id) or rule.a.fullmatch(a_name)
        if match is None:
            continue
        target = match.expand(rule.b)
        if target in left_b:
            return target, rule.transpose
        key = canonical(target)
        hits = [b for b in left_b if canonical(names_b[b]) == key]
        if len(hits) == 1:
            return hits[0], rule.transpose
    return None


def _pair_by_key(
    left_a: dict[str, Node],
    left_b: dict[str, Node],
    names_a: dict[str, str],
    names_b: dict[str, str],
    key: Any,
    take: Any,
) -> None:
    """Pair names whose keys are equal and unique on both sides (ambiguous ones stay apart)."""
    keys_a: dict[str, list[str]] = {}
    keys_b: dict[str, list[str]] = {}
    for i in left_a:
        keys_a.setdefault(key(names_a[i]), []).append(i)
    for i in left_b:
        keys_b.setdefault(key(names_b[i]), []).append(i)
    for k, ids in keys_a.items():
        if len(ids) == 1 and len(keys_b.get(k, ())) == 1:
            take(ids[0], keys_b[k][0])


def _pair_by_suffix(
    left_a: dict[str, Node],
    left_b: dict[str, Node],
    names_a: dict[str, str],
    names_b: dict[str, str],
    take: Any,
) -> None:
    """Pair names where one is the other under an extra prefix (a Keras model name, ``encoder.``)

    only when each has exactly one such partner, so two blocks with the same inner
    names are never guessed apart.
    """
    parts_a = {i: canonical(names_a[i]).split(".") for i in left_a}
    parts_b = {i: canonical(names_b[i]).split(".") for i in left_b}

    def related(x: list[str], y: list[str]) -> bool:
        n = min(len(x), len(y))
        return n >= 2 and x[-n:] == y[-n:]

    by_tail: dict[tuple[str, ...], list[str]] = {}  # only names ending alike can be related
    for b, pb in parts_b.items():
        by_tail.setdefault(tuple(pb[-2:]), []).append(b)
    partners_a = {
        a: [b for b in by_tail.get(tuple(pa[-2:]), ()) if related(pa, parts_b[b])]
        for a, pa in parts_a.items()
    }
    partners_b: dict[str, list[str]] = {}
    for a, bs in partners_a.items():
        for b in bs:
            partners_b.setdefault(b, []).append(a)
    for a, bs in partners_a.items():
        if len(bs) == 1 and len(partners_b[bs[0]]) == 1:
            take(a, bs[0])


def _bookkeeping(node: Node, name: str) -> bool:
    parts = [p for p in re.split(r"[/.]", name) if p] or [name]
    return "slot_of" in node.metadata or parts[-1] in BOOKKEEPING_LEAVES or parts[0] in BOOKKEEPING_ROOTS


def _style(name: str) -> str | None:
    name = re.sub(r"/\.ATTRIBUTES/VARIABLE_VALUE$", "", re.sub(r":\d+$", "", name))
    leaf = [p for p in re.split(r"[/.]", name) if p][-1:] or [""]
    if leaf[0] in TF_KERNELS:
        return "tf"
    if leaf[0] == "weight":
        return "torch"
    return None


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return tuple(inverse)


def _shape(shape: tuple[int | None, ...] | None) -> str:
    return "?" if shape is None else "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
