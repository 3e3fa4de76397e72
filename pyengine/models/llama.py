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

from pyengine.loaders import ModelConfig
from pyengine.models.common import RopeTable, WeightPacker, build_gated_decoder
from pyengine.runtime.graph import Graph

FAMILIES = ("llama", "mistral", "qwen2")


def prepare(cfg: ModelConfig, packer: WeightPacker) -> dict:
    """Packs every weight once; returns what build() wires into a graph."""
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
    return build_gated_decoder(cfg, w, logits, (cfg.sliding_window or 0,) * cfg.num_layers)
