"""Torch tensor <-> numpy conversion with identical bits, plus per-tensor node metadata.

bf16 and float8 have no numpy equivalent, so they cross as same-width integer views
reinterpreted as ml_dtypes types: never through float32. Import only after torch is
loaded (callers import this module inside functions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tensor_inspector.backends.base import Index, InspectorError, NotEvaluable
from tensor_inspector.core.dtypes import numpy_dtype

# torch dtype -> (numpy dtype name, same-width torch dtype that numpy() understands)
_BIT_VIEWS: dict[torch.dtype, tuple[str, torch.dtype]] = {
    torch.bfloat16: ("bfloat16", torch.int16),
    torch.float8_e4m3fn: ("float8_e4m3fn", torch.uint8),
    torch.float8_e5m2: ("float8_e5m2", torch.uint8),
    torch.float8_e4m3fnuz: ("float8_e4m3fnuz", torch.uint8),
    torch.float8_e5m2fnuz: ("float8_e5m2fnuz", torch.uint8),
}
if hasattr(torch, "float8_e8m0fnu"):
    _BIT_VIEWS[torch.float8_e8m0fnu] = ("float8_e8m0fnu", torch.uint8)

_BY_NUMPY_NAME: dict[str, tuple[torch.dtype, torch.dtype]] = {
    name: (tdt, view) for tdt, (name, view) in _BIT_VIEWS.items()
}

# Dense sparse tensors up to this size; bigger ones would not fit a viewer anyway.
SPARSE_DENSE_LIMIT = 256 * 1024 * 1024


def framework_dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _exposed(t: torch.Tensor) -> torch.Tensor:
    """The tensor whose values are shown: int representation of quantized, dense of sparse."""
    if t.is_quantized:
        return t.int_repr()
    if t.layout is not torch.strided:
        nbytes = t.numel() * t.element_size()
        if nbytes > SPARSE_DENSE_LIMIT:
            raise InspectorError(
                f"This sparse tensor would take {nbytes / 2**20:.0f} MiB as a dense array, "
                "more than the viewer shows."
            )
        return t.to_dense()
    return t


def numpy_view(t: torch.Tensor) -> np.ndarray:
    """A numpy array sharing memory with ``t`` where possible (bit views for bf16/fp8)."""
    if t.device.type == "meta":
        raise NotEvaluable("This tensor was saved without data (device 'meta').")
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dtype in _BIT_VIEWS:
        name, view = _BIT_VIEWS[t.dtype]
        return t.view(view).numpy().view(numpy_dtype(name))
    if t.dtype is torch.complex32:
        # numpy has no complex32; widen explicitly (framework_dtype still says complex32)
        return t.to(torch.complex64).numpy()
    return t.numpy()


def to_numpy(t: torch.Tensor, index: Index | None = None) -> np.ndarray:
    """``t[index]`` as a read-only numpy array, touching only the selected elements.

    No copy: the array may share memory with a memory-mapped checkpoint, and keeps the
    tensor (and so the mapping) alive for as long as it lives. Saving never writes over a
    mapped file (it writes a temporary file and renames it), so the values stay valid.
    Whoever wants to change them makes a copy.
    """
    array = numpy_view(_exposed(t))
    if index is not None:
        array = array[index]
    view = array.view()
    view.flags.writeable = False
    return view


def dequantized(t: torch.Tensor, index: Index | None = None) -> np.ndarray:
    """A quantized tensor's values as torch computes them (``Tensor.dequantize``), float32."""
    values = t.dequantize()
    if index is not None:
        values = values[index]
    return np.asarray(values.detach().to(torch.float32).numpy())


def exposed_dtype(t: torch.Tensor) -> np.dtype:
    if t.is_quantized:
        int_reprs: dict[torch.dtype, np.dtype] = {
            torch.quint8: np.dtype(np.uint8),
            torch.qint8: np.dtype(np.int8),
            torch.qint32: np.dtype(np.int32),
        }
        return int_reprs.get(t.dtype, np.dtype(np.uint8))
    if t.dtype in _BIT_VIEWS:
        return numpy_dtype(_BIT_VIEWS[t.dtype][0])
    if t.dtype is torch.complex32:
        return np.dtype(np.complex64)
    return np.dtype(torch.empty((), dtype=t.dtype).numpy().dtype)


