"""The BERT family: BERT, RoBERTa, XLM-RoBERTa encoders (the base model; heads are ignored).

Embeddings: word[ids] + position[positions] + token_type[type_ids], then LayerNorm. RoBERTa's
positions start at padding_idx + 1 (config.position_offset). Post-norm blocks, per layer on
activations [T, hidden]:
    q, k, v = x @ W^T + b                      bidirectional attention over each row's real keys
    x = layer_norm(x + attention @ Wo^T + bo)  residual fused in the GEMM epilogue
    x = layer_norm(x + gelu(x @ Wi^T + bi) @ Wout^T + bout)
"""

from __future__ import annotations

from pyengine.loaders import ModelConfig
from pyengine.models.common import WeightPacker
from pyengine.runtime.graph import Graph

FAMILIES = ("bert", "roberta", "xlm-roberta")
GELU_APPROXIMATION = {"gelu": "none", "gelu_tanh": "tanh"}


def prepare(cfg: ModelConfig, packer: WeightPacker) -> dict:
    if cfg.activation not in GELU_APPROXIMATION:
        raise ValueError(f"{cfg.architecture} with activation {cfg.activation!r} is not supported")

    def norm(prefix):
        return packer.array(prefix + ".weight"), packer.array(prefix + ".bias")

    layers = []
    for i in range(cfg.num_layers):
        p = f"encoder.layer.{i}."
        layers.append(
            {
                "q": packer.linear_from(p + "attention.self.query", True),
                "k": packer.linear_from(p + "attention.self.key", True),
                "v": packer.linear_from(p + "attention.self.value", True),
                "o": packer.linear_from(p + "attention.output.dense", True),
                "attn_norm": norm(p + "attention.output.LayerNorm"),
                "inter": packer.linear_from(p + "intermediate.dense", True),
                "out": packer.linear_from(p + "output.dense", True),
                "out_norm": norm(p + "output.LayerNorm"),
            }
        )
    e = "embeddings."
    return {
        "word": packer.array(e + "word_embeddings.weight"),
        "position": packer.array(e + "position_embeddings.weight"),
        "type": packer.array(e + "token_type_embeddings.weight") if cfg.type_vocab_size else None,
        "norm": norm(e + "LayerNorm"),
        "layers": layers,
    }


def build(cfg: ModelConfig, w: dict) -> Graph:
    """The encoder graph; its output is the last hidden state, buffer "h" [T, hidden]."""
    g = Graph()
    hidden, heads, eps = cfg.hidden_size, cfg.num_heads, cfg.norm_eps
    h, x, tmp = g.buffer("h", hidden), g.buffer("x", hidden), g.buffer("tmp", hidden)
    q, k, v = g.buffer("q", hidden), g.buffer("k", hidden), g.buffer("v", hidden)
    attn = g.buffer("attn", hidden)
    fc = g.buffer("fc", cfg.intermediate_size)
    approximate = GELU_APPROXIMATION[cfg.activation]

    g.add("embed", [], x, "word_embeddings", table=w["word"])
    g.add("embed", [], tmp, "position_embeddings", table=w["position"], source="positions")
    g.add("add", [x, tmp], x, "x+positions")
    if w["type"] is not None:
        g.add("embed", [], tmp, "token_type_embeddings", table=w["type"], source="type_ids")
        g.add("add", [x, tmp], x, "x+token_types")
    nw, nb = w["norm"]
    g.add("layer_norm", [x], h, "embeddings_norm", weight=nw, bias=nb, eps=eps)
    for i, lw in enumerate(w["layers"]):
        n = f"L{i}."
        g.add("linear", [h], q, n + "query", linear=lw["q"])
        g.add("linear", [h], k, n + "key", linear=lw["k"])
        g.add("linear", [h], v, n + "value", linear=lw["v"])
        # One K/V scratch serves every layer: each layer's keys are consumed before the next.
        cache = g.cache(0)  # one cache, rewritten by every layer: the encoder keeps no state
        g.add("kv_write", [k, v], cache, n + "kv_write", layer=0, kv_heads=heads)
        g.add("attention", [q, cache], attn, n + "attention", layer=0, heads=heads, causal=False)
        g.add("linear", [attn, h], tmp, n + "attn_out+residual", linear=lw["o"])
        g.add(
            "layer_norm",
            [tmp],
            h,
            n + "attn_norm",
            weight=lw["attn_norm"][0],
            bias=lw["attn_norm"][1],
            eps=eps,
        )
        g.add("linear", [h], fc, n + "intermediate", linear=lw["inter"])
        g.add("gelu", [fc], fc, n + "gelu", approximate=approximate)
        g.add("linear", [fc, h], tmp, n + "output+residual", linear=lw["out"])
        g.add(
            "layer_norm",
            [tmp],
            h,
            n + "out_norm",
            weight=lw["out_norm"][0],
            bias=lw["out_norm"][1],
            eps=eps,
        )
    return g
