"""Qwen3 (dense): config (config.json and GGUF), tensor names, graph.

The Llama block (pre-norm RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU MLP) with
a per-head RMSNorm on q and on k before RoPE, an explicit head_dim (0.6B: 16 heads of 128 on a
hidden size of 1024) and no q/k/v biases by default. Per layer, on activations [T, hidden]:
    x  = rms_norm(h) * input_layernorm
    q, k, v = x Wq, x Wk, x Wv;  q, k = rms_norm per head * q_norm, k_norm;  q, k = rope(q, k)
    h += attention(q, cache) Wo                               residual fused in the epilogue
    x  = rms_norm(h) * post_attention_layernorm
    h += swiglu(x [Wgate; Wup]) Wdown
Sliding-window layers (use_sliding_window, layers from max_window_layers on, or layer_types)
see the last `sliding_window` keys. GGUF files are not permuted (llama.cpp's NEOX RoPE).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pyengine.loaders.config import (
    LayerWindows,
    ModelConfig,
    activation_from,
    gguf_decoder_fields,
    gguf_rope_scaling,
    hf_decoder_fields,
    layer_windows_from_hf,
    rope_from_hf,
)
from pyengine.loaders.errors import UnsupportedModelError
from pyengine.loaders.schema import TensorSpec
from pyengine.models import llama
from pyengine.models.families import Family
from pyengine.runtime.graph import Graph


@dataclass(frozen=True)
class Qwen3Options:
    layer_windows: LayerWindows  # keys per query of each layer, 0: full attention


def config_from_hf(keys, hf_arch: str | None) -> ModelConfig:
    fields = hf_decoder_fields(keys, 32768)
    layers = fields["num_layers"]
    theta, scaling = rope_from_hf(keys)
    window = None
    if keys.flag("use_sliding_window", False):
        window = keys.positive("sliding_window")
    first_sliding = keys.integer("max_window_layers", layers)
    windows = layer_windows_from_hf(keys, layers, window, lambda i: i >= first_sliding)
    bias = keys.flag("attention_bias", False)
    return ModelConfig(
        **fields,
        architecture="qwen3",
        norm_eps=keys.number("rms_norm_eps", 1e-6, positive=True),
        activation=activation_from(keys, "hidden_act", "silu"),
        tie_word_embeddings=keys.flag("tie_word_embeddings", False),
        rope_theta=theta,
        rope_scaling=scaling,
        attention_bias=bias,
        attention_out_bias=bias,
        sliding_window=window,
        hf_architecture=hf_arch,
        options=Qwen3Options(layer_windows=windows),
    )


def config_from_gguf(keys, arch: str, shapes, config_tensors) -> ModelConfig:
    fields = gguf_decoder_fields(keys, arch, shapes)
    return ModelConfig(
        **fields,
        architecture="qwen3",
        activation="silu",
        rope_scaling=gguf_rope_scaling(keys, arch),
        attention_bias="blk.0.attn_q.bias" in shapes,
        attention_out_bias="blk.0.attn_output.bias" in shapes,
        options=Qwen3Options(layer_windows=LayerWindows(fields["num_layers"], 0)),
    )


def tensors(c: ModelConfig) -> dict[str, TensorSpec]:
    """The Llama family's tensors and a q and a k norm [head_dim] per layer."""
    specs = llama.tensors(c)
    for i in range(c.num_layers):
        for name in ("q_norm", "k_norm"):
            specs[f"model.layers.{i}.self_attn.{name}.weight"] = TensorSpec((c.head_dim,), True)
    return specs


GGUF_NAMES = llama.GGUF_NAMES
GGUF_LAYER_NAMES = {
    **llama.GGUF_LAYER_NAMES,
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
}


def prepare(cfg: ModelConfig, packer) -> dict:
    from pyengine.models.common import RopeTable

    if cfg.activation != "silu":
        raise UnsupportedModelError(f"Qwen3 with activation {cfg.activation!r} is not supported")
    layers = []
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}."
        layers.append(
            {
                "input_norm": packer.array(p + "input_layernorm.weight"),
                "q": packer.linear_from(p + "self_attn.q_proj", cfg.attention_bias),
                "k": packer.linear_from(p + "self_attn.k_proj", cfg.attention_bias),
                "v": packer.linear_from(p + "self_attn.v_proj", cfg.attention_bias),
                "q_norm": packer.array(p + "self_attn.q_norm.weight"),
                "k_norm": packer.array(p + "self_attn.k_norm.weight"),
                "o": packer.linear_from(p + "self_attn.o_proj", cfg.attention_out_bias),
                "post_norm": packer.array(p + "post_attention_layernorm.weight"),
                "gate_up": packer.linear_concat([p + "mlp.gate_proj", p + "mlp.up_proj"], False),
                "down": packer.linear_from(p + "mlp.down_proj", False),
            }
        )
    embed, lm_head = packer.embedding_and_head(cfg.tie_word_embeddings)
    return {
        "embed": embed,
        "layers": layers,
        "final_norm": packer.array("model.norm.weight"),
        "lm_head": lm_head,
        "rope": RopeTable(cfg.rope_inv_freq(), cfg.max_position_embeddings),
    }


def build(cfg: ModelConfig, w: dict, logits: str) -> Graph:
    from pyengine.models.common import build_gated_decoder

    return build_gated_decoder(cfg, w, logits, cfg.options.layer_windows)


FAMILY = Family(
    name="qwen3",
    hf_architectures=("Qwen3ForCausalLM", "Qwen3Model"),
    hf_model_types=("qwen3",),
    gguf_architecture="qwen3",
    config_from_hf=config_from_hf,
    config_from_gguf=config_from_gguf,
    tensors=tensors,
    module=sys.modules[__name__],
    gguf_names=GGUF_NAMES,
    gguf_layer_names=GGUF_LAYER_NAMES,
)
