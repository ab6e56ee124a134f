"""Layers of a Keras model config, with the ones that would run code flagged.

Only JSON is inspected: a Lambda layer's function (Python bytecode) and custom
classes are described, never deserialized.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

BUILTIN_MODULE_PREFIXES = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras")


def _has_python_function(value: Any) -> bool:
    """True when a config holds a serialized Python function or lambda anywhere inside."""
    if isinstance(value, dict):
        if value.get("class_name") in ("__lambda__", "function", "__function__"):
            return True
        return any(_has_python_function(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_python_function(v) for v in value)
    return False


def _flag(layer: dict[str, Any]) -> str | None:
    """Why this layer cannot be rebuilt without running code, or None."""
    class_name = str(layer.get("class_name", ""))
    module = layer.get("module")
    registered = layer.get("registered_name")
    if class_name in ("Lambda", "TFOpLambda", "SlicingOpLambda"):
        return "Lambda layer: its function is Python code stored in the file; it is never executed"
    if module is not None and not str(module).startswith(BUILTIN_MODULE_PREFIXES):
        return f"custom object from module {module!r}: loading it would import and run that code"
    if (
        registered
        and "custom" in str(registered).lower()
        or (registered and module is None and ">" in str(registered))
    ):
        return f"custom object {registered!r}: loading it would run user code"
    if _has_python_function(layer.get("config", {})):
        return "holds a serialized Python function; it is never executed"
    return None


def config_layers(config: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
    """Every layer (nested models included) as plain metadata: path, class, module, flag."""
    inner = config.get("config", {}) if isinstance(config.get("config"), dict) else {}
    layers = inner.get("layers")
    if not isinstance(layers, list):
        return
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict):
            continue
        raw_config = layer.get("config")
        layer_config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
        name = str(layer.get("name") or layer_config.get("name") or f"layer_{index}")
        reason = _flag(layer)
        entry = {
            "path": prefix + (name,),
            "class_name": layer.get("class_name"),
            "module": layer.get("module"),
            "registered_name": layer.get("registered_name"),
            "flagged": reason is not None,
        }
        if reason:
            entry["reason"] = reason
        yield entry
        yield from config_layers(layer, prefix + (name,))
