"""The tensors each architecture needs, by Hugging Face name and shape (each decoder family's
module lists its own: pyengine.models.families; the encoders' are here).

Names are those of the base model's Hugging Face checkpoint, with the task-head prefix removed
for GPT-2 and BERT-style models (`transformer.`, `bert.`, `roberta.`), so a builder sees one
spelling whichever class saved the file:

    llama / mistral / qwen2   model.embed_tokens.weight, model.layers.{i}.self_attn.q_proj.weight,
                              ..., model.norm.weight, lm_head.weight (absent when tied)
    gpt2                      wte.weight, h.{i}.attn.c_attn.weight, ..., ln_f.weight
    bert / roberta / xlm-r    embeddings.word_embeddings.weight,
                              encoder.layer.{i}.attention.self.query.weight, ...

Shapes follow the checkpoint: nn.Linear weights are [out_features, in_features]. GPT-2 is the
exception: its Conv1D weights are stored [in_features, out_features] and stay that way here;
the spec below asserts that layout so a transposed checkpoint is caught.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from .config import ModelConfig
from .errors import CheckpointError

# buffers some checkpoints save next to the parameters; never weights
_BUFFER_SUFFIXES = (
    "embeddings.position_ids",
    "rotary_emb.inv_freq",
    ".attn.bias",  # GPT-2's causal mask
    ".attn.masked_bias",
)


class TensorSpec(NamedTuple):
    shape: tuple[int, ...]
    required: bool


def canonical_name(config: ModelConfig, name: str) -> str:
    """The name `name` has in our convention (see the module docstring)."""
    from pyengine.models import families

    own = families.by_name(config.architecture)
    for prefix in own.hf_prefixes:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return own.hf_rename(name) if own.hf_rename is not None else name


def is_buffer(config: ModelConfig, name: str) -> bool:
    """True for non-parameter buffers (position ids, causal masks) that loaders drop."""
    return name.endswith(_BUFFER_SUFFIXES)


def expected_tensors(config: ModelConfig) -> dict[str, TensorSpec]:
    """Every tensor the architecture uses: name -> (shape, required).

    Optional tensors (a tied lm_head, BERT's pooler) are checked for shape when present.
    """
    from pyengine.models import families

    return dict(families.by_name(config.architecture).tensors(config))


def check_tensors(
    config: ModelConfig,
    tensors: Mapping[str, np.ndarray],
    source: str = "",
) -> None:
    """Raise CheckpointError unless `tensors` holds every required tensor of `config` with the
    expected shape, and every optional one present with the expected shape.

    tensors: a TensorMap (shapes are read from headers, no data is loaded) or a plain dict of
    arrays. Names not in the spec (task heads, extra buffers) are allowed. The message names
    each offending tensor, and its file when `tensors` is a TensorMap.
    """
    shape_of = getattr(tensors, "shape", None)
    file_of = getattr(tensors, "file", None)
    where = f" in {source}" if source else ""
    if config.num_layers > len(tensors):  # every layer has tensors; bounds the enumeration
        raise CheckpointError(
            f"the {config.architecture} config{where} claims {config.num_layers} layers, but "
            f"the checkpoint holds only {len(tensors)} tensors"
        )
    missing = []
    for name, spec in expected_tensors(config).items():
        if name not in tensors:
            if spec.required:
                missing.append(name)
            continue
        shape = tuple(shape_of(name)) if shape_of else tuple(np.shape(tensors[name]))
        if shape != spec.shape:
            found_in = f" (file {file_of(name)})" if file_of else where
            raise CheckpointError(
                f"tensor {name!r}{found_in} has shape {list(shape)}, but the "
                f"{config.architecture} config needs {list(spec.shape)}"
            )
    if missing:
        shown = ", ".join(repr(n) for n in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise CheckpointError(
            f"missing tensor{'s' if len(missing) > 1 else ''}{where}: {shown}{more} "
            f"(required by the {config.architecture} config)"
        )
