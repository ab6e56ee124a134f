"""A small demo GGUF file: a two-layer "LLM" with F32, F16 and Q8_0 tensors and metadata.

Written with the ``gguf`` package's own writer and quantizer, so it is a real GGUF file
that llama.cpp tools read too. Seeded: re-running gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DEMO_NAME = "tiny_llm.gguf"


def make_demo_gguf(directory: Path) -> list[Path]:
    """Write ``tiny_llm.gguf`` into ``directory`` (about 40 KB); return its path."""
    import gguf
    from gguf.quants import quantize

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / DEMO_NAME
    rng = np.random.default_rng(14)
    vocab, width, hidden = 64, 32, 96
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tensor-inspector demo")
    writer.add_context_length(128)
    writer.add_embedding_length(width)
    writer.add_block_count(1)
    writer.add_feed_forward_length(hidden)
    writer.add_head_count(4)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"<tok{i}>" for i in range(vocab)])
    tensors: dict[str, tuple[np.ndarray, Any]] = {
        "token_embd.weight": ((rng.standard_normal((vocab, width)) * 0.02).astype(np.float32), None),
        "blk.0.attn_norm.weight": (np.ones(width, np.float32), None),
        "blk.0.attn_q.weight": ((rng.standard_normal((width, width)) * 0.05).astype(np.float16), None),
        "blk.0.ffn_up.weight": (
            rng.standard_normal((hidden, width)).astype(np.float32) * 0.05,
            gguf.GGMLQuantizationType.Q8_0,
        ),
        "blk.0.ffn_down.weight": (
            rng.standard_normal((width, hidden)).astype(np.float32) * 0.05,
            gguf.GGMLQuantizationType.Q8_0,
        ),
        "output_norm.weight": (np.ones(width, np.float32), None),
    }
    for name, (values, qtype) in tensors.items():
        if qtype is None:
            writer.add_tensor(name, values)
        else:
            blocks = quantize(values, qtype)
            writer.add_tensor(name, blocks, raw_shape=blocks.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return [path]
