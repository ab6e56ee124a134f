"""Layer outputs: the model rebuilt by Keras on the first evaluation, then sub-models per layer.

Rebuilding a model is running Keras code over the file's config, so the config is checked
first (``config.trust_problems``): without the user's trust a model that has Lambda layers,
custom objects or file-loading layers is never handed to Keras at all, whatever its
``safe_mode`` would have done. Clean models load with ``safe_mode=True``, no custom objects
and ``compile=False`` (an optimizer or loss is not needed to run layers). Keras is imported
here only, when a layer output is first evaluated: opening a file and reading weights never
imports it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import InspectorError, NotEvaluable, TrustRequired
from tensor_inspector.backends.keras.config import MODEL_CLASSES, InputInfo, Problem, legacy_layer_classes
from tensor_inspector.core.errors import first_line

LOADABLE_SUFFIXES = (".keras", ".h5", ".hdf5")


def _missing_modules(problems: Sequence[Problem]) -> list[str]:
    """Modules custom objects come from that are not installed (looked up, never imported).

    Only the top-level package is looked up: finding ``pkg.layers`` would import ``pkg``.
    """
    missing = []
    for problem in problems:
        if problem.module is None or problem.module == "__main__":
            continue
        top = problem.module.split(".")[0]
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            missing.append(problem.module)
    return sorted(set(missing))


def _listing(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def check_loadable(name: str, problems: Sequence[Problem], trusted: bool) -> None:
    """Refuse, in one sentence, a model Keras must not (or cannot) rebuild."""
    missing = _missing_modules(problems)
    if missing:  # trust would not help: the code is not here
        raise NotEvaluable(
            f"The layer outputs of {name} need the module {_listing(missing)}, which is not "
            "installed here; the weights can still be read."
        )
    main = [p.what for p in problems if p.module == "__main__"]
    if main:
        raise NotEvaluable(
            f"The layer outputs of {name} need {_listing(main)}, defined in the script that saved "
            "the model, which is not available here; the weights can still be read."
        )
    if problems and not trusted:
        whats = [p.what for p in problems]
        raise TrustRequired(
            f"Evaluating layer outputs of {name} would run code stored in or named by the file "
            f"({_listing(whats)}); trust the file to evaluate them.",
            whats,
        )


class ModelRunner:
    """The Keras model of one file and a cache of sub-models, one per evaluated layer."""

    def __init__(
        self,
        path: Path,
        config: Mapping[str, Any],
        problems: Sequence[Problem],
        inputs: Sequence[InputInfo],
        trusted: bool,
    ):
        self.path = path
        self.config = config
        self.problems = list(problems)
        self.inputs = list(inputs)
        self.trusted = trusted
        self._model: Any = None
        self._submodels: dict[str, Any] = {}

    def model(self) -> Any:
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> Any:
        check_loadable(self.path.name, self.problems, self.trusted)
        if self.path.suffix.lower() not in LOADABLE_SUFFIXES:
            raise NotEvaluable(
                f"Keras loads models only from .keras or .h5 files: copy {self.path.name} to a "
                "name with one of those endings to evaluate its layer outputs."
            )
        try:
            import keras
        except ImportError:
            raise NotEvaluable(
                "Evaluating layer outputs needs Keras, which is not installed: "
                "install tensor-inspector[tensorflow]."
            ) from None
        self.problems += [
            Problem(f"custom class {name!r}")
            for name in sorted(legacy_layer_classes(dict(self.config)))
            if name not in MODEL_CLASSES and not hasattr(keras.layers, name)
        ]
        check_loadable(self.path.name, self.problems, self.trusted)
        for module in sorted({p.module for p in self.problems if p.module}):
            # trusted: import the custom objects' modules so their registrations run
            try:
                importlib.import_module(module)
            except Exception as exc:
                raise NotEvaluable(
                    f"Importing {module}, which {self.path.name} needs, failed: {exc}."
                ) from None
        try:
            return keras.saving.load_model(
                self.path, safe_mode=not self.problems, compile=False, custom_objects=_keras2_compatible()
            )
        except Exception as exc:  # Keras' own words, shortened to one sentence
            raise NotEvaluable(
                f"Keras cannot rebuild the model in {self.path.name}: {_first_line(exc)}"
            ) from None

    def run(self, layer_name: str, output_index: int, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """Evaluate one output of one layer with the model's inputs given by ``feeds``."""
        import keras

        submodel = self._submodel(layer_name)
        arrays = self.ordered_feeds(feeds)
        try:
            result = submodel(arrays, training=False)  # the sub-model's inputs are a list
        except Exception as exc:
            raise InspectorError(f"Evaluating {layer_name!r} failed: {_first_line(exc)}") from None
        outputs = keras.tree.flatten(result)
        if output_index >= len(outputs):
            raise NotEvaluable(f"Layer {layer_name!r} has only {len(outputs)} output(s).")
        return np.asarray(keras.ops.convert_to_numpy(outputs[output_index]))

    def _submodel(self, layer_name: str) -> Any:
        import keras

        if layer_name not in self._submodels:
            model = self.model()
            if not model.inputs:
                raise NotEvaluable(
                    f"The model in {self.path.name} was saved without an input shape, so its "
                    "layers have no outputs to evaluate."
                )
            try:
                layer = model.get_layer(layer_name)
                output = layer.output
            except (ValueError, AttributeError) as exc:
                raise NotEvaluable(f"Layer {layer_name!r} has no single output: {_first_line(exc)}") from None
            self._submodels[layer_name] = keras.Model(model.inputs, output)
        return self._submodels[layer_name]

    def ordered_feeds(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Feeds in the model's input order: by the names the file gives its inputs."""
        arrays = []
        for position, info in enumerate(self.inputs):
            if info.name in feeds:
                arrays.append(np.asarray(feeds[info.name]))
            elif len(feeds) == len(self.inputs):
                arrays.append(np.asarray(list(feeds.values())[position]))
            else:
                raise InspectorError(f"No value was given for the input {info.name!r}.")
        if not arrays:
            raise NotEvaluable(f"The model in {self.path.name} declares no inputs to feed.")
        return arrays


def _keras2_compatible() -> dict[str, Any]:
    """Keras 3 layers that also accept what Keras 2 wrote into their configs.

    Keras 2 saved ``groups: 1`` in every DepthwiseConv2D config (MobileNet, EfficientNet),
    an argument Keras 3 refuses, so those models would not rebuild at all. Our own classes,
    chosen here: nothing the file names is imported.
    """
    import keras

    class DepthwiseConv2D(keras.layers.DepthwiseConv2D):  # type: ignore[misc]
        @classmethod
        def from_config(cls, config: dict[str, Any]) -> Any:
            config = dict(config)
            if config.get("groups", 1) == 1:
                config.pop("groups", None)
            return super().from_config(config)

    return {"DepthwiseConv2D": DepthwiseConv2D}


def _first_line(exc: BaseException) -> str:
    text = first_line(exc) or type(exc).__name__
    text = text[:300]
    return text if text.endswith(".") else text + "."
