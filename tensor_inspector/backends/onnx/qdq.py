"""QDQ models: an integer initializer read through a ``DequantizeLinear`` node is shown as a pair.

Quantized ONNX models (onnxruntime's ``quantize_static`` in QDQ format, ``torch.onnx`` export of
quantized modules) store weights as int8/uint8 initializers, each consumed by a
``DequantizeLinear`` node whose scale and zero point are initializers too. The initializer is the
raw view, the node's output the dequantized view (``backends/quantized.py``): onnxruntime
computes it, and since every input is an initializer it needs no feeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tensor_inspector.backends import quantized
from tensor_inspector.backends.onnx.model import STANDARD_DOMAINS

LISTED_READ = 1 << 16  # scales with more entries are named, not read, when the file opens
Read = Callable[[Any], np.ndarray]  # TensorProto -> its value


def qdq_views(model: Any, tensors: dict[str, Any], read: Read) -> dict[str, dict[str, Any]]:
    """node id -> metadata entries to add, for each initializer/DequantizeLinear pair of the
    top-level graph (the stored node also gets ``quantization``)."""
    import onnx

    graph = model.graph
    top = {t.name for t in graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), 0)
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    added: dict[str, dict[str, Any]] = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.domain not in STANDARD_DOMAINS:
            continue
        inputs = list(node.input) + [""] * (3 - len(node.input))
        codes, scale_name, zero_name = inputs[:3]
        out = node.output[0] if node.output else ""
        if not out or codes not in top or scale_name not in top or (zero_name and zero_name not in top):
            continue
        if codes in added or consumers.get(codes, 0) != 1:  # one dequantized view per tensor
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        scale_dims = [int(d) for d in tensors[scale_name].dims]
        size = int(np.prod(scale_dims, dtype=np.int64))
        info: dict[str, Any] = {}
        if size <= LISTED_READ:  # opening stays O(metadata): block-wise scales are not read
            info["scale"] = quantized.listed(read(tensors[scale_name]))
            if zero_name:
                info["zero_point"] = quantized.listed(read(tensors[zero_name]))
        else:
            info["scale_shape"] = scale_dims
        block = int(attrs.get("block_size", 0))
        rank = len(tensors[codes].dims)
        if size == 1 and len(scale_dims) <= 1:
            info = {"scheme": "affine per-tensor", **info}
        elif block > 0:
            axis = int(attrs.get("axis", 1)) % max(rank, 1)
            info = {"scheme": "affine blocked", **info, "axis": axis, "block_size": block}
        else:
            axis = int(attrs.get("axis", 1)) % max(rank, 1)
            info = {"scheme": "affine per-axis", **info, "axis": axis, "channels": size}
        info["scale_tensor"] = scale_name
        if zero_name:
            info["zero_point_tensor"] = zero_name
        if opset:
            info["opset"] = opset
        added[codes] = {quantized.QUANTIZATION: info, **quantized.views(codes, out, quantized.RAW)}
        added[out] = {quantized.QUANTIZATION: info, **quantized.views(codes, out, quantized.DEQUANTIZED)}
    return added
