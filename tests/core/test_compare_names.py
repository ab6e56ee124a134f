"""Pairing tensors of two files by name, and lining up their layouts."""

from __future__ import annotations

import pytest

from tensor_inspector.core.compare_names import (
    canonical,
    layout_transform,
    parse_rules,
    plan_pairs,
    plan_single,
)
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.nodes import Node, NodeKind


def tensor(node_id: str, *shape: int, **metadata: str) -> Node:
    return Node(node_id, node_id, NodeKind.TENSOR, dtype="float32", shape=shape, metadata=metadata)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("module.fc.kernel:0", "fc.weight"),
        ("model/fc/kernel/.ATTRIBUTES/VARIABLE_VALUE", "fc.weight"),
        ("module._orig_mod.encoder.layers.0.weight", "encoder.layers.0.weight"),
        ("bn/gamma", "bn.weight"),
        ("bn/beta", "bn.bias"),
        ("bn/moving_mean", "bn.running_mean"),
        ("bn/moving_variance", "bn.running_var"),
        ("emb/embeddings", "emb.weight"),
        ("model", "model"),  # a lone wrapper word is a name, not a prefix
    ],
)
def test_canonical_names(name, key):
    assert canonical(name) == key


def test_keras_names_pair_with_torch_names_and_layouts():
    keras = [
        tensor("conv/kernel", 3, 3, 3, 8),
        tensor("conv/bias", 8),
        tensor("dw/kernel", 3, 3, 8, 1),
        tensor("bn/gamma", 8),
        tensor("bn/moving_variance", 8),
        tensor("fc/kernel", 16, 4),
        tensor("sq/kernel", 4, 4),
        tensor("emb/embeddings", 10, 3),
    ]
    torch = [
        tensor("module.conv.weight", 8, 3, 3, 3),
        tensor("module.conv.bias", 8),
        tensor("module.dw.weight", 8, 1, 3, 3),
        tensor("module.bn.weight", 8),
        tensor("module.bn.running_var", 8),
        tensor("module.bn.num_batches_tracked"),
        tensor("module.fc.weight", 4, 16),
        tensor("module.sq.weight", 4, 4),
        tensor("module.emb.weight", 10, 3),
    ]
    plan = plan_pairs(keras, torch)
    pairs = {p.a: (p.b, p.transform, p.note) for p in plan.pairs}
    assert pairs == {
        "conv/kernel": ("module.conv.weight", (3, 2, 0, 1), ""),
        "conv/bias": ("module.conv.bias", None, ""),
        "dw/kernel": ("module.dw.weight", (2, 3, 0, 1), ""),
        "bn/gamma": ("module.bn.weight", None, ""),
        "bn/moving_variance": ("module.bn.running_var", None, ""),
        "fc/kernel": ("module.fc.weight", (1, 0), ""),
        "sq/kernel": ("module.sq.weight", (1, 0), ""),  # square: the names decide
        "emb/embeddings": ("module.emb.weight", None, ""),
    }
    assert (plan.only_a, plan.only_b) == ([], [])
    assert plan.skipped == ["B:module.bn.num_batches_tracked"]
    # the other way round, A's axes are permuted by the inverse
    back = {p.a: p.transform for p in plan_pairs(torch, keras).pairs}
    assert back["module.conv.weight"] == (2, 3, 1, 0)
    assert back["module.fc.weight"] == (1, 0)


def test_tf_checkpoint_object_paths_pair_by_their_variable_names():
    checkpoint = [
        tensor("model/_operations/1/_kernel", 6, 2, full_name="sequential/fc/kernel"),
        tensor("model/_operations/1/bias", 2, full_name="sequential/fc/bias"),
        tensor("model/_operations/1/_kernel/m", 6, 2, full_name="adam/m", slot_of="x"),
        tensor("optimizer/iterations"),
    ]
    torch = [tensor("fc.weight", 2, 6), tensor("fc.bias", 2)]
    plan = plan_pairs(checkpoint, torch)
    assert [(p.a, p.b, p.transform) for p in plan.pairs] == [
        ("model/_operations/1/_kernel", "fc.weight", (1, 0)),
        ("model/_operations/1/bias", "fc.bias", None),
    ]
    assert plan.only_a == [] and len(plan.skipped) == 2


def test_unpaired_and_ambiguous_names_are_listed_not_guessed():
    a = [tensor("enc.block.w", 2), tensor("dec.block.w", 2), tensor("gone", 3), tensor("old_name", 4)]
    b = [tensor("block.w", 2), tensor("new_name", 4)]
    plan = plan_pairs(a, b)
    assert plan.pairs == []
    assert plan.only_a == ["enc.block.w", "dec.block.w", "gone", "old_name"]
    assert plan.only_b == ["block.w", "new_name"]


def test_a_model_name_prefix_pairs_by_suffix_when_unique():
    plan = plan_pairs([tensor("my_model/dense/kernel", 3, 2)], [tensor("dense.weight", 2, 3)])
    assert [(p.a, p.b, p.transform) for p in plan.pairs] == [
        ("my_model/dense/kernel", "dense.weight", (1, 0))
    ]


def test_shapes_that_do_not_line_up_are_a_pair_with_a_note():
    plan = plan_pairs([tensor("fc/kernel", 3, 2)], [tensor("fc.weight", 5, 3)])
    assert plan.pairs[0].note == "shapes [3, 2] and [5, 3] differ"


def test_rules_rename_and_transpose():
    rules = parse_rules(
        [
            {"a": r"encoder/layer_(\d+)/w", "b": r"enc.layers.\1.proj", "transpose": [1, 0]},
            {"a": "head", "b": "classifier.bias"},
        ]
    )
    a = [tensor("encoder/layer_0/w", 3, 2), tensor("encoder/layer_1/w", 3, 2), tensor("head", 2)]
    b = [tensor("enc.layers.0.proj", 2, 3), tensor("enc.layers.1.proj", 2, 3), tensor("classifier.bias", 2)]
    plan = plan_pairs(a, b, rules)
    assert [(p.a, p.b, p.transform, p.note) for p in plan.pairs] == [
        ("encoder/layer_0/w", "enc.layers.0.proj", (1, 0), ""),
        ("encoder/layer_1/w", "enc.layers.1.proj", (1, 0), ""),
        ("head", "classifier.bias", None, ""),
    ]
    wrong = plan_pairs(
        [tensor("x", 3, 2)], [tensor("y", 3, 2)], parse_rules([{"a": "x", "b": "y", "transpose": [1, 0]}])
    )
    assert "is not [3, 2]" in wrong.pairs[0].note
    assert plan_single(tensor("x", 3, 2), tensor("y", 2, 3), rules).transform == (1, 0)


@pytest.mark.parametrize(
    "data",
    [{"a": "x"}, [{"a": "x"}], [{"a": "(", "b": "y"}], [{"a": "x", "b": "y", "transpose": [0, 0]}]],
)
def test_bad_rules_are_one_sentence(data):
    with pytest.raises(InspectorError):
        parse_rules(data)


def test_layouts_from_shapes_when_names_do_not_say():
    assert layout_transform("a", (3, 5), "b", (5, 3)) == ((1, 0), True)
    assert layout_transform("a", (3, 3, 2, 8), "b", (8, 2, 3, 3)) == ((3, 2, 0, 1), True)
    assert layout_transform("a", (4, 4), "b", (4, 4)) == (None, True)
    assert layout_transform("a", (2, 3), "b", (6,)) == (None, False)
    # two kernels in the same layout are never transposed to fit
    assert layout_transform("x/kernel", (3, 5), "y/kernel", (5, 3)) == (None, False)
