"""pyengine.load: a model from a short name, a Hugging Face folder or a GGUF file."""

from __future__ import annotations

from pyengine import _C
from pyengine.loaders import load_weights

DTYPES = ("float32", "bfloat16")


def load(source, dtype: str = "float32", threads: int | None = None, *, debug: bool = False):
    """Loads and prepares a model for inference.

    source: a short name of a model that a pip package ships (see
        pyengine.loaders.REGISTRY, e.g. "smollm2-135m-instruct"), a Hugging Face model folder
        (config.json + safetensors, sharded or not) or a .gguf file.
    dtype: how the weights of the matrix products (every linear layer and the LM head) are
        stored. "float32": weights in F16/BF16/quantized formats are converted to float32 once.
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
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; choose from {DTYPES}")
    if threads is not None:
        _C.set_num_threads(int(threads))
    config, tensors, tokenizer, extras = load_weights(source)
    if config.is_encoder:
        from pyengine.models.encoder import EncoderModel

        return EncoderModel(config, tensors, tokenizer, extras, dtype=dtype, debug=debug)
    from pyengine.models.decoder import DecoderModel

    return DecoderModel(config, tensors, tokenizer, extras, dtype=dtype, debug=debug)
