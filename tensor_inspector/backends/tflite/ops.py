"""Operator names of a TFLite model, without importing TensorFlow.

The names live in the ``BuiltinOperator`` enum of TensorFlow's generated schema module. It
is loaded from its file path when TensorFlow is installed (importing it as
``tensorflow.lite...`` would import all of TensorFlow first); otherwise ops are named by
their number.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def builtin_names() -> dict[int, str]:
    try:
        spec = importlib.util.find_spec("tensorflow")
        if spec is None or not spec.submodule_search_locations:
            return {}
        for location in spec.submodule_search_locations:
            schema = Path(location) / "lite" / "python" / "schema_py_generated.py"
            if schema.is_file():
                module_spec = importlib.util.spec_from_file_location("_tflite_schema", schema)
                if module_spec is None or module_spec.loader is None:
                    return {}
                module = importlib.util.module_from_spec(module_spec)
                module_spec.loader.exec_module(module)
                enum = module.BuiltinOperator
                return {v: k for k, v in vars(enum).items() if isinstance(v, int) and not k.startswith("_")}
    except Exception:  # names are a nicety; a schema we cannot load only loses them
        return {}
    return {}


def op_name(code: int, custom: str) -> str:
    """``CONV_2D``, a custom op's own name, or ``builtin 42`` when the name is unknown."""
    if custom:
        return custom
    return builtin_names().get(code, f"builtin {code}")
