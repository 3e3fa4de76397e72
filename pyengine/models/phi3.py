"""Phi-3 and Phi-3.5 (mini): config (config.json and GGUF), tensor names, graph.

The Llama block with fused projections as stored: qkv_proj [(heads + 2 kv_heads) * head_dim,
hidden] is split into q, k and v at load (row blocks: GGUF blocks stay whole), gate_up_proj
[2 * intermediate, hidden] (gate rows first) feeds SwiGLU as one product. Every layer sees the
last `sliding_window` keys when the config sets one (Phi-3-mini-4k: 2047).

RoPE scaling "longrope" (the 128k models): two sets of per-frequency divisors, short_factor and
long_factor (inv_freq[i] = 1 / (factor[i] * theta^(2i / head_dim))), and cos and sin multiplied
by attention_factor = sqrt(1 + ln(s) / ln(original)) with s = the config's "factor", else
max_position_embeddings / original_max_position_embeddings (or the config's own
attention_factor). As in transformers, a sequence whose highest position in a call is past
original_max_position_embeddings is rotated with the long factors for all its tokens of that
call, otherwise with the short ones; the keys already cached keep the rotation they were
written with. The choice is per sequence, so batching never changes it; a prompt prefilled in
chunks is decided chunk by chunk (transformers, in one pass, decides for the whole prompt).
GGUF stores the factors as the tensors rope_factors_long/short.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np

from pyengine.loaders.config import (
    ModelConfig,
    activation_from,
    gguf_decoder_fields,
    hf_decoder_fields,
    positive_number,
    rope_scaling_from,
)
from pyengine.loaders.errors import CheckpointError, UnsupportedModelError
from pyengine.loaders.schema import TensorSpec
from pyengine.models import llama
from pyengine.models.families import Family
from pyengine.runtime.graph import Graph


@dataclass(frozen=True)
class LongRope:
    short_factor: tuple[float, ...]
    long_factor: tuple[float, ...]
    original_max_positions: int
    attention_factor: float


@dataclass(frozen=True)
class Phi3Options:
    longrope: LongRope | None
    window: int  # keys per query of every layer, 0: full attention


def _factors(values, name: str, head_dim: int, source: str) -> tuple[float, ...]:
    if not isinstance(values, (list, tuple)) or len(values) != head_dim // 2:
        raise CheckpointError(f"{source}: longrope {name} must hold {head_dim // 2} numbers")
    if not all(positive_number(v) for v in values):
        raise CheckpointError(f"{source}: longrope {name} holds a value that is not > 0")
    return tuple(float(v) for v in values)


def _attention_factor(given, factor: float, original: int) -> float:
    """cos and sin are scaled by this: the config's own attention_factor, else
    sqrt(1 + ln(factor) / ln(original)) for a context stretched by `factor` (1 if not)."""
    if given is not None:
        return float(given)
    return 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))


def _rope_hf(keys, head_dim: int, max_positions: int):
    """(theta, longrope or None) from config.json (rope_parameters or rope_scaling)."""
    params = keys.get("rope_parameters", keys.get("rope_scaling"))
    theta = keys.get("rope_theta", 10000.0)
    if isinstance(params, dict):
        theta = params.get("rope_theta", theta)
    if not positive_number(theta):
        raise CheckpointError(f"{keys.source}: rope_theta must be a positive number")
    partial = keys.get("partial_rotary_factor", 1.0)
    if isinstance(params, dict):
        partial = params.get("partial_rotary_factor", partial)
    if partial != 1.0:
        raise UnsupportedModelError(
            f"{keys.source}: unsupported option partial_rotary_factor={partial!r}"
        )
    kind = params.get("rope_type", params.get("type")) if isinstance(params, dict) else None
    src = keys.source
    if kind in ("su", "longrope"):
        top = keys.get("original_max_position_embeddings")
        original = top if top is not None else params.get("original_max_position_embeddings")
        if not isinstance(original, int) or isinstance(original, bool) or original <= 1:
            raise CheckpointError(
                f"{keys.source}: longrope needs original_max_position_embeddings > 1"
            )
        given = params.get("attention_factor")
        if given is not None and not positive_number(given):
            raise CheckpointError(f"{keys.source}: longrope attention_factor must be > 0")
        # the stretch: the config's "factor", else max_position_embeddings / original
        factor = params.get("factor")
        if factor is not None and not positive_number(factor):
            raise CheckpointError(f"{keys.source}: longrope factor must be > 0")
        factor = float(factor) if factor is not None else max_positions / original
        longrope = LongRope(
            short_factor=_factors(params.get("short_factor"), "short_factor", head_dim, src),
            long_factor=_factors(params.get("long_factor"), "long_factor", head_dim, src),
            original_max_positions=original,
            attention_factor=_attention_factor(given, factor, original),
        )
        return float(theta), longrope
    if rope_scaling_from(params, keys.source) is not None:
        raise UnsupportedModelError(f"{keys.source}: unsupported RoPE scaling {kind!r} for Phi-3")
    return float(theta), None


def config_from_hf(keys, hf_arch: str | None) -> ModelConfig:
    fields = hf_decoder_fields(keys, 4096)
    theta, longrope = _rope_hf(keys, fields["head_dim"], fields["max_position_embeddings"])
    window = keys.optional_int("sliding_window")
    return ModelConfig(
        **fields,
        architecture="phi3",
        norm_eps=keys.number("rms_norm_eps", 1e-5, positive=True),
        activation=activation_from(keys, "hidden_act", "silu"),
        tie_word_embeddings=keys.flag("tie_word_embeddings", False),
        rope_theta=theta,
        sliding_window=window,
        hf_architecture=hf_arch,
        options=Phi3Options(longrope=longrope, window=int(window or 0)),
    )


ROPE_FACTORS = ("rope_factors_long.weight", "rope_factors_short.weight")


def config_from_gguf(keys, arch: str, shapes, config_tensors) -> ModelConfig:
    def key(name: str) -> str:
        return f"{arch}.{name}"

    fields = gguf_decoder_fields(keys, arch, shapes)
    head_dim, max_positions = fields["head_dim"], fields["max_position_embeddings"]
    longrope = None
    if all(n in config_tensors for n in ROPE_FACTORS):
        original = keys.positive(key("rope.scaling.original_context_length"))
        given = keys.get(key("rope.scaling.attn_factor"))
        if given is not None:
            given = keys.number(key("rope.scaling.attn_factor"), positive=True)
        longrope = LongRope(
            short_factor=_factors(config_tensors[ROPE_FACTORS[1]], "short", head_dim, keys.source),
            long_factor=_factors(config_tensors[ROPE_FACTORS[0]], "long", head_dim, keys.source),
            original_max_positions=original,
            attention_factor=_attention_factor(given, max_positions / original, original),
        )
    elif any(n in config_tensors for n in ROPE_FACTORS):
        raise CheckpointError(f"{keys.source}: only one of {ROPE_FACTORS} is present")
    window = keys.optional_int(key("attention.sliding_window"))
    return ModelConfig(
        **fields,
        architecture="phi3",
        activation="silu",
        sliding_window=window,
        options=Phi3Options(longrope=longrope, window=int(window or 0)),
    )


def tensors(c: ModelConfig) -> dict[str, TensorSpec]:
    hidden, inter = c.hidden_size, c.intermediate_size
    q_rows, kv_rows = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    specs = {"model.embed_tokens.weight": TensorSpec((c.vocab_size, hidden), True)}
    for i in range(c.num_layers):
        layer = {
            "input_layernorm.weight": (hidden,),
            "self_attn.qkv_proj.weight": (q_rows + 2 * kv_rows, hidden),
            "self_attn.o_proj.weight": (hidden, q_rows),
            "post_attention_layernorm.weight": (hidden,),
            "mlp.gate_up_proj.weight": (2 * inter, hidden),
            "mlp.down_proj.weight": (hidden, inter),
        }
        specs.update({f"model.layers.{i}.{k}": TensorSpec(v, True) for k, v in layer.items()})
    specs["model.norm.weight"] = TensorSpec((hidden,), True)
    specs["lm_head.weight"] = TensorSpec((c.vocab_size, hidden), not c.tie_word_embeddings)
    return specs


GGUF_NAMES = llama.GGUF_NAMES  # the same whole-model tensors
GGUF_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_qkv.weight": "self_attn.qkv_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_up.weight": "mlp.gate_up_proj.weight",  # gate rows first, as in transformers
    "ffn_down.weight": "mlp.down_proj.weight",
}


class LongRopeTable:
    """Two rotary tables (short and long factors, cos and sin scaled by the attention factor)
    side by side in one: rows [0, n) short, [n, 2n) long. Each token takes the long rows when
    its own sequence's highest position in the call is past the original context (transformers'
    rule, applied per sequence, so a sequence computes the same alone or in any batch)."""

    def __init__(self, theta: float, head_dim: int, rope: LongRope, max_positions: int):
        from pyengine.models.common import RopeTable

        base = theta ** (np.arange(0, head_dim, 2) / head_dim)
        m = rope.attention_factor
        self.short = RopeTable(1.0 / (np.array(rope.short_factor) * base), max_positions, m)
        self.long = RopeTable(1.0 / (np.array(rope.long_factor) * base), max_positions, m)
        self.original = rope.original_max_positions
        self._joined = None  # (rows per half, cos, sin) of the tables as last joined

    def lookup(self, state):
        """(row of each token, cos, sin) for a run state (see RopeTable.lookup)."""
        positions = state.positions
        if positions.size:
            self.short.ensure(int(positions.max()) + 1)
            self.long.ensure(int(positions.max()) + 1)
        n = self.short.cos.shape[0]
        if self._joined is None or self._joined[0] != n:
            cos = np.concatenate([self.short.cos, self.long.cos])
            sin = np.concatenate([self.short.sin, self.long.sin])
            self._joined = (n, cos, sin)
        long = state.sequence_last_positions() + 1 > self.original
        rows = (positions + np.where(long, n, 0)).astype(np.int32)
        return rows, self._joined[1], self._joined[2]


def prepare(cfg: ModelConfig, packer) -> dict:
    from pyengine.models.common import RopeTable

    if cfg.activation != "silu":
        raise UnsupportedModelError(f"Phi-3 with activation {cfg.activation!r} is not supported")
    q_rows, kv_rows = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    layers = []
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}."
        q, k, v = packer.linear_split(p + "self_attn.qkv_proj", [q_rows, kv_rows, kv_rows], False)
        layers.append(
            {
                "input_norm": packer.array(p + "input_layernorm.weight"),
                "q": q,
                "k": k,
                "v": v,
                "o": packer.linear_from(p + "self_attn.o_proj", False),
                "post_norm": packer.array(p + "post_attention_layernorm.weight"),
                "gate_up": packer.linear_from(p + "mlp.gate_up_proj", False),
                "down": packer.linear_from(p + "mlp.down_proj", False),
            }
        )
    embed, lm_head = packer.embedding_and_head(cfg.tie_word_embeddings)
    longrope = cfg.options.longrope
    ctx = cfg.max_position_embeddings
    if longrope is None:
        rope = RopeTable(cfg.rope_inv_freq(), ctx)
    else:
        rope = LongRopeTable(cfg.rope_theta, cfg.head_dim, longrope, ctx)
    return {
        "embed": embed,
        "layers": layers,
        "final_norm": packer.array("model.norm.weight"),
        "lm_head": lm_head,
        "rope": rope,
    }


def build(cfg: ModelConfig, w: dict, logits: str) -> Graph:
    from pyengine.models.common import build_gated_decoder

    return build_gated_decoder(cfg, w, logits, (cfg.options.window,) * cfg.num_layers)


FAMILY = Family(
    name="phi3",
    hf_architectures=("Phi3ForCausalLM", "Phi3Model"),
    hf_model_types=("phi3",),
    gguf_architecture="phi3",
    config_from_hf=config_from_hf,
    config_from_gguf=config_from_gguf,
    tensors=tensors,
    module=sys.modules[__name__],
    gguf_names=GGUF_NAMES,
    gguf_layer_names=GGUF_LAYER_NAMES,
    gguf_config_tensors=ROPE_FACTORS,
)
