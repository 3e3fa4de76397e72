"""pyengine.load: a model from a short name, a Hugging Face folder or a GGUF file."""

from __future__ import annotations

import os
from pathlib import Path

from pyengine import _C
from pyengine.formats import DTYPES, check_dtype
from pyengine.loaders import load_weights
from pyengine.loaders.pack_file import is_pack_file

__all__ = ["DTYPES", "load"]


def load(source, dtype: str = "auto", threads: int | None = None, *, debug: bool = False):
    """Loads and prepares a model for inference.

    source: a short name of a model that a pip package ships (see
        pyengine.loaders.REGISTRY, e.g. "smollm2-135m-instruct"), a Hugging Face model folder
        (config.json + safetensors, sharded or not), a .gguf file, or a pack file written by
        `pyengine pack` (pyengine.pack: memory-mapped read-only and run as packed; dtype
        "auto" or the one it was packed with).
    dtype: how the weights of the matrix products (every linear layer and the LM head) are
        stored (pyengine.formats). "auto" (default): as the checkpoint stores them. A GGUF's
        Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K blocks run as they are in the file
        (few-row calls multiply them with int8-quantized activations, many-row calls
        dequantize slices to float32); a quantized embedding table stays quantized; F32
        tensors run in float32 and F16/BF16 ones in bfloat16; other GGUF types are widened to
        bfloat16 with a warning. "int8" / "q4": every matrix weight quantized at load to
        Q8_0 / Q4_0 (int8 or 4-bit per 32 values with an fp16 scale).
        "float32": weights in F16/BF16/quantized formats are converted to float32 once.
        "bfloat16": they are rounded to bfloat16 once (half the memory, and half the bytes each
        decode step reads); activations, norms, attention and the KV cache stay float32, and on
        CPUs with AMX the many-row products (prefill, encoders) round activations to bfloat16
        and run on the tile unit. The tests bound the logits' deviation from float32 by 3% of
        the largest |logit| (SmolLM2-135M measured: 0.8% with AMX, 0.4% without).
    threads: if given, sets the kernel thread pool's size (pyengine.set_num_threads).
    debug: run every op next to its numpy reference and stop at the first mismatch (slow).

    Returns a DecoderModel (forward, generate) for causal LMs, an EncoderModel (forward,
    encode) for BERT-family encoders.
    """
    check_dtype(dtype)
    if threads is not None:
        _C.set_num_threads(int(threads))
    if isinstance(source, (str, os.PathLike)) and is_pack_file(Path(source).expanduser()):
        from pyengine.pack import load_pack

        return load_pack(Path(source).expanduser(), dtype, debug=debug)
    config, tensors, tokenizer, extras = load_weights(source)
    if config.is_encoder:
        from pyengine.models.encoder import EncoderModel

        return EncoderModel(config, tensors, tokenizer, extras, dtype=dtype, debug=debug)
    from pyengine.models.decoder import DecoderModel

    return DecoderModel(config, tensors, tokenizer, extras, dtype=dtype, debug=debug)
