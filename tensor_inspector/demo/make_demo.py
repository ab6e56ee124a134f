"""Build the bundled demo files (tensor_inspector/resources/demo/), well under 1 MB in all.

Run ``python -m tensor_inspector.demo.make_demo``. Deterministic (seeded), so
re-running gives the same bytes for the numpy/safetensors files.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np

from tensor_inspector.backends.safetensors import write_safetensors
from tensor_inspector.core.dtypes import numpy_dtype
from tensor_inspector.core.npy_format import write_npy

DEMO_DIR = Path(__file__).resolve().parents[1] / "resources" / "demo"
DEFAULT_NODE = ("demo_arrays.npz", "ripple_2d")  # the 2-D node the demo selects


def demo_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[-1:1:96j, -1:1:128j]
    ripple = (np.sin(6 * np.hypot(x, y)) * np.exp(-2 * np.hypot(x, y))).astype(np.float32)
    with_nans = ripple.copy()
    with_nans[10:20, 30:50] = np.nan
    with_nans[60, :] = np.inf
    with_nans[70, :] = -np.inf
    return {
        "signal_1d": np.cumsum(rng.standard_normal(500)).astype(np.float32),
        "ripple_2d": ripple,
        "ripple_with_nan_inf": with_nans,
        "conv/weight": rng.standard_normal((16, 8, 3, 3)).astype(np.float32) * 0.1,
        "volume_3d": rng.standard_normal((8, 32, 32)).astype(np.float32).cumsum(axis=1),
        "embedding_bf16": (rng.standard_normal((64, 32)) * 0.02).astype(numpy_dtype("bfloat16")),
        "token_ids": rng.integers(0, 50_000, size=(4, 16), dtype=np.int64),
        "spectrum_c64": np.fft.fft2(ripple[:32, :32]).astype(np.complex64),
    }


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Our own writer: np.savez would store bf16 as raw 'V2' bytes and lose the type.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            with zf.open(key + ".npy", "w") as fh:
                write_npy(cast(BinaryIO, fh), value)  # a zip member opened "w" is a binary file


def build(directory: Path = DEMO_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    arrays = demo_arrays()
    written = [directory / "demo_arrays.npz"]
    write_npz(written[0], arrays)
    rng = np.random.default_rng(11)
    layers = {
        "model.embed.weight": (rng.standard_normal((128, 64)) * 0.02).astype(numpy_dtype("bfloat16")),
        "model.layers.0.attn.q_proj.weight": (rng.standard_normal((64, 64)) * 0.05).astype(np.float16),
        "model.layers.0.mlp.up.weight": (rng.standard_normal((128, 64)) * 0.05).astype(np.float32),
        "model.layers.0.mlp.up.weight_fp8": (rng.standard_normal((128, 64))).astype(
            numpy_dtype("float8_e4m3fn")
        ),
        "model.norm.weight": np.ones(64, np.float32),
    }
    written.append(directory / "tiny_llm.safetensors")
    write_safetensors(written[-1], layers, {"format": "pt", "source": "tensor-inspector demo"})
    written += _framework_demos(directory)
    (directory / "DEFAULT_NODE").write_text("\t".join(DEFAULT_NODE) + "\n")
    return written


def _framework_demos(directory: Path) -> list[Path]:
    """torch / TensorFlow demo files, built by their backends' own demo helpers when present."""
    written: list[Path] = []
    for module, func in (
        ("tensor_inspector.demo.torch_demo", "make_demo_torch"),
        ("tensor_inspector.demo.trace_demo", "make_demo_trace"),
        ("tensor_inspector.demo.tf_demo", "make_demo_tf"),
        ("tensor_inspector.demo.onnx_demo", "make_demo_onnx"),
        ("tensor_inspector.demo.gguf_demo", "make_demo_gguf"),
    ):
        try:
            mod = __import__(module, fromlist=[func])
        except ImportError:
            continue
        written += getattr(mod, func)(directory)
    return written


if __name__ == "__main__":
    for path in build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEMO_DIR):
        size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
        print(f"{path.name:40s} {size:>9,d} bytes")
