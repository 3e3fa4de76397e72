"""The Llama family: Llama, Mistral, Qwen2 (q/k/v biases). Pre-norm RMSNorm blocks, rotary
positions (rotate-half layout), grouped-query attention, SwiGLU MLP.

Per layer, on activations [T, width]:
    x    = rms_norm(h) * input_layernorm                       [T, hidden]
    q, k, v = x @ Wq^T (+bq), x @ Wk^T (+bk), x @ Wv^T (+bv)    [T, heads*hd], [T, kv_heads*hd]
    q, k = rope(q), rope(k);  cache[layer] <- k, v
    h   += attention(q, cache) @ Wo^T                           residual fused in the epilogue
    x    = rms_norm(h) * post_attention_layernorm
    h   += swiglu(x @ [Wgate; Wup]^T) @ Wdown^T                 gate and up share one GEMM
"""

from __future__ import annotations

import sys

from pyengine.loaders.config import (
    ModelConfig,
    RopeScaling,
    activation_from,
    gguf_decoder_fields,
    gguf_rope_scaling,
    hf_decoder_fields,
    positive_number,
    rope_from_hf,
)
from pyengine.loaders.errors import CheckpointError, UnsupportedModelError
from pyengine.loaders.schema import TensorSpec
from pyengine.models.families import Family
from pyengine.runtime.graph import Graph

ROPE_FREQS = "rope_freqs.weight"  # llama.cpp's precomputed RoPE divisors (Llama 3.1), a setting


def _config_from_hf(family: str):
    def parse(keys, hf_arch: str | None) -> ModelConfig:
        rope_theta, rope_scaling = rope_from_hf(keys)
        sliding_window = None
        if family == "mistral":
            sliding_window = keys.optional_int("sliding_window")
        if family == "qwen2" and keys.get("use_sliding_window", False):
            raise UnsupportedModelError(
                f"{keys.source}: unsupported option use_sliding_window=true (Qwen2 per-layer "
                "sliding-window attention)"
            )
        if family == "qwen2":
            # Qwen2 always has q/k/v biases and never an o_proj bias
            attention_bias, out_bias = True, False
        else:
            attention_bias = keys.flag("attention_bias", False)
            out_bias = attention_bias
        return ModelConfig(
            **hf_decoder_fields(keys, 2048),
            architecture=family,
            norm_eps=keys.number("rms_norm_eps", 1e-6, positive=True),
            activation=activation_from(keys, "hidden_act", "silu"),
            tie_word_embeddings=keys.flag("tie_word_embeddings", False),
            rope_theta=rope_theta,
            rope_scaling=rope_scaling,
            attention_bias=attention_bias,
            attention_out_bias=out_bias,
            mlp_bias=keys.flag("mlp_bias", False),
            sliding_window=sliding_window,
            hf_architecture=hf_arch,
        )

    return parse


def _config_from_gguf(family: str):
    """GGUF: llama.cpp writes Llama, Mistral and other Llama-shaped models as "llama"."""

    def parse(keys, arch: str, shapes, config_tensors) -> ModelConfig:
        fields = gguf_decoder_fields(keys, arch, shapes)
        rope_scaling = gguf_rope_scaling(keys, arch)
        freqs = config_tensors.get(ROPE_FREQS)
        if freqs is not None:
            half = fields["head_dim"] // 2
            if rope_scaling is not None:
                raise UnsupportedModelError(
                    f"{keys.source}: both {arch}.rope.scaling.type and {ROPE_FREQS} are set"
                )
            if len(freqs) != half:
                raise CheckpointError(
                    f"{keys.source}: {ROPE_FREQS} has {len(freqs)} values, expected {half}"
                )
            if not all(positive_number(f) for f in freqs):
                raise CheckpointError(f"{keys.source}: {ROPE_FREQS} holds a value that is not > 0")
            rope_scaling = RopeScaling(type="freq_factors", freq_factors=tuple(map(float, freqs)))
        return ModelConfig(
            **fields,
            architecture=family,
            activation="silu",
            rope_scaling=rope_scaling,
            attention_bias="blk.0.attn_q.bias" in shapes,
            attention_out_bias="blk.0.attn_output.bias" in shapes,
            mlp_bias="blk.0.ffn_gate.bias" in shapes,
        )

    return parse


