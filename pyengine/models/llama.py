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
from pyengine.models.common import RopeTable, WeightPacker, add_lm_head
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
    """The forward graph; logits="all" for every position, "last" for each sequence's last."""
    g = Graph()
    nh, nkv, hd, eps = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.norm_eps
    h = g.buffer("h", cfg.hidden_size)
    x = g.buffer("x", cfg.hidden_size)
    q, k, v = g.buffer("q", nh * hd), g.buffer("k", nkv * hd), g.buffer("v", nkv * hd)
    attn = g.buffer("attn", nh * hd)
    gate_up = g.buffer("gate_up", 2 * cfg.intermediate_size)
    act = g.buffer("act", cfg.intermediate_size)
    rope = {"table": w["rope"], "interleaved": False}

    g.add("embed", [], h, "embed_tokens", table=w["embed"])
    for i, lw in enumerate(w["layers"]):
        n = f"L{i}."
        g.add("rms_norm", [h], x, n + "input_norm", weight=lw["input_norm"], eps=eps)
        g.add("linear", [x], q, n + "q_proj", linear=lw["q"])
        g.add("linear", [x], k, n + "k_proj", linear=lw["k"])
        g.add("linear", [x], v, n + "v_proj", linear=lw["v"])
        g.add("rope", [q], q, n + "rope_q", heads=nh, **rope)
        g.add("rope", [k], k, n + "rope_k", heads=nkv, **rope)
        g.add("kv_write", [k, v], k, n + "kv_write", layer=i, kv_heads=nkv)
        g.add("attention", [q], attn, n + "attention", layer=i, heads=nh, causal=True)
        g.add("linear", [attn, h], h, n + "o_proj+residual", linear=lw["o"])
        g.add("rms_norm", [h], x, n + "post_norm", weight=lw["post_norm"], eps=eps)
        g.add("linear", [x], gate_up, n + "gate_up_proj", linear=lw["gate_up"])
        g.add("swiglu", [gate_up], act, n + "swiglu")
        g.add("linear", [act, h], h, n + "down_proj+residual", linear=lw["down"])
    g.add("rms_norm", [h], x, "final_norm", weight=w["final_norm"], eps=eps)
    add_lm_head(g, x, w["lm_head"], cfg.vocab_size, logits)
    return g
