"""Evaluating node outputs with onnxruntime by making them graph outputs.

onnxruntime returns only graph outputs, so the model is served with every node output of
its top-level graph added as an output: one run with the user's feeds then answers every
node, and clicking through the graph after the first value costs no further run. The
results of the last feeds are kept while they fit ``CACHE_BYTES``. If onnxruntime refuses
the all-outputs model (an output of a type it cannot return), one session per requested
output is built instead. Sessions take the model as bytes, with external data found in
the model's own folder (checked by ``model.external_info`` before anything runs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import InspectorError, MissingFramework, NotEvaluable
from tensor_inspector.core.errors import first_line

CACHE_BYTES = 512 << 20
EXTERNAL_FOLDER_KEY = "session.model_external_initializers_file_folder_path"


def import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingFramework("onnxruntime", "onnx") from None
    # Warnings go to the process's stderr, not to the user: errors reach them as sentences.
    # Telemetry would try to persist a device id on disk, which the sandboxed reader refuses.
    onnxruntime.set_default_logger_severity(3)
    onnxruntime.disable_telemetry_events()
    return onnxruntime


def feeds_key(feeds: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(feeds):
        value = np.ascontiguousarray(feeds[name])
        digest.update(f"{name}:{value.dtype.str}:{value.shape};".encode())
        digest.update(value.tobytes() if value.dtype != object else repr(value.tolist()).encode())
    return digest.hexdigest()


class SessionRefused(InspectorError):
    """onnxruntime would not load the model with the outputs asked for (a type it cannot return)."""


class Runner:
    """onnxruntime sessions of one model, with its node outputs exposed.

    ``arena=False`` turns off onnxruntime's CPU memory arena, which otherwise keeps the
    peak of every run allocated for the session's life (a trace runs large chunks once).
    """

    def __init__(self, model: Any, folder: Path, outputs: list[str], arena: bool = True):
        self.model = model
        self.folder = folder
        self.outputs = list(dict.fromkeys(outputs))
        self.arena = arena
        self._all: Any = None
        self._all_failed: str | None = None
        self._single: dict[str, Any] = {}
        self._cache: tuple[str, dict[str, np.ndarray]] | None = None

    def run(self, output: str, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        key = feeds_key(feeds)
        if self._cache is not None and self._cache[0] == key and output in self._cache[1]:
            return self._cache[1][output]
        session = self._all_session()
        names = self.outputs if session is not None else [output]
        if session is None:
            session = self._single_session(output)
        values = self._run(session, names, feeds)
        result: np.ndarray = values[names.index(output)]
        kept: dict[str, np.ndarray] = {}
        size = 0
        for name, value in zip(names, values):
            size += getattr(value, "nbytes", 0)
            if size > CACHE_BYTES:
                kept = {}
                break
            kept[name] = value
        self._cache = (key, kept or {output: result})
        return result

    def run_outputs(self, names: list[str], feeds: Mapping[str, np.ndarray]) -> list[Any]:
        """``names`` (some of ``outputs``) from one run of the session exposing ``outputs``, as
        onnxruntime returns them (``as_array`` converts); SessionRefused if it cannot load."""
        session = self._all_session()
        if session is None:
            raise SessionRefused(self._all_failed or "onnxruntime could not load the model.")
        return self._raw_run(session, names, feeds)

    @property
    def has_session(self) -> bool:
        return self._all is not None

    def refusal(self) -> str | None:
        """Why onnxruntime will not load the model with ``outputs`` (None: it loads)."""
        self._all_session()
        return self._all_failed

    def _run(self, session: Any, names: list[str], feeds: Mapping[str, np.ndarray]) -> list[Any]:
        return [as_array(name, v) for name, v in zip(names, self._raw_run(session, names, feeds))]

    def _raw_run(self, session: Any, names: list[str], feeds: Mapping[str, np.ndarray]) -> list[Any]:
        wanted = {i.name for i in session.get_inputs()}
        given = {k: v for k, v in feeds.items() if k in wanted}
        try:
            values: list[Any] = session.run(names, given)
        except Exception as exc:
            raise InspectorError(f"onnxruntime could not run the model: {_ort_sentence(exc)}") from exc
        return values

    def _all_session(self) -> Any:
        if self._all is None and self._all_failed is None:
            try:
                self._all = self._session(self.outputs)
            except InspectorError as exc:
                self._all_failed = str(exc)
        return self._all

    def _single_session(self, output: str) -> Any:
        if output not in self._single:
            if len(self._single) >= 4:  # each session holds the weights: keep a few
                self._single.pop(next(iter(self._single)))
            self._single[output] = self._session([output])
        return self._single[output]

    def _session(self, outputs: list[str]) -> Any:
        import onnx

        ort = import_ort()
        graph = self.model.graph
        declared = [o.name for o in graph.output]
        kept = list(graph.output)
        # the original outputs keep their declared types; node outputs are added by name
        # only, and onnxruntime infers their types
        graph.output.extend(onnx.ValueInfoProto(name=n) for n in outputs if n not in declared)
        try:
            data = self.model.SerializeToString()
        finally:
            del graph.output[:]
            graph.output.extend(kept)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = self.arena
        options.add_session_config_entry(EXTERNAL_FOLDER_KEY, str(self.folder))
        try:
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InspectorError(f"onnxruntime could not load the model: {_ort_sentence(exc)}") from exc

    def close(self) -> None:
        self._all = None
        self._single.clear()
        self._cache = None


def as_array(name: str, value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if value is None:
        raise NotEvaluable(f"{name!r} is an optional value that this run left empty.")
    if isinstance(value, list) and all(isinstance(v, np.ndarray) for v in value):
        try:
            return np.stack(value) if value else np.empty((0,), np.float32)
        except ValueError:
            raise NotEvaluable(
                f"{name!r} is a sequence of {len(value)} tensors of different shapes, not one array."
            ) from None
    try:
        return np.asarray(value)
    except (TypeError, ValueError):
        raise NotEvaluable(f"{name!r} is a {type(value).__name__}, not an array.") from None


def _ort_sentence(exc: BaseException) -> str:
    text = first_line(exc) or type(exc).__name__
    # "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions ..." -> the reason
    parts = [p.strip() for p in text.split(" : ")]
    reason = parts[-1] if len(parts) >= 3 else text
    return reason.rstrip(".") + "."