def tensors(c: ModelConfig) -> dict[str, TensorSpec]:
    hidden, inter = c.hidden_size, c.intermediate_size
    q_rows, kv_rows = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    specs = {"model.embed_tokens.weight": TensorSpec((c.vocab_size, hidden), True)}
    for i in range(c.num_layers):
        layer = {
            "input_layernorm.weight": (hidden,),
            "self_attn.q_proj.weight": (q_rows, hidden),
            "self_attn.k_proj.weight": (kv_rows, hidden),
            "self_attn.v_proj.weight": (kv_rows, hidden),
            "self_attn.o_proj.weight": (hidden, q_rows),
            "post_attention_layernorm.weight": (hidden,),
            "mlp.gate_proj.weight": (inter, hidden),
            "mlp.up_proj.weight": (inter, hidden),
            "mlp.down_proj.weight": (hidden, inter),
        }
        if c.attention_bias:
            layer["self_attn.q_proj.bias"] = (q_rows,)
            layer["self_attn.k_proj.bias"] = (kv_rows,)
            layer["self_attn.v_proj.bias"] = (kv_rows,)
        if c.attention_out_bias:
            layer["self_attn.o_proj.bias"] = (hidden,)
        if c.mlp_bias:
            layer["mlp.gate_proj.bias"] = (inter,)
            layer["mlp.up_proj.bias"] = (inter,)
            layer["mlp.down_proj.bias"] = (hidden,)
        specs.update({f"model.layers.{i}.{k}": TensorSpec(v, True) for k, v in layer.items()})
    specs["model.norm.weight"] = TensorSpec((hidden,), True)
    specs["lm_head.weight"] = TensorSpec((c.vocab_size, hidden), not c.tie_word_embeddings)
    return specs


GGUF_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
GGUF_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_gate.bias": "mlp.gate_proj.bias",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_up.bias": "mlp.up_proj.bias",
    "ffn_down.weight": "mlp.down_proj.weight",
    "ffn_down.bias": "mlp.down_proj.bias",
}


def prepare(cfg: ModelConfig, packer) -> dict:
    """Packs every weight once; returns what build() wires into a graph."""
    from pyengine.models.common import RopeTable

    layers = []
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}."
        layers.append(
            {
                "input_norm": packer.array(p + "input_layernorm.weight"),
                "q": packer.linear_from(p + "self_attn.q_proj", cfg.attention_bias),
                "k": packer.linear_from(p + "self_attn.k_proj", cfg.attention_bias),
                "v": packer.linear_from(p + "self_attn.v_proj", cfg.attention_bias),
                "o": packer.linear_from(p + "self_attn.o_proj", cfg.attention_out_bias),
                "post_norm": packer.array(p + "post_attention_layernorm.weight"),
                "gate_up": packer.linear_concat(
                    [p + "mlp.gate_proj", p + "mlp.up_proj"], cfg.mlp_bias
                ),
                "down": packer.linear_from(p + "mlp.down_proj", cfg.mlp_bias),
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
    """The forward graph; logits="all" for every position, "last" for each sequence's last.
    Mistral's layers see their last `sliding_window` keys each."""
    from pyengine.models.common import build_gated_decoder

    return build_gated_decoder(cfg, w, logits, (cfg.sliding_window or 0,) * cfg.num_layers)


def _family(name: str, hf_archs: tuple[str, ...], gguf_arch: str | None, permuted: bool):
    return Family(
        name=name,
        hf_architectures=hf_archs,
        hf_model_types=(name,),
        gguf_architecture=gguf_arch,
        config_from_hf=_config_from_hf(name),
        config_from_gguf=_config_from_gguf(name) if gguf_arch else None,
        tensors=tensors,
        module=sys.modules[__name__],
        gguf_names=GGUF_NAMES,
        gguf_layer_names=GGUF_LAYER_NAMES,
        # llama.cpp rotates adjacent pairs for "llama" and permutes q/k rows to match
        gguf_permuted=permuted,
        gguf_config_tensors=(ROPE_FREQS,),
    )


FAMILIES = (
    _family("llama", ("LlamaForCausalLM", "LlamaModel"), "llama", True),
    _family("mistral", ("MistralForCausalLM", "MistralModel"), None, False),
    _family("qwen2", ("Qwen2ForCausalLM", "Qwen2Model"), "qwen2", False),
)
