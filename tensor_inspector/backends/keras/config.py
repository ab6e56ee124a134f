"""What a Keras model config says, read as JSON only: layers, their outputs, inputs, risks.

Nothing here imports Keras or deserializes anything: a Lambda layer's function (Python
bytecode) and custom classes are described, never loaded. ``trust_problems`` is our own
check before Keras ever sees the config, because Keras' ``safe_mode`` only refuses
Lambda bytecode: it ignored Lambda layers in legacy .h5 files (CVE-2025-9905), has let
configs name Keras functions with side effects (CVE-2025-1550, CVE-2025-8747,
CVE-2025-9906), and layers such as TFSMLayer or lookup layers with a vocabulary path
load or read other files named in the config.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

BUILTIN_MODULE_PREFIXES = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras")
LAMBDA_CLASSES = ("Lambda", "TFOpLambda", "SlicingOpLambda")
FUNCTION_CLASSES = ("__lambda__", "function", "__function__")
# Plain functions a config may name without trust: activations, losses and the like.
# Anything else (keras.models.load_model, keras.utils.get_file, ...) has effects.
SAFE_FUNCTION_MODULES = (
    "builtins",
    "keras.activations",
    "keras.losses",
    "keras.metrics",
    "keras.initializers",
    "keras.regularizers",
    "keras.constraints",
    "keras.ops",
)
# Built-in layers that load other files named in the config.
FILE_LOADING_CLASSES = ("TFSMLayer",)
MODEL_CLASSES = ("Functional", "Sequential", "Model")


def _is_builtin_module(module: Any) -> bool:
    return module is None or str(module) == "keras" or str(module).startswith(BUILTIN_MODULE_PREFIXES)


def _has_python_function(value: Any) -> bool:
    """True when a config holds a serialized Python function or lambda anywhere inside."""
    if isinstance(value, dict):
        if value.get("class_name") in FUNCTION_CLASSES and not _safe_function(value):
            return True
        return any(_has_python_function(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_python_function(v) for v in value)
    return False


def _safe_function(value: dict[str, Any]) -> bool:
    return value.get("class_name") == "function" and str(value.get("module")) in SAFE_FUNCTION_MODULES


def _flag(layer: dict[str, Any]) -> str | None:
    """Why this layer cannot be rebuilt without running code, or None."""
    class_name = str(layer.get("class_name", ""))
    module = layer.get("module")
    registered = layer.get("registered_name")
    if class_name in LAMBDA_CLASSES:
        return "Lambda layer: its function is Python code stored in the file; it is never executed"
    if not _is_builtin_module(module):
        return f"custom object from module {module!r}: loading it would import and run that code"
    if registered and ">" in str(registered):
        return f"custom object {registered!r}: loading it would run user code"
    if _has_python_function(layer.get("config", {})):
        return "holds a serialized Python function; it is never executed"
    return None


def _name_of(layer: dict[str, Any], index: int) -> str:
    raw = layer.get("config")
    inner: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return str(layer.get("name") or inner.get("name") or f"layer_{index}")


def config_layers(config: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
    """Every layer (nested models included) as plain metadata: path, class, module, flag."""
    inner = config.get("config", {}) if isinstance(config.get("config"), dict) else {}
    layers = inner.get("layers")
    if not isinstance(layers, list):
        return
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict):
            continue
        name = _name_of(layer, index)
        reason = _flag(layer)
        entry: dict[str, Any] = {
            "path": prefix + (name,),
            "class_name": layer.get("class_name"),
            "module": layer.get("module"),
            "registered_name": layer.get("registered_name"),
            "flagged": reason is not None,
            "config": layer.get("config") if isinstance(layer.get("config"), dict) else {},
        }
        if reason:
            entry["reason"] = reason
        yield entry
        yield from config_layers(layer, prefix + (name,))


# -- what loading the model would need --------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing in a config that runs code, or reads files, when Keras rebuilds the model."""

    what: str  # "Lambda layer 'lam'", "custom class 'Pkg>Scale' from module 'pkg.layers'"
    module: str | None = None  # a module loading would import (custom objects)


