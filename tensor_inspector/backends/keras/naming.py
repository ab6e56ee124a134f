"""Weight ids under layer names (``conv/kernel``) from the storage paths of Keras files.

Keras 3 stores a layer's variables by position under a class-based attribute path
(``layers/conv2d/vars/0``) and records the layer's own name only in the ``vars``
group's ``name`` attribute; variable names are not stored at all. The names are
rebuilt here from the layer class (the order Keras creates them: trainable first,
then non-trainable) and used only when the count matches what the file holds;
otherwise the position stays (``lstm/vars/0``). Legacy .h5 files store
``model_weights/<layer>/<layer>/kernel:0`` with the names already in them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

KERNEL_BIAS = (
    "Dense",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
)
RNN_CLASSES = ("LSTM", "GRU", "SimpleRNN", "Bidirectional", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
ATTENTION_CLASSES = ("MultiHeadAttention", "GroupedQueryAttention")


def variable_names(class_name: str, config: Mapping[str, Any]) -> list[str] | None:
    """The names of a built-in layer's variables in saving order, or None when unknown."""

    def given(key: str) -> bool:
        return bool(config.get(key, True))

    bias = ["bias"] if given("use_bias") else []
    if class_name in KERNEL_BIAS:
        return ["kernel", *bias]
    if class_name == "EinsumDense":
        return ["kernel", *(["bias"] if config.get("bias_axes") else [])]
    if class_name in ("SeparableConv1D", "SeparableConv2D"):
        return ["depthwise_kernel", "pointwise_kernel", *bias]
    scale_center = [*(["gamma"] if given("scale") else []), *(["beta"] if given("center") else [])]
    if class_name == "BatchNormalization":
        return [*scale_center, "moving_mean", "moving_variance"]
    if class_name in ("LayerNormalization", "GroupNormalization"):
        return scale_center
    return {
        "Embedding": ["embeddings"],
        "PReLU": ["alpha"],
        "Normalization": ["mean", "variance", "count"],
        "RMSNormalization": ["scale"],
    }.get(class_name)


def _sub_object_names(name: str, parent_class: str | None) -> list[str] | None:
    """Names for a layer's inner objects: RNN cells and attention projections (bias optional, last)."""
    if name.endswith("_cell") and parent_class in RNN_CLASSES:
        return ["kernel", "recurrent_kernel", "bias"]
    if parent_class in ATTENTION_CLASSES:
        return ["kernel", "bias"]
    return None


def keras3_weight_id(
    path: str,
    object_name: Callable[[str], str | None],
    layers: Mapping[tuple[str, ...], dict[str, Any]],
    count_of: Callable[[str], int],
) -> str | None:
    """``layers/conv2d/vars/0`` -> ``conv/kernel``; None when the path is not a layer's variable.

    ``object_name(prefix)``: the name recorded for the object stored at ``prefix`` (its
    ``vars`` group's attribute); ``layers``: config layers by name path;
    ``count_of(prefix)``: how many variables that object stores.
    """
    parts = path.split("/")
    if len(parts) < 4 or parts[0] != "layers" or parts[-2] != "vars" or not parts[-1].isdigit():
        return None
    names: list[str] = []
    for depth in range(1, len(parts) - 2):
        name = object_name("/".join(parts[: depth + 1]))
        if name is not None:  # lists of layers ("layers") are no objects of their own
            names.append(name)
    if not names:
        return None
    owner = "/".join(parts[:-2])
    position = int(parts[-1])
    entry = layers.get(tuple(names))
    if entry is not None:
        expected = variable_names(str(entry.get("class_name")), entry.get("config") or {})
    else:
        parent = layers.get(tuple(names[:-1]))
        expected = _sub_object_names(names[-1], parent.get("class_name") if parent else None)
        count = count_of(owner)
        if expected is not None and count <= len(expected):
            expected = expected[:count]
    if expected is not None and len(expected) == count_of(owner):
        return "/".join([*names, expected[position]])
    return "/".join([*names, "vars", parts[-1]])


def legacy_weight_id(path: str, base: str) -> str | None:
    """``model_weights/d1/d1/kernel:0`` -> ``d1/kernel``; None outside the model's weights."""
    if not path.startswith(base):
        return None
    layer, sep, rest = path[len(base) :].partition("/")
    if not sep or not rest:
        return None
    parts = [part.removesuffix(":0") for part in rest.split("/")]
    # Keras 3 prefixes the model's name (``seq/dense/kernel``), Keras 2 repeats the layer
    # (``dense/kernel:0``), a nested model holds its own layers (``dense_3/kernel:0``)
    if layer in parts:
        return "/".join(parts[parts.index(layer) :])
    return "/".join([layer, *parts])
