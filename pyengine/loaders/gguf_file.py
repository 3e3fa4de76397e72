"""GGUF files (llama.cpp's format), read with the `gguf` package's GGUFReader.

What comes out is the same as from a Hugging Face folder: a `ModelConfig`, float32 tensors under
Hugging Face names in Hugging Face layout ([out_features, in_features]), and a tokenizer rebuilt
from the metadata. Three things llama.cpp's converter (convert_hf_to_gguf.py) did are undone:

1. Names: blk.{i}.attn_q.weight -> model.layers.{i}.self_attn.q_proj.weight, and so on, by
   the tables of the file's family (pyengine.models.families: each family module lists its
   GGUF names, the tensors that are settings rather than weights, and whether q/k rows were
   permuted).
2. Quantization: Q8_0, Q4_0, Q4_1, ... blocks are dequantized with `gguf.quants.dequantize`.
3. The Q/K row permutation. For architectures whose llama.cpp RoPE rotates adjacent pairs
   (x[2i], x[2i+1]) while Hugging Face rotates halves (x[i], x[i + d/2]), the converter
   reorders the rows of q_proj and k_proj (and their biases) within each head:

       permute(w, n_head) = w.reshape(n_head, 2, rows // n_head // 2, *rest)
                             .swapaxes(1, 2).reshape(w.shape)

   with n_head = num_heads for q and num_kv_heads for k. `unpermute_qk` is its exact inverse.

Tied embeddings: a file without output.weight shares token_embd.weight with the LM head; the
config says tie_word_embeddings=True and no lm_head.weight is produced.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .config import ModelConfig, config_from_gguf
from .errors import CheckpointError, UnsupportedModelError
from .gguf_reader import read_gguf_file
from .gguf_tokenizer import tokenizer_from_gguf, tokenizer_settings
from .schema import check_tensors
from .tensors import TensorEntry, TensorMap

_BLOCK = re.compile(r"^blk\.(\d+)\.(.+)$")

# tensor types we dequantize. The first rows are exercised by tests/loaders; the K- and
# IQ4-quants go through the same `gguf.quants.dequantize` reference code.
SUPPORTED_TYPES = (
    "F32",
    "F16",
    "BF16",
    "F64",
    "Q8_0",
    "Q4_0",
    "Q4_1",
    "Q5_0",
    "Q5_1",
    "Q2_K",
    "Q3_K",
    "Q4_K",
    "Q5_K",
    "Q6_K",
    "IQ4_NL",
    "IQ4_XS",
)
# metadata arrays too large to be worth copying into extras["metadata"]
_BULKY_KEYS = (
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.scores",
)


def permute_qk(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """The converter's permutation (convert_hf_to_gguf.py, LlamaModel.permute): HF -> GGUF."""
    rows = _check_rows(weight, n_heads)
    return (
        weight.reshape(n_heads, 2, rows // n_heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def unpermute_qk(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Inverse of `permute_qk`: GGUF -> HF. weight: [n_heads * head_dim, ...] (or a bias)."""
    rows = _check_rows(weight, n_heads)
    return (
        weight.reshape(n_heads, rows // n_heads // 2, 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _check_rows(weight: np.ndarray, n_heads: int) -> int:
    rows = weight.shape[0]
    if n_heads <= 0 or rows % (2 * n_heads):
        raise CheckpointError(f"{rows} rows cannot be split into {n_heads} heads of even width")
    return rows


def hf_name(gguf_name: str, family) -> str:
    """Hugging Face name of a GGUF tensor in the names of `family` (a pyengine.models.families
    entry); UnsupportedModelError for one it does not know."""
    if gguf_name in family.gguf_names:
        return family.gguf_names[gguf_name]
    match = _BLOCK.match(gguf_name)
    if match and match.group(2) in family.gguf_layer_names:
        prefix = family.gguf_layer_prefix.format(i=match.group(1))
        return prefix + family.gguf_layer_names[match.group(2)]
    what = f"a {family.name} model"
    raise UnsupportedModelError(f"unsupported GGUF tensor {gguf_name!r} (not part of {what})")


def read_gguf(path: str | Path) -> tuple[dict[str, Any], list]:
    """(metadata, tensors) of `path` (pyengine.loaders.gguf_reader); CheckpointError for a
    file that cannot be parsed."""
    return read_gguf_file(path)


def _load_tensor(tensor, shape: tuple[int, ...], qk_heads: int | None) -> np.ndarray:
    from gguf import GGMLQuantizationType, dequantize

    kind = tensor.tensor_type
    if kind == GGMLQuantizationType.F32:
        array = np.asarray(tensor.data)
    elif kind == GGMLQuantizationType.F64:
        array = np.asarray(tensor.data).astype(np.float32)
    else:
        array = dequantize(tensor.data, kind)
    array = np.asarray(array, dtype=np.float32).reshape(shape)
    if qk_heads is not None:
        array = unpermute_qk(array, qk_heads)
    return np.ascontiguousarray(array)


# block types whose stored bytes a layer may take as they are (the rest are dequantized)
BLOCK_TYPES = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K")


def _raw_tensor(tensor, shape: tuple[int, ...], qk_heads: int | None) -> np.ndarray:
    """The stored blocks, uint8 [rows, row_bytes]; blocks run along a row (K), so the Q/K
    permutation is undone by reordering whole rows."""
    data = np.asarray(tensor.data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[0] != shape[0]:
        raise ValueError(f"stored blocks of shape {data.shape}, expected {shape[0]} rows of bytes")
    if qk_heads is not None:
        data = unpermute_qk(data, qk_heads)
    return np.ascontiguousarray(data)


def load_gguf(
    path: str | Path, with_tokenizer: bool = True, check: bool = True
) -> tuple[ModelConfig, TensorMap, Any, dict[str, Any]]:
    """Config, tensors, tokenizer and extras of a .gguf file (see `load_weights`).

    Tensors are dequantized lazily, on first access. Raises CheckpointError for an unreadable
    file or tensors that do not match the metadata, UnsupportedModelError for an architecture,
    tensor, tensor type or tokenizer pyengine does not handle.
    """
    path = Path(path)
    metadata, gguf_tensors = read_gguf(path)
    source = str(path)

    from pyengine.models import families

    arch = metadata.get("general.architecture")
    family = families.by_gguf_architecture(arch) if isinstance(arch, str) else None
    by_name = {t.name: t for t in gguf_tensors}
    settings = family.gguf_config_tensors if family is not None else ()
    config_tensors = {
        n: _load_tensor(by_name[n], (int(by_name[n].n_elements),), None).tolist()
        for n in settings
        if n in by_name
    }
    shapes = {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in gguf_tensors}
    config = config_from_gguf(metadata, shapes, source, config_tensors=config_tensors)
    permute = family.gguf_permuted  # config_from_gguf refused an unknown architecture
    entries: dict[str, TensorEntry] = {}
    gguf_names: dict[str, str] = {}
    types: dict[str, str] = {}
    for tensor in gguf_tensors:
        if tensor.name in settings:
            continue
        try:
            name = hf_name(tensor.name, family)
        except UnsupportedModelError as exc:
            raise UnsupportedModelError(f"{source}: {exc}") from None
        kind = tensor.tensor_type.name
        if kind not in SUPPORTED_TYPES:
            raise UnsupportedModelError(
                f"{source}: tensor {tensor.name!r} has type {kind}; supported: "
                f"{', '.join(SUPPORTED_TYPES)}"
            )
        qk_heads = None
        if permute and name.endswith(("q_proj.weight", "q_proj.bias")):
            qk_heads = config.num_heads
        elif permute and name.endswith(("k_proj.weight", "k_proj.bias")):
            qk_heads = config.num_kv_heads
        shape = shapes[tensor.name]
        if qk_heads is not None and shape[0] % (2 * qk_heads):
            raise CheckpointError(
                f"{source}: tensor {tensor.name!r} has {shape[0]} rows, not divisible into "
                f"{qk_heads} heads"
            )
        raw = None
        if kind in BLOCK_TYPES and len(shape) == 2:
            raw = partial(_raw_tensor, tensor, shape, qk_heads)
        entries[name] = TensorEntry(
            shape=shape,
            dtype=kind,
            file=path,
            load=partial(_load_tensor, tensor, shape, qk_heads),
            raw=raw,
        )
        gguf_names[name] = tensor.name
        types[name] = kind
    tensors = TensorMap(entries)
    if check:
        check_tensors(config, tensors, source=source)

    tokenizer = tokenizer_from_gguf(metadata, source) if with_tokenizer else None
    settings = tokenizer_settings(metadata, source)
    extras = {
        "format": "gguf",
        "source": path,
        "chat_template": settings["chat_template"],
        "special_tokens": settings["special_tokens"],
        "add_bos_token": settings["add_bos_token"],
        "add_eos_token": settings["add_eos_token"],
        "tensor_types": types,
        "gguf_names": gguf_names,
        "metadata": {k: v for k, v in metadata.items() if k not in _BULKY_KEYS},
    }
    # what config_from_inputs needs to make this config again (a pack file keeps it): the
    # vocabulary arrays stay out, their length given as {arch}.vocab_size
    inputs = dict(extras["metadata"])
    inputs.setdefault(f"{arch}.vocab_size", config.vocab_size)
    extras["config_inputs"] = {
        "kind": "gguf",
        "metadata": inputs,
        "shapes": shapes,
        "config_tensors": config_tensors,
    }
    return config, tensors, tokenizer, extras