def from_numpy(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """A new tensor with ``array``'s values and ``like``'s dtype, layout, quantization,
    ``requires_grad`` and Parameter-ness."""
    name = np.asarray(array).dtype.name
    new = tensor_from_array(array)
    if like.is_quantized:
        new = _requantize(new, like)
    else:
        if like.dtype is torch.complex32:
            new = new.to(torch.complex32)
        elif new.dtype != like.dtype:
            raise InspectorError(
                f"Cannot store {name} values in a {framework_dtype_name(like.dtype)} tensor."
            )
        if like.layout is torch.sparse_coo:
            new = new.to_sparse()
        elif like.layout is not torch.strided:
            raise InspectorError(f"Writing {like.layout} tensors is not supported.")
    if isinstance(like, torch.nn.Parameter):
        return torch.nn.Parameter(new, requires_grad=like.requires_grad)
    if like.requires_grad and new.is_floating_point():
        new.requires_grad_(True)
    return new


def _requantize(int_repr: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    scheme = like.qscheme()
    if scheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return torch._make_per_tensor_quantized_tensor(int_repr, like.q_scale(), like.q_zero_point())
    if scheme in (torch.per_channel_affine, torch.per_channel_symmetric):
        return torch._make_per_channel_quantized_tensor(
            int_repr, like.q_per_channel_scales(), like.q_per_channel_zero_points(), like.q_per_channel_axis()
        )
    raise InspectorError(f"Writing {scheme} quantized tensors is not supported.")


def tensor_info(t: torch.Tensor, device: str | None = None) -> dict[str, Any]:
    """Node fields for ``t`` without reading its data: dtype, shape, nbytes, metadata."""
    meta: dict[str, Any] = {
        "device": device or str(t.device),
        "requires_grad": bool(t.requires_grad),
        "parameter": isinstance(t, torch.nn.Parameter),
        "layout": str(t.layout).removeprefix("torch."),
    }
    if t.layout is torch.strided and not t.is_quantized:
        meta["stride"] = tuple(t.stride())
        meta["storage_offset"] = int(t.storage_offset())
        meta["contiguous"] = bool(t.is_contiguous())
    if t.is_quantized:
        meta["quantization"] = quantization_info(t)
    if t.dtype is torch.complex32:
        meta["note"] = "complex32 is shown widened to complex64"
    dtype = exposed_dtype(t)
    return {
        "dtype": dtype.name,
        "framework_dtype": framework_dtype_name(t.dtype),
        "shape": tuple(int(d) for d in t.shape),
        "nbytes": int(t.numel()) * dtype.itemsize,
        "metadata": meta,
    }


def quantization_info(t: torch.Tensor) -> dict[str, Any]:
    scheme = t.qscheme()
    info: dict[str, Any] = {"scheme": str(scheme).removeprefix("torch.")}
    if scheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        info["scale"] = float(t.q_scale())
        info["zero_point"] = int(t.q_zero_point())
    else:
        info["scale"] = [float(s) for s in t.q_per_channel_scales()[:64]]
        info["zero_point"] = [int(z) for z in t.q_per_channel_zero_points()[:64]]
        info["axis"] = int(t.q_per_channel_axis())
    return info


def is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor)


def tensor_from_array(array: np.ndarray) -> torch.Tensor:
    """A fresh tensor holding ``array`` (a feed), bf16/fp8 through their bit patterns."""
    array = np.array(array, copy=True, order="C")  # ascontiguousarray would make 0-d 1-d
    name = array.dtype.name
    if name in _BY_NUMPY_NAME:
        tdt, view = _BY_NUMPY_NAME[name]
        int_dtype = {torch.int16: np.int16, torch.uint8: np.uint8}[view]
        return torch.from_numpy(array.view(int_dtype)).view(tdt)
    if array.dtype.kind not in "biufc":
        raise InspectorError(f"Values of dtype {name} cannot become a tensor.")
    return torch.from_numpy(array)


def numpy_name_of(dtype: torch.dtype | None) -> str:
    """numpy's name for a torch dtype (float32 when unknown)."""
    if dtype is None:
        return "float32"
    if dtype in _BIT_VIEWS:
        return _BIT_VIEWS[dtype][0]
    if dtype is torch.complex32:
        return "complex64"
    try:
        return torch.empty((), dtype=dtype).numpy().dtype.name
    except (TypeError, RuntimeError):
        return "float32"
