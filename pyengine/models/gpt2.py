"""GPT-2: learned position embeddings, pre-norm LayerNorm blocks, fused c_attn, gelu_new MLP.

Checkpoint quirk: GPT-2's Conv1D layers store weights [in_features, out_features], the
transpose of torch.nn.Linear; Linear packs the transposed view directly (no copy). c_attn's
[hidden, 3 * hidden] is split into q, k and v column blocks so each lands in its own buffer.

Per layer, on activations [T, hidden]:
    x = layer_norm(h, ln_1);  q, k, v = x @ c_attn[:, block] + bias;  cache[layer] <- k, v
    h += attention(q, cache) @ c_proj          residual fused in the epilogue
    x = layer_norm(h, ln_2);  h += gelu_tanh(x @ c_fc + b) @ mlp.c_proj
"""

from __future__ import annotations

from pyengine.loaders import ModelConfig
from pyengine.models.common import WeightPacker, add_lm_head
from pyengine.runtime.graph import Graph

FAMILIES = ("gpt2",)
GELU_APPROXIMATION = {"gelu_tanh": "tanh", "gelu": "none"}


def _conv1d(packer: WeightPacker, prefix: str, cols: slice | None = None):
    weight = packer.tensors[prefix + ".weight"]  # [in, out]
    bias = packer.tensors[prefix + ".bias"]
    if cols is not None:
        weight, bias = weight[:, cols], bias[cols]
    return packer.linear(weight.T, bias, stored=packer.stored_dtype(prefix + ".weight"))


def prepare(cfg: ModelConfig, packer: WeightPacker) -> dict:
    hidden = cfg.hidden_size
    if cfg.activation not in GELU_APPROXIMATION:
        raise ValueError(f"GPT-2 with activation {cfg.activation!r} is not supported")
    layers = []
    for i in range(cfg.num_layers):
        p = f"h.{i}."
        attn = p + "attn.c_attn"
        layer = {
            "ln_1": (packer.array(p + "ln_1.weight"), packer.array(p + "ln_1.bias")),
            "q": _conv1d(packer, attn, slice(0, hidden)),
            "k": _conv1d(packer, attn, slice(hidden, 2 * hidden)),
            "v": _conv1d(packer, attn, slice(2 * hidden, 3 * hidden)),
            "proj": _conv1d(packer, p + "attn.c_proj"),
            "ln_2": (packer.array(p + "ln_2.weight"), packer.array(p + "ln_2.bias")),
            "fc": _conv1d(packer, p + "mlp.c_fc"),
            "fc_proj": _conv1d(packer, p + "mlp.c_proj"),
        }
        packer.release(
            *(
                p + n
                for n in (
                    "attn.c_attn.weight",
                    "attn.c_proj.weight",
                    "mlp.c_fc.weight",
                    "mlp.c_proj.weight",
                )
            )
        )
        layers.append(layer)
    wte = packer.array("wte.weight")
    head = wte if cfg.tie_word_embeddings else packer.array("lm_head.weight")
    return {
        "wte": wte,
        "wpe": packer.array("wpe.weight"),
        "layers": layers,
        "ln_f": (packer.array("ln_f.weight"), packer.array("ln_f.bias")),
        "lm_head": packer.linear(head, stored=packer.stored_dtype("wte.weight")),
    }


def build(cfg: ModelConfig, w: dict, logits: str) -> Graph:
    g = Graph()
    hidden, heads, eps = cfg.hidden_size, cfg.num_heads, cfg.norm_eps
    h, x, pos = g.buffer("h", hidden), g.buffer("x", hidden), g.buffer("pos", hidden)
    q, k, v = g.buffer("q", hidden), g.buffer("k", hidden), g.buffer("v", hidden)
    attn = g.buffer("attn", hidden)
    fc = g.buffer("fc", cfg.intermediate_size)
    approximate = GELU_APPROXIMATION[cfg.activation]

    g.add("embed", [], h, "wte", table=w["wte"])
    g.add("embed", [], pos, "wpe", table=w["wpe"], source="positions")
    g.add("add", [h, pos], h, "h+wpe")
    for i, lw in enumerate(w["layers"]):
        n = f"L{i}."
        g.add("layer_norm", [h], x, n + "ln_1", weight=lw["ln_1"][0], bias=lw["ln_1"][1], eps=eps)
        g.add("linear", [x], q, n + "q", linear=lw["q"])
        g.add("linear", [x], k, n + "k", linear=lw["k"])
        g.add("linear", [x], v, n + "v", linear=lw["v"])
        g.add("kv_write", [k, v], k, n + "kv_write", layer=i, kv_heads=heads)
        g.add("attention", [q], attn, n + "attention", layer=i, heads=heads, causal=True)
        g.add("linear", [attn, h], h, n + "c_proj+residual", linear=lw["proj"])
        g.add("layer_norm", [h], x, n + "ln_2", weight=lw["ln_2"][0], bias=lw["ln_2"][1], eps=eps)
        g.add("linear", [x], fc, n + "c_fc", linear=lw["fc"])
        g.add("gelu", [fc], fc, n + "gelu", approximate=approximate)
        g.add("linear", [fc, h], h, n + "mlp_proj+residual", linear=lw["fc_proj"])
    g.add("layer_norm", [h], x, "ln_f", weight=w["ln_f"][0], bias=w["ln_f"][1], eps=eps)
    add_lm_head(g, x, w["lm_head"], cfg.vocab_size, logits)
    return g
