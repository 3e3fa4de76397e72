"""The table of model families that live in one module each.

A family module owns everything about its architecture: the config fields it reads (from
config.json and from GGUF metadata), its tensor names (Hugging Face and GGUF) and shapes, and
its graph. It registers one `Family` record here; the loaders (config, tensor check, GGUF
names) and the decoder look families up in this table and nowhere else. Adding a family means
its module, its tests and one line below.

The encoders (BERT, RoBERTa, XLM-R: pyengine/models/bert.py) are in it too, kind "encoder".

Importing this module does not import the native extension: family modules import the weight
packer only inside `prepare`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class Family:
    """One family's entry.

    name: ModelConfig.architecture of its models.
    hf_architectures / hf_model_types: config.json "architectures" classes and "model_type"s.
    gguf_architecture: GGUF general.architecture (None: no GGUF support).
    config_from_hf(keys: TypedKeys, hf_architecture) -> ModelConfig.
    config_from_gguf(keys: TypedKeys, arch, tensor_shapes, config_tensors) -> ModelConfig, with
        config_tensors: name -> values of the `gguf_config_tensors` the file holds.
    tensors(config) -> {HF name: TensorSpec}: every tensor it uses, shapes [out, in].
    gguf_names / gguf_layer_names: GGUF name -> HF name, for whole-model tensors and for the
        part after "blk.{i}." (mapped to gguf_layer_prefix, "model.layers.{i}." by default).
    hf_prefixes: prefixes a task-head class puts before the base model's names in config.json
        folders (GPT-2's "transformer."), removed at load.
    gguf_permuted: llama.cpp's converter permuted the q/k rows (Llama-style RoPE in llama.cpp).
    gguf_config_tensors: GGUF tensors that are settings, not weights (e.g. RoPE factors).
    module: the module with prepare(config, packer) and build(config, weights, logits) (an
        encoder's build takes no logits argument).
    """

    name: str
    hf_architectures: tuple[str, ...]
    hf_model_types: tuple[str, ...]
    gguf_architecture: str | None
    config_from_hf: Callable[..., Any]
    config_from_gguf: Callable[..., Any] | None
    tensors: Callable[..., Mapping[str, Any]]
    module: ModuleType
    gguf_names: Mapping[str, str] = field(default_factory=dict)
    gguf_layer_names: Mapping[str, str] = field(default_factory=dict)
    gguf_permuted: bool = False
    gguf_config_tensors: tuple[str, ...] = ()
    gguf_layer_prefix: str = "model.layers.{i}."
    hf_prefixes: tuple[str, ...] = ()
    hf_rename: Callable[[str], str] | None = None  # a name's last fix-up (BERT's gamma/beta)
    kind: str = "decoder"  # or "encoder" (pyengine.models.encoder runs those)


def _all() -> tuple[Family, ...]:
    from pyengine.models import bert, gemma, gpt2, llama, phi3, qwen3

    decoders = (*llama.FAMILIES, *gemma.FAMILIES, qwen3.FAMILY, phi3.FAMILY, gpt2.FAMILY)
    return (*decoders, *bert.FAMILIES)


_TABLE: dict[str, Family] | None = None


def families() -> dict[str, Family]:
    """name -> Family, built on first use (the family modules import the loaders' config)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = {f.name: f for f in _all()}
    return _TABLE


def by_name(name: str) -> Family | None:
    return families().get(name)


def by_hf_architecture(arch: str) -> Family | None:
    return next((f for f in families().values() if arch in f.hf_architectures), None)


def by_hf_model_type(model_type: str) -> Family | None:
    return next((f for f in families().values() if model_type in f.hf_model_types), None)


def by_gguf_architecture(arch: str) -> Family | None:
    return next((f for f in families().values() if f.gguf_architecture == arch), None)
