"""Checks that a torch.export .pt2 archive can be loaded without running code from it.

``torch.export.load`` falls back to unsafe unpickling for sample inputs, unpickles
"pickled" weights and custom objects, loads AOTInductor native libraries, passes
symbolic-shape strings to ``sympy.sympify`` (an ``eval``) and resolves call targets by
attribute path. An untrusted archive is loaded only when none of that can bite: no
pickled payloads beyond weights-only ones, no native code, call targets from an
allow-list, and shape expressions that match a strict grammar.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_OPERATOR_ALLOWED = {
    "getitem",
    "add",
    "sub",
    "mul",
    "truediv",
    "floordiv",
    "mod",
    "neg",
    "pos",
    "pow",
    "abs",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and_",
    "or_",
    "xor",
    "not_",
    "invert",
    "lshift",
    "rshift",
    "matmul",
    "truth",
}
_OPS_NAMESPACES = ("torch.ops.aten.", "torch.ops.prims.", "torch.ops.quantized_decomposed.")
_OPS_BLOCKED = ("torch.ops.aten.from_file",)  # maps files from disk, writable with shared=True
_HIGHER_ORDER_ALLOWED = {
    "cond",
    "while_loop",
    "map_impl",
    "wrap_with_set_grad_enabled",
    "wrap_with_autocast",
    "auto_functionalized",
    "invoke_subgraph",
    "scan",
    "associative_scan",
}
_SYMPY_NAMES = {
    "FloorDiv",
    "ModularIndexing",
    "Where",
    "PythonMod",
    "Mod",
    "CleanDiv",
    "CeilToInt",
    "FloorToInt",
    "CeilDiv",
    "LShift",
    "RShift",
    "IsNonOverlappingAndDenseIndicator",
    "TruncToFloat",
    "TruncToInt",
    "RoundToInt",
    "RoundDecimal",
    "ToFloat",
    "FloatPow",
    "PowByNatural",
    "IntTrueDiv",
    "FloatTrueDiv",
    "Identity",
    "Max",
    "Min",
    "Eq",
    "Ne",
    "Lt",
    "Le",
    "Gt",
    "Ge",
    "And",
    "Or",
    "Not",
    "True",
    "False",
    "oo",
    "zoo",
    "nan",
    "Abs",
    "floor",
    "ceiling",
    "sqrt",
    "OpaqueUnaryFn_sqrt",
    "Piecewise",
    "ITE",
}
_EXPR_CHARS = re.compile(r"^[A-Za-z0-9_+\-*/%(),<>=!&|~ \t.]*$")
_EXPR_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYMBOL = re.compile(r"^[a-z]+[0-9]+$")
_NUMBER_DOT = re.compile(r"(?<![0-9])\.|\.(?![0-9])")


def target_allowed(target: str) -> bool:
    if target.startswith(_OPS_BLOCKED):
        return False
    if target.startswith(_OPS_NAMESPACES):
        return True
    if target.startswith("torch.ops.higher_order."):
        return target.split(".")[3] in _HIGHER_ORDER_ALLOWED
    if target.startswith("_operator."):
        return target.removeprefix("_operator.") in _OPERATOR_ALLOWED
    if target.startswith("math."):
        return re.fullmatch(r"math\.[a-z0-9]+", target) is not None
    return re.fullmatch(r"torch\._?sym_[a-z_]+", target) is not None


def expr_allowed(expr: str) -> bool:
    """A symbolic-shape expression made of symbols, numbers, operators and known functions."""
    if not _EXPR_CHARS.match(expr) or "__" in expr or _NUMBER_DOT.search(expr):
        return False
    return all(
        _SYMBOL.match(word) or word in _SYMPY_NAMES
        for word in _EXPR_WORD.findall(expr)
        if not word[0].isdigit()
    )


def _walk(obj: Any) -> Iterator[tuple[str, Any, Any]]:
    """(key, value, parent) for every entry of a JSON document."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                yield key, value, item
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def program_problems(document: Any) -> list[str]:
    problems: list[str] = []
    for key, value, parent in _walk(document):
        if key == "target" and isinstance(value, str) and "inputs" in parent:
            if not target_allowed(value):
                problems.append(f"call target {value}")
        elif key == "expr_str" and isinstance(value, str):
            if not expr_allowed(value):
                problems.append(f"shape expression {value[:60]!r}")
    return problems


def payload_problems(document: Any, what: str) -> list[str]:
    problems = []
    for name, meta in (document.get("config") or {}).items():
        path_name = str(meta.get("path_name", ""))
        if meta.get("use_pickle") or not path_name.startswith(("weight_", "tensor_")):
            problems.append(f"pickled {what} {name}")
    return problems


def archive_problems(path: Path) -> list[str]:
    """Reasons this archive could run code when loaded; empty when it is safe to load."""
    import torch

    problems: list[str] = []
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        prefix = names[0].split("/", 1)[0] + "/" if names and "/" in names[0] else ""
        for name in names:
            tail = name[len(prefix) :] if name.startswith(prefix) else name
            if tail.startswith("data/aotinductor/") or tail.endswith((".so", ".dll", ".dylib")):
                problems.append(f"compiled native code {tail}")
            elif tail.startswith("models/") and tail.endswith(".json"):
                problems += program_problems(json.loads(archive.read(name)))
            elif tail.startswith("data/weights/") and tail.endswith(".json"):
                problems += payload_problems(json.loads(archive.read(name)), "weight")
            elif tail.startswith("data/constants/") and tail.endswith(".json"):
                problems += payload_problems(json.loads(archive.read(name)), "constant")
            elif tail.startswith(("data/weights/", "data/constants/")) and tail.endswith(".pt"):
                problems.append(f"legacy pickled payload {tail}")
            elif tail.startswith("data/sample_inputs/"):
                data = archive.read(name)
                if not data:
                    continue  # no example inputs were saved
                try:
                    torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
                except Exception:
                    problems.append(f"sample inputs {tail} that need unsafe unpickling")
    return problems