def trust_problems(config: Any) -> list[Problem]:
    """Everything in ``config`` that needs the user's trust before Keras may load it."""
    found: dict[str, Problem] = {}

    def walk(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item)
            return
        if not isinstance(value, dict):
            return
        problem = _problem(value)
        if problem is not None:
            found.setdefault(problem.what, problem)
            if value.get("class_name") in LAMBDA_CLASSES:
                return  # its function is part of the same refusal
        for item in value.values():
            walk(item)

    walk(config)
    return list(found.values())


def _problem(value: dict[str, Any]) -> Problem | None:
    class_name = value.get("class_name")
    if not isinstance(class_name, str):
        return None
    inner = value.get("config")
    name = value.get("name") or (inner.get("name") if isinstance(inner, dict) else None)
    module = value.get("module")
    registered = value.get("registered_name")
    if class_name in LAMBDA_CLASSES:
        return Problem(f"Lambda layer {name!r}" if name else "a Lambda layer")
    if class_name in FUNCTION_CLASSES:
        if _safe_function(value):
            return None
        if class_name == "__lambda__":
            return Problem("a Python lambda stored as bytecode")
        label = inner if isinstance(inner, str) else registered or "?"
        if _is_builtin_module(module):
            return Problem(f"function {label!r} of {module or 'an unnamed module'}")
        return Problem(f"custom function {label!r} from module {module!r}", str(module))
    if class_name in FILE_LOADING_CLASSES:
        return Problem(f"{class_name} layer {name!r}, which loads another model from a path")
    if isinstance(inner, dict) and isinstance(inner.get("vocabulary"), str):
        return Problem(
            f"{class_name} layer {name!r}, which reads the vocabulary file {inner['vocabulary']!r}"
        )
    label = registered if isinstance(registered, str) and registered else class_name
    if not _is_builtin_module(module):
        return Problem(f"custom class {label!r} from module {module!r}", str(module))
    if isinstance(registered, str) and ">" in registered:
        return Problem(f"custom class {registered!r}")
    if ">" in class_name:  # legacy .h5 configs name registered classes "Package>Class"
        return Problem(f"custom class {class_name!r}")
    return None


LAYER_KEYS = ("layers", "layer", "forward_layer", "backward_layer", "cell", "cells")


