"""One normalized model config for every checkpoint format.

Hugging Face config.json files spell the same quantity differently per architecture (GPT-2's
`n_embd` is Llama's `hidden_size`), and GGUF metadata spells it a third way. The model builders
read `ModelConfig` only. `config_from_hf` and `config_from_gguf` find the file's family in
pyengine.models.families and let its module read its own keys (with the shared helpers here:
hf_decoder_fields, gguf_decoder_fields, rope_from_hf, ...); the BERT encoders are still read
here. Anything the engine cannot honour (an architecture, a RoPE scaling type, an attention
variant) raises `UnsupportedModelError` naming it, rather than being silently ignored and
producing wrong logits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError, UnsupportedModelError
from .typed_keys import TypedKeys

# HF activation names -> the three functions the engine implements
ACTIVATIONS: dict[str, str] = {
    "silu": "silu",
    "swish": "silu",
    "gelu": "gelu",  # exact, erf-based
    "gelu_new": "gelu_tanh",  # 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
}

ROPE_SCALING_TYPES = ("linear", "llama3")


@dataclass(frozen=True)
class RopeScaling:
    """How rotary frequencies are rescaled; see `ModelConfig.rope_inv_freq` for the formulas.

    type "linear": every inverse frequency divided by `factor` (positions stretched).
    type "llama3": Llama 3.1's wavelength-dependent scaling (factor, low_freq_factor,
        high_freq_factor, original_max_position_embeddings).
    type "freq_factors": one divisor per frequency (`freq_factors`, head_dim // 2 values), the
        form llama.cpp stores in a GGUF's `rope_freqs.weight` tensor (e.g. for Llama 3.1).
    """

    type: str
    factor: float = 1.0
    low_freq_factor: float | None = None
    high_freq_factor: float | None = None
    original_max_position_embeddings: int | None = None
    freq_factors: tuple[float, ...] | None = None


@dataclass(frozen=True)
class ModelConfig:
    """Everything a model builder needs to know about the network's shape.

    architecture: the family the builder dispatches on: a decoder family of
        pyengine.models.families ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3",
        "phi3", "gpt2") or "bert", "roberta", "xlm-roberta" (bidirectional encoders).
    head_dim: per-head width; may differ from hidden_size // num_heads when the checkpoint says
        so (config.json "head_dim", GGUF attention.key_length).
    norm_type / norm_eps: "rmsnorm" for the Llama family, "layernorm" for GPT-2 and BERT (their
        layer_norm_epsilon / layer_norm_eps).
    max_position_embeddings: the context length (GPT-2's n_positions; GGUF context_length). For
        RoBERTa it counts the `position_offset` padding rows of the position table.
    position_offset: first position id used by real tokens (RoBERTa: pad_token_id + 1, else 0).
    attention_bias: q, k and v projections have biases (Qwen2, GPT-2, BERT).
    attention_out_bias: the output projection has a bias (GPT-2, BERT; Llama if attention_bias).
    mlp_bias: the MLP projections have biases.
    sliding_window: Mistral's attention window, or None for full attention.
    type_vocab_size: BERT's segment embedding rows (0 where the model has none).
    eos_token_ids: every id that ends generation (HF allows a list).
    hf_architecture: the config.json class name, None when read from GGUF.
    options: what only the family needs (a frozen dataclass of its module, see
        pyengine.models.families), None for the families that predate that table.
    """

    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    norm_type: str
    norm_eps: float
    activation: str
    tie_word_embeddings: bool
    rope_theta: float | None = None
    rope_scaling: RopeScaling | None = None
    attention_bias: bool = False
    attention_out_bias: bool = False
    mlp_bias: bool = False
    sliding_window: int | None = None
    type_vocab_size: int = 0
    position_offset: int = 0
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    hf_architecture: str | None = None
    options: Any = None

    @property
    def is_encoder(self) -> bool:
        from pyengine.models import families

        family = families.by_name(self.architecture)
        return family is not None and family.kind == "encoder"

    @property
    def uses_rope(self) -> bool:
        return self.rope_theta is not None

    def rope_inv_freq(self) -> np.ndarray:
        """Inverse rotary frequencies [head_dim // 2], float64, scaling applied.

        Base: inv_freq[i] = rope_theta ** (-2i / head_dim). Matches transformers'
        ROPE_INIT_FUNCTIONS for "default", "linear" and "llama3", and llama.cpp's freq_factors
        (theta / factor[i]).
        """
        if self.rope_theta is None:
            raise ValueError(f"{self.architecture} does not use rotary position embeddings")
        inv_freq = 1.0 / self.rope_theta ** (np.arange(0, self.head_dim, 2) / self.head_dim)
        scaling = self.rope_scaling
        if scaling is None:
            return inv_freq
        if scaling.type == "linear":
            return inv_freq / scaling.factor
        if scaling.type == "freq_factors":
            return inv_freq / np.asarray(scaling.freq_factors, dtype=np.float64)
        if scaling.type == "llama3":
            # wavelengths longer than original_ctx / low_freq_factor are divided by factor,
            # shorter than original_ctx / high_freq_factor kept, in between interpolated
            old_ctx = scaling.original_max_position_embeddings
            low_wavelen = old_ctx / scaling.low_freq_factor
            high_wavelen = old_ctx / scaling.high_freq_factor
            wavelen = 2 * np.pi / inv_freq
            scaled = np.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
            smooth = (old_ctx / wavelen - scaling.low_freq_factor) / (
                scaling.high_freq_factor - scaling.low_freq_factor
            )
            smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
            medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
            return np.where(medium, smoothed, scaled)
        raise UnsupportedModelError(f"rope_scaling type {scaling.type!r} is not supported")


# --------------------------------------------------------------------------------------------
# Hugging Face config.json


def load_hf_config(folder: str | Path) -> ModelConfig:
    """`config_from_hf` of `folder`/config.json."""
    path = Path(folder) / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return config_from_hf(raw, source=str(path))


def config_from_hf(cfg: Mapping[str, Any], source: str = "config.json") -> ModelConfig:
    """Normalize a Hugging Face config.json dict.

    Raises UnsupportedModelError naming the architecture or the option pyengine cannot honour,
    and CheckpointError naming a required key that is missing or malformed.
    """

    reader = TypedKeys(cfg, source)
    own = _registered_hf_family(cfg, source)
    arch = next((a for a in cfg.get("architectures") or () if a in own.hf_architectures), None)
    return own.config_from_hf(reader, arch)


def _registered_hf_family(cfg: Mapping[str, Any], source: str):
    """The pyengine.models.families entry config.json names ("architectures", else
    "model_type"); UnsupportedModelError naming what it says otherwise."""
    from pyengine.models import families

    table = families.families().values()
    archs = cfg.get("architectures")
    if archs:
        if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
            raise CheckpointError(f"{source}: 'architectures' must be a list of strings")
        for arch in archs:
            found = families.by_hf_architecture(arch)
            if found is not None:
                return found
        supported = [a for f in table for a in f.hf_architectures]
        raise UnsupportedModelError(
            f"{source}: unsupported architecture {archs[0]!r}; supported: {', '.join(supported)}"
        )
    model_type = cfg.get("model_type")
    found = families.by_hf_model_type(model_type) if isinstance(model_type, str) else None
    if found is None:
        supported = [t for f in table for t in f.hf_model_types]
        raise UnsupportedModelError(
            f"{source}: unsupported model_type {model_type!r} (and no 'architectures' list); "
            f"supported: {', '.join(supported)}"
        )
    return found


LAYER_TYPES = ("full_attention", "sliding_attention")


@dataclass(frozen=True)
class LayerWindows:
    """Keys each layer's queries see (0: all), computed per layer on demand: a file may claim
    billions of layers, and nothing here may enumerate them before the tensors are counted.
    types: the per-layer list config.json gave (its length is that of the file), or None;
    else a layer slides when sliding(i)."""

    layers: int
    window: int
    types: tuple[str, ...] | None = None
    sliding: Any = None  # (int) -> bool

    def __len__(self) -> int:
        return self.layers

    def __getitem__(self, i: int) -> int:
        if not 0 <= i < self.layers:
            raise IndexError(i)
        if not self.window:
            return 0
        slides = self.types[i] == "sliding_attention" if self.types else self.sliding(i)
        return self.window if slides else 0


def layer_windows_from_hf(keys: TypedKeys, layers: int, window: int | None, default_sliding):
    """Keys per query of each layer (a LayerWindows; 0: full attention): config.json's
    "layer_types" when it has one, else default_sliding(i) says which layers slide; a sliding
    layer sees `window` keys (None or 0: no layer slides)."""
    types = keys.strings("layer_types")
    if types is not None and (len(types) != layers or any(t not in LAYER_TYPES for t in types)):
        raise CheckpointError(
            f"{keys.source}: 'layer_types' must list one of {LAYER_TYPES} per layer "
            f"({layers} layers)"
        )
    return LayerWindows(layers, int(window or 0), tuple(types) if types else None, default_sliding)


def activation_from(keys: TypedKeys, key: str, default: str) -> str:
    name = keys.get(key, default)
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise UnsupportedModelError(
            f"{keys.source}: unsupported activation {key}={name!r}; supported: "
            f"{', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]


def heads_from(keys: TypedKeys, hidden: int, heads_key: str) -> tuple[int, int, int]:
    heads = keys.integer(heads_key)
    if heads == 0:
        raise CheckpointError(f"{keys.source}: {heads_key!r} must be positive")
    kv_heads = keys.integer("num_key_value_heads", heads)
    if kv_heads == 0 or heads % kv_heads:
        raise CheckpointError(
            f"{keys.source}: num_key_value_heads={kv_heads} does not divide {heads_key}={heads}"
        )
    head_dim = None if keys.get("head_dim") is None else keys.positive("head_dim")
    if head_dim is None:
        if hidden % heads:
            raise CheckpointError(
                f"{keys.source}: hidden size {hidden} is not a multiple of {heads} heads "
                "and there is no explicit head_dim"
            )
        head_dim = hidden // heads
    return heads, kv_heads, head_dim


def positive_number(value: Any) -> bool:
    """A finite number > 0 (bools are not numbers here; NaN fails every comparison)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def rope_from_hf(keys: TypedKeys) -> tuple[float, RopeScaling | None]:
    # transformers >= 5 writes "rope_parameters" (theta and scaling in one dict); older files
    # write "rope_theta" and "rope_scaling"
    params = keys.get("rope_parameters")
    if params is not None:
        if not isinstance(params, dict):
            raise CheckpointError(f"{keys.source}: 'rope_parameters' must be an object")
        theta = params.get("rope_theta", keys.get("rope_theta", 10000.0))
        scaling = params
    else:
        theta = keys.get("rope_theta", 10000.0)
        scaling = keys.get("rope_scaling")
    if not positive_number(theta):
        raise CheckpointError(f"{keys.source}: rope_theta must be a positive number, not {theta!r}")
    factor = keys.get("partial_rotary_factor", 1.0)
    if isinstance(scaling, dict):
        factor = scaling.get("partial_rotary_factor", factor)
    if factor != 1.0:
        raise UnsupportedModelError(
            f"{keys.source}: unsupported option partial_rotary_factor={factor!r}: "
            "only full-width rotary embeddings are implemented"
        )
    return float(theta), rope_scaling_from(scaling, keys.source)


def rope_scaling_from(scaling: Any, source: str) -> RopeScaling | None:
    if scaling is None:
        return None
    if not isinstance(scaling, dict):
        raise CheckpointError(f"{source}: 'rope_scaling' must be an object, not {scaling!r}")
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return None
    if not isinstance(kind, str) or kind not in ROPE_SCALING_TYPES:
        raise UnsupportedModelError(
            f"{source}: unsupported rope_scaling type {kind!r}; supported: "
            f"{', '.join(ROPE_SCALING_TYPES)}"
        )

    def number(key: str) -> float:
        value = scaling.get(key)
        if not positive_number(value):
            raise CheckpointError(
                f"{source}: rope_scaling type {kind!r} needs a positive {key!r}, got {value!r}"
            )
        return value

    if kind == "linear":
        return RopeScaling(type="linear", factor=float(number("factor")))
    low, high = float(number("low_freq_factor")), float(number("high_freq_factor"))
    if high <= low:
        raise CheckpointError(
            f"{source}: rope_scaling llama3 needs high_freq_factor > low_freq_factor, "
            f"got {high} <= {low}"
        )
    return RopeScaling(
        type="llama3",
        factor=float(number("factor")),
        low_freq_factor=low,
        high_freq_factor=high,
        original_max_position_embeddings=int(number("original_max_position_embeddings")),
    )


# --------------------------------------------------------------------------------------------
# GGUF metadata


def config_from_gguf(
    metadata: Mapping[str, Any],
    tensor_shapes: Mapping[str, tuple[int, ...]],
    source: str = "model.gguf",
    rope_freqs: Sequence[float] | None = None,
    config_tensors: Mapping[str, list[float]] | None = None,
) -> ModelConfig:
    """Normalize GGUF metadata (key -> value, as read by the gguf package).

    tensor_shapes: GGUF tensor name -> shape in numpy order ([out, in]); used for what the
    metadata leaves implicit: tied embeddings (no output.weight), biases, vocab size.
    rope_freqs: the values of the file's rope_freqs.weight tensor [head_dim // 2], if any:
    llama.cpp's precomputed per-frequency RoPE divisors (how it stores Llama 3.1 scaling).
    config_tensors: for families of pyengine.models.families, the values of the tensors the
    family reads as settings (its gguf_config_tensors) that the file holds.
    """
    from pyengine.models import families

    arch = metadata.get("general.architecture")
    own = families.by_gguf_architecture(arch) if isinstance(arch, str) else None
    config_tensors = dict(config_tensors or {})
    if rope_freqs is not None:
        config_tensors["rope_freqs.weight"] = list(rope_freqs)
    if own is not None:
        return own.config_from_gguf(
            TypedKeys(metadata, source), arch, tensor_shapes, config_tensors
        )
    supported = [f.gguf_architecture for f in families.families().values() if f.gguf_architecture]
    raise UnsupportedModelError(
        f"{source}: unsupported GGUF architecture {arch!r}; supported: {', '.join(supported)}"
    )


def config_from_inputs(inputs: Any, source: str) -> ModelConfig:
    """The config again from what a loader kept of its source (extras["config_inputs"]):
    {"kind": "hf", "config": config.json's object} or {"kind": "gguf", "metadata": ...,
    "shapes": GGUF name -> shape, "config_tensors": name -> values}. A pack file keeps these
    rather than the config itself, so the family's own parser and its checks run again."""
    kind = inputs.get("kind") if isinstance(inputs, dict) else None
    if kind == "hf" and isinstance(inputs.get("config"), dict):
        return config_from_hf(inputs["config"], source)
    if kind == "gguf":
        metadata, shapes = inputs.get("metadata"), inputs.get("shapes")
        tensors = inputs.get("config_tensors") or {}
        shapes_ok = isinstance(shapes, dict) and all(
            isinstance(s, list)
            and 1 <= len(s) <= 4
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in s)
            for s in shapes.values()
        )
        tensors_ok = isinstance(tensors, dict) and all(
            isinstance(v, list)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            for v in tensors.values()
        )
        if isinstance(metadata, dict) and shapes_ok and tensors_ok:
            return config_from_gguf(
                metadata, {n: tuple(s) for n, s in shapes.items()}, source, config_tensors=tensors
            )
    raise CheckpointError(f"{source}: holds no config it can read (config_inputs)")


def gguf_rope_scaling(keys: TypedKeys, arch: str) -> RopeScaling | None:
    kind = keys.string(f"{arch}.rope.scaling.type", None)
    old_linear = f"{arch}.rope.scale_linear"  # pre-2024 spelling of linear
    if kind in (None, "none"):
        if keys.get(old_linear) is not None:
            factor = keys.number(old_linear, positive=True)
            if factor != 1.0:
                return RopeScaling(type="linear", factor=factor)
        return None
    if kind == "linear":
        return RopeScaling(
            type="linear", factor=keys.number(f"{arch}.rope.scaling.factor", positive=True)
        )
    raise UnsupportedModelError(
        f"{keys.source}: unsupported {arch}.rope.scaling.type {kind!r}; supported: linear"
    )


def gguf_vocab_size(keys: TypedKeys, arch: str, embd: tuple) -> int:
    """{arch}.vocab_size, else the vocabulary's length, else the embedding's rows."""
    if keys.get(f"{arch}.vocab_size") is None:
        tokens = keys.strings("tokenizer.ggml.tokens")
        return len(tokens) if tokens else int(embd[0])
    return keys.positive(f"{arch}.vocab_size")


def gguf_decoder_fields(keys: TypedKeys, arch: str, shapes: Mapping[str, tuple]) -> dict:
    """The ModelConfig fields every GGUF decoder states the same way ({arch}.embedding_length,
    attention.head_count, ..., the tokenizer's special ids), checked; families add the rest."""

    def key(name: str) -> str:
        return f"{arch}.{name}"

    hidden = keys.positive(key("embedding_length"))
    heads = keys.positive(key("attention.head_count"))
    kv_heads = keys.positive(key("attention.head_count_kv"), heads)
    if heads % kv_heads:
        raise CheckpointError(
            f"{keys.source}: {key('attention.head_count_kv')}={kv_heads} does not divide "
            f"head_count={heads}"
        )
    head_dim = keys.positive(key("attention.key_length"), max(hidden // heads, 1))
    value_dim = keys.positive(key("attention.value_length"), head_dim)
    if value_dim != head_dim:
        raise UnsupportedModelError(
            f"{keys.source}: unsupported option {key('attention.value_length')}={value_dim} != "
            f"key_length={head_dim}"
        )
    rope_dim = keys.positive(key("rope.dimension_count"), head_dim)
    if rope_dim != head_dim:
        raise UnsupportedModelError(
            f"{keys.source}: unsupported option {key('rope.dimension_count')}={rope_dim} "
            f"(partial rotary; head_dim is {head_dim})"
        )
    embd = shapes.get("token_embd.weight")
    if embd is None:
        raise CheckpointError(f"{keys.source}: tensor token_embd.weight is missing")
    vocab = gguf_vocab_size(keys, arch, embd)
    eos = keys.optional_int("tokenizer.ggml.eos_token_id")
    eot = keys.optional_int("tokenizer.ggml.eot_token_id")
    return dict(
        vocab_size=int(vocab),
        hidden_size=hidden,
        intermediate_size=keys.positive(key("feed_forward_length")),
        num_layers=keys.positive(key("block_count")),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        max_position_embeddings=keys.positive(key("context_length")),
        norm_type="rmsnorm",
        norm_eps=keys.number(key("attention.layer_norm_rms_epsilon"), positive=True),
        tie_word_embeddings="output.weight" not in shapes,
        rope_theta=keys.number(key("rope.freq_base"), 10000.0, positive=True),
        bos_token_id=keys.optional_int("tokenizer.ggml.bos_token_id"),
        eos_token_ids=tuple(dict.fromkeys(i for i in (eos, eot) if i is not None)),
        pad_token_id=keys.optional_int("tokenizer.ggml.padding_token_id"),
    )


def hf_decoder_fields(keys: TypedKeys, default_context: int) -> dict:
    """The ModelConfig fields every Llama-style config.json states the same way (hidden_size,
    heads, ..., special ids), checked; families add the rest."""
    hidden = keys.positive("hidden_size")
    heads, kv_heads, head_dim = heads_from(keys, hidden, "num_attention_heads")
    return dict(
        vocab_size=keys.positive("vocab_size"),
        hidden_size=hidden,
        intermediate_size=keys.positive("intermediate_size"),
        num_layers=keys.positive("num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        max_position_embeddings=keys.positive("max_position_embeddings", default_context),
        norm_type="rmsnorm",
        bos_token_id=keys.optional_int("bos_token_id"),
        eos_token_ids=keys.ids("eos_token_id"),
        pad_token_id=keys.optional_int("pad_token_id"),
    )
