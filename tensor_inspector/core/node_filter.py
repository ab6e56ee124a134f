"""The tree's filter language: which nodes a query like ``bf16 4096x *kernel*`` keeps.

Every whitespace-separated token must match (AND). A token is one of:

- a dtype name in any spelling the app knows (``bf16``, ``bfloat16``, ``f32``, ``float32``);
- a shape pattern (``4096x``, ``x128``, ``3x3``, ``x64x``): a leading or trailing ``x``
  stands for more dimensions on that side, so ``4096x`` needs rank >= 2 and a first
  dimension of 4096, ``x64x`` a 64 somewhere in the middle;
- a glob (``*kernel*``) over a node's name or id;
- otherwise a case-insensitive substring of a node's name or id.

Qt-free, so the same query means the same nodes in the window and in tests.
"""

from __future__ import annotations

import fnmatch
import re

from tensor_inspector.core.dtypes import ALIASES, ML_DTYPES, SHORT_NAMES
from tensor_inspector.core.nodes import Node

_SHAPE_TOKEN = re.compile(r"^x?\d+(x\d+)*x?$")
_DTYPE_WORDS = (
    {n.lower() for n in SHORT_NAMES}
    | {n.lower() for n in SHORT_NAMES.values()}
    | {n.lower() for n in ALIASES}
    | {n.lower() for n in ML_DTYPES}
)


def _canonical_dtype(word: str) -> str | None:
    word = word.lower()
    if word not in _DTYPE_WORDS:
        return None
    return ALIASES.get(word, word)


def _shape_matches(pattern: str, shape: tuple[int | None, ...]) -> bool:
    text = "x".join("?" if d is None else str(d) for d in shape)
    if pattern.startswith("x") and pattern.endswith("x"):
        return pattern in text
    if pattern.endswith("x"):
        return text.startswith(pattern)
    if pattern.startswith("x"):
        return text.endswith(pattern)
    return f"x{pattern}x" in f"x{text}x"


def token_matches(token: str, node: Node) -> bool:
    """True if ``node`` satisfies one filter token (see the module docstring)."""
    low = token.lower()
    dtype = _canonical_dtype(low)
    if dtype is not None:
        return node.dtype is not None and node.dtype.lower() == dtype
    if _SHAPE_TOKEN.match(low) and "x" in low:
        return node.shape is not None and _shape_matches(low, node.shape)
    name, nid = node.name.lower(), node.id.lower()
    if any(ch in low for ch in "*?["):
        return fnmatch.fnmatchcase(name, low) or fnmatch.fnmatchcase(nid, low)
    return low in name or low in nid


def query_matches(query: str, node: Node) -> bool:
    """True if ``node`` satisfies every token of ``query`` (an empty query keeps every node)."""
    return all(token_matches(t, node) for t in query.split())