def legacy_layer_classes(config: Any) -> set[str]:
    """Class names of layers that carry no module (legacy .h5 configs): Keras resolves them by name.

    Keras looks such names up among its own layers and every object registered in the
    process, so a name that is not a Keras layer is a custom class (checked in ``model``).
    Only layer positions are looked at (model layers, wrapped layers, RNN cells).
    """
    found: set[str] = set()

    def layer(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                layer(item)
        elif isinstance(value, dict) and isinstance(value.get("class_name"), str):
            if value.get("module") is None:
                found.add(value["class_name"])
            inner = value.get("config")
            if isinstance(inner, dict):
                for key in LAYER_KEYS:
                    if key in inner:
                        layer(inner[key])

    layer(config)
    return found


# -- the graph: layer outputs and model inputs -------------------------------------------


@dataclass
class LayerOutputs:
    """A top-level layer of a Functional/Sequential model and what is known of its outputs."""

    name: str
    class_name: str
    count: int = 1
    # (shape, dtype) of each output where a consumer's config records it (Keras 3 configs)
    known: dict[int, tuple[tuple[int | None, ...], str | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class InputInfo:
    name: str
    dtype: str
    shape: tuple[int | None, ...] | None


def is_graph_model(config: Any) -> bool:
    """True for Functional and Sequential configs: the ones whose layers have outputs to show."""
    return (
        isinstance(config, dict)
        and config.get("class_name") in MODEL_CLASSES
        and isinstance(config.get("config"), dict)
        and isinstance(config["config"].get("layers"), list)
    )


def layer_outputs(config: dict[str, Any]) -> list[LayerOutputs]:
    """The model's own layers (not the inputs), in config order, with output counts.

    The count of outputs is the highest output index any consumer or the model output
    refers to, plus one: the config does not record outputs nobody uses.
    """
    layers = [la for la in config["config"]["layers"] if isinstance(la, dict)]
    entries: dict[str, LayerOutputs] = {}
    for index, layer in enumerate(layers):
        if layer.get("class_name") == "InputLayer":
            continue
        name = _name_of(layer, index)
        entries.setdefault(name, LayerOutputs(name, str(layer.get("class_name"))))
    if config.get("class_name") == "Sequential":
        _sequential_shapes(layers, entries)
    for reference in _tensor_references(config["config"]):
        entry = entries.get(reference[0])
        if entry is None:
            continue
        entry.count = max(entry.count, reference[1] + 1)
        if reference[2] is not None:
            entry.known.setdefault(reference[1], reference[2])
    return list(entries.values())


def _sequential_shapes(layers: list[dict[str, Any]], entries: dict[str, LayerOutputs]) -> None:
    """A Sequential layer's output shape is the input shape its successor was built with."""
    for index, (layer, successor) in enumerate(zip(layers, layers[1:])):
        entry = entries.get(_name_of(layer, index))
        build = successor.get("build_config")
        shape = build.get("input_shape") if isinstance(build, dict) else None
        if entry is not None and isinstance(shape, list):
            entry.known.setdefault(0, (tuple(shape), None))


def _tensor_references(
    value: Any,
) -> Iterator[tuple[str, int, tuple[tuple[int | None, ...], str | None] | None]]:
    """(layer name, output index, (shape, dtype) if recorded) for every tensor a config names."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__" and isinstance(value.get("config"), dict):
            tensor = value["config"]
            history = tensor.get("keras_history")
            if isinstance(history, list) and len(history) >= 3 and isinstance(history[2], int):
                shape = tensor.get("shape")
                spec = (tuple(shape), tensor.get("dtype")) if isinstance(shape, list) else None
                yield str(history[0]), history[2], spec
            return
        for item in value.values():
            yield from _tensor_references(item)
        return
    if isinstance(value, list):
        # Keras 2 and output_layers: [layer_name, node_index, tensor_index(, kwargs)]
        if len(value) >= 3 and isinstance(value[0], str) and all(isinstance(v, int) for v in value[1:3]):
            yield value[0], value[2], None
            return
        for item in value:
            yield from _tensor_references(item)


def model_inputs(config: dict[str, Any]) -> list[InputInfo]:
    """The model's inputs from its InputLayers (or a Sequential's build shape)."""
    inner = config["config"]
    layers = [la for la in inner["layers"] if isinstance(la, dict)]
    by_name = {_name_of(la, i): la for i, la in enumerate(layers)}
    if config.get("class_name") == "Sequential":
        first = layers[0] if layers else None
        if first is not None and first.get("class_name") == "InputLayer":
            return [_input_info(_name_of(first, 0), first)]
        shape = inner.get("build_input_shape")
        if shape is None and first is not None:
            shape = (first.get("config") or {}).get("batch_input_shape")
        if isinstance(shape, list):
            dtype = _dtype_name((first or {}).get("config", {}).get("dtype"))
            return [InputInfo("input", dtype, tuple(shape))]
        return []
    names = [ref[0] for ref in _tensor_references(inner.get("input_layers", []))]
    return [_input_info(name, by_name.get(name, {})) for name in names]


def _input_info(name: str, layer: dict[str, Any]) -> InputInfo:
    raw = layer.get("config")
    inner: dict[str, Any] = raw if isinstance(raw, dict) else {}
    shape = inner.get("batch_shape") or inner.get("batch_input_shape")
    return InputInfo(name, _dtype_name(inner.get("dtype")), tuple(shape) if isinstance(shape, list) else None)


def _dtype_name(dtype: Any) -> str:
    """A dtype from a config: a string, or a DTypePolicy dict ("mixed_float16" -> float16)."""
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name")
    if not isinstance(dtype, str):
        return "float32"
    if dtype.startswith("mixed_"):
        return dtype.removeprefix("mixed_")
    return dtype
