"""An allow-list unpickler for plain pickles of arrays and tensors, and a global scanner.

``torch.load(weights_only=True)`` speaks only pickle protocol 2, and numpy's own loader
is all-or-nothing, so plain pickles get their own ``find_class`` that admits numpy's
array reconstruction, ml_dtypes scalar types, harmless builtins and torch's tensor
rebuild functions. Everything else is refused by name without running anything.
"""

from __future__ import annotations

import importlib
import io
import pickle
import pickletools
from collections.abc import Callable
from typing import IO, Any

from tensor_inspector.backends.base import MissingFramework

_NUMPY_ALLOWED = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
_BUILTINS_ALLOWED = {"set", "frozenset", "complex", "slice", "range", "bytearray"}
_MODULE_ALIASES = {
    "numpy.core.multiarray": "numpy._core.multiarray",
    "numpy.core.numeric": "numpy._core.numeric",
    "__builtin__": "builtins",
}


class Refused(pickle.UnpicklingError):
    """A global outside the allow-list was requested."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"refused global {name}")


def allowed_global(module: str, name: str) -> Callable[..., Any] | type | None:
    """The object for ``module.name`` if it is on the allow-list, else None."""
    if (module, name) in _NUMPY_ALLOWED:
        found: Callable[..., Any] = getattr(
            importlib.import_module(_MODULE_ALIASES.get(module, module)), name
        )
        return found
    if module == "numpy.dtypes" and name.endswith("DType"):
        import numpy.dtypes

        value = getattr(numpy.dtypes, name, None)
        return value if isinstance(value, type) else None
    if module == "ml_dtypes":
        import ml_dtypes
        import numpy as np

        scalar = getattr(ml_dtypes, name, None)
        return scalar if isinstance(scalar, type) and issubclass(scalar, np.generic) else None
    if module in ("builtins", "__builtin__") and name in _BUILTINS_ALLOWED:
        builtin: Callable[..., Any] = getattr(__import__("builtins"), name)
        return builtin
    if (module, name) == ("_codecs", "encode"):
        import _codecs

        return _codecs.encode
    if (module, name) == ("collections", "OrderedDict"):
        from collections import OrderedDict

        return OrderedDict
    if module == "torch" or module.startswith("torch."):
        torch_value: Callable[..., Any] | type | None = _torch_global(module, name)
        return torch_value
    return None


def _torch_global(module: str, name: str) -> Any:
    try:
        import torch  # noqa: F401  (only pickles that contain torch objects get here)
    except ImportError:
        raise MissingFramework("torch", "torch") from None
    if (module, name) == ("torch.storage", "_load_from_bytes"):
        return _load_storage_bytes
    from torch._weights_only_unpickler import _get_allowed_globals

    return _get_allowed_globals().get(f"{module}.{name}")


def _load_storage_bytes(data: bytes) -> Any:
    """A storage pickled by value: torch's own helper would load it unsafely."""
    import torch

    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        try:
            wanted = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data))
        except Exception:
            wanted = []
        raise Refused(", ".join(wanted) or "an unsafe object inside a pickled torch storage") from None


class AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        value = allowed_global(module, name)
        if value is None:
            raise Refused(f"{module}.{name}")
        return value

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in plain pickles")


class TorchArchiveUnpickler(pickle.Unpickler):
    """The allow-list for torch.load's ``pickle_module``: torch supplies persistent_load
    (storages from the archive); globals are checked here, in any pickle protocol."""

    def find_class(self, module: str, name: str) -> Any:
        value = allowed_global(module, name)
        if value is None and "torch" in __import__("sys").modules:
            from torch._weights_only_unpickler import _get_allowed_globals

            value = _get_allowed_globals().get(f"{module}.{name}")
        if value is None:
            raise Refused(f"{module}.{name}")
        return value


class TorchPickleModule:
    """Passed as ``torch.load(pickle_module=...)`` for archives torch's weights-only
    unpickler cannot parse (pickle protocols above 2)."""

    __name__ = "tensor_inspector_allow_list_pickle"
    Unpickler = TorchArchiveUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(fh: IO[bytes], **kwargs: Any) -> Any:
        return TorchArchiveUnpickler(fh, **kwargs).load()


def safe_load(fh: IO[bytes]) -> Any:
    """Unpickle with the allow-list; raises Refused naming the first disallowed global."""
    value = AllowListUnpickler(fh).load()
    torch_utils = _loaded_torch_utils()
    if torch_utils is not None and hasattr(torch_utils, "_validate_loaded_sparse_tensors"):
        torch_utils._validate_loaded_sparse_tensors()  # indices checked before use
    return value


def _loaded_torch_utils() -> Any:
    import sys

    return sys.modules.get("torch._utils")


_STRING_OPS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
}


def globals_in_pickle(data: bytes | IO[bytes]) -> list[str]:
    """Every ``module.name`` a pickle refers to, found by reading opcodes (nothing runs).

    Damaged pickles give what was found before the damage.
    """
    fh = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    found: list[str] = []
    memo: dict[Any, Any] = {}
    pushed: list[Any] = []
    try:
        for op, arg, _pos in pickletools.genops(fh):
            name = op.name
            if name in _STRING_OPS:
                pushed.append(arg)
            elif name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = pushed[-1] if pushed else None
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                pushed.append(memo.get(arg))
            elif name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                found.append(f"{module}.{attr}")
                pushed.append(None)
            elif name == "STACK_GLOBAL":
                owner, member = pushed[-2:] if len(pushed) >= 2 else (None, None)
                found.append(f"{owner}.{member}" if owner and member else "<unknown global>")
                pushed.append(None)
            elif name != "FRAME":
                pushed.append(None)
            if len(pushed) > 64:
                del pushed[:-8]
    except Exception:  # truncated or malformed: report what was seen
        pass
    unique: list[str] = []
    for item in found:
        if item not in unique:
            unique.append(item)
    return unique


def disallowed_globals(data: bytes | IO[bytes]) -> list[str]:
    """The globals of a pickle that the allow-list would refuse."""
    bad = []
    for full in globals_in_pickle(data):
        module, _, name = full.rpartition(".")
        try:
            ok = allowed_global(module, name) is not None
        except Exception:
            ok = False
        if not ok:
            bad.append(full)
    return bad
