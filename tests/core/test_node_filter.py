"""The tree's filter language (tensor_inspector.core.node_filter): dtype, shape, glob and substring tokens."""

from __future__ import annotations

import pytest

from tensor_inspector.core.node_filter import query_matches, token_matches
from tensor_inspector.core.nodes import Node, NodeKind

KERNEL = Node("enc/layer_0/kernel", "kernel", NodeKind.TENSOR, dtype="bfloat16", shape=(4096, 128))
CUBE = Node("enc/cube", "cube", NodeKind.TENSOR, dtype="float32", shape=(4096, 64, 128))
VECTOR = Node("b", "b", NodeKind.TENSOR, dtype="float32", shape=(128,))
GROUP = Node("enc", "enc", NodeKind.GROUP)
DYNAMIC = Node("out:0", "out:0", NodeKind.COMPUTED, dtype="float32", shape=(None, 10))


@pytest.mark.parametrize(
    "query",
    [
        "bf16",
        "BFloat16",
        "kern",
        "KERNEL",
        "*layer_?/kernel",
        "4096x",
        "x128",
        "4096x128",
        "enc bf16 x128",
        "",
    ],
)
def test_queries_that_keep_a_bf16_kernel(query):
    assert query_matches(query, KERNEL)


@pytest.mark.parametrize(
    "query", ["f32", "128x", "x4096", "40x", "bias", "kernel f16", "*bias*", "4096", "x4096x"]
)
def test_queries_that_drop_a_bf16_kernel(query):
    assert not query_matches(query, KERNEL)


def test_shape_patterns_respect_rank_and_position():
    assert token_matches("x64x", CUBE) and not token_matches("x64x", KERNEL)  # a middle dimension
    assert token_matches("4096x64x128", CUBE) and not token_matches("64x128x", CUBE)
    assert token_matches("f32", VECTOR) and not token_matches("x128", VECTOR)  # x128 needs rank >= 2
    assert token_matches("128", VECTOR) is False  # a bare number is a substring of the name, not a shape


def test_nodes_without_dtype_or_shape_match_only_by_name():
    assert not token_matches("f32", GROUP) and not token_matches("4x", GROUP)
    assert token_matches("en", GROUP) and token_matches("e?c", GROUP)


def test_unknown_dimensions_never_match_a_number():
    assert token_matches("x10", DYNAMIC) and not token_matches("1x10", DYNAMIC)
